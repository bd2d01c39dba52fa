package flow_test

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// int64Rec returns a one-column int64 record named name.
func int64Rec(mem memory.Allocator, name string, v ...int64) arrow.RecordBatch {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.AppendValues(v, nil)
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: name, Type: col.DataType()}}, nil), []arrow.Array{col}, int64(len(v)))
}

func TestBatchWithX(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := flow.Batch{Seq: 4, Epoch: 2, X: int64Rec(mem, "x", 1, 2), Y: int64Rec(mem, "y", 5, 6)}
	x := int64Rec(mem, "z", 3, 4)

	out := in.WithX(x)
	if out.Seq != 4 || out.Epoch != 2 || out.X != x || out.Y != in.Y {
		t.Fatalf("got Seq %d Epoch %d, X is x %t, Y is in.Y %t; want 4, 2, true, true", out.Seq, out.Epoch, out.X == x, out.Y == in.Y)
	}
	// Both batches are released once, as a step's caller does: the input
	// by its owner, the output by the runner. Nothing is left over and
	// nothing is released twice (Arrow panics on a negative count).
	in.Release()
	if got := out.Y.Column(0).(*array.Int64).Value(1); got != 6 {
		t.Errorf("got Y[1] = %d after the input's release; want 6 (Y retained)", got)
	}
	out.Release()

	// Without Y, and with a nil X.
	noY := flow.Batch{Seq: 1, X: int64Rec(mem, "x", 1)}
	out = noY.WithX(nil)
	if out.X != nil || out.Y != nil || out.Seq != 1 {
		t.Errorf("got X %v, Y %v, Seq %d; want nil, nil, 1", out.X, out.Y, out.Seq)
	}
	out.Release()
	noY.Release()
}

// WithX is the last line of a step that computes new inputs.
func ExampleBatch_WithX() {
	mem := memory.NewGoAllocator()
	in := flow.Batch{Seq: 3, X: int64Rec(mem, "x", 1, 2), Y: int64Rec(mem, "y", 0, 1)}
	defer in.Release() // the step's caller releases its input

	out := in.WithX(int64Rec(mem, "doubled", 2, 4)) // takes the new record, retains Y
	defer out.Release()
	fmt.Println(out.Seq, out.X.Schema().Field(0).Name, out.X.Column(0), out.Y.Column(0))
	// Output:
	// 3 doubled [2 4] [0 1]
}
