package minibatch_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/minibatch"
)

func TestFromSlicesShapes(t *testing.T) {
	tests := []struct {
		name      string
		rows, per int
		withY     bool
		want      []int64
	}{
		{"uneven", 10, 4, true, []int64{4, 4, 2}},
		{"even", 8, 4, false, []int64{4, 4}},
		{"one batch", 3, 100, true, []int64{3}},
		{"empty", 0, 5, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := testCtx(t)
			f := make([]float32, tt.rows)
			s := make([]string, tt.rows)
			n := make([]int64, tt.rows)
			for i := range f {
				f[i], s[i], n[i] = float32(i)/2, string(rune('a'+i%26)), int64(i)
			}
			x := []minibatch.Column{minibatch.Float64s("i", iota64(tt.rows)), minibatch.Float32s("f", f), minibatch.Strings("s", s)}
			var y []minibatch.Column
			if tt.withY {
				y = []minibatch.Column{minibatch.Float64s("label", iota64(tt.rows)), minibatch.Int64s("n", n)}
			}
			m, err := minibatch.FromSlices(tt.per, x, y, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Len() != len(tt.want) || m.Rows() != int64(tt.rows) {
				t.Fatalf("got Len %d, Rows %d; want %d, %d", m.Len(), m.Rows(), len(tt.want), tt.rows)
			}
			for pass := range 2 {
				shapes, xs, _ := drain(t, ctx, onceSource{m})
				if len(shapes) != len(tt.want) {
					t.Fatalf("pass %d: got %d batches; want %d", pass, len(shapes), len(tt.want))
				}
				for i, sh := range shapes {
					if sh.Seq != int64(i) || sh.Epoch != 0 || sh.Rows != tt.want[i] {
						t.Errorf("pass %d batch %d: got %+v; want Seq %d, Epoch 0, %d rows", pass, i, sh, i, tt.want[i])
					}
				}
				for i, v := range xs {
					if v != float64(i) {
						t.Fatalf("pass %d row %d: got %v; want %d", pass, i, v, i)
					}
				}
				if err := m.Rewind(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestFromSlicesValuesAndY(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	m, err := minibatch.FromSlices(2, []minibatch.Column{minibatch.Strings("s", []string{"a", "b", "c"}), minibatch.Float32s("f", []float32{1, 2, 3})}, []minibatch.Column{minibatch.Int64s("y", []int64{7, 8, 9})}, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, err := m.Next(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if got := b.X.Column(0).(*array.String).Value(1); got != "b" {
		t.Errorf("X s[1]: got %q; want %q", got, "b")
	}
	if got := b.X.Column(1).(*array.Float32).Value(1); got != 2 {
		t.Errorf("X f[1]: got %v; want 2", got)
	}
	if got := b.Y.Column(0).(*array.Int64).Value(1); got != 8 {
		t.Errorf("Y y[1]: got %v; want 8", got)
	}
	// The batch outlives the source.
	m.Close()
	if got := b.Y.Column(0).(*array.Int64).Value(0); got != 7 {
		t.Errorf("after Close: got %v; want 7", got)
	}
	if _, err := m.Next(testCtx(t)); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("Next after Close: got %v; want an error", err)
	}
}

func TestFromSlicesErrors(t *testing.T) {
	f3 := minibatch.Float64s("a", []float64{1, 2, 3})
	tests := []struct {
		name string
		per  int
		x, y []minibatch.Column
		want string
	}{
		{"rows per batch", 0, []minibatch.Column{f3}, nil, "rowsPerBatch is 0, want at least 1"},
		{"no X", 2, nil, nil, "no X columns"},
		{"unequal X", 2, []minibatch.Column{f3, minibatch.Int64s("b", []int64{1, 2})}, nil, `X column "b" has 2 rows, want 3`},
		{"unequal Y", 2, []minibatch.Column{f3}, []minibatch.Column{minibatch.Int64s("y", []int64{1})}, `Y column "y" has 1 rows, want 3`},
		{"duplicate", 2, []minibatch.Column{f3, minibatch.Float64s("a", []float64{4, 5, 6})}, nil, `X column "a" appears twice`},
		{"zero column", 2, []minibatch.Column{{}}, nil, "zero Column"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			m, err := minibatch.FromSlices(tt.per, tt.x, tt.y, minibatch.WithAllocator(mem))
			if err == nil {
				m.Close()
				t.Fatalf("got no error; want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "minibatch: from slices: ") {
				t.Errorf("got error %q; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestFromRecords(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := testCtx(t)
	x0, x1 := float64Record(mem, "x", []float64{1, 2}), float64Record(mem, "x", []float64{3})
	y0, y1 := float64Record(mem, "y", []float64{10, 20}), float64Record(mem, "y", []float64{30})
	short := float64Record(mem, "y", []float64{1})
	other := float64Record(mem, "z", []float64{4})
	defer func() {
		for _, r := range []arrow.RecordBatch{x0, x1, y0, y1, short, other} {
			r.Release()
		}
	}()

	m, err := minibatch.FromRecords([]arrow.RecordBatch{x0, x1}, []arrow.RecordBatch{y0, y1})
	if err != nil {
		t.Fatal(err)
	}
	shapes, xs, ys := drain(t, ctx, m)
	m.Close()
	if len(shapes) != 2 || len(xs) != 3 || ys[2] != 30 {
		t.Errorf("got %v, x %v, y %v; want 2 batches, x [1 2 3], y [10 20 30]", shapes, xs, ys)
	}

	tests := []struct {
		name string
		x, y []arrow.RecordBatch
		want string
	}{
		{"y count", []arrow.RecordBatch{x0, x1}, []arrow.RecordBatch{y0}, "1 Y records for 2 X records"},
		{"y rows", []arrow.RecordBatch{x0}, []arrow.RecordBatch{short}, "y[0] has 1 rows, want 2"},
		{"schema", []arrow.RecordBatch{x0, other}, nil, `column 0 is named "z" in batch 1, want "x"`},
		{"nil", []arrow.RecordBatch{x0, nil}, nil, "x[1] is nil"},
	}
	for _, tt := range tests {
		m, err := minibatch.FromRecords(tt.x, tt.y)
		if err == nil {
			m.Close()
			t.Errorf("%s: got no error; want %q", tt.name, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got error %q; want one containing %q", tt.name, err, tt.want)
		}
	}
}
