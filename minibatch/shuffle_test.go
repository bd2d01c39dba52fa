package minibatch_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// checkPaired fails unless every Y equals 10 × its X.
func checkPaired(t *testing.T, xs, ys []float64) {
	t.Helper()
	if len(xs) != len(ys) {
		t.Fatalf("got %d X and %d Y rows; want equal", len(xs), len(ys))
	}
	for i := range xs {
		if ys[i] != 10*xs[i] {
			t.Fatalf("row %d: got x=%v y=%v; want y = 10x (rows paired)", i, xs[i], ys[i])
		}
	}
}

// checkOnce fails unless xs holds every row 0..n-1 exactly once.
func checkOnce(t *testing.T, xs []float64, n int) {
	t.Helper()
	got := slices.Clone(xs)
	slices.Sort(got)
	if !slices.Equal(got, iota64(n)) {
		t.Fatalf("got %d rows %v…; want each of 0..%d exactly once", len(xs), got[:min(len(got), 10)], n-1)
	}
}

func shuffled(t *testing.T, mem memory.Allocator, sizes []int, buffer int, seed uint64) ([]shape, []float64) {
	t.Helper()
	s, err := minibatch.Shuffle(&rowsSource{mem: mem, sizes: sizes}, buffer, minibatch.WithSeed(seed), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	shapes, xs, ys := drain(t, testCtx(t), s)
	checkPaired(t, xs, ys)
	return shapes, xs
}

func TestShuffleBuffer(t *testing.T) {
	tests := []struct {
		name   string
		sizes  []int
		buffer int
	}{
		{"buffer smaller than batch", repeatSizes(32, 10), 8},
		{"buffer of a few batches", append(repeatSizes(32, 10), 5), 100},
		{"buffer larger than stream", []int{7, 1, 30, 0, 12}, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			n := 0
			var want []int64
			for _, s := range tt.sizes {
				n += s
				if s > 0 {
					want = append(want, int64(s))
				}
			}
			shapes, a := shuffled(t, mem, tt.sizes, tt.buffer, 1)
			checkOnce(t, a, n)
			for i, s := range shapes {
				if s.Seq != int64(i) || s.Rows != want[i] {
					t.Errorf("batch %d: got Seq %d, %d rows; want Seq %d, %d rows (the input's sizes)", i, s.Seq, s.Rows, i, want[i])
				}
			}
			if slices.Equal(a, iota64(n)) {
				t.Errorf("got the input order; want a shuffled one")
			}
			_, again := shuffled(t, mem, tt.sizes, tt.buffer, 1)
			if !slices.Equal(a, again) {
				t.Errorf("seed 1 twice: got different orders; want the same")
			}
			_, other := shuffled(t, mem, tt.sizes, tt.buffer, 2)
			if slices.Equal(a, other) {
				t.Errorf("seeds 1 and 2: got the same order; want different")
			}
		})
	}
}

func TestShuffleBufferLocality(t *testing.T) {
	// A row can leave the buffer no earlier than its position minus the
	// buffer: row i is read before the buffer holds more than i+buffer rows.
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const buffer, batch = 50, 10
	_, xs := shuffled(t, mem, repeatSizes(batch, 100), buffer, 3)
	for pos, x := range xs {
		if int(x) > pos+buffer+batch {
			t.Fatalf("row %v returned at position %d; want ≤ %d (buffer %d)", x, pos, pos+buffer+batch, buffer)
		}
	}
}

func TestShuffleEpochs(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src := &rowsSource{mem: mem, sizes: []int{10, 10, 10, 10}, epochs: []int{0, 0, 1, 1}}
	s, err := minibatch.Shuffle(src, 1000, minibatch.WithSeed(9), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	shapes, xs, _ := drain(t, testCtx(t), s)
	if len(shapes) != 4 {
		t.Fatalf("got %d batches; want 4", len(shapes))
	}
	for i, sh := range shapes {
		if want := i / 2; sh.Epoch != want {
			t.Errorf("batch %d: got epoch %d; want %d", i, sh.Epoch, want)
		}
	}
	for i, x := range xs {
		if (i < 20) != (x < 20) {
			t.Fatalf("row %v at position %d: epochs mixed", x, i)
		}
	}

	// Rewind: same rows, new order.
	if err := s.Rewind(); err != nil {
		t.Fatal(err)
	}
	_, second, _ := drain(t, testCtx(t), s)
	checkOnce(t, second, 40)
	if slices.Equal(xs, second) {
		t.Errorf("after Rewind: got the same order; want a new one")
	}
}

func TestShuffleErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	if _, err := minibatch.Shuffle(&rowsSource{mem: mem}, 0, minibatch.WithSeed(1), minibatch.WithAllocator(mem)); err == nil {
		t.Errorf("buffer 0: got no error; want one")
	}
	s, err := minibatch.Shuffle(onceSource{&rowsSource{mem: mem}}, 4, minibatch.WithSeed(1), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Rewind(); !errors.Is(err, minibatch.ErrNotReplayable) {
		t.Errorf("Rewind of one-pass source: got %v; want ErrNotReplayable", err)
	}
	s2, err := minibatch.Shuffle(&mixedSource{mem: mem}, 100, minibatch.WithSeed(1), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Next(testCtx(t)); err == nil || !strings.Contains(err.Error(), `column "x" has type int64 in batch 1, want float64`) {
		t.Errorf("schema change: got %v; want a schema error", err)
	}

	// Cancelled and released mid-stream: nothing left allocated.
	ctx, cancel := context.WithCancel(testCtx(t))
	s3, err := minibatch.Shuffle(&rowsSource{mem: mem, sizes: repeatSizes(10, 10)}, 30, minibatch.WithSeed(1), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	cancel()
	if _, err := s3.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v; want context.Canceled", err)
	}
	s3.Close()
}

// peakShuffle reads a shuffled stream of batches × 64 rows and returns the
// most that the allocator held at any time.
func peakShuffle(t *testing.T, mem *memory.CheckedAllocator, batches, buffer int) int {
	t.Helper()
	src := &rowsSource{mem: mem, sizes: repeatSizes(64, batches)}
	s, err := minibatch.Shuffle(src, buffer, minibatch.WithSeed(5), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := testCtx(t)
	peak, rows := 0, 0
	for {
		b, err := s.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, mem.CurrentAlloc())
		rows += int(b.Rows())
		b.Release()
	}
	if rows != 64*batches {
		t.Fatalf("got %d rows; want %d", rows, 64*batches)
	}
	return peak
}

func TestShuffleBufferMemoryBounded(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const buffer = 512
	short := peakShuffle(t, mem, 100, buffer)
	long := peakShuffle(t, mem, 3000, buffer)
	// 16 bytes a row (X and Y float64); the buffer holds at most about
	// 2 × (buffer + 2 × 64) rows before it compacts, plus the output batch.
	bound := 16*4*(buffer+2*64) + 64<<10
	t.Logf("peak: %d bytes for 100 batches, %d for 3000; bound %d", short, long, bound)
	stream := 3000 * 64 * 16
	if long > bound {
		t.Errorf("stream of %d bytes: peak %d bytes; want ≤ %d (O(buffer), whatever the stream's length)", stream, long, bound)
	}
	if long > 2*short {
		t.Errorf("peak grew with the stream: %d bytes for 100 batches, %d for 3000; want about equal", short, long)
	}
}

func TestPermute(t *testing.T) {
	const n = 103
	tests := []struct {
		name   string
		source func(mem memory.Allocator) (flow.Source, func())
		opts   []minibatch.Option
	}{
		{"memory", func(mem memory.Allocator) (flow.Source, func()) {
			m := newMemory(t, mem, n, 10)
			return m, func() { m.Close() }
		}, nil},
		{"replayable, window 16", func(mem memory.Allocator) (flow.Source, func()) {
			return &rowsSource{mem: mem, sizes: []int{10, 20, 30, 3, 40}}, func() {}
		}, []minibatch.Option{minibatch.WithWindowRows(16)}},
		{"replayable, default window", func(mem memory.Allocator) (flow.Source, func()) {
			return &rowsSource{mem: mem, sizes: []int{50, 53}}, func() {}
		}, nil},
	}
	var reference [][]float64 // the epochs of the first source, for the others
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src, release := tt.source(mem)
			defer release()
			p, err := minibatch.Permute(src, 8, append([]minibatch.Option{minibatch.WithSeed(42), minibatch.WithAllocator(mem)}, tt.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			var epochs [][]float64
			for e := range 3 {
				shapes, xs, ys := drain(t, testCtx(t), p)
				checkPaired(t, xs, ys)
				checkOnce(t, xs, n)
				if len(shapes) != 13 || shapes[12].Rows != 7 || shapes[0].Epoch != e || shapes[12].Seq != 12 {
					t.Errorf("epoch %d: got %d batches, last %+v; want 13, the last Seq 12 with 7 rows, Epoch %d", e, len(shapes), shapes[len(shapes)-1], e)
				}
				for _, prev := range epochs {
					if slices.Equal(prev, xs) {
						t.Errorf("epoch %d: got the order of an earlier epoch; want a new one", e)
					}
				}
				epochs = append(epochs, xs)
				if err := p.Rewind(); err != nil {
					t.Fatal(err)
				}
			}
			if reference == nil {
				reference = epochs
			}
			for e := range epochs {
				if !slices.Equal(epochs[e], reference[e]) {
					t.Errorf("epoch %d: got another order than for the same seed over a Memory; want the same", e)
				}
			}
		})
	}
}

func TestPermuteSeeds(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	m := newMemory(t, mem, 50, 7)
	defer m.Close()
	order := func(seed uint64) []float64 {
		p, err := minibatch.Permute(m, 5, minibatch.WithSeed(seed), minibatch.WithAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		_, xs, _ := drain(t, testCtx(t), p)
		return xs
	}
	a, b, c := order(1), order(1), order(2)
	if !slices.Equal(a, b) {
		t.Errorf("seed 1 twice: got different orders; want the same")
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 1 and 2: got the same order; want different")
	}
	if _, err := minibatch.Permute(onceSource{m}, 5, minibatch.WithSeed(1), minibatch.WithAllocator(mem)); !errors.Is(err, minibatch.ErrNotReplayable) {
		t.Errorf("one-pass source: got %v; want ErrNotReplayable", err)
	}
}
