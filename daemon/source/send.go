package source

import (
	"context"

	"github.com/penstock-ml/penstock/flow"
)

// Send sends batches to out in order, each as an Input whose position is
// pos(i), called just before batch i is offered (so that a source may
// record what it is about to hand over). When ctx is done first, Send
// releases the batches not sent and returns context.Cause(ctx). Send owns
// the batches.
func Send(ctx context.Context, out chan<- Input, batches []flow.Batch, pos func(i int) []byte) error {
	for i, b := range batches {
		select {
		case <-ctx.Done():
			for _, b := range batches[i:] {
				b.Release()
			}
			return context.Cause(ctx)
		case out <- Input{Batch: b, Pos: pos(i)}:
		}
	}
	return nil
}
