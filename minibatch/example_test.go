package minibatch_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/minibatch"
)

// Ten rows in batches of four, re-batched to three rows with the last batch
// padded, then packed into a tensor column.
func ExampleNewRebatcher() {
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	x := make([]float64, 10)
	y := make([]int64, 10)
	for i := range x {
		x[i], y[i] = float64(i), int64(i%2)
	}
	src, err := minibatch.FromSlices(4, []minibatch.Column{minibatch.Float64s("a", x), minibatch.Float64s("b", x)}, []minibatch.Column{minibatch.Int64s("label", y)}, minibatch.WithAllocator(mem))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()

	rb, err := minibatch.NewRebatcher(src, 3, minibatch.Pad(-1), minibatch.WithAllocator(mem))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rb.Close()
	for {
		b, err := rb.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		packed, err := minibatch.Pack(b.X, mem, "features", "a", "b")
		if err != nil {
			b.Release()
			fmt.Println(err)
			return
		}
		values, rows, width, _ := minibatch.Float32View(packed.Column(0))
		fmt.Printf("batch %d: %d×%d %v, labels %d\n", b.Seq, rows, width, values, b.Y.NumRows())
		packed.Release()
		b.Release()
	}
	// Output:
	// batch 0: 3×2 [0 0 1 1 2 2], labels 3
	// batch 1: 3×2 [3 3 4 4 5 5], labels 3
	// batch 2: 3×2 [6 6 7 7 8 8], labels 3
	// batch 3: 3×2 [9 9 -1 -1 -1 -1], labels 3
}
