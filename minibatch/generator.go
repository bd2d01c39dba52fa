package minibatch

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/penstock-ml/penstock/flow"
)

// GeneratorFunc makes the batch at position seq (0, 1, 2, …) of a stream, or
// returns io.EOF after the last one. The batch it returns is owned by the
// caller. It must honour ctx if it blocks.
type GeneratorFunc func(ctx context.Context, seq int64) (flow.Batch, error)

// GeneratorSource is a source whose batches are made by a function. It is
// replayable: Rewind starts again at seq 0, so a function that is
// deterministic in seq (same seq, same data, e.g. seeded from seq) gives the
// same stream on every pass; one that is not gives whatever it gives.
type GeneratorSource struct {
	fn     GeneratorFunc
	seq    int64
	done   bool
	err    error
	schema *arrow.Schema // X's schema of the first batch made
	closed bool
}

var (
	_ flow.Source   = (*GeneratorSource)(nil)
	_ flow.Rewinder = (*GeneratorSource)(nil)
	_ io.Closer     = (*GeneratorSource)(nil)
)

// Generate returns a source that calls fn for seq = 0, 1, 2, … until fn
// returns io.EOF (or another error, which ends the stream and is returned
// again by later calls until Rewind).
func Generate(fn GeneratorFunc) *GeneratorSource {
	return &GeneratorSource{fn: fn}
}

// Next returns fn's next batch, with Seq set to its position and Epoch 0;
// the caller owns it. Its cost is one call to fn.
func (g *GeneratorSource) Next(ctx context.Context) (flow.Batch, error) {
	switch {
	case g.closed:
		return flow.Batch{}, errors.New("minibatch: generator: Next after Close")
	case g.err != nil:
		return flow.Batch{}, g.err
	case g.done:
		return flow.Batch{}, io.EOF
	}
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	b, err := g.fn(ctx, g.seq)
	if err != nil {
		b.Release()
		if errors.Is(err, io.EOF) {
			g.done = true
			return flow.Batch{}, io.EOF
		}
		g.err = fmt.Errorf("minibatch: generator: batch %d: %w", g.seq, err)
		return flow.Batch{}, g.err
	}
	b.Seq, b.Epoch = g.seq, 0
	if g.schema == nil && b.X != nil {
		g.schema = b.X.Schema()
	}
	g.seq++
	return b, nil
}

// Rewind makes the next call to Next call fn with seq 0 again and clears a
// previous error. It fails only after Close.
func (g *GeneratorSource) Rewind() error {
	if g.closed {
		return errors.New("minibatch: generator: Rewind after Close")
	}
	g.seq, g.done, g.err = 0, false, nil
	return nil
}

// Replayable reports true until Close.
func (g *GeneratorSource) Replayable() bool { return !g.closed }

// Schema returns the schema of X of the first batch that the function
// made: nil until then, since a function announces no schema.
func (g *GeneratorSource) Schema() *arrow.Schema { return g.schema }

// Close ends the stream: Next and Rewind fail afterwards. The source holds
// no batches. Calling it twice is safe.
func (g *GeneratorSource) Close() error {
	g.closed = true
	return nil
}
