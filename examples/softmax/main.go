// Command softmax is the example of writing your own steps: a standard
// scaler and a softmax classifier (steps.go), fitted on 80% of the UCI
// digits (examples/data) and scored on the rest. Run it from the root:
// go run ./examples/softmax
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
)

func main() {
	acc, err := run(context.Background(), memory.DefaultAllocator, "examples/data/digits.csv.gz", 10)
	if err != nil {
		fmt.Fprintln(os.Stderr, "softmax:", err)
		os.Exit(1)
	}
	fmt.Printf("test accuracy: %.3f\n", acc)
}

// run fits pack → scale → softmax on a stratified 80% of the digits, in
// shuffled batches of 32 for epochs, and returns the accuracy on the rest.
func run(ctx context.Context, mem memory.Allocator, path string, epochs int) (float64, error) {
	pixels := make([]string, 64)
	for i := range pixels {
		pixels[i] = fmt.Sprint("px", i)
	}
	alloc := minibatch.WithAllocator(mem)
	src, err := minibatch.OpenCSV(path, alloc, minibatch.WithHeader(false),
		minibatch.WithColumnNames(append(pixels, "digit")...), minibatch.WithLabels("digit"))
	if err != nil {
		return 0, err
	}
	defer src.Close()
	train, test, err := minibatch.Holdout(ctx, src, 0.2, minibatch.WithSeed(1), alloc) // stratified by Y
	if err != nil {
		return 0, err
	}
	// Batches of 32 rows, reshuffled every epoch.
	stream, err := minibatch.Epochs(train, epochs, minibatch.WithBatchRows(32), minibatch.WithShuffleRows(2048), alloc)
	if err != nil {
		return 0, err
	}
	defer stream.Close()
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "pixels", Cols: pixels}),
		flow.Named("scale", &scaler{}, flow.FitEpochs(1), flow.Barrier(barrier.Joiner)), // fitted first
		flow.Named("softmax", &softmax{classes: 10, rate: 0.1}),
	})
	if err != nil {
		return 0, err
	}
	runner := flow.Runner{Engine: flow.Streaming, Allocator: mem} // steps: flow.Allocator(ctx)
	if _, err := runner.Fit(ctx, p, stream); err != nil {
		return 0, err
	}
	scores, err := metrics.Score(ctx, runner, p, test, "proba", "digit", metrics.Accuracy())
	return scores["accuracy"], err
}
