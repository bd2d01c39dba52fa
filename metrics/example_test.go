package metrics_test

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
)

// linear is a fitted model: it adds the prediction "pred" = W·x + B to X.
type linear struct{ W, B float64 }

func (m linear) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	x := in.X.Column(0).(*array.Float64)
	b := array.NewFloat64Builder(flow.Allocator(ctx))
	defer b.Release()
	for _, v := range x.Float64Values() {
		b.Append(m.W*v + m.B)
	}
	pred := b.NewArray()
	defer pred.Release()
	schema := arrow.NewSchema([]arrow.Field{in.X.Schema().Field(0), {Name: "pred", Type: arrow.PrimitiveTypes.Float64}}, nil)
	in.Y.Retain() // Y passes through
	return flow.Batch{X: array.NewRecordBatch(schema, []arrow.Array{x, pred}, in.X.NumRows()), Y: in.Y}, nil
}

// Score a regression model over a stream of batches of two rows.
func ExampleScore() {
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	src, err := minibatch.FromSlices(2,
		[]minibatch.Column{minibatch.Float64s("x", []float64{0, 1, 2, 3, 4})},
		[]minibatch.Column{minibatch.Float64s("y", []float64{1, 3, 4, 7, 9})},
		minibatch.WithAllocator(mem))
	if err != nil {
		panic(err)
	}
	defer src.Close()
	p, err := flow.NewPipeline([]flow.Node{flow.Named("model", linear{W: 2, B: 1})})
	if err != nil {
		panic(err)
	}

	mse, r2 := metrics.MSE(), metrics.R2()
	scores, err := metrics.Score(ctx, flow.Runner{Engine: flow.Streaming}, p, src, "pred", "y", mse, metrics.MAE(), r2)
	if err != nil {
		panic(err)
	}
	fmt.Printf("mse %.2f, mae %.2f, r2 %.4f\n", scores["mse"], scores["mae"], scores["r2"])
	fmt.Println("higher is better:", mse.HigherIsBetter(), r2.HigherIsBetter())
	// Output:
	// mse 0.20, mae 0.20, r2 0.9755
	// higher is better: false true
}

// Two replicas each score part of the rows; merged, they give the score
// of all of them, and the F1 of each class.
func ExampleF1_PerClass() {
	mem := memory.NewGoAllocator()
	ints := func(v ...int64) arrow.Array {
		b := array.NewInt64Builder(mem)
		defer b.Release()
		b.AppendValues(v, nil)
		return b.NewArray()
	}
	a, b := metrics.MacroF1(), metrics.MacroF1()
	for _, part := range []struct {
		m           *metrics.F1
		pred, truth arrow.Array
	}{
		{a, ints(0, 1, 1), ints(0, 1, 2)},
		{b, ints(2, 0, 1), ints(2, 0, 0)},
	} {
		if err := part.m.Update(part.pred, part.truth); err != nil {
			panic(err)
		}
		part.pred.Release()
		part.truth.Release()
	}
	if err := a.Merge(b); err != nil {
		panic(err)
	}
	fmt.Printf("%s over %d rows: %.4f\n", a.Name(), a.Rows(), a.Value())
	for _, c := range a.PerClass() {
		fmt.Printf("class %d: precision %.2f, recall %.2f, f1 %.2f, support %d\n", c.Class, c.Precision, c.Recall, c.F1, c.Support)
	}
	// Output:
	// macro_f1 over 6 rows: 0.6556
	// class 0: precision 1.00, recall 0.67, f1 0.80, support 3
	// class 1: precision 0.33, recall 1.00, f1 0.50, support 1
	// class 2: precision 1.00, recall 0.50, f1 0.67, support 2
}
