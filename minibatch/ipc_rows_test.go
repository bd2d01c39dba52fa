package minibatch_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/minibatch"
)

// TestIPCColumnLongerThanBatch: a record batch whose columns hold more
// values than the batch claims rows reads without an error in arrow-go
// (its record checks only that no column is shorter); both IPC sources
// refuse it, naming the column and both counts, in the stream and the
// file format.
func TestIPCColumnLongerThanBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sc := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float32}}, nil)
	b := array.NewFloat32Builder(memory.NewGoAllocator())
	b.AppendValues([]float32{1, 2, 3}, nil)
	col := b.NewArray()
	b.Release()
	defer col.Release()
	for _, rows := range []int64{2, 0} { // 3 values each time
		short := array.NewRecordBatch(sc, []arrow.Array{col}, rows)
		var stream, file bytes.Buffer
		sw := ipc.NewWriter(&stream, ipc.WithSchema(sc))
		fw, err := ipc.NewFileWriter(&file, ipc.WithSchema(sc))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []interface {
			Write(arrow.RecordBatch) error
			Close() error
		}{sw, fw} {
			if err := w.Write(short); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		short.Release()
		want := fmt.Sprintf("column 0 (x) holds 3 values in a batch of %d rows; want one per row", rows)
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		s, err := minibatch.NewIPCStream(bytes.NewReader(stream.Bytes()), minibatch.WithAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		if bt, err := s.Next(ctx); err == nil || !strings.Contains(err.Error(), want) {
			bt.Release()
			t.Errorf("stream, %d rows: got %v; want an error containing %q", rows, err, want)
		}
		s.Close()
		f, err := minibatch.NewIPCFile(bytes.NewReader(file.Bytes()), int64(file.Len()), minibatch.WithAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		if bt, err := f.Next(ctx); err == nil || !strings.Contains(err.Error(), want) {
			bt.Release()
			t.Errorf("file, %d rows: got %v; want an error containing %q", rows, err, want)
		}
		f.Close()
		mem.AssertSize(t, 0)
	}
}
