package minibatch

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// RecordBytes returns the bytes of rec's Arrow buffers, its columns'
// children and dictionaries included: at least the bytes of the buffers
// that writing it as IPC encodes, before the writer pads each to a multiple
// of 8 bytes (so a record of a few rows may take more bytes of message
// body), and what it holds in memory when its buffers are its own (a
// buffer shared by several columns, or by a slice and its parent, counts
// once per reference). A nil rec has 0. Cost: O(arrays).
func RecordBytes(rec arrow.RecordBatch) int64 {
	if rec == nil {
		return 0
	}
	var n int64
	for _, col := range rec.Columns() {
		eachBuffer(col.Data(), func(b *memory.Buffer) { n += int64(b.Len()) })
	}
	return n
}

// eachBuffer calls fn with every non-nil buffer of d, its children's
// and its dictionary's, in that order.
func eachBuffer(d arrow.ArrayData, fn func(*memory.Buffer)) {
	for _, b := range d.Buffers() {
		if b != nil {
			fn(b)
		}
	}
	for _, c := range d.Children() {
		eachBuffer(c, fn)
	}
	if d.DataType().ID() == arrow.DICTIONARY {
		if dict := d.Dictionary(); dict != nil {
			eachBuffer(dict, fn)
		}
	}
}
