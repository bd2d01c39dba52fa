package minibatch_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// labelBatch returns a batch whose Y has one column "label" built by fill,
// and whose X is nil.
func labelBatch(t *testing.T, mem memory.Allocator, dt arrow.DataType, fill func(array.Builder)) flow.Batch {
	t.Helper()
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	fill(b)
	col := b.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "label", Type: dt, Nullable: true}}, nil)
	return flow.Batch{Y: array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))}
}

// labelTypes builds the column 0, 1, 2, 3 in every numeric type (and 0, 1,
// 0, 1 as booleans).
var labelTypes = []struct {
	dt   arrow.DataType
	fill func(array.Builder)
}{
	{arrow.PrimitiveTypes.Int8, func(b array.Builder) { b.(*array.Int8Builder).AppendValues([]int8{0, 1, 2, 3}, nil) }},
	{arrow.PrimitiveTypes.Int16, func(b array.Builder) { b.(*array.Int16Builder).AppendValues([]int16{0, 1, 2, 3}, nil) }},
	{arrow.PrimitiveTypes.Int32, func(b array.Builder) { b.(*array.Int32Builder).AppendValues([]int32{0, 1, 2, 3}, nil) }},
	{arrow.PrimitiveTypes.Int64, func(b array.Builder) { b.(*array.Int64Builder).AppendValues([]int64{0, 1, 2, 3}, nil) }},
	{arrow.PrimitiveTypes.Uint8, func(b array.Builder) { b.(*array.Uint8Builder).AppendValues([]uint8{0, 1, 2, 3}, nil) }},
	{arrow.PrimitiveTypes.Uint16, func(b array.Builder) { b.(*array.Uint16Builder).AppendValues([]uint16{0, 1, 2, 3}, nil) }},
	{arrow.PrimitiveTypes.Uint32, func(b array.Builder) { b.(*array.Uint32Builder).AppendValues([]uint32{0, 1, 2, 3}, nil) }},
	{arrow.PrimitiveTypes.Uint64, func(b array.Builder) { b.(*array.Uint64Builder).AppendValues([]uint64{0, 1, 2, 3}, nil) }},
	{arrow.PrimitiveTypes.Float32, func(b array.Builder) { b.(*array.Float32Builder).AppendValues([]float32{0, 1, 2, 3}, nil) }},
	{arrow.PrimitiveTypes.Float64, func(b array.Builder) { b.(*array.Float64Builder).AppendValues([]float64{0, 1, 2, 3}, nil) }},
	{arrow.FixedWidthTypes.Float16, func(b array.Builder) {
		for _, v := range []float32{0, 1, 2, 3} {
			b.(*array.Float16Builder).Append(float16.New(v))
		}
	}},
	{arrow.FixedWidthTypes.Boolean, func(b array.Builder) {
		b.(*array.BooleanBuilder).AppendValues([]bool{false, true, false, true}, nil)
	}},
}

func TestLabels(t *testing.T) {
	for _, tt := range labelTypes {
		t.Run(tt.dt.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			b := labelBatch(t, mem, tt.dt, tt.fill)
			defer b.Release()
			wantI, wantF := []int64{0, 1, 2, 3}, []float32{0, 1, 2, 3}
			if tt.dt.ID() == arrow.BOOL {
				wantI, wantF = []int64{0, 1, 0, 1}, []float32{0, 1, 0, 1}
			}
			before := mem.CurrentAlloc()
			ints, err := minibatch.LabelsInt64(b, "label")
			if err != nil || !slices.Equal(ints, wantI) {
				t.Errorf("LabelsInt64: got %v, %v; want %v", ints, err, wantI)
			}
			floats, err := minibatch.LabelsFloat32(b, "label")
			if err != nil || !slices.Equal(floats, wantF) {
				t.Errorf("LabelsFloat32: got %v, %v; want %v", floats, err, wantF)
			}
			if got := mem.CurrentAlloc(); got != before {
				t.Errorf("got %d bytes allocated from the allocator; want 0 (conversions are Go slices)", got-before)
			}
		})
	}
}

func TestLabelsZeroCopy(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ib := labelBatch(t, mem, arrow.PrimitiveTypes.Int64, labelTypes[3].fill)
	defer ib.Release()
	ints, err := minibatch.LabelsInt64(ib, "label")
	if err != nil {
		t.Fatal(err)
	}
	if want := ib.Y.Column(0).(*array.Int64).Int64Values(); &ints[0] != &want[0] {
		t.Error("LabelsInt64 of an int64 column copied; want the column's values")
	}
	fb := labelBatch(t, mem, arrow.PrimitiveTypes.Float32, labelTypes[8].fill)
	defer fb.Release()
	floats, err := minibatch.LabelsFloat32(fb, "label")
	if err != nil {
		t.Fatal(err)
	}
	if want := fb.Y.Column(0).(*array.Float32).Float32Values(); &floats[0] != &want[0] {
		t.Error("LabelsFloat32 of a float32 column copied; want the column's values")
	}
	// A sliced Y gives its own rows.
	sl := flow.Batch{Y: ib.Y.NewSlice(1, 3)}
	defer sl.Release()
	if got, err := minibatch.LabelsInt64(sl, "label"); err != nil || !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("slice [1:3]: got %v, %v; want [1 2]", got, err)
	}
}

func TestLabelsErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const hint = "a source puts the label columns in Y with minibatch.WithLabels"
	nulls := labelBatch(t, mem, arrow.PrimitiveTypes.Int64, func(b array.Builder) {
		b.(*array.Int64Builder).AppendValues([]int64{1, 0, 0, 4}, []bool{true, false, false, true})
	})
	defer nulls.Release()
	halves := labelBatch(t, mem, arrow.PrimitiveTypes.Float64, func(b array.Builder) {
		b.(*array.Float64Builder).AppendValues([]float64{1, 2.5}, nil)
	})
	defer halves.Release()
	nan := labelBatch(t, mem, arrow.PrimitiveTypes.Float32, func(b array.Builder) {
		b.(*array.Float32Builder).AppendValues([]float32{float32(math.NaN())}, nil)
	})
	defer nan.Release()
	huge := labelBatch(t, mem, arrow.PrimitiveTypes.Float64, func(b array.Builder) {
		b.(*array.Float64Builder).AppendValues([]float64{0, 1e300}, nil)
	})
	defer huge.Release()
	bigUint := labelBatch(t, mem, arrow.PrimitiveTypes.Uint64, func(b array.Builder) {
		b.(*array.Uint64Builder).AppendValues([]uint64{1, math.MaxUint64}, nil)
	})
	defer bigUint.Release()
	strs := labelBatch(t, mem, arrow.BinaryTypes.String, func(b array.Builder) {
		b.(*array.StringBuilder).AppendValues([]string{"cat"}, nil)
	})
	defer strs.Release()
	noY := flow.Batch{X: nulls.Y}

	type labelsFunc func(flow.Batch, string) error
	ints := func(b flow.Batch, c string) error { _, err := minibatch.LabelsInt64(b, c); return err }
	floats := func(b flow.Batch, c string) error { _, err := minibatch.LabelsFloat32(b, c); return err }
	for _, tt := range []struct {
		name   string
		labels labelsFunc
		b      flow.Batch
		column string
		want   []string
	}{
		{"no Y", ints, noY, "label", []string{`minibatch: labels "label": the batch has no Y`, hint}},
		{"no Y float32", floats, noY, "label", []string{`minibatch: labels "label": the batch has no Y`, hint}},
		{"missing", ints, nulls, "digit", []string{`minibatch: labels: Y has no column "digit" (it has columns "label")`, hint}},
		{"nulls", ints, nulls, "label", []string{`column "label" of Y has 2 nulls, the first at row 1; labels cannot be null`}},
		{"nulls float32", floats, nulls, "label", []string{`column "label" of Y has 2 nulls, the first at row 1`}},
		{"not integral", ints, halves, "label", []string{`column "label" of Y, row 1, holds 2.5, which is not an integer`, "LabelsFloat32"}},
		{"NaN", ints, nan, "label", []string{`row 0, holds NaN, which is not an integer`}},
		{"beyond int64", ints, huge, "label", []string{`row 1, holds 1e+300, which is not an integer`}},
		{"uint64 beyond int64", ints, bigUint, "label", []string{`column "label" of Y, row 1, holds 18446744073709551615, beyond int64's range`}},
		{"beyond float32", floats, huge, "label", []string{`column "label" of Y, row 1, holds 1e+300, beyond float32's range`}},
		{"strings", ints, strs, "label", []string{`column "label" of Y has type utf8, want an integer, floating-point or boolean column`}},
		{"strings float32", floats, strs, "label", []string{`column "label" of Y has type utf8`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.labels(tt.b, tt.column)
			if err == nil {
				t.Fatalf("got no error; want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestClasses(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := labelBatch(t, mem, arrow.PrimitiveTypes.Int32, func(b array.Builder) {
		b.(*array.Int32Builder).AppendValues([]int32{0, 3, 1, 2}, nil)
	})
	defer b.Release()
	got, err := minibatch.Classes(b, "label", 4)
	if err != nil || !slices.Equal(got, []int64{0, 3, 1, 2}) {
		t.Errorf("4 classes: got %v, %v; want [0 3 1 2]", got, err)
	}
	for _, tt := range []struct {
		classes int
		want    string
	}{
		{3, `minibatch: labels: column "label" of Y, row 1, holds 3; want 0 to 2 (classes is 3)`},
		{0, `minibatch: labels: column "label" of Y: 0 classes, want at least 1`},
	} {
		if got, err := minibatch.Classes(b, "label", tt.classes); err == nil || err.Error() != tt.want {
			t.Errorf("%d classes: got %v, %v; want the error %q", tt.classes, got, err, tt.want)
		}
	}
	neg := labelBatch(t, mem, arrow.PrimitiveTypes.Int64, func(b array.Builder) {
		b.(*array.Int64Builder).AppendValues([]int64{1, -1}, nil)
	})
	defer neg.Release()
	if _, err := minibatch.Classes(neg, "label", 2); err == nil || !strings.Contains(err.Error(), "row 1, holds -1; want 0 to 1") {
		t.Errorf("a negative label: got %v; want an error naming row 1", err)
	}
	// LabelsInt64's errors come through: here, no such column.
	if _, err := minibatch.Classes(b, "digit", 4); err == nil || !strings.Contains(err.Error(), `"digit"`) {
		t.Errorf("no such column: got %v; want an error naming \"digit\"", err)
	}
}

func TestExamples(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	withRows := func(labels ...int64) flow.Batch {
		b := labelBatch(t, mem, arrow.PrimitiveTypes.Int64, func(b array.Builder) {
			b.(*array.Int64Builder).AppendValues(labels, nil)
		})
		b.X = minibatch.Matrix{Rows: 2, Cols: 2, Data: []float32{1, 2, 3, 4}}.Record("x")
		return b
	}
	b := withRows(1, 0)
	defer b.Release()
	x, y, err := minibatch.Examples(b, "x", "label", 2)
	if err != nil || x.Rows != 2 || x.Cols != 2 || !slices.Equal(x.Row(1), []float32{3, 4}) || !slices.Equal(y, []int64{1, 0}) {
		t.Errorf("got %v, %v, %v; want a 2×2 matrix with row 1 [3 4] and labels [1 0]", x, y, err)
	}
	long := withRows(1, 0, 1)
	defer long.Release()
	want := `minibatch: examples: column "label" of Y has 3 rows, column "x" of X has 2; want as many labels as rows of features`
	if _, _, err := minibatch.Examples(long, "x", "label", 2); err == nil || err.Error() != want {
		t.Errorf("3 labels for 2 rows: got %v; want %q", err, want)
	}
	// Features' and Classes' errors come through.
	if _, _, err := minibatch.Examples(b, "pixels", "label", 2); err == nil || !strings.Contains(err.Error(), `"pixels"`) {
		t.Errorf("no such feature column: got %v; want an error naming \"pixels\"", err)
	}
	if _, _, err := minibatch.Examples(b, "x", "label", 1); err == nil || !strings.Contains(err.Error(), "row 0, holds 1; want 0 to 0") {
		t.Errorf("a label out of range: got %v; want Classes' error naming row 0", err)
	}
}
