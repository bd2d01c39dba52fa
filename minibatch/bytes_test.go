package minibatch_test

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/minibatch"
)

// TestRecordBytes: a tensor column counts its child's values; a
// dictionary column counts its indices and its dictionary; nil is 0.
func TestRecordBytes(t *testing.T) {
	x := minibatch.Matrix{Rows: 2, Cols: 3, Data: make([]float32, 6)}.Record("x")
	defer x.Release()
	if got := minibatch.RecordBytes(x); got != 24 {
		t.Errorf("a 2×3 float32 tensor: %d bytes; want 24", got)
	}
	if got := minibatch.RecordBytes(nil); got != 0 {
		t.Errorf("nil: %d bytes; want 0", got)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.PrimitiveTypes.Int64}
	bld := array.NewDictionaryBuilder(mem, dt).(*array.Int64DictionaryBuilder)
	defer bld.Release()
	for _, v := range []int64{7, 8, 7, 7} {
		if err := bld.Append(v); err != nil {
			t.Fatal(err)
		}
	}
	col := bld.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "d", Type: dt}}, nil), []arrow.Array{col}, 4)
	defer rec.Release()
	d := col.Data()
	want := int64(0)
	for _, b := range d.Buffers() {
		if b != nil {
			want += int64(b.Len())
		}
	}
	for _, b := range d.Dictionary().Buffers() {
		if b != nil {
			want += int64(b.Len())
		}
	}
	if got := minibatch.RecordBytes(rec); got != want || got < 4+16 {
		t.Errorf("a dictionary column: %d bytes; want %d (its indices and its dictionary, at least 20)", got, want)
	}
}
