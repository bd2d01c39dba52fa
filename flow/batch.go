package flow

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
)

// Batch is one mini-batch travelling through a pipeline.
//
// X holds the data inputs and Y the expected outputs (labels, targets) with
// the same number of rows, or nil where there are none (inference). Seq is
// the batch's position in its source stream and Epoch the pass over the data
// it belongs to (0 for the first); the runners copy both from a step's input
// to its output, so steps need not.
//
// Ownership follows Arrow's reference counting. Whoever holds a Batch owns
// one reference to X and one to Y and releases them with Release. A step
// borrows the batch that it is given (valid until the step returns) and
// returns a batch that its caller owns; a step that passes a record or a
// column through unchanged calls Retain on it first.
type Batch struct {
	Seq   int64
	Epoch int
	X     arrow.RecordBatch
	Y     arrow.RecordBatch
}

// Rows returns the number of rows of X, or of Y where X is nil.
func (b Batch) Rows() int64 {
	switch {
	case b.X != nil:
		return b.X.NumRows()
	case b.Y != nil:
		return b.Y.NumRows()
	}
	return 0
}

// Retain adds one reference to X and Y.
func (b Batch) Retain() {
	if b.X != nil {
		b.X.Retain()
	}
	if b.Y != nil {
		b.Y.Retain()
	}
}

// Release drops one reference to X and Y. It is safe on a zero Batch.
func (b Batch) Release() {
	if b.X != nil {
		b.X.Release()
	}
	if b.Y != nil {
		b.Y.Release()
	}
}

// Source is a stream of batches read like an io.Reader: Next returns the
// next batch, which the caller owns and must release, or io.EOF itself
// after the last one. Any other error, one that wraps io.EOF included (a
// Stream's failure, say), ends the stream and fails the run. Next honours
// ctx while it blocks. A Source is read by one goroutine at a time.
type Source interface {
	Next(ctx context.Context) (Batch, error)
}

// Rewinder is implemented by sources that may be read again from the
// start. Replayable reports whether this source can (a wrapper can when
// what it wraps can; a CSV source can when it reads a file, not a pipe);
// it is the one place where replayability is decided. Rewind, called only
// when Replayable reports true, makes the next call to Next return the
// first batch again.
//
// Runners rewind a replayable source for the extra passes that a Joiner
// needs in fit mode; any other source is spilled to disk instead.
type Rewinder interface {
	Source
	Replayable() bool
	Rewind() error
}

// Replayable reports whether src can be read again from the start: it is a
// Rewinder whose Replayable method says so.
func Replayable(src Source) bool {
	r, ok := src.(Rewinder)
	return ok && r.Replayable()
}
