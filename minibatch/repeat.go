package minibatch

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/penstock-ml/penstock/flow"
)

// Repeater reads a replayable source epoch after epoch (see Repeat). It
// implements flow.Source and flow.Rewinder.
//
// Ownership: the Repeater borrows its source and holds no batches; the
// caller owns every batch that Next returns. A Repeater is read by one
// goroutine.
type Repeater struct {
	src          flow.Source
	rw           flow.Rewinder
	epochs       int
	epoch        int
	seq          int64
	epochBatches int64 // batches returned in the current epoch
	done         bool
}

var _ flow.Source = (*Repeater)(nil)
var _ flow.Rewinder = (*Repeater)(nil)

// Repeat returns a source that reads src epochs times (epochs ≤ 0: without
// end), rewinding it at the end of each epoch. Every batch gets Epoch set to
// the epoch number (0, 1, 2, …) and Seq numbered on across epochs (0, 1, 2,
// … over the whole stream). src must implement flow.Rewinder (a *Memory, a
// Rebatcher over a replayable source, a Shuffler, an Ordered, …) and must be
// at its start. An epoch that returns no batch ends the stream (io.EOF), so
// an empty source repeated without end does not spin. Cost: O(1) per batch
// plus one Rewind of src per epoch.
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

// replayable reports whether src can be read again: it implements
// flow.Rewinder and, where it has a Replayable method (sources whose
// replayability depends on their input, such as a CSV stream), that method
// says so.
func replayable(src flow.Source) bool {
	if _, ok := src.(flow.Rewinder); !ok {
		return false
	}
	if r, ok := src.(interface{ Replayable() bool }); ok {
		return r.Replayable()
	}
	return true
}

// Replayable reports whether Rewind can succeed: whether the source is
// replayable. A Repeater is made only over replayable sources.
func (r *Repeater) Replayable() bool { return replayable(r.src) }

// Next returns the next batch, which the caller owns, or io.EOF after the
// last epoch. Errors from the source are returned wrapped with the epoch.
func (r *Repeater) Next(ctx context.Context) (flow.Batch, error) {
	for {
		if err := ctx.Err(); err != nil {
			return flow.Batch{}, err
		}
		if r.done {
			return flow.Batch{}, io.EOF
		}
		b, err := r.src.Next(ctx)
		if err == io.EOF {
			if r.epochBatches == 0 || (r.epochs > 0 && r.epoch+1 >= r.epochs) {
				r.done = true
				return flow.Batch{}, io.EOF
			}
			if err := r.rw.Rewind(); err != nil {
				return flow.Batch{}, fmt.Errorf("minibatch: repeat: rewind source for epoch %d: %w", r.epoch+1, err)
			}
			r.epoch++
			r.epochBatches = 0
			continue
		}
		if err != nil {
			return flow.Batch{}, fmt.Errorf("minibatch: repeat: epoch %d: %w", r.epoch, err)
		}
		b.Seq, b.Epoch = r.seq, r.epoch
		r.seq++
		r.epochBatches++
		return b, nil
	}
}

// Rewind rewinds the source and starts again at epoch 0, Seq 0.
func (r *Repeater) Rewind() error {
	if err := r.rw.Rewind(); err != nil {
		return fmt.Errorf("minibatch: repeat: rewind source: %w", err)
	}
	r.epoch, r.seq, r.epochBatches, r.done = 0, 0, 0, false
	return nil
}

// Epoch returns the current epoch number.
func (r *Repeater) Epoch() int { return r.epoch }
