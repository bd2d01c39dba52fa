package minibatch_test

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// exampleBatch returns a batch of three rows: X the numeric columns a and
// b, Y the int64 column "label".
func exampleBatch(mem memory.Allocator) flow.Batch {
	ab, bb, lb := array.NewFloat64Builder(mem), array.NewInt32Builder(mem), array.NewInt64Builder(mem)
	defer ab.Release()
	defer bb.Release()
	defer lb.Release()
	ab.AppendValues([]float64{1, 2, 3}, nil)
	bb.AppendValues([]int32{10, 20, 30}, nil)
	lb.AppendValues([]int64{0, 1, 1}, nil)
	a, b, l := ab.NewArray(), bb.NewArray(), lb.NewArray()
	defer a.Release()
	defer b.Release()
	defer l.Release()
	x := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Float64}, {Name: "b", Type: arrow.PrimitiveTypes.Int32}}, nil),
		[]arrow.Array{a, b}, 3)
	y := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "label", Type: arrow.PrimitiveTypes.Int64}}, nil),
		[]arrow.Array{l}, 3)
	return flow.Batch{X: x, Y: y}
}

// Features reads a packed tensor column as a matrix, without copying.
func ExampleFeatures() {
	mem := memory.NewGoAllocator()
	raw := exampleBatch(mem)
	defer raw.Release()
	b, err := (&minibatch.PackStep{Out: "x", Cols: []string{"a", "b"}}).Transform(context.Background(), raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Release()

	x, err := minibatch.Features(b, "x")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(x.Rows, "×", x.Cols, x.Row(1))
	// A column that is not a tensor: the error says how to make one.
	_, err = minibatch.Features(raw, "a")
	fmt.Println(err)
	// Output:
	// 3 × 2 [2 20]
	// minibatch: features: column "a" of X has type float64, want fixed_size_list<float32> (a packed tensor); pack numeric columns into one float32 tensor column with minibatch.Pack or minibatch.PackStep
}

// scale is a step written with the helpers: read the features, allocate the
// output from the run's allocator, return it as X with Y passed through.
type scale struct{ by float32 }

func (s scale) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	x, err := minibatch.Features(b, "x")
	if err != nil {
		return flow.Batch{}, err
	}
	out := minibatch.NewMatrix(flow.Allocator(ctx), x.Rows, x.Cols)
	defer out.Release()
	for i, v := range x.Data {
		out.Data[i] = s.by * v
	}
	return b.WithX(out.Record("x")), nil
}

// NewMatrix and Record make the X of the batch that a step returns.
func ExampleNewMatrix() {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ctx := flow.WithAllocator(context.Background(), mem) // what a Runner does
	in := flow.Batch{X: minibatch.Matrix{Rows: 2, Cols: 2, Data: []float32{1, 2, 3, 4}}.Record("x")}

	out, err := scale{by: 10}.Transform(ctx, in)
	in.Release()
	if err != nil {
		fmt.Println(err)
		return
	}
	x, _ := minibatch.Features(out, "x")
	fmt.Println(x.Data, mem.CurrentAlloc() > 0)
	out.Release()
	fmt.Println("bytes held:", mem.CurrentAlloc())
	// Output:
	// [10 20 30 40] true
	// bytes held: 0
}

// Record wraps a literal matrix's Go slice, without copying.
func ExampleMatrix_Record() {
	m := minibatch.Matrix{Rows: 2, Cols: 3, Data: []float32{1, 2, 3, 4, 5, 6}}
	rec := m.Record("x")
	defer rec.Release()
	fmt.Println(rec.NumRows(), rec.Schema().Field(0).Type)
	// Output:
	// 2 fixed_size_list<item: float32, nullable>[3]
}

// LabelsInt64 reads class labels from Y; an int64 column is not copied.
func ExampleLabelsInt64() {
	b := exampleBatch(memory.NewGoAllocator())
	defer b.Release()
	labels, err := minibatch.LabelsInt64(b, "label")
	fmt.Println(labels, err)
	_, err = minibatch.LabelsInt64(b, "digit")
	fmt.Println(err)
	// Output:
	// [0 1 1] <nil>
	// minibatch: labels: Y has no column "digit" (it has columns "label"); a source puts the label columns in Y with minibatch.WithLabels
}

// LabelsFloat32 reads targets from Y, converting other numeric types.
func ExampleLabelsFloat32() {
	b := exampleBatch(memory.NewGoAllocator())
	defer b.Release()
	targets, err := minibatch.LabelsFloat32(b, "label")
	fmt.Println(targets, err)
	// Output:
	// [0 1 1] <nil>
}

// MapRows is the whole Transform of a step that maps rows to rows: here, a
// row's features to their sum.
func ExampleMapRows() {
	in := flow.Batch{X: minibatch.Matrix{Rows: 2, Cols: 3, Data: []float32{1, 2, 3, 4, 5, 6}}.Record("x")}
	defer in.Release()
	out, err := minibatch.MapRows(context.Background(), in, "x", "sum", 1, func(x, y []float32) {
		for _, v := range x {
			y[0] += v
		}
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer out.Release()
	sum, _ := minibatch.Features(out, "sum")
	fmt.Println(sum.Rows, "×", sum.Cols, sum.Data)
	// Output:
	// 2 × 1 [6 15]
}

// Examples reads what a classifier fits on: features and class labels.
func ExampleExamples() {
	b := exampleBatch(memory.NewGoAllocator()) // Y's column "label" holds 0, 1, 1
	defer b.Release()
	b.X.Release()
	b.X = minibatch.Matrix{Rows: 3, Cols: 2, Data: []float32{1, 2, 3, 4, 5, 6}}.Record("x")
	x, labels, err := minibatch.Examples(b, "x", "label", 2)
	fmt.Println(x.Row(2), labels, err)
	// Output:
	// [5 6] [0 1 1] <nil>
}
