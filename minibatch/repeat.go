package minibatch

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/penstock-ml/penstock/flow"
)

// Repeater reads a replayable source epoch after epoch (see Repeat). It
// implements flow.Source and flow.Rewinder.
//
// Ownership: the Repeater borrows its source and holds no batches; the
// caller owns every batch that Next returns and closes the source after the
// Repeater. A Repeater is read by one goroutine.
type Repeater struct {
	src       flow.Source
	rw        flow.Rewinder
	epochs    int
	epoch     int
	seq       int64
	epochRows int64 // rows returned in the current epoch
	done      bool
	closed    bool
	schema    *arrow.Schema // X's schema of the last batch
}

var (
	_ flow.Source   = (*Repeater)(nil)
	_ flow.Rewinder = (*Repeater)(nil)
	_ io.Closer     = (*Repeater)(nil)
)

// Repeat returns a source that reads src epochs times (epochs ≤ 0: without
// end), rewinding it at the end of each epoch. Every batch gets Epoch set to
// the epoch number (0, 1, 2, …) and Seq numbered on across epochs (0, 1, 2,
// … over the whole stream). src must implement flow.Rewinder (a *Memory, a
// Rebatcher over a replayable source, a Shuffler, an Ordered, …) and must be
// at its start. An epoch that returns no rows (no batch, or only batches of
// zero rows) ends the stream (io.EOF), so an empty source repeated without
// end does not spin, nor does a stage over it that waits for rows. Cost:
// O(1) per batch plus one Rewind of src per epoch.
func Repeat(src flow.Source, epochs int) (*Repeater, error) {
	if src == nil {
		return nil, errors.New("minibatch: repeat: source is nil")
	}
	rw, ok := src.(flow.Rewinder)
	if !ok {
		return nil, fmt.Errorf("minibatch: repeat: source %T does not implement flow.Rewinder, so it cannot be read again; repeat a replayable source (a *minibatch.Memory, or a source that can Rewind): %w", src, ErrNotReplayable)
	}
	if !replayable(src) {
		return nil, fmt.Errorf("minibatch: repeat: source %T reports that it is not replayable (Replayable() is false), so it cannot be read again: %w", src, ErrNotReplayable)
	}
	return &Repeater{src: src, rw: rw, epochs: epochs}, nil
}

// Replayable reports whether Rewind can succeed: whether the Repeater is
// open and its source replayable. A Repeater is made only over replayable
// sources.
func (r *Repeater) Replayable() bool { return !r.closed && replayable(r.src) }

// Schema returns the schema of X: that of the source where it reports one
// (a Schema method), else that of the last batch returned (nil before it).
func (r *Repeater) Schema() *arrow.Schema {
	if s := sourceSchema(r.src); s != nil {
		return s
	}
	return r.schema
}

// Close ends the stream: Next and Rewind fail afterwards. The Repeater holds
// no batches and does not close its source. Calling it twice is safe.
func (r *Repeater) Close() error {
	r.closed = true
	return nil
}

// Next returns the next batch, which the caller owns, or io.EOF after the
// last epoch. Errors from the source are returned wrapped with the epoch.
func (r *Repeater) Next(ctx context.Context) (flow.Batch, error) {
	if r.closed {
		return flow.Batch{}, errors.New("minibatch: repeat: Next after Close")
	}
	for {
		if ctx.Err() != nil {
			return flow.Batch{}, context.Cause(ctx)
		}
		if r.done {
			return flow.Batch{}, io.EOF
		}
		b, err := r.src.Next(ctx)
		if err == io.EOF {
			if r.epochRows == 0 || (r.epochs > 0 && r.epoch+1 >= r.epochs) {
				r.done = true
				return flow.Batch{}, io.EOF
			}
			if err := r.rw.Rewind(); err != nil {
				return flow.Batch{}, fmt.Errorf("minibatch: repeat: rewind source for epoch %d: %w", r.epoch+1, err)
			}
			r.epoch++
			r.epochRows = 0
			continue
		}
		if err != nil {
			return flow.Batch{}, fmt.Errorf("minibatch: repeat: epoch %d: %w", r.epoch, err)
		}
		b.Seq, b.Epoch = r.seq, r.epoch
		if b.X != nil {
			r.schema = b.X.Schema()
		}
		r.seq++
		r.epochRows += b.Rows()
		return b, nil
	}
}

// Rewind rewinds the source and starts again at epoch 0, Seq 0.
func (r *Repeater) Rewind() error {
	if r.closed {
		return errors.New("minibatch: repeat: Rewind after Close")
	}
	if err := r.rw.Rewind(); err != nil {
		return fmt.Errorf("minibatch: repeat: rewind source: %w", err)
	}
	r.epoch, r.seq, r.epochRows, r.done = 0, 0, 0, false
	return nil
}

// Epoch returns the current epoch number.
func (r *Repeater) Epoch() int { return r.epoch }
