package minibatch_test

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/minibatch"
)

func TestAllocTensorAliasesItsValues(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	col, vals := minibatch.AllocTensor(mem, 3, 2)
	defer col.Release()
	if len(vals) != 6 || col.Len() != 3 {
		t.Fatalf("got %d values, %d rows; want 6, 3", len(vals), col.Len())
	}
	for i := range vals {
		vals[i] = float32(i)
	}
	view, rows, width, err := minibatch.Float32View(col)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 3 || width != 2 || &view[0] != &vals[0] || view[5] != 5 {
		t.Fatalf("view: rows %d width %d aliased %v last %v; want 3, 2, true, 5", rows, width, &view[0] == &vals[0], view[5])
	}
}
