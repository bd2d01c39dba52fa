package source

import (
	"context"

	"github.com/penstock-ml/penstock/flow"
)

// Send sends batches to out in order, each as an Input whose position is
// pos(i), called just before batch i is offered (so that a source may
// record what it is about to hand over). Once ctx is done, Send sends
// nothing more, even where out has room: it releases the batches not sent
// and returns context.Cause(ctx). Send owns the batches.
func Send(ctx context.Context, out chan<- Input, batches []flow.Batch, pos func(i int) []byte) error {
	release := func(rest []flow.Batch) error {
		for _, b := range rest {
			b.Release()
		}
		return context.Cause(ctx)
	}
	for i, b := range batches {
		// A select picks at random among ready cases: without this check
		// a done ctx would still let batches into an out with room.
		if ctx.Err() != nil {
			return release(batches[i:])
		}
		select {
		case <-ctx.Done():
			return release(batches[i:])
		case out <- Input{Batch: b, Pos: pos(i)}:
		}
	}
	return nil
}
