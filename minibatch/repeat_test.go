package minibatch_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/minibatch"
)

func TestRepeat(t *testing.T) {
	tests := []struct {
		name       string
		epochs     int
		take       int // batches to read when epochs ≤ 0
		wantShapes int
	}{
		{"one", 1, 0, 3},
		{"three", 3, 0, 9},
		{"forever", 0, 20, 20},
		{"forever negative", -1, 7, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := testCtx(t)
			m := newMemory(t, mem, 25, 10)
			defer m.Close()
			r, err := minibatch.Repeat(m, tt.epochs)
			if err != nil {
				t.Fatal(err)
			}
			var shapes []shape
			var xs []float64
			if tt.epochs > 0 {
				shapes, xs, _ = drain(t, ctx, r)
			} else {
				for range tt.take {
					b, err := r.Next(ctx)
					if err != nil {
						t.Fatal(err)
					}
					shapes = append(shapes, shape{b.Seq, b.Epoch, b.Rows()})
					xs = append(xs, float64Values(t, b.X)...)
					b.Release()
				}
			}
			if len(shapes) != tt.wantShapes {
				t.Fatalf("got %d batches; want %d", len(shapes), tt.wantShapes)
			}
			for i, s := range shapes {
				want := shape{Seq: int64(i), Epoch: i / 3, Rows: []int64{10, 10, 5}[i%3]}
				if s != want {
					t.Errorf("batch %d: got %+v; want %+v", i, s, want)
				}
			}
			for i, x := range xs {
				if x != float64(i%25) {
					t.Fatalf("row %d: got %v; want %d", i, x, i%25)
				}
			}
		})
	}
}

func TestRepeatErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	_, err := minibatch.Repeat(onceSource{&rowsSource{mem: mem}}, 2)
	if !errors.Is(err, minibatch.ErrNotReplayable) || !strings.Contains(err.Error(), "does not implement flow.Rewinder") {
		t.Errorf("one-pass source: got %v; want an error naming flow.Rewinder, wrapping ErrNotReplayable", err)
	}
	// An empty source repeated forever ends instead of spinning.
	r, err := minibatch.Repeat(&rowsSource{mem: mem}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if shapes, _, _ := drain(t, testCtx(t), r); len(shapes) != 0 {
		t.Errorf("empty source: got %d batches; want 0", len(shapes))
	}
}

func TestRepeatPermuteNewOrderEachEpoch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	m := newMemory(t, mem, 40, 16)
	defer m.Close()
	p, err := minibatch.Permute(m, 10, minibatch.WithSeed(7), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := minibatch.Repeat(p, 3)
	if err != nil {
		t.Fatal(err)
	}
	shapes, xs, ys := drain(t, testCtx(t), r)
	checkPaired(t, xs, ys)
	if len(shapes) != 12 || shapes[11].Seq != 11 || shapes[11].Epoch != 2 {
		t.Fatalf("got %d batches, last %+v; want 12, the last Seq 11 Epoch 2", len(shapes), shapes[len(shapes)-1])
	}
	for e := range 3 {
		checkOnce(t, xs[40*e:40*(e+1)], 40)
	}
	if equalFloats(xs[:40], xs[40:80]) || equalFloats(xs[40:80], xs[80:]) {
		t.Errorf("got the same order in two epochs; want a new permutation per epoch")
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
