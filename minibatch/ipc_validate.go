package minibatch

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// validateRecord checks a record batch decoded from IPC input, so that a
// corrupt input is an error here, not a panic or a runaway loop later in a
// step. It is arrow-go's array.ValidateFull of each column, as
// array.ValidateRecordFull does it (buffers long enough for their arrays,
// offsets in order and in bounds, UTF-8 strings, dictionary indices inside
// their dictionaries, union type codes, null counts), plus what that lacks
// in arrow-go v18.8.0, each with a test in source_ipc_test.go
// (TestIPCStringOffsetsPanicInArrow, TestIPCRowBound):
//
//   - Its validation of a string array slices the values by each pair of
//     offsets before it has checked that the later one is in bounds: offsets
//     [0, 100, 5] over 5 bytes pass its checks of the first and last offset,
//     then panic. Any panic in it is turned into an error here.
//   - It rejects what arrow-go's own IPC decoder makes of a null array (no
//     buffers, where the validator wants one nil buffer), so a column of
//     type null, or a child of one, is validated on a copy of its data with
//     that slot added.
//   - A column may hold more values than the batch has rows (arrow-go's
//     record checks only that none holds fewer): a step that reads the
//     column's values and the batch's rows would disagree, or panic. Every
//     column holds exactly one value per row.
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
		if n := int64(col.Len()); n != rec.NumRows() { // arrow-go checks only that no column is shorter
			return fmt.Errorf("column %d (%s) holds %d values in a batch of %d rows; want one per row", i, rec.Schema().Field(i).Name, n, rec.NumRows())
		}
		if err := boundRows(col.Data(), maxRows); err != nil {
			return fmt.Errorf("column %d (%s): %w", i, rec.Schema().Field(i).Name, err)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid arrays (arrow-go's validation panicked: %v)", r)
		}
	}()
	for i, col := range rec.Columns() {
		if hasNull(col.DataType()) {
			data := withNullSlots(col.Data())
			col = array.MakeFromData(data)
			data.Release()
			defer col.Release()
		}
		if err := array.ValidateFull(col); err != nil {
			return fmt.Errorf("column %d (%s): %w", i, rec.Schema().Field(i).Name, err)
		}
	}
	return nil
}

// hasNull reports whether dt is or holds the null type.
func hasNull(dt arrow.DataType) bool {
	switch dt := dt.(type) {
	case *arrow.NullType:
		return true
	case *arrow.DictionaryType:
		return hasNull(dt.ValueType)
	case arrow.ExtensionType:
		return hasNull(dt.StorageType())
	case arrow.NestedType:
		for _, f := range dt.Fields() {
			if hasNull(f.Type) {
				return true
			}
		}
	}
	return false
}

// withNullSlots returns a copy of d (sharing its buffers) in which every
// null array has the one nil buffer that arrow-go's validator expects. The
// caller releases it.
func withNullSlots(d arrow.ArrayData) arrow.ArrayData {
	bufs := d.Buffers()
	if d.DataType().ID() == arrow.NULL && len(bufs) == 0 {
		bufs = []*memory.Buffer{nil}
	}
	children := make([]arrow.ArrayData, len(d.Children()))
	for i, c := range d.Children() {
		children[i] = withNullSlots(c)
		defer children[i].Release()
	}
	out := array.NewData(d.DataType(), d.Len(), bufs, children, d.NullN(), d.Offset())
	if dict, ok := d.Dictionary().(*array.Data); ok && dict != nil {
		fixed := withNullSlots(dict)
		out.SetDictionary(fixed)
		fixed.Release()
	}
	return out
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
