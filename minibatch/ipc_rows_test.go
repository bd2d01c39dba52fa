package minibatch_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestIPCColumnLongerThanBatch: a record batch whose columns hold more
// values than the batch claims rows reads without an error in arrow-go
// (its record checks only that no column is shorter); both IPC sources
// refuse it, naming the column and both counts, in the stream and the
// file format.
func TestIPCColumnLongerThanBatch(t *testing.T) {
	sc := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float32}}, nil)
	b := array.NewFloat32Builder(memory.NewGoAllocator())
	b.AppendValues([]float32{1, 2, 3}, nil)
	col := b.NewArray()
	b.Release()
	defer col.Release()
	for _, rows := range []int64{2, 0} { // 3 values each time
		short := array.NewRecordBatch(sc, []arrow.Array{col}, rows)
		recs := []arrow.RecordBatch{short}
		stream, file := ipcBytes(t, true, sc, recs), ipcBytes(t, false, sc, recs)
		short.Release()
		want := fmt.Sprintf("column 0 (x) holds 3 values in a batch of %d rows; want one per row", rows)
		for _, f := range []struct {
			name   string
			stream bool
			data   []byte
		}{{"stream", true, stream}, {"file", false, file}} {
			if err := readIPCBytes(t, f.stream, f.data); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s, %d rows: got %v; want an error containing %q", f.name, rows, err, want)
			}
		}
	}
}
