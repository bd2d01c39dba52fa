package minibatch_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// tabular returns a record with columns a (float64), b (int32), s (string),
// c (float32), 4 rows.
func tabular(t *testing.T, mem memory.Allocator) arrow.RecordBatch {
	t.Helper()
	m, err := minibatch.FromSlices(100, []minibatch.Column{
		minibatch.Float64s("a", []float64{1, 2, 3, 4}),
		minibatch.Int64s("b", []int64{10, 20, 30, 40}),
		minibatch.Strings("s", []string{"w", "x", "y", "z"}),
		minibatch.Float32s("c", []float32{0.5, 1.5, 2.5, 3.5}),
	}, nil, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, err := m.Next(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return b.X
}

func TestPack(t *testing.T) {
	tests := []struct {
		name     string
		cols     []string
		slice    [2]int64
		wantCols []string
		want     []float32
	}{
		{"two", []string{"a", "b"}, [2]int64{0, 4}, []string{"s", "c", "t"}, []float32{1, 10, 2, 20, 3, 30, 4, 40}},
		{"order given", []string{"c", "a"}, [2]int64{0, 4}, []string{"b", "s", "t"}, []float32{0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4}},
		{"sliced input", []string{"b", "c", "a"}, [2]int64{1, 3}, []string{"s", "t"}, []float32{20, 1.5, 2, 30, 2.5, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			full := tabular(t, mem)
			defer full.Release()
			rec := full.NewSlice(tt.slice[0], tt.slice[1])
			defer rec.Release()
			out, err := minibatch.Pack(rec, mem, "t", tt.cols...)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			var names []string
			for _, f := range out.Schema().Fields() {
				names = append(names, f.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.wantCols, ",") {
				t.Errorf("got columns %v; want %v", names, tt.wantCols)
			}
			values, rows, width, err := minibatch.Float32View(out.Column(int(out.NumCols()) - 1))
			if err != nil {
				t.Fatal(err)
			}
			if rows != int(rec.NumRows()) || width != len(tt.cols) {
				t.Errorf("got %d×%d; want %d×%d", rows, width, rec.NumRows(), len(tt.cols))
			}
			for i := range tt.want {
				if values[i] != tt.want[i] {
					t.Fatalf("value %d: got %v; want %v (all %v)", i, values[i], tt.want[i], values)
				}
			}
		})
	}
}

func TestPackErrors(t *testing.T) {
	tests := []struct {
		name string
		out  string
		cols []string
		want string
	}{
		{"missing", "t", []string{"a", "nope"}, `minibatch: pack: no column "nope" (the batch has columns "a", "b", "s", "c")`},
		{"string", "t", []string{"a", "s"}, `minibatch: pack: column "s" has type utf8, want a numeric type (integer or float)`},
		{"none", "t", nil, "no columns to pack"},
		{"twice", "t", []string{"a", "a"}, `column "a" is listed twice`},
		{"clash", "s", []string{"a"}, `output column "s" would duplicate a column that is kept`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			rec := tabular(t, mem)
			defer rec.Release()
			out, err := minibatch.Pack(rec, mem, tt.out, tt.cols...)
			if err == nil {
				out.Release()
				t.Fatalf("got no error; want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q; want %q", err, tt.want)
			}
		})
	}
}

func TestPackStep(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	x := tabular(t, mem)
	y := float64Record(mem, "y", []float64{1, 0, 1, 0})
	in := flow.Batch{Seq: 5, Epoch: 2, X: x, Y: y}
	defer in.Release()
	step := &minibatch.PackStep{Out: "features", Cols: []string{"a", "c"}, Mem: mem}
	out, err := step.Transform(testCtx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if out.Seq != 5 || out.Epoch != 2 || out.Y != y || out.X.NumCols() != 3 {
		t.Errorf("got Seq %d Epoch %d, Y same %t, %d X columns; want 5, 2, true, 3", out.Seq, out.Epoch, out.Y == y, out.X.NumCols())
	}
}

// A PackStep without Cols packs every column of X into the one tensor
// column, in order, and names the column that is not numeric.
func TestPackStepAllColumns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	x := tabular(t, mem)
	defer x.Release()
	step := &minibatch.PackStep{Out: "features", Mem: mem}
	// x is a, b, s, c: s is a string column.
	if _, err := step.Transform(testCtx(t), flow.Batch{X: x}); err == nil || !strings.Contains(err.Error(), `column "s" has type utf8`) {
		t.Errorf("with a string column: got %v; want an error naming column \"s\"", err)
	}
	sc := x.Schema()
	in := flow.Batch{X: array.NewRecordBatch(arrow.NewSchema([]arrow.Field{sc.Field(0), sc.Field(1), sc.Field(3)}, nil),
		[]arrow.Array{x.Column(0), x.Column(1), x.Column(3)}, x.NumRows())}
	defer in.Release()
	out, err := step.Transform(testCtx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	m, err := minibatch.Features(out, "features")
	if err != nil {
		t.Fatal(err)
	}
	if out.X.NumCols() != 1 || m.Cols != 3 || !slices.Equal(m.Row(1), []float32{2, 20, 1.5}) {
		t.Errorf("got %d X columns, %d features, row 1 %v; want 1, 3, [2 20 1.5]", out.X.NumCols(), m.Cols, m.Row(1))
	}
}

func TestFloat32ViewAliases(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewFixedSizeListBuilder(mem, 3, arrow.PrimitiveTypes.Float32)
	defer b.Release()
	vb := b.ValueBuilder().(*array.Float32Builder)
	for r := range 5 {
		b.Append(true)
		vb.AppendValues([]float32{float32(10 * r), float32(10*r + 1), float32(10*r + 2)}, nil)
	}
	col := b.NewArray().(*array.FixedSizeList)
	defer col.Release()
	before := mem.CurrentAlloc()

	for _, tt := range []struct{ lo, hi int64 }{{0, 5}, {2, 4}, {4, 5}} {
		sl := array.NewSlice(col, tt.lo, tt.hi)
		values, rows, width, err := minibatch.Float32View(sl)
		if err != nil {
			t.Fatal(err)
		}
		if rows != int(tt.hi-tt.lo) || width != 3 || len(values) != rows*3 || cap(values) != len(values) {
			t.Errorf("[%d:%d]: got %d×%d, len %d cap %d; want %d×3, len = cap", tt.lo, tt.hi, rows, width, len(values), cap(values), tt.hi-tt.lo)
		}
		if values[0] != float32(10*tt.lo) {
			t.Errorf("[%d:%d]: got first value %v; want %v", tt.lo, tt.hi, values[0], 10*tt.lo)
		}
		// A write through the view shows in the Arrow column: no copy.
		values[1] = -1
		child := col.ListValues().(*array.Float32)
		if got := child.Value(int(tt.lo)*3 + 1); got != -1 {
			t.Errorf("[%d:%d]: wrote -1 through the view, column holds %v; want -1 (an alias)", tt.lo, tt.hi, got)
		}
		sl.Release()
	}
	if got := mem.CurrentAlloc(); got != before {
		t.Errorf("views allocated %d bytes; want 0", got-before)
	}
}

func TestFloat32ViewErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := tabular(t, mem)
	defer rec.Release()
	if _, _, _, err := minibatch.Float32View(rec.Column(0)); err == nil || !strings.Contains(err.Error(), "has type float64, want fixed_size_list<float32>") {
		t.Errorf("float64 column: got %v; want a type error", err)
	}
	b := array.NewFixedSizeListBuilder(mem, 2, arrow.PrimitiveTypes.Float32)
	defer b.Release()
	b.Append(true)
	b.ValueBuilder().(*array.Float32Builder).AppendValues([]float32{1, 2}, nil)
	b.AppendNull()
	col := b.NewArray()
	defer col.Release()
	if _, _, _, err := minibatch.Float32View(col); err == nil || !strings.Contains(err.Error(), "1 null rows") {
		t.Errorf("null row: got %v; want an error about 1 null row", err)
	}
}
