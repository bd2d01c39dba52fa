package minibatch

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// validateRecord checks a record batch decoded from IPC input, so that a
// corrupt input is an error here, not a panic or a runaway loop later in a
// step. It is arrow-go's array.ValidateRecordFull (buffers long enough for
// their arrays, offsets in order and in bounds, UTF-8 strings, dictionary
// indices inside their dictionaries, union type codes, null counts) plus
// what that lacks in arrow-go v18.8.0, each with a test in
// source_ipc_test.go:
//
//   - Its validation of a string array slices the values by each pair of
//     offsets before it has checked that the later one is in bounds: offsets
//     [0, 100, 5] over 5 bytes pass its checks of the first and last offset,
//     then panic. Any panic in it is turned into an error here.
//   - Nothing bounds lengths that need no buffers: a null array (or a
//     struct of them, or a record batch without columns) may claim 2⁶² rows
//     in a few bytes, and a large list may span a child that long, so a
//     step that loops over the rows never ends. Every array, child and
//     dictionary, and the batch itself, has at most maxRows rows (the
//     WithMaxBatchBytes bound: a row takes at least a byte elsewhere).
//
// Its cost is O(columns) for fixed-width columns and O(rows) for
// variable-length, dictionary and union ones.
func validateRecord(rec arrow.RecordBatch, maxRows int64) (err error) {
	if rec.NumRows() > maxRows {
		return fmt.Errorf("%d rows, over the limit of %d (one per byte of WithMaxBatchBytes)", rec.NumRows(), maxRows)
	}
	for i, col := range rec.Columns() {
		if err := boundRows(col.Data(), maxRows); err != nil {
			return fmt.Errorf("column %d (%s): %w", i, rec.Schema().Field(i).Name, err)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid arrays (arrow-go's validation panicked: %v)", r)
		}
	}()
	return array.ValidateRecordFull(rec)
}

// boundRows checks that d, its children and its dictionary have at most
// max rows from their offsets. arrow-go's decoder nests arrays at most 64
// deep.
func boundRows(d arrow.ArrayData, max int64) error {
	if n, off := int64(d.Len()), int64(d.Offset()); n > max || off > max-n {
		return fmt.Errorf("array of %d rows from offset %d, over the limit of %d rows (one per byte of WithMaxBatchBytes)", n, off, max)
	}
	for _, c := range d.Children() {
		if c, ok := c.(*array.Data); ok && c != nil {
			if err := boundRows(c, max); err != nil {
				return err
			}
		}
	}
	if dict, ok := d.Dictionary().(*array.Data); ok && dict != nil {
		if err := boundRows(dict, max); err != nil {
			return fmt.Errorf("dictionary: %w", err)
		}
	}
	return nil
}
