package minibatch

import "github.com/apache/arrow-go/v18/arrow"

// RecordBytes returns the bytes of rec's Arrow buffers, its columns'
// children and dictionaries included: at least what writing it as IPC
// encodes, and what it holds in memory when its buffers are its own (a
// buffer shared by several columns, or by a slice and its parent, counts
// once per reference). A nil rec has 0. Cost: O(arrays).
func RecordBytes(rec arrow.RecordBatch) int64 {
	if rec == nil {
		return 0
	}
	var n int64
	for _, col := range rec.Columns() {
		n += dataBytes(col.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	if d.DataType().ID() == arrow.DICTIONARY {
		if dict := d.Dictionary(); dict != nil {
			n += dataBytes(dict)
		}
	}
	return n
}
