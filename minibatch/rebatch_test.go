package minibatch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

func TestRebatchCounts(t *testing.T) {
	irregular := []int{1, 63, 64, 65, 200, 7, 0, 128, 3000, 33, 6446} // sums to 10 007
	tests := []struct {
		name      string
		sizes     []int
		rows      int
		last      minibatch.Remainder
		wantN     int
		wantLast  int64
		wantTotal int
	}{
		{"10007/100 keep", append(repeatSizes(100, 100), 7), 64, minibatch.Keep, 157, 23, 10007},
		{"10007/100 drop", append(repeatSizes(100, 100), 7), 64, minibatch.Drop, 156, 64, 9984},
		{"10007/100 pad", append(repeatSizes(100, 100), 7), 64, minibatch.Pad(-1), 157, 64, 157 * 64},
		{"10007 irregular keep", irregular, 64, minibatch.Keep, 157, 23, 10007},
		{"10007 irregular drop", irregular, 64, minibatch.Drop, 156, 64, 9984},
		{"10007 irregular pad", irregular, 64, minibatch.Pad(-1), 157, 64, 157 * 64},
		{"15/10 keep", []int{10, 5}, 10, minibatch.Keep, 2, 5, 15},
		{"15/10 drop", []int{10, 5}, 10, minibatch.Drop, 1, 10, 10},
		{"15/10 pad", []int{10, 5}, 10, minibatch.Pad(0), 2, 10, 20},
		{"15 in 1-row batches by 10 keep", repeatSizes(1, 15), 10, minibatch.Keep, 2, 5, 15},
		{"exact multiple drop", []int{30, 34}, 32, minibatch.Drop, 2, 32, 64},
		{"empty source", nil, 8, minibatch.Keep, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := testCtx(t)
			src := &rowsSource{mem: mem, sizes: tt.sizes}
			rb, err := minibatch.NewRebatcher(src, tt.rows, tt.last, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatalf("NewRebatcher: %v", err)
			}
			defer rb.Close()
			shapes, xs, ys := drain(t, ctx, rb)
			if len(shapes) != tt.wantN {
				t.Fatalf("got %d batches; want %d", len(shapes), tt.wantN)
			}
			for i, s := range shapes {
				if s.Seq != int64(i) {
					t.Errorf("batch %d: got Seq %d; want %d", i, s.Seq, i)
				}
				want := int64(tt.rows)
				if i == len(shapes)-1 {
					want = tt.wantLast
				}
				if s.Rows != want {
					t.Errorf("batch %d: got %d rows; want %d", i, s.Rows, want)
				}
			}
			if len(xs) != tt.wantTotal || len(ys) != tt.wantTotal {
				t.Fatalf("got %d X and %d Y rows; want %d", len(xs), len(ys), tt.wantTotal)
			}
			real := 0
			for _, n := range tt.sizes {
				real += n
			}
			pad, isPad := padValue(tt.last)
			for i := range xs {
				wantX, wantY := float64(i), 10*float64(i)
				if isPad && i >= real {
					wantX, wantY = pad, pad
				}
				if xs[i] != wantX || ys[i] != wantY {
					t.Fatalf("row %d: got x=%v y=%v; want x=%v y=%v", i, xs[i], ys[i], wantX, wantY)
				}
			}
		})
	}
}

func padValue(r minibatch.Remainder) (float64, bool) {
	switch r.String() {
	case "pad(-1)":
		return -1, true
	case "pad(0)":
		return 0, true
	}
	return 0, false
}

func TestRebatchZeroCopy(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := testCtx(t)
	src := newMemory(t, mem, 256, 128)
	defer src.Close()
	rb, err := minibatch.NewRebatcher(src, 64, minibatch.Keep, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	before := mem.CurrentAlloc()
	for i := range 4 {
		b, err := rb.Next(ctx)
		if err != nil {
			t.Fatalf("Next %d: %v", i, err)
		}
		if got := mem.CurrentAlloc(); got != before {
			t.Errorf("batch %d: allocator holds %d bytes; want %d (a slice allocates nothing)", i, got, before)
		}
		if got := b.X.Column(0).Data().Offset(); got != (i%2)*64 {
			t.Errorf("batch %d: got X offset %d; want %d (a slice of the input)", i, got, (i%2)*64)
		}
		b.Release()
	}
}

func TestRebatchEpochs(t *testing.T) {
	tests := []struct {
		name string
		last minibatch.Remainder
		want []shape
	}{
		{"keep", minibatch.Keep, []shape{{0, 0, 8}, {1, 0, 8}, {2, 0, 4}, {3, 1, 8}, {4, 1, 2}}},
		{"drop", minibatch.Drop, []shape{{0, 0, 8}, {1, 0, 8}, {2, 1, 8}}},
		{"pad", minibatch.Pad(7), []shape{{0, 0, 8}, {1, 0, 8}, {2, 0, 8}, {3, 1, 8}, {4, 1, 8}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src := &rowsSource{mem: mem, sizes: []int{10, 10, 10}, epochs: []int{0, 0, 1}}
			rb, err := minibatch.NewRebatcher(src, 8, tt.last, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			defer rb.Close()
			got, xs, _ := drain(t, testCtx(t), rb)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d batches %v; want %d %v", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("batch %d: got %+v; want %+v", i, got[i], tt.want[i])
				}
			}
			// The first row of epoch 1 is row 20 in every policy.
			first := 0
			for _, s := range got {
				if s.Epoch == 1 {
					break
				}
				first += int(s.Rows)
			}
			if xs[first] != 20 {
				t.Errorf("first row of epoch 1: got %v; want 20", xs[first])
			}
		})
	}
}

// mixedSource returns a float64 batch, then an int64 one.
type mixedSource struct {
	mem memory.Allocator
	n   int
}

func (s *mixedSource) Next(context.Context) (flow.Batch, error) {
	s.n++
	switch s.n {
	case 1:
		return flow.Batch{X: float64Record(s.mem, "x", []float64{1, 2, 3})}, nil
	case 2:
		b := array.NewInt64Builder(s.mem)
		defer b.Release()
		b.AppendValues([]int64{4, 5}, nil)
		a := b.NewArray()
		defer a.Release()
		schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
		return flow.Batch{X: array.NewRecordBatch(schema, []arrow.Array{a}, 2)}, nil
	}
	return flow.Batch{}, io.EOF
}

func TestRebatchSchemaMismatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := testCtx(t)
	rb, err := minibatch.NewRebatcher(&mixedSource{mem: mem}, 4, minibatch.Keep, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	_, err = rb.Next(ctx)
	want := `minibatch: rebatch: column "x" has type int64 in batch 1, want float64`
	if err == nil || err.Error() != want {
		t.Fatalf("got error %v; want %q", err, want)
	}
	var se *minibatch.SchemaError
	if !errors.As(err, &se) || se.Column != "x" || se.Batch != 1 {
		t.Errorf("got errors.As %v, %+v; want a *SchemaError for column x in batch 1", se != nil, se)
	}
}

func TestRebatchBadArguments(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, rows := range []int{0, -3} {
		if _, err := minibatch.NewRebatcher(&rowsSource{mem: mem}, rows, minibatch.Keep, minibatch.WithAllocator(mem)); err == nil || !strings.Contains(err.Error(), "want at least 1") {
			t.Errorf("rows %d: got error %v; want one saying rows must be at least 1", rows, err)
		}
	}
	if _, err := minibatch.NewRebatcher(nil, 4, minibatch.Keep, minibatch.WithAllocator(mem)); err == nil {
		t.Errorf("nil source: got no error; want one")
	}
}

func TestRebatchRewind(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := testCtx(t)
	src := &rowsSource{mem: mem, sizes: []int{5, 5, 5, 5}}
	rb, err := minibatch.NewRebatcher(src, 3, minibatch.Keep, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	first, firstX, _ := drain(t, ctx, rb)
	// Stop mid-stream with a piece held, then rewind.
	for range 2 {
		b, err := rb.Next(ctx)
		if err == nil {
			b.Release()
		}
	}
	if err := rb.Rewind(); err != nil {
		t.Fatalf("Rewind: %v", err)
	}
	// Rewinding after io.EOF restarts too.
	second, secondX, _ := drain(t, ctx, rb)
	if len(first) != 7 || len(second) != len(first) {
		t.Fatalf("got %d then %d batches; want 7 both times", len(first), len(second))
	}
	for i := range first {
		if first[i] != second[i] {
			t.Errorf("batch %d: got %+v after Rewind; want %+v", i, second[i], first[i])
		}
	}
	for i := range firstX {
		if firstX[i] != secondX[i] {
			t.Fatalf("row %d: got %v after Rewind; want %v", i, secondX[i], firstX[i])
		}
	}

	once, err := minibatch.NewRebatcher(onceSource{&rowsSource{mem: mem}}, 3, minibatch.Keep, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if err := once.Rewind(); err == nil || !strings.Contains(err.Error(), "does not implement flow.Rewinder") {
		t.Errorf("Rewind of a one-pass source: got %v; want an error naming flow.Rewinder", err)
	}
}

func TestRebatchReleaseMidStream(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := testCtx(t)
	rb, err := minibatch.NewRebatcher(&rowsSource{mem: mem, sizes: []int{5, 5, 5}}, 4, minibatch.Keep, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	b, err := rb.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	b, err = rb.Next(ctx) // rows 4..7: spans two input batches
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	if mem.CurrentAlloc() == 0 {
		t.Fatalf("got nothing held mid-stream; want the current input batch held")
	}
	rb.Close()
	if got := mem.CurrentAlloc(); got != 0 {
		t.Errorf("after Close: got %d bytes held; want 0", got)
	}
	if _, err := rb.Next(ctx); err == nil {
		t.Errorf("Next after Close: got no error; want one")
	}
}

func TestRebatchCancelled(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithCancel(testCtx(t))
	rb, err := minibatch.NewRebatcher(&rowsSource{mem: mem, sizes: []int{5, 5}}, 3, minibatch.Keep, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	b, err := rb.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	cancel()
	if _, err := rb.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v; want context.Canceled", err)
	}
}

func TestRebatchPadTypes(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := testCtx(t)

	// X: a FixedSizeList<float32> of width 2, a string and an int32 column.
	fb := array.NewFixedSizeListBuilder(mem, 2, arrow.PrimitiveTypes.Float32)
	defer fb.Release()
	vb := fb.ValueBuilder().(*array.Float32Builder)
	for i := range 3 {
		fb.Append(true)
		vb.AppendValues([]float32{float32(i), float32(i) + 0.5}, nil)
	}
	feat := fb.NewArray()
	defer feat.Release()
	sb := array.NewStringBuilder(mem)
	defer sb.Release()
	sb.AppendValues([]string{"a", "b", "c"}, nil)
	str := sb.NewArray()
	defer str.Release()
	ib := array.NewInt32Builder(mem)
	defer ib.Release()
	ib.AppendValues([]int32{1, 2, 3}, nil)
	ints := ib.NewArray()
	defer ints.Release()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "f", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float32)},
		{Name: "s", Type: arrow.BinaryTypes.String},
		{Name: "n", Type: arrow.PrimitiveTypes.Int32},
	}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{feat, str, ints}, 3)
	defer rec.Release()
	src, err := minibatch.FromRecords([]arrow.RecordBatch{rec}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	rb, err := minibatch.NewRebatcher(src, 5, minibatch.Pad(-2.5), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	b, err := rb.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if b.Rows() != 5 || b.Y != nil {
		t.Fatalf("got %d rows, Y %v; want 5 rows, no Y", b.Rows(), b.Y)
	}
	values, rows, width, err := minibatch.Float32View(b.X.Column(0))
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 0.5, 1, 1.5, 2, 2.5, -2.5, -2.5, -2.5, -2.5}
	if rows != 5 || width != 2 || len(values) != len(want) {
		t.Fatalf("got %d×%d view of %d values; want 5×2", rows, width, len(values))
	}
	for i := range want {
		if values[i] != want[i] {
			t.Errorf("feature value %d: got %v; want %v", i, values[i], want[i])
		}
	}
	s := b.X.Column(1).(*array.String)
	if s.Value(2) != "c" || !s.IsNull(3) || !s.IsNull(4) {
		t.Errorf("strings: got %v; want [a b c (null) (null)]", s)
	}
	n := b.X.Column(2).(*array.Int32)
	if n.Value(2) != 3 || n.Value(3) != -2 || n.Value(4) != -2 {
		t.Errorf("int32: got %v; want [1 2 3 -2 -2]", n)
	}
	if _, err := rb.Next(ctx); err != io.EOF {
		t.Errorf("got %v; want io.EOF", err)
	}
}

// TestRealRows checks that the Pad policy marks the padded batch with its
// real rows (X and Y), that RealRows reads the mark, and that batches that
// were not padded, and other policies, report all their rows.
func TestRealRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := testCtx(t)
	for _, tc := range []struct {
		last minibatch.Remainder
		want []int64 // RealRows of each batch
	}{
		{minibatch.Pad(0), []int64{4, 4, 2}},
		{minibatch.Keep, []int64{4, 4, 2}},
		{minibatch.Drop, []int64{4, 4}},
	} {
		t.Run(tc.last.String(), func(t *testing.T) {
			src := &rowsSource{mem: mem, sizes: []int{3, 7}}
			rb, err := minibatch.NewRebatcher(src, 4, tc.last, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			defer rb.Close()
			var got []int64
			for {
				b, err := rb.Next(ctx)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, minibatch.RealRows(b))
				padded := b.Rows() != minibatch.RealRows(b)
				_, xMark := b.X.Schema().Metadata().GetValue(minibatch.RealRowsKey)
				_, yMark := b.Y.Schema().Metadata().GetValue(minibatch.RealRowsKey)
				if xMark != padded || yMark != padded {
					t.Errorf("batch %d (%d rows, %d real): marked in X %t, in Y %t; want %t", b.Seq, b.Rows(), minibatch.RealRows(b), xMark, yMark, padded)
				}
				b.Release()
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("RealRows = %v; want %v", got, tc.want)
			}
		})
	}
	if got := minibatch.RealRows(flow.Batch{}); got != 0 {
		t.Errorf("RealRows of an empty batch = %d; want 0", got)
	}
}
