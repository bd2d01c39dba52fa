package ipcguard_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/internal/ipcguard"
)

// Reading an IPC stream with arrow-go's reader, guarded: the messages are
// checked before arrow-go decodes them, what one read decompresses is
// bounded, and what a failed read leaves allocated is reclaimed.
func Example() {
	// An lz4-compressed stream of one batch of 1000 int64 zeros.
	schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	bld := array.NewInt64Builder(memory.DefaultAllocator)
	bld.AppendValues(make([]int64, 1000), nil)
	col := bld.NewArray()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 1000)
	var stream bytes.Buffer
	w := ipc.NewWriter(&stream, ipc.WithSchema(schema), ipc.WithLZ4())
	w.Write(rec)
	w.Close()
	rec.Release()
	col.Release()
	bld.Release()

	for _, limit := range []int64{1 << 20, 4 << 10} {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		guard := ipcguard.NewAllocator(mem, limit)
		msgs := ipcguard.NewMessageReader(bytes.NewReader(stream.Bytes()), guard, limit)
		var rd *ipc.Reader
		err := guard.Read(func() (err error) {
			rd, err = ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(guard))
			return err
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		var rows int64
		for {
			var ok bool
			err = guard.Read(func() error {
				ok = rd.Next()
				return rd.Err()
			})
			if err != nil || !ok {
				break
			}
			rows += rd.RecordBatch().NumRows()
		}
		rd.Release()
		guard.ReleaseReader(false) // no batch was handed out
		var lim *ipcguard.LimitError
		fmt.Printf("limit %d: %d rows, over the limit: %v, left allocated: %d\n", limit, rows, errors.As(err, &lim), mem.CurrentAlloc())
	}
	// Output:
	// limit 1048576: 1000 rows, over the limit: false, left allocated: 0
	// limit 4096: 0 rows, over the limit: true, left allocated: 0
}
