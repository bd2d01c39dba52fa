package minibatch_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/minibatch"
)

// ExampleHoldout holds out a stratified fifth of 100 rows (80 of class
// "a", 20 of class "b") for validation, then reads the train side fully
// and the validation side fully.
func ExampleHoldout() {
	ctx := context.Background()
	mem := memory.NewGoAllocator()

	x := make([]float64, 100)
	y := make([]string, 100)
	for i := range x {
		x[i], y[i] = float64(i), "a"
		if i%5 == 0 {
			y[i] = "b"
		}
	}
	src, err := minibatch.FromSlices(16, []minibatch.Column{minibatch.Float64s("x", x)}, []minibatch.Column{minibatch.Strings("y", y)}, minibatch.WithAllocator(mem))
	if err != nil {
		panic(err)
	}
	defer src.Close() // after the sides: they re-read src

	train, val, err := minibatch.Holdout(ctx, src, 0.2, minibatch.WithSeed(42), minibatch.WithAllocator(mem))
	if err != nil {
		panic(err)
	}
	for _, side := range []*minibatch.SplitSource{train, val} {
		classes := map[string]int{}
		for {
			b, err := side.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				panic(err)
			}
			labels := b.Y.Column(0).(*array.String)
			for i := range labels.Len() {
				classes[labels.Value(i)]++
			}
			b.Release()
		}
		fmt.Printf("%s: %d rows, a: %d, b: %d\n", side, side.Rows(), classes["a"], classes["b"])
	}
	// Output:
	// holdout train: 80 rows, a: 64, b: 16
	// holdout validation: 20 rows, a: 16, b: 4
}
