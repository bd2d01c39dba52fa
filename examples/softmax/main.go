// Command softmax is the example of writing your own steps: a standard
// scaler and a softmax-regression classifier trained by mini-batch SGD
// (steps.go), fitted on 80% of the UCI handwritten digits (examples/data)
// and tested on the rest (this file).
//
// Usage, from the repository root:
//
//	go run ./examples/softmax [-data examples/data/digits.csv.gz] [-epochs 10]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

func main() {
	data := flag.String("data", "examples/data/digits.csv.gz", "the digits: 64 pixel columns (0–16), then the digit")
	epochs := flag.Int("epochs", 10, "passes over the training rows")
	flag.Parse()
	acc, err := run(context.Background(), memory.DefaultAllocator, *data, *epochs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "softmax:", err)
		os.Exit(1)
	}
	fmt.Printf("test accuracy: %.3f\n", acc)
}

// run fits pack → scale → softmax on a stratified 80% of the digits at path,
// in shuffled batches of 32 for epochs, and returns the accuracy on the rest.
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
	batches, err := minibatch.NewRebatcher(train, 32, minibatch.Keep, alloc)
	if err != nil {
		return 0, err
	}
	defer batches.Close()
	shuffled, err := minibatch.Shuffle(batches, 2048, minibatch.WithSeed(1), alloc)
	if err != nil {
		return 0, err
	}
	defer shuffled.Close()
	stream, err := minibatch.Repeat(shuffled, epochs) // reshuffled each epoch
	if err != nil {
		return 0, err
	}
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
	out, err := runner.Transform(ctx, p, test)
	if err != nil {
		return 0, err
	}
	var right, total int
	err = out.Each(ctx, func(b flow.Batch) error {
		proba, err := minibatch.Features(b, "proba")
		if err != nil {
			return err
		}
		digits, err := minibatch.LabelsInt64(b, "digit")
		if err != nil {
			return err
		}
		for r, digit := range digits {
			if p := proba.Row(r); int64(slices.Index(p, slices.Max(p))) == digit {
				right++
			}
		}
		total += len(digits)
		return nil
	})
	return float64(right) / float64(total), err
}
