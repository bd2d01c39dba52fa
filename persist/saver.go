package persist

import (
	"context"
	"fmt"

	"github.com/penstock-ml/penstock/flow"
)

// FileSaver saves pipelines with SaveFile, with its Options (WithRegistry,
// WithExtra, WithAllocator): it is the saver that automl.BestCheckpoint
// takes (automl.Saver), so that the best model of a search is kept as a
// file that LoadFile reads. Its zero value saves with Default. It is safe
// for concurrent use by distinct paths (each save is atomic: a crash, or
// a failed save, leaves the old file).
type FileSaver struct {
	Options []Option
}

// Save saves p to the file path with SaveFile, unless ctx is done first
// (an error wrapping ctx.Err() and its cause, context.Cause, and nothing
// written). A save that has started runs to its end: a file is never left
// half written.
func (s FileSaver) Save(ctx context.Context, path string, p *flow.Pipeline) error {
	if err := ctx.Err(); err != nil {
		if cause := context.Cause(ctx); cause != err {
			return fmt.Errorf("persist: save %s: %w: %w", path, err, cause)
		}
		return fmt.Errorf("persist: save %s: %w", path, err)
	}
	if p == nil {
		return fmt.Errorf("persist: save %s: a nil pipeline", path)
	}
	return SaveFile(path, p, s.Options...)
}
