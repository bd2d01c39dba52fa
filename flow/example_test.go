package flow_test

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// A streaming pipeline: centre x on the mean of the whole stream (the
// Joiner makes the fit see every batch first), then double it with two
// replicas whose outputs are put back in order.
func Example() {
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	src, err := minibatch.FromSlices(2, []minibatch.Column{minibatch.Float64s("x", []float64{1, 2, 3, 4, 5, 6})}, nil, minibatch.WithAllocator(mem))
	if err != nil {
		panic(err)
	}
	defer src.Close()

	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("center", &center{mem: mem}, flow.Barrier(barrier.Joiner)),
		flow.Named("double", scale{mem, 2}, flow.Replicas(2)),
	}, flow.QueueCapacity(4))
	if err != nil {
		panic(err)
	}
	out, err := flow.Runner{Engine: flow.Streaming}.FitTransform(ctx, p, src)
	if err != nil {
		panic(err)
	}
	batches, err := flow.Collect(ctx, out)
	if err != nil {
		panic(err)
	}
	for _, b := range batches {
		fmt.Println(b.Seq, column(b.X, "x"))
		b.Release()
	}
	// Output:
	// 0 [-5 -3]
	// 1 [-1 1]
	// 2 [3 5]
}
