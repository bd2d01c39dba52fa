package minibatch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// tensorRecord returns a record of a FixedSizeList<float32> column name of
// rows × cols values 0, 1, 2, … (row-major), and a float64 column "other".
func tensorRecord(t *testing.T, mem memory.Allocator, name string, rows, cols int) arrow.RecordBatch {
	t.Helper()
	col, vals := minibatch.AllocTensor(mem, rows, cols)
	defer col.Release()
	for i := range vals {
		vals[i] = float32(i)
	}
	ob := array.NewFloat64Builder(mem)
	defer ob.Release()
	ob.AppendValues(make([]float64, rows), nil)
	other := ob.NewArray()
	defer other.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "other", Type: arrow.PrimitiveTypes.Float64}, {Name: name, Type: col.DataType()}}, nil)
	return array.NewRecordBatch(schema, []arrow.Array{other, col}, int64(rows))
}

func TestFeaturesIsAView(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := tensorRecord(t, mem, "x", 5, 3)
	defer rec.Release()
	before := mem.CurrentAlloc()

	m, err := minibatch.Features(flow.Batch{X: rec}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if m.Rows != 5 || m.Cols != 3 || len(m.Data) != 15 {
		t.Fatalf("got %d × %d, %d values; want 5 × 3, 15", m.Rows, m.Cols, len(m.Data))
	}
	if got := m.Row(2); !slices.Equal(got, []float32{6, 7, 8}) || cap(got) != 3 {
		t.Errorf("got row 2 %v (cap %d); want [6 7 8] (cap 3)", got, cap(got))
	}
	view, _, _, err := minibatch.Float32View(rec.Column(1))
	if err != nil {
		t.Fatal(err)
	}
	if &m.Data[0] != &view[0] {
		t.Error("Data does not alias the column's values; want no copy")
	}
	if got := mem.CurrentAlloc(); got != before {
		t.Errorf("Features allocated %d bytes from the allocator; want 0", got-before)
	}

	// A sliced record gives the view of its own rows.
	sl := rec.NewSlice(1, 3)
	defer sl.Release()
	m, err = minibatch.Features(flow.Batch{X: sl}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if m.Rows != 2 || !slices.Equal(m.Data, []float32{3, 4, 5, 6, 7, 8}) {
		t.Errorf("slice [1:3]: got %d rows %v; want 2 rows [3 4 5 6 7 8]", m.Rows, m.Data)
	}
}

func TestFeaturesErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	packed := tensorRecord(t, mem, "x", 4, 2)
	defer packed.Release()
	wide := srcRecord(t, mem, 20)
	defer wide.Release()
	f64 := fslRecord(t, mem, arrow.PrimitiveTypes.Float64, false)
	defer f64.Release()
	nulls := fslRecord(t, mem, arrow.PrimitiveTypes.Float32, true)
	defer nulls.Release()
	twice := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{packed.Schema().Field(1), packed.Schema().Field(1)}, nil),
		[]arrow.Array{packed.Column(1), packed.Column(1)}, packed.NumRows())
	defer twice.Release()

	const hint = "pack numeric columns into one float32 tensor column with minibatch.Pack or minibatch.PackStep"
	for _, tt := range []struct {
		name   string
		b      flow.Batch
		column string
		want   []string
	}{
		{"no X", flow.Batch{Y: packed}, "x", []string{`minibatch: features "x": the batch has no X`}},
		{"missing", flow.Batch{X: packed}, "pixels", []string{`X has no column "pixels" (it has columns "other", "x")`, hint}},
		{"missing, many columns", flow.Batch{X: wide}, "pixels", []string{`X has no column "pixels" (it has columns "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", … (20 in all))`, hint}},
		{"not a tensor", flow.Batch{X: packed}, "other", []string{`column "other" of X has type float64, want fixed_size_list<float32> (a packed tensor)`, hint}},
		{"tensor of float64", flow.Batch{X: f64}, "t", []string{`column "t" of X has type fixed_size_list<item: float64, nullable>[2], want fixed_size_list<float32>`, hint}},
		{"nulls", flow.Batch{X: nulls}, "t", []string{`minibatch: features: column "t" of X: minibatch: float32 view: value 1 of row 0 is null`}},
		{"twice", flow.Batch{X: twice}, "x", []string{`column "x" appears 2 times in X; names must be unique`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := minibatch.Features(tt.b, tt.column)
			if err == nil {
				t.Fatalf("got %d × %d, no error; want %q", m.Rows, m.Cols, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

// srcRecord returns a one-row record of cols float64 columns c0, c1, ….
func srcRecord(t *testing.T, mem memory.Allocator, cols int) arrow.RecordBatch {
	t.Helper()
	fields := make([]arrow.Field, cols)
	arrs := make([]arrow.Array, cols)
	for i := range cols {
		fields[i] = arrow.Field{Name: fmt.Sprintf("c%d", i), Type: arrow.PrimitiveTypes.Float64}
		b := array.NewFloat64Builder(mem)
		b.Append(float64(i))
		arrs[i] = b.NewArray()
		b.Release()
		defer arrs[i].Release()
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, 1)
}

// fslRecord returns a one-row record of a FixedSizeList<elem>[2] column
// "t" holding [1, 2], or [1, null] with null.
func fslRecord(t *testing.T, mem memory.Allocator, elem arrow.DataType, null bool) arrow.RecordBatch {
	t.Helper()
	b := array.NewFixedSizeListBuilder(mem, 2, elem)
	defer b.Release()
	b.Append(true)
	switch vb := b.ValueBuilder().(type) {
	case *array.Float32Builder:
		vb.Append(1)
		if null {
			vb.AppendNull()
		} else {
			vb.Append(2)
		}
	case *array.Float64Builder:
		vb.AppendValues([]float64{1, 2}, nil)
	}
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "t", Type: col.DataType()}}, nil), []arrow.Array{col}, 1)
}

func TestNewMatrixRecord(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	m := minibatch.NewMatrix(mem, 3, 2)
	if m.Rows != 3 || m.Cols != 2 || !slices.Equal(m.Data, make([]float32, 6)) {
		t.Fatalf("got %d × %d %v; want 3 × 2 of zeros", m.Rows, m.Cols, m.Data)
	}
	if got := mem.CurrentAlloc(); got < 6*4 {
		t.Errorf("allocator holds %d bytes; want at least the 24 of the matrix", got)
	}
	for i := range m.Data {
		m.Data[i] = float32(i + 1)
	}
	before := mem.CurrentAlloc()
	rec := m.Record("x")
	if got := mem.CurrentAlloc(); got != before {
		t.Errorf("Record allocated %d bytes; want 0 (no copy)", got-before)
	}
	data := m.Data
	m.Release()
	if m.Data != nil || m.Rows != 0 {
		t.Errorf("after Release got %d rows, %d values; want the zero Matrix", m.Rows, len(m.Data))
	}
	m.Release() // a second Release is a no-op

	// The record outlives the matrix and holds its values, not a copy.
	if mem.CurrentAlloc() == 0 {
		t.Error("the allocator holds nothing after Release; want the record to keep the buffer")
	}
	if got, want := rec.Schema().String(), arrow.NewSchema([]arrow.Field{{Name: "x", Type: minibatch.TensorType(2)}}, nil).String(); got != want {
		t.Errorf("got schema %s; want %s", got, want)
	}
	back, err := minibatch.Features(flow.Batch{X: rec}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if back.Rows != 3 || !slices.Equal(back.Data, []float32{1, 2, 3, 4, 5, 6}) || &back.Data[0] != &data[0] {
		t.Errorf("got %d rows %v (same buffer %t); want 3 rows [1 2 3 4 5 6] in the matrix's buffer", back.Rows, back.Data, &back.Data[0] == &data[0])
	}
	rec.Release()
}

func TestMatrixReleaseWithoutRecord(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	m := minibatch.NewMatrix(mem, 100, 10)
	m.Release() // an error path: the matrix never became a record
	if got := mem.CurrentAlloc(); got != 0 {
		t.Errorf("got %d bytes held after Release; want 0", got)
	}
	empty := minibatch.NewMatrix(mem, 0, 4)
	rec := empty.Record("x")
	empty.Release()
	if rec.NumRows() != 0 || rec.Schema().Field(0).Type.String() != minibatch.TensorType(4).String() {
		t.Errorf("got %d rows of %s; want 0 rows of %s", rec.NumRows(), rec.Schema().Field(0).Type, minibatch.TensorType(4))
	}
	rec.Release()
}

func TestRecordOfView(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := tensorRecord(t, mem, "x", 4, 2)
	defer rec.Release()
	view, err := minibatch.Features(flow.Batch{X: rec}, "x")
	if err != nil {
		t.Fatal(err)
	}
	before := mem.CurrentAlloc()
	out := view.Record("y")
	view.Release() // a no-op on a view: the batch still owns its column
	if got := mem.CurrentAlloc(); got != before {
		t.Errorf("Record of a view allocated %d bytes; want 0", got-before)
	}
	if out.Column(0) != rec.Column(1) || out.Schema().Field(0).Name != "y" {
		t.Errorf("got column %q, same array %t; want the view's column, renamed y", out.Schema().Field(0).Name, out.Column(0) == rec.Column(1))
	}
	out.Release()
	if _, err := minibatch.Features(flow.Batch{X: rec}, "x"); err != nil {
		t.Errorf("the batch's column after the view's record was released: %v", err)
	}
}

func TestRecordOfLiteral(t *testing.T) {
	m := minibatch.Matrix{Rows: 2, Cols: 2, Data: []float32{1, 2, 3, 4}}
	rec := m.Record("m")
	defer rec.Release()
	got, err := minibatch.Features(flow.Batch{X: rec}, "m")
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows != 2 || got.Cols != 2 || &got.Data[0] != &m.Data[0] {
		t.Errorf("got %d × %d (same slice %t); want 2 × 2 aliasing the literal's Data", got.Rows, got.Cols, &got.Data[0] == &m.Data[0])
	}
	m.Release() // a no-op on a literal
	if !slices.Equal(got.Data, []float32{1, 2, 3, 4}) {
		t.Errorf("got %v after Release of the literal; want [1 2 3 4]", got.Data)
	}

	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), `matrix record "bad": 3 values for 2 × 2`) {
			t.Errorf("got panic %v; want one naming the record and the sizes", r)
		}
	}()
	minibatch.Matrix{Rows: 2, Cols: 2, Data: []float32{1, 2, 3}}.Record("bad").Release()
}

// A matrix cut after NewMatrix no longer matches its column: Record copies
// it, so that the record does not point into a buffer its owner frees.
func TestRecordOfChangedMatrix(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	m := minibatch.NewMatrix(mem, 4, 3)
	for i := range m.Data {
		m.Data[i] = float32(i)
	}
	head := m
	head.Rows, head.Data = 2, m.Data[:6]
	rec := head.Record("head")
	m.Release()
	if got := mem.CurrentAlloc(); got != 0 {
		t.Errorf("the allocator holds %d bytes after Release; want 0 (the record holds a copy)", got)
	}
	got, err := minibatch.Features(flow.Batch{X: rec}, "head")
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows != 2 || !slices.Equal(got.Data, []float32{0, 1, 2, 3, 4, 5}) {
		t.Errorf("got %d rows %v; want 2 rows [0 1 2 3 4 5]", got.Rows, got.Data)
	}
	rec.Release()
}

func TestNewMatrixNegative(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "NewMatrix(-1, 2): negative size") {
			t.Errorf("got panic %v; want one naming the sizes", r)
		}
	}()
	minibatch.NewMatrix(nil, -1, 2)
}

func TestWithXOfMatrix(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := flow.Batch{Seq: 7, Epoch: 1, X: tensorRecord(t, mem, "x", 3, 2), Y: float64Record(mem, "y", []float64{1, 2, 3})}
	x, err := minibatch.Features(in, "x")
	if err != nil {
		t.Fatal(err)
	}
	z := minibatch.NewMatrix(mem, x.Rows, x.Cols)
	for i, v := range x.Data {
		z.Data[i] = -v
	}
	out := in.WithX(z.Record("z"))
	z.Release()
	in.Release() // the input's owner is done with it; out keeps Y
	if out.Seq != 7 || out.Epoch != 1 || out.Y.NumRows() != 3 {
		t.Errorf("got Seq %d Epoch %d, %d Y rows; want 7, 1, 3", out.Seq, out.Epoch, out.Y.NumRows())
	}
	got, err := minibatch.Features(out, "z")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Data, []float32{0, -1, -2, -3, -4, -5}) {
		t.Errorf("got %v; want [0 -1 -2 -3 -4 -5]", got.Data)
	}
	out.Release()
}

func TestMapRows(t *testing.T) {
	src := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer src.AssertSize(t, 0)
	run := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer run.AssertSize(t, 0)
	ctx := flow.WithAllocator(testCtx(t), run)
	in := flow.Batch{Seq: 3, Epoch: 1, X: tensorRecord(t, src, "x", 3, 2), Y: float64Record(src, "y", []float64{7, 8, 9})}
	defer in.Release()

	var rows int
	out, err := minibatch.MapRows(ctx, in, "x", "sums", 1, func(x, y []float32) {
		rows++
		y[0] = x[0] + x[1]
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows != 3 {
		t.Errorf("fn called %d times; want 3, once per row", rows)
	}
	if run.CurrentAlloc() == 0 {
		t.Error("the run's allocator holds nothing; want the output allocated from flow.Allocator(ctx)")
	}
	got, err := minibatch.Features(out, "sums")
	if err != nil {
		t.Fatal(err)
	}
	if got.Cols != 1 || !slices.Equal(got.Data, []float32{1, 5, 9}) {
		t.Errorf("got %d × %d %v; want 3 × 1 [1 5 9]", got.Rows, got.Cols, got.Data)
	}
	if out.Seq != 3 || out.Epoch != 1 || out.Y != in.Y || out.X.NumCols() != 1 {
		t.Errorf("got Seq %d Epoch %d, Y passed %t, %d X columns; want 3, 1, true, 1", out.Seq, out.Epoch, out.Y == in.Y, out.X.NumCols())
	}
	out.Release()
}

func TestMapRowsErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := flow.WithAllocator(testCtx(t), mem)
	in := flow.Batch{X: tensorRecord(t, mem, "x", 3, 2)}
	defer in.Release()
	before := mem.CurrentAlloc()
	never := func(x, y []float32) { t.Error("fn called; want no call after an error") }

	if _, err := minibatch.MapRows(ctx, in, "pixels", "y", 2, never); err == nil || !strings.Contains(err.Error(), `X has no column "pixels"`) {
		t.Errorf("missing column: got %v; want Features' error naming the column", err)
	}
	if _, err := minibatch.MapRows(ctx, in, "x", "y", -1, never); err == nil || !strings.Contains(err.Error(), `map rows "x" to "y": -1 output columns, want 0 or more`) {
		t.Errorf("negative cols: got %v; want an error naming the columns and the count", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := minibatch.MapRows(cancelled, in, "x", "y", 2, never); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v; want context.Canceled", err)
	}
	// A panic in fn leaves nothing allocated behind.
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("got panic %v; want boom", r)
			}
		}()
		minibatch.MapRows(ctx, in, "x", "y", 2, func(x, y []float32) { panic("boom") })
	}()
	if got := mem.CurrentAlloc(); got != before {
		t.Errorf("got %d bytes held after the errors; want %d", got, before)
	}
}

// The helpers only read the batch: replicas may call them on one batch at
// once (run with -race).
func TestStepHelpersConcurrent(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := flow.WithAllocator(testCtx(t), mem)
	in := flow.Batch{X: tensorRecord(t, mem, "x", 50, 4), Y: float64Record(mem, "y", iota64(50))}
	defer in.Release()
	view, err := minibatch.Features(in, "x")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			rec := view.Record("x")
			defer rec.Release()
			out, err := minibatch.MapRows(ctx, in, "x", "z", 1, func(x, y []float32) { y[0] = x[0] })
			if err != nil {
				errs <- err
				return
			}
			defer out.Release()
			if _, err := minibatch.LabelsInt64(out, "y"); err != nil {
				errs <- err
			}
			if _, err := minibatch.LabelsFloat32(out, "y"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
