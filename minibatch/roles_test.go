package minibatch_test

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/minibatch"
)

// TestRoleSplitterIndexOncePerSchema checks that a RoleSplitter builds its
// index once per schema: batches of one schema (the same pointer, or an
// equal one) share the X and Y schemas of the first split, a new schema
// gets a new index, and a schema that lacks a column is an error.
func TestRoleSplitterIndexOncePerSchema(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	table := func(names ...string) arrow.RecordBatch {
		fields := make([]arrow.Field, len(names))
		cols := make([]arrow.Array, len(names))
		for i, n := range names {
			fields[i] = arrow.Field{Name: n, Type: arrow.PrimitiveTypes.Float64}
			b := array.NewFloat64Builder(mem)
			b.AppendValues([]float64{float64(i), float64(i) + 0.5}, nil)
			cols[i] = b.NewArray()
			b.Release()
		}
		rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, 2)
		for _, c := range cols {
			c.Release()
		}
		return rec
	}
	s := minibatch.RoleSplitter{Roles: minibatch.Roles{Inputs: []string{"b", "a"}, Labels: []string{"y"}}}
	split := func(rec arrow.RecordBatch) (x, y arrow.RecordBatch) {
		t.Helper()
		defer rec.Release()
		x, y, err := s.Split(rec)
		if err != nil {
			t.Fatal(err)
		}
		return x, y
	}
	x1, y1 := split(table("a", "b", "y"))
	x2, y2 := split(table("a", "b", "y")) // an equal schema, another pointer
	defer func() {
		for _, r := range []arrow.RecordBatch{x1, y1, x2, y2} {
			r.Release()
		}
	}()
	if x1.Schema() != x2.Schema() || y1.Schema() != y2.Schema() {
		t.Error("two batches of equal schemas got different X or Y schema values; want the index (and schemas) built once")
	}
	if x1.ColumnName(0) != "b" || x1.ColumnName(1) != "a" || y1.ColumnName(0) != "y" {
		t.Errorf("X columns %q %q, Y %q; want b a, y", x1.ColumnName(0), x1.ColumnName(1), y1.ColumnName(0))
	}
	if got := x2.Column(0).(*array.Float64).Value(0); got != 1 {
		t.Errorf("X column b value = %v; want 1 (column b of the second batch)", got)
	}
	// A new schema, columns in another order: a new index.
	x3, y3 := split(table("y", "a", "b"))
	defer x3.Release()
	defer y3.Release()
	if got := x3.Column(0).(*array.Float64).Value(0); got != 2 {
		t.Errorf("after a schema change, X column b value = %v; want 2 (b is now the third column)", got)
	}
	rec := table("a", "y")
	defer rec.Release()
	if _, _, err := s.Split(rec); err == nil {
		t.Error("Split of a schema without column b: nil error; want one naming the column")
	}
}
