package minibatch_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// TestCacheReplays checks that a Cache reads its source once, and that
// every pass returns identical batches (same Seq, Epoch, values), also over
// a source that is not replayable.
func TestCacheReplays(t *testing.T) {
	for _, replayable := range []bool{true, false} {
		t.Run(fmt.Sprintf("replayable source %t", replayable), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := testCtx(t)
			inner := &rowsSource{mem: mem, sizes: []int{5, 3, 7}}
			var src flow.Source = inner
			if !replayable {
				src = onceSource{inner}
			}
			c, err := minibatch.NewCache(src, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if !c.Replayable() {
				t.Error("Replayable() before the first read = false; want true (the Cache is at its start)")
			}
			var first []flow.Batch
			for {
				b, err := c.Next(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(first) == 0 && !c.Filled() && !c.Replayable() {
					t.Error("Replayable() during the first pass = false; want true (a Rewind reads the rest of the source first)")
				}
				first = append(first, b)
			}
			defer releaseBatches(first)
			if !c.Filled() || !c.Replayable() {
				t.Fatalf("after the first pass: Filled %t, Replayable %t; want both true", c.Filled(), c.Replayable())
			}
			if c.Bytes() <= 0 {
				t.Errorf("Bytes() = %d; want > 0", c.Bytes())
			}
			for pass := 1; pass <= 3; pass++ {
				if err := c.Rewind(); err != nil {
					t.Fatalf("Rewind before pass %d: %v", pass, err)
				}
				for i := 0; ; i++ {
					b, err := c.Next(ctx)
					if errors.Is(err, io.EOF) {
						if i != len(first) {
							t.Errorf("pass %d: %d batches; want %d", pass, i, len(first))
						}
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					if i >= len(first) {
						b.Release()
						t.Fatalf("pass %d: more than %d batches", pass, len(first))
					}
					w := first[i]
					if b.Seq != w.Seq || b.Epoch != w.Epoch || !array.RecordEqual(b.X, w.X) || !array.RecordEqual(b.Y, w.Y) {
						t.Errorf("pass %d batch %d: Seq %d Epoch %d X %v; want Seq %d Epoch %d X %v", pass, i, b.Seq, b.Epoch, b.X, w.Seq, w.Epoch, w.X)
					}
					b.Release()
				}
			}
			if inner.reads != 3 {
				t.Errorf("the source returned %d batches over 4 passes; want 3 (read once)", inner.reads)
			}
		})
	}
}

// TestCacheLimit checks that a source larger than the limit is an error
// that says the limit and how to raise it, wraps ErrCacheFull, and leaves
// nothing allocated, and that the Cache then stays failed.
func TestCacheLimit(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := testCtx(t)
	// Each batch of 10 rows holds 80 bytes of X and 80 of Y: 160 bytes.
	inner := &rowsSource{mem: mem, sizes: []int{10, 10, 10, 10}}
	c, err := minibatch.NewCache(inner, minibatch.WithMaxBytes(400))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var gotErr error
	for range 10 {
		b, err := c.Next(ctx)
		if err != nil {
			gotErr = err
			break
		}
		b.Release()
	}
	if !errors.Is(gotErr, minibatch.ErrCacheFull) {
		t.Fatalf("got %v; want an error wrapping ErrCacheFull", gotErr)
	}
	for _, want := range []string{"batch 2", "limit of 400 bytes", "WithMaxBytes"} {
		if !strings.Contains(gotErr.Error(), want) {
			t.Errorf("error %q does not say %q", gotErr, want)
		}
	}
	if mem.CurrentAlloc() != 0 || c.Bytes() != 0 {
		t.Errorf("after the error: %d bytes allocated, Bytes() = %d; want 0 and 0 (everything released)", mem.CurrentAlloc(), c.Bytes())
	}
	if _, err := c.Next(ctx); !errors.Is(err, minibatch.ErrCacheFull) {
		t.Errorf("Next after the error: %v; want the same error", err)
	}
	if c.Replayable() {
		t.Error("Replayable() = true after the error; want false")
	}
	if err := c.Rewind(); err == nil {
		t.Error("Rewind after the error: nil; want an error")
	}
}

// TestCacheRewindEarly checks Rewind in the middle of the first pass: it
// rewinds a replayable source and fills anew, and over a source that is
// not replayable the next pass reads the rest of it first, then replays.
func TestCacheRewindEarly(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := testCtx(t)
	inner := &rowsSource{mem: mem, sizes: []int{2, 2, 2}}
	c, err := minibatch.NewCache(inner)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	if err := c.Rewind(); err != nil {
		t.Fatalf("Rewind mid first pass over a replayable source: %v", err)
	}
	shapes, xs, _ := drain(t, ctx, c)
	if len(shapes) != 3 || fmt.Sprint(xs) != "[0 1 2 3 4 5]" {
		t.Errorf("pass after an early Rewind: %v %v; want 3 batches of rows 0..5", shapes, xs)
	}

	once, err := minibatch.NewCache(onceSource{&rowsSource{mem: mem, sizes: []int{2, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer once.Close()
	b, err = once.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	if err := once.Rewind(); err != nil {
		t.Errorf("Rewind mid first pass over a source that is not replayable: %v; want nil (the next Next reads the rest first)", err)
	}
	shapes, xs, _ = drain(t, ctx, once)
	if len(shapes) != 2 || fmt.Sprint(xs) != "[0 1 2 3]" {
		t.Errorf("pass after an early Rewind over a source that is not replayable: %v %v; want 2 batches of rows 0..3", shapes, xs)
	}
	if _, err := minibatch.NewCache(once, minibatch.WithSeed(1)); err == nil || !strings.Contains(err.Error(), "WithSeed does not apply") {
		t.Errorf("NewCache with WithSeed: %v; want an error saying the option does not apply", err)
	}
}
