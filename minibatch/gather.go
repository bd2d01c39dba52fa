package minibatch

import (
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// This file holds the one row-gather kernel of the package: copying chosen
// rows of one or more batches into new buffers. Shuffle, Permute,
// Curriculum, the split sides and NewResampler all gather through it.

// rowRef names row row of batch src of a list of batches.
type rowRef struct{ src, row int32 }

// takeBatchRows returns a batch that the caller owns holding the rows idx
// (ascending; repeats allowed) of b's X and Y, with b's Seq and Epoch. A
// batch taken whole is retained, a contiguous run is a zero-copy slice, and
// anything else is gathered (takeBatch) into buffers from mem.
func takeBatchRows(mem memory.Allocator, b flow.Batch, idx []int32) (flow.Batch, error) {
	n := len(idx)
	if n > 0 && int64(idx[n-1]-idx[0]) == int64(n-1) {
		// Ascending with no repeats and no gaps: one contiguous run.
		if idx[0] == 0 && int64(n) == b.Rows() {
			b.Retain()
			return b, nil
		}
		return sliceBatch(b, int64(idx[0]), int64(idx[0])+int64(n)), nil
	}
	refs := make([]rowRef, n)
	for i, row := range idx {
		refs[i] = rowRef{row: row}
	}
	out, err := takeBatch(mem, []flow.Batch{b}, refs, b.Y != nil)
	if err != nil {
		return flow.Batch{}, err
	}
	out.Seq, out.Epoch = b.Seq, b.Epoch
	return out, nil
}

// takeBatch gathers the rows refs of the batches srcs (entries not named by
// refs may be zero) into a new batch of new buffers from mem, which the
// caller owns. All named batches must have the same columns.
func takeBatch(mem memory.Allocator, srcs []flow.Batch, refs []rowRef, hasY bool) (flow.Batch, error) {
	recs := make([]arrow.RecordBatch, len(srcs))
	for i, b := range srcs {
		recs[i] = b.X
	}
	var out flow.Batch
	var err error
	if out.X, err = takeRecord(mem, recs, refs); err != nil {
		return flow.Batch{}, fmt.Errorf("gather X: %w", err)
	}
	if hasY {
		for i, b := range srcs {
			recs[i] = b.Y
		}
		if out.Y, err = takeRecord(mem, recs, refs); err != nil {
			out.Release()
			return flow.Batch{}, fmt.Errorf("gather Y: %w", err)
		}
	}
	return out, nil
}

func takeRecord(mem memory.Allocator, recs []arrow.RecordBatch, refs []rowRef) (arrow.RecordBatch, error) {
	var first arrow.RecordBatch
	if len(refs) > 0 {
		first = recs[refs[0].src]
	} else {
		for _, r := range recs {
			if r != nil {
				first = r
				break
			}
		}
	}
	if first == nil {
		return nil, errors.New("take: no batch to take rows from")
	}
	schema := first.Schema()
	if real := realPrefix(recs, refs); real < int64(len(refs)) || marked(first) {
		schema = markSchema(schema, real, int64(len(refs)))
	}
	cols := make([]arrow.Array, schema.NumFields())
	parts := make([]arrow.Array, len(recs))
	for c := range cols {
		for i, r := range recs {
			if r != nil {
				parts[i] = r.Column(c)
			} else {
				parts[i] = nil
			}
		}
		col, err := takeArray(mem, schema.Field(c).Type, parts, refs)
		if err != nil {
			releaseArrays(cols[:c])
			return nil, fmt.Errorf("take: column %q: %w", schema.Field(c).Name, err)
		}
		cols[c] = col
	}
	out := array.NewRecordBatch(schema, cols, int64(len(refs)))
	releaseArrays(cols)
	return out, nil
}

// realPrefix returns how many of the rows refs of recs come before the
// first that is padding (see RealRows). It costs a metadata lookup per
// row, and a parse of the mark per row of a padded batch.
func realPrefix(recs []arrow.RecordBatch, refs []rowRef) int64 {
	for i, ref := range refs {
		if rec := recs[ref.src]; marked(rec) && int64(ref.row) >= padStart(rec) {
			return int64(i)
		}
	}
	return int64(len(refs))
}

// takeArray gathers rows refs of the arrays srcs (all of type dt) into a
// new array. Fixed-width types and FixedSizeLists of them are copied row by
// row with one memmove each; other types are sliced and concatenated.
func takeArray(mem memory.Allocator, dt arrow.DataType, srcs []arrow.Array, refs []rowRef) (arrow.Array, error) {
	if w := fixedByteWidth(dt); w > 0 {
		return takeFixed(mem, dt, srcs, refs, w, 1), nil
	}
	if t, ok := dt.(*arrow.FixedSizeListType); ok {
		if w := fixedByteWidth(t.Elem()); w > 0 && !childNulls(srcs, refs) {
			return takeFixed(mem, dt, srcs, refs, w, int(t.Len())), nil
		}
	}
	return takeBySlices(mem, srcs, refs)
}

// fixedByteWidth returns the bytes per value of a fixed-width type whose
// values live in buffer 1, or 0 for any other type.
func fixedByteWidth(dt arrow.DataType) int {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64,
		arrow.DATE32, arrow.DATE64, arrow.TIME32, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION,
		arrow.INTERVAL_MONTHS, arrow.INTERVAL_DAY_TIME, arrow.INTERVAL_MONTH_DAY_NANO,
		arrow.DECIMAL32, arrow.DECIMAL64, arrow.DECIMAL128, arrow.DECIMAL256, arrow.FIXED_SIZE_BINARY:
		if fw, ok := dt.(arrow.FixedWidthDataType); ok {
			return fw.Bytes()
		}
	}
	return 0
}

func childNulls(srcs []arrow.Array, refs []rowRef) bool {
	seen := make([]bool, len(srcs))
	for _, ref := range refs {
		if seen[ref.src] {
			continue
		}
		seen[ref.src] = true
		if srcs[ref.src].(*array.FixedSizeList).ListValues().NullN() > 0 {
			return true
		}
	}
	return false
}

// takeFixed copies rows of per values of elem bytes each: plain fixed-width
// arrays (per = 1) or FixedSizeLists of them (per = list width).
func takeFixed(mem memory.Allocator, dt arrow.DataType, srcs []arrow.Array, refs []rowRef, elem, per int) arrow.Array {
	n := len(refs)
	size := elem * per
	bytes := make([][]byte, len(srcs))
	base := make([]int, len(srcs))
	nulls := false
	for i, a := range srcs {
		if a == nil {
			continue
		}
		d := a.Data()
		if dt.ID() == arrow.FIXED_SIZE_LIST {
			child := d.Children()[0]
			base[i] = child.Offset()*elem + d.Offset()*size
			d = child
		} else {
			base[i] = d.Offset() * size
		}
		if buf := d.Buffers()[1]; buf != nil {
			bytes[i] = buf.Bytes()
		}
		nulls = nulls || a.NullN() > 0
	}
	values := memory.NewResizableBuffer(mem)
	values.Resize(n * size)
	dst := values.Bytes()
	for i, ref := range refs {
		at := base[ref.src] + int(ref.row)*size
		copy(dst[i*size:(i+1)*size], bytes[ref.src][at:at+size])
	}
	var validity *memory.Buffer
	nullN := 0
	if nulls {
		validity = memory.NewResizableBuffer(mem)
		validity.Resize(int(bitutil.BytesForBits(int64(n))))
		bm := validity.Bytes()
		for i, ref := range refs {
			ok := srcs[ref.src].IsValid(int(ref.row))
			bitutil.SetBitTo(bm, i, ok)
			if !ok {
				nullN++
			}
		}
	}
	var data *array.Data
	if t, ok := dt.(*arrow.FixedSizeListType); ok {
		child := array.NewData(t.Elem(), n*per, []*memory.Buffer{nil, values}, nil, 0, 0)
		data = array.NewData(dt, n, []*memory.Buffer{validity}, []arrow.ArrayData{child}, nullN, 0)
		child.Release()
	} else {
		data = array.NewData(dt, n, []*memory.Buffer{validity, values}, nil, nullN, 0)
	}
	values.Release()
	if validity != nil {
		validity.Release()
	}
	defer data.Release()
	return array.MakeFromData(data)
}

// takeBySlices gathers rows of any type by slicing runs of consecutive rows
// and concatenating the slices.
func takeBySlices(mem memory.Allocator, srcs []arrow.Array, refs []rowRef) (arrow.Array, error) {
	var parts []arrow.Array
	defer func() { releaseArrays(parts) }()
	for i := 0; i < len(refs); {
		j := i + 1
		for j < len(refs) && refs[j].src == refs[i].src && refs[j].row == refs[j-1].row+1 {
			j++
		}
		parts = append(parts, array.NewSlice(srcs[refs[i].src], int64(refs[i].row), int64(refs[j-1].row)+1))
		i = j
	}
	if len(parts) == 0 {
		for _, a := range srcs {
			if a != nil {
				return array.NewSlice(a, 0, 0), nil
			}
		}
	}
	return array.Concatenate(parts, mem)
}
