package minibatch

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/penstock-ml/penstock/flow"
)

// WithShuffleRows shuffles the rows of an Epochs stream through a buffer
// of rows rows (see Shuffle), with a new order every epoch. rows < 1 is an
// error. Epochs.
func WithShuffleRows(rows int) Option {
	return func(c *sourceConfig) {
		var err error
		if rows < 1 {
			err = fmt.Errorf("shuffle rows %d, want ≥ 1", rows)
		}
		c.shuffleRows = rows
		c.note("WithShuffleRows", err)
	}
}

// EpochStream is the training stream that Epochs builds. It implements
// flow.Source and flow.Rewinder.
type EpochStream struct {
	rep     *Repeater
	closers []func() error // the stages it built, last first
}

// Epochs returns the usual training stream of src in one call: its rows
// re-batched to WithBatchRows rows (when given; otherwise src's batches
// as they are), shuffled through a buffer of WithShuffleRows rows (when
// given, drawn anew every epoch, seeded by WithSeed), and repeated epochs
// times (Repeat; epochs ≤ 0: without end), with Batch.Epoch set. It is
// NewRebatcher, Shuffle and Repeat chained; src must be replayable (a
// split, a *Memory, a file source) and at its start. Close closes the
// stages that Epochs built, not src. Options: WithBatchRows,
// WithShuffleRows, WithSeed, WithAllocator.
func Epochs(src flow.Source, epochs int, opts ...Option) (*EpochStream, error) {
	cfg, err := newStageConfig("epochs", opts, "WithBatchRows", "WithShuffleRows", "WithSeed")
	if err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("minibatch: epochs: nil source")
	}
	e := &EpochStream{}
	cur := src
	if slices.Contains(cfg.given, "WithBatchRows") {
		rb, err := NewRebatcher(cur, cfg.batchRows, Keep, WithAllocator(cfg.mem))
		if err != nil {
			return nil, err
		}
		e.closers, cur = append(e.closers, rb.Close), rb
	}
	if cfg.shuffleRows > 0 {
		sh, err := Shuffle(cur, cfg.shuffleRows, WithSeed(cfg.seed), WithAllocator(cfg.mem))
		if err != nil {
			e.Close()
			return nil, err
		}
		e.closers, cur = append(e.closers, sh.Close), sh
	}
	rep, err := Repeat(cur, epochs)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("minibatch: epochs: %w", err)
	}
	e.rep = rep
	return e, nil
}

// Next returns the next batch of the stream, or io.EOF after the last
// epoch.
func (e *EpochStream) Next(ctx context.Context) (flow.Batch, error) { return e.rep.Next(ctx) }

// Schema returns the schema of X, that of the stages it chains (see
// Repeater.Schema).
func (e *EpochStream) Schema() *arrow.Schema { return e.rep.Schema() }

// Replayable reports whether Rewind works: always, since Epochs requires a
// replayable source.
func (e *EpochStream) Replayable() bool { return e.rep.Replayable() }

// Rewind starts the stream again from its first epoch.
func (e *EpochStream) Rewind() error { return e.rep.Rewind() }

// Close closes the stages that Epochs built, in order from the last; src
// stays open. Calling it more than once is safe.
func (e *EpochStream) Close() error {
	var errs []error
	if e.rep != nil {
		errs = append(errs, e.rep.Close())
	}
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	return errors.Join(errs...)
}
