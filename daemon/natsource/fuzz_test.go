package natsource

import (
	"bytes"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/daemon/source"
)

// FuzzDecode decodes arbitrary message bodies: no panic, any error a
// rejection, every batch taken of the schema, every byte freed.
func FuzzDecode(f *testing.F) {
	schema := source.Schema{
		Fields: arrow.NewSchema([]arrow.Field{
			{Name: "x", Type: arrow.PrimitiveTypes.Float32},
			{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
			{Name: "y", Type: arrow.PrimitiveTypes.Int64},
		}, nil),
		Inputs: []string{"x", "s"},
		Labels: []string{"y"},
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema.Fields)
	b.Field(0).(*array.Float32Builder).AppendValues([]float32{1, 2}, nil)
	b.Field(1).(*array.StringBuilder).AppendValues([]string{"a", ""}, []bool{true, false})
	b.Field(2).(*array.Int64Builder).AppendValues([]int64{1, 0}, nil)
	rec := b.NewRecordBatch()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema.Fields))
	w.Write(rec)
	w.Write(rec)
	w.Close()
	rec.Release()
	b.Release()
	f.Add(buf.Bytes())
	f.Add([]byte("not arrow"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		s, err := New(Options{Stream: "S", Schema: schema, Alloc: mem, MaxMsgBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		batches, err := s.decode(t.Context(), data, "fuzz")
		if err != nil {
			if _, ok := errors.AsType[*rejection](err); !ok {
				t.Fatalf("error %v is not a rejection", err)
			}
		}
		for _, b := range batches {
			if b.X.NumCols() != 2 || b.Y.NumCols() != 1 || b.X.NumRows() != b.Y.NumRows() {
				t.Fatalf("batch X %v Y %v; want x, s and y of as many rows", b.X.Schema(), b.Y.Schema())
			}
			b.Release()
		}
		mem.AssertSize(t, 0)
	})
}
