package steps

import (
	"context"
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// affineFeatures is the one kernel of the scalers: it returns b with the
// tensor column in of X replaced, at its place, by the column out whose
// value j of each row is (x[j] - shift[j]) * mul[j] + add, computed in
// float64. Y and the other columns of X are retained. what names the step
// for errors.
func affineFeatures(ctx context.Context, what string, b flow.Batch, in, out string, shift, mul []float64, add float64) (flow.Batch, error) {
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, err
	}
	x, err := minibatch.Features(b, in)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("%s: transform: %w", what, err)
	}
	if x.Cols != len(mul) {
		return flow.Batch{}, fmt.Errorf("%s: transform: column %q of X has width %d, want %d (the width it was fitted on)", what, in, x.Cols, len(mul))
	}
	y := minibatch.NewMatrix(flow.Allocator(ctx), x.Rows, x.Cols)
	defer y.Release()
	for r := range x.Rows {
		xr, yr := x.Row(r), y.Row(r)
		for j, v := range xr {
			yr[j] = float32((float64(v)-shift[j])*mul[j] + add)
		}
	}
	rec := y.Record(out)
	defer rec.Release()
	idx, _ := uniqueColumn(b.X, in) // Features found it
	nx, err := replaceColumn(b.X, idx, out, rec.Column(0))
	if err != nil {
		return flow.Batch{}, fmt.Errorf("%s: transform: %w", what, err)
	}
	return b.WithX(nx), nil
}
