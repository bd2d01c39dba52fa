package minibatch_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

func TestCurriculumOrder(t *testing.T) {
	// Epoch e reads rows e, e+1, …, 9 then row 0 twice: subsets, repeats
	// and an order chosen per epoch.
	order := func(epoch, n int) ([]int, error) {
		var idx []int
		for i := epoch; i < n; i++ {
			idx = append(idx, i)
		}
		return append(idx, 0, 0), nil
	}
	sources := []struct {
		name string
		make func(mem memory.Allocator) (flow.Source, func())
		opts []minibatch.Option
	}{
		{"memory", func(mem memory.Allocator) (flow.Source, func()) {
			m := newMemory(t, mem, 10, 3)
			return m, func() { m.Close() }
		}, nil},
		{"replayable, window 4", func(mem memory.Allocator) (flow.Source, func()) {
			return &rowsSource{mem: mem, sizes: []int{4, 4, 2}}, func() {}
		}, []minibatch.Option{minibatch.WithWindowRows(4)}},
	}
	for _, s := range sources {
		t.Run(s.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src, release := s.make(mem)
			defer release()
			c, err := minibatch.Curriculum(src, 4, order, append(s.opts, minibatch.WithAllocator(mem))...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for e := range 3 {
				shapes, xs, ys := drain(t, testCtx(t), c)
				checkPaired(t, xs, ys)
				want, _ := order(e, 10)
				if len(xs) != len(want) {
					t.Fatalf("epoch %d: got %d rows; want %d", e, len(xs), len(want))
				}
				for i := range want {
					if xs[i] != float64(want[i]) {
						t.Fatalf("epoch %d position %d: got row %v; want %d", e, i, xs[i], want[i])
					}
				}
				if shapes[0].Epoch != e {
					t.Errorf("epoch %d: got Epoch %d", e, shapes[0].Epoch)
				}
				if err := c.Rewind(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestCurriculumErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	m := newMemory(t, mem, 10, 4)
	defer m.Close()
	bad := func(epoch, n int) ([]int, error) { return []int{0, n}, nil }
	c, err := minibatch.Curriculum(m, 4, bad, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Next(testCtx(t)); err == nil || !strings.Contains(err.Error(), "has row 10 at position 1, want 0 ≤ row < 10") {
		t.Errorf("out-of-range row: got %v; want an error naming row 10 at position 1", err)
	}
	boom := errors.New("boom")
	c2, err := minibatch.Curriculum(m, 4, func(int, int) ([]int, error) { return nil, boom }, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Next(testCtx(t)); !errors.Is(err, boom) {
		t.Errorf("order error: got %v; want it wrapped", err)
	}
	if _, err := minibatch.Curriculum(m, 0, bad, minibatch.WithAllocator(mem)); err == nil {
		t.Errorf("batchRows 0: got no error; want one")
	}
	if _, err := minibatch.Curriculum(onceSource{m}, 4, bad, minibatch.WithAllocator(mem)); !errors.Is(err, minibatch.ErrNotReplayable) {
		t.Errorf("one-pass source: got %v; want ErrNotReplayable", err)
	}
}

func TestEasyFirst(t *testing.T) {
	difficulty := []float64{5, 1, 4, 2, 3, 9, 8, 7, 6, 0} // easiest: 9, 1, 3, 4, 2, …
	order, err := minibatch.EasyFirst(difficulty, 0.2, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		epoch int
		want  []int
	}{
		{0, []int{1, 9}},
		{1, []int{1, 3, 4, 9}},
		{4, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{9, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
	}
	for _, tt := range tests {
		got, err := order(tt.epoch, 10)
		if err != nil {
			t.Fatal(err)
		}
		sorted := slices.Clone(got)
		slices.Sort(sorted)
		if !slices.Equal(sorted, tt.want) {
			t.Errorf("epoch %d: got rows %v; want %v in some order", tt.epoch, got, tt.want)
		}
	}
	if _, err := order(0, 11); err == nil {
		t.Errorf("11 rows for 10 difficulties: got no error; want one")
	}
	if _, err := minibatch.EasyFirst(difficulty, 0, 3, 1); err == nil {
		t.Errorf("start 0: got no error; want one")
	}
}

func TestWeighted(t *testing.T) {
	weights := []float64{0, 1, 3, 0}
	order, err := minibatch.Weighted(weights, 3)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, 4)
	for e := range 2000 {
		idx, err := order(e, 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(idx) != 4 {
			t.Fatalf("epoch %d: got %d rows; want 4", e, len(idx))
		}
		for _, i := range idx {
			counts[i]++
		}
	}
	if counts[0] != 0 || counts[3] != 0 {
		t.Errorf("got counts %v; want none for the rows of weight 0", counts)
	}
	if ratio := float64(counts[2]) / float64(counts[1]); ratio < 2.7 || ratio > 3.3 {
		t.Errorf("got row 2 read %.2f× as often as row 1; want about 3×", ratio)
	}
	a, _ := order(5, 4)
	b, _ := order(5, 4)
	if !slices.Equal(a, b) {
		t.Errorf("same epoch twice: got %v and %v; want the same draw", a, b)
	}
	for _, bad := range [][]float64{{-1, 2}, {0, 0}} {
		if _, err := minibatch.Weighted(bad, 1); err == nil {
			t.Errorf("weights %v: got no error; want one", bad)
		}
	}
}
