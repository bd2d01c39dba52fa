package steps

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// This file holds the list columns that ForEach and ExpandDim build: a
// list<T> column from its values and row lengths.

// wrapNewList returns a list<T> column of len(lengths) rows whose row i holds
// the next lengths[i] values of values (retained), with its offsets
// allocated from mem. The caller releases it.
func wrapNewList(mem memory.Allocator, values arrow.Array, lengths []int) (*array.List, error) {
	buf := memory.NewResizableBuffer(mem)
	defer buf.Release()
	buf.Resize((len(lengths) + 1) * arrow.Int32SizeBytes)
	offsets := arrow.Int32Traits.CastFromBytes(buf.Bytes())
	offsets[0] = 0
	for i, n := range lengths {
		next := int64(offsets[i]) + int64(n)
		if next > 1<<31-1 {
			return nil, fmt.Errorf("%d values do not fit a list column (int32 offsets)", next)
		}
		offsets[i+1] = int32(next)
	}
	if int(offsets[len(lengths)]) != values.Len() {
		return nil, fmt.Errorf("%d values for rows of %d in all", values.Len(), offsets[len(lengths)])
	}
	data := array.NewData(arrow.ListOf(values.DataType()), len(lengths), []*memory.Buffer{nil, buf}, []arrow.ArrayData{values.Data()}, 0, 0)
	defer data.Release()
	return array.NewListData(data), nil
}

// wrapListRow returns row r of l, a slice of its values (the caller
// releases it).
func wrapListRow(l *array.List, r int) arrow.Array {
	start, end := l.ValueOffsets(r)
	return array.NewSlice(l.ListValues(), start, end)
}
