package minibatch_test

import (
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// Epochs is NewRebatcher, Shuffle and Repeat chained: the same batches, in
// the same order, with the same epochs; Close leaves the source open.
func TestEpochs(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := testCtx(t)
	src := newMemory(t, mem, 100, 7)
	defer src.Close()

	e, err := minibatch.Epochs(src, 3, minibatch.WithBatchRows(16), minibatch.WithShuffleRows(40), minibatch.WithSeed(5), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	gotShapes, gotX, gotY := drain(t, ctx, e)
	if !e.Replayable() {
		t.Fatal("an Epochs stream over a replayable source is not replayable")
	}
	if err := e.Rewind(); err != nil {
		t.Fatal(err)
	}
	again, _, _ := drain(t, ctx, e) // from epoch 0 again (a new order: the shuffle draws anew)
	if len(again) != len(gotShapes) || again[0].Epoch != 0 || again[len(again)-1].Epoch != 2 {
		t.Errorf("after Rewind: %d batches, epochs %d…%d; want %d, 0…2", len(again), again[0].Epoch, again[len(again)-1].Epoch, len(gotShapes))
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := e.Next(ctx); err == nil {
		t.Error("Next after Close: no error")
	}

	if err := src.Rewind(); err != nil {
		t.Fatalf("the source was closed by Epochs: %v", err)
	}
	rb, err := minibatch.NewRebatcher(src, 16, minibatch.Keep, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	sh, err := minibatch.Shuffle(rb, 40, minibatch.WithSeed(5), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	rep, err := minibatch.Repeat(sh, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantShapes, wantX, wantY := drain(t, ctx, rep)
	if !slices.Equal(gotShapes, wantShapes) || !slices.Equal(gotX, wantX) || !slices.Equal(gotY, wantY) {
		t.Errorf("Epochs differs from the chain:\n got %v\nwant %v", gotShapes, wantShapes)
	}
	if n := len(gotShapes); n != 3*7 || gotShapes[n-1].Epoch != 2 {
		t.Errorf("got %d batches, last %+v; want 21, the last of epoch 2", n, gotShapes[n-1])
	}
	if slices.Equal(gotX[:100], gotX[100:200]) {
		t.Error("epochs 0 and 1 have the same order: not reshuffled")
	}
	sorted := slices.Clone(gotX[:100])
	slices.Sort(sorted)
	if !slices.Equal(sorted, iota64(100)) {
		t.Error("an epoch is not a permutation of the rows")
	}
	var _ flow.Rewinder = e
}

func TestEpochsOptions(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := testCtx(t)
	src := newMemory(t, mem, 30, 10)
	defer src.Close()
	// Without options: the source's batches, repeated.
	e, err := minibatch.Epochs(src, 2)
	if err != nil {
		t.Fatal(err)
	}
	shapes, xs, _ := drain(t, ctx, e)
	e.Close()
	if len(shapes) != 6 || !slices.Equal(xs[:30], iota64(30)) {
		t.Errorf("plain Epochs: %v %v", shapes, xs[:30])
	}
	for _, bad := range [][]minibatch.Option{
		{minibatch.WithShuffleRows(0)},
		{minibatch.WithBatchRows(0)},
		{minibatch.WithHeader(true)},
	} {
		if _, err := minibatch.Epochs(src, 2, bad...); err == nil {
			t.Errorf("options %v: no error", bad)
		}
	}
	if _, err := minibatch.Epochs(nil, 2); err == nil {
		t.Error("nil source: no error")
	}
}
