package minibatch

import (
	"fmt"
	"math"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// This file holds the padding of the Pad remainder policy and the mark that
// tells padded rows from real ones (RealRows).

// RealRowsKey is the schema metadata key that marks a batch padded by the
// Pad policy: its value, in X's and Y's schema metadata, is the number of
// real rows in decimal; the rows from there to the end are padding. Read
// it with RealRows.
const RealRowsKey = "penstock.real_rows"

// RealRows returns the number of real rows of b: the rows before the
// padding that the Pad policy of a Rebatcher appended, read from
// RealRowsKey in the metadata of X's schema, or all of b's rows when b was
// not padded. The real rows come first, so a loss that must ignore padding
// uses rows [0, RealRows(b)). Steps that keep X's schema metadata (such as
// Pack) keep the mark. Stages that cut or gather the rows of padded
// batches (a Rebatcher, Shuffle, Permute, Curriculum, the splits, the
// Resampler) mark each batch they return anew with the rows before its
// first padding row, and leave unmarked a batch that holds none: padding
// is never counted as real, though real rows that a gather puts after a
// padding row are then not counted either (pad in the last stage that
// moves rows). It costs one metadata lookup.
func RealRows(b flow.Batch) int64 {
	if b.X == nil {
		return b.Rows()
	}
	return padStart(b.X)
}

// padStart returns the row at which the padding of rec starts: the real
// rows that its schema marks (RealRowsKey), or all of its rows when it is
// not marked (or the mark is not a row count of rec).
func padStart(rec arrow.RecordBatch) int64 {
	md := rec.Schema().Metadata()
	i := md.FindKey(RealRowsKey)
	if i < 0 {
		return rec.NumRows()
	}
	n, err := strconv.ParseInt(md.Values()[i], 10, 64)
	if err != nil || n < 0 || n > rec.NumRows() {
		return rec.NumRows()
	}
	return n
}

// marked reports whether rec's schema carries RealRowsKey.
func marked(rec arrow.RecordBatch) bool {
	return rec != nil && rec.Schema().Metadata().FindKey(RealRowsKey) >= 0
}

// markSchema returns schema marked with real real rows out of rows: with
// RealRowsKey set to real when real < rows, without it otherwise (schema
// itself when it has none).
func markSchema(schema *arrow.Schema, real, rows int64) *arrow.Schema {
	if real < rows {
		return withRealRows(schema, real)
	}
	md := schema.Metadata()
	if md.FindKey(RealRowsKey) < 0 {
		return schema
	}
	var keys, values []string
	for i, k := range md.Keys() {
		if k != RealRowsKey {
			keys = append(keys, k)
			values = append(values, md.Values()[i])
		}
	}
	meta := arrow.NewMetadata(keys, values)
	return arrow.NewSchema(schema.Fields(), &meta)
}

// remark returns rec (taken over) with its schema marked with real real
// rows (see markSchema); rec itself when the mark stays as it is.
func remark(rec arrow.RecordBatch, real int64) arrow.RecordBatch {
	schema := markSchema(rec.Schema(), real, rec.NumRows())
	if schema == rec.Schema() {
		return rec
	}
	out := array.NewRecordBatch(schema, rec.Columns(), rec.NumRows())
	rec.Release()
	return out
}

// padBatch returns b with n rows of value appended to X and Y (see Pad),
// both marked with RealRowsKey.
func padBatch(mem memory.Allocator, b flow.Batch, n int64, value float64) (flow.Batch, error) {
	out := flow.Batch{Seq: b.Seq, Epoch: b.Epoch}
	real := padStart(b.X) // b may hold padding of its input, before its end
	var err error
	if out.X, err = padRecord(mem, b.X, real, n, value); err != nil {
		return flow.Batch{}, err
	}
	if b.Y != nil {
		if out.Y, err = padRecord(mem, b.Y, real, n, value); err != nil {
			out.Release()
			return flow.Batch{}, err
		}
	}
	return out, nil
}

// withRealRows returns schema with RealRowsKey set to real, keeping its
// other metadata.
func withRealRows(schema *arrow.Schema, real int64) *arrow.Schema {
	md := schema.Metadata()
	keys, values := []string{RealRowsKey}, []string{strconv.FormatInt(real, 10)}
	for i, k := range md.Keys() {
		if k != RealRowsKey {
			keys = append(keys, k)
			values = append(values, md.Values()[i])
		}
	}
	meta := arrow.NewMetadata(keys, values)
	return arrow.NewSchema(schema.Fields(), &meta)
}

func padRecord(mem memory.Allocator, rec arrow.RecordBatch, real, n int64, value float64) (arrow.RecordBatch, error) {
	schema := withRealRows(rec.Schema(), real)
	cols := make([]arrow.Array, schema.NumFields())
	for c := range cols {
		fill := padArray(mem, schema.Field(c).Type, int(n), value)
		col, err := array.Concatenate([]arrow.Array{rec.Column(c), fill}, mem)
		fill.Release()
		if err != nil {
			releaseArrays(cols[:c])
			return nil, fmt.Errorf("column %q: %w", schema.Field(c).Name, err)
		}
		cols[c] = col
	}
	out := array.NewRecordBatch(schema, cols, rec.NumRows()+n)
	releaseArrays(cols)
	return out, nil
}

// padArray returns an array of n values of type dt holding value (see Pad),
// which the caller releases.
func padArray(mem memory.Allocator, dt arrow.DataType, n int, value float64) arrow.Array {
	switch t := dt.(type) {
	case *arrow.FixedSizeListType:
		if !isNumeric(t.Elem()) {
			break
		}
		child := padArray(mem, t.Elem(), n*int(t.Len()), value)
		defer child.Release()
		data := array.NewData(dt, n, []*memory.Buffer{nil}, []arrow.ArrayData{child.Data()}, 0, 0)
		defer data.Release()
		return array.MakeFromData(data)
	}
	if !isNumeric(dt) {
		return array.MakeArrayOfNull(mem, dt, n)
	}
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	b.Reserve(n)
	switch b := b.(type) {
	case *array.Float64Builder:
		fill(b, n, value)
	case *array.Float32Builder:
		fill(b, n, float32(value))
	case *array.Float16Builder:
		fill(b, n, float16.New(float32(value)))
	case *array.Int64Builder:
		fill(b, n, int64(value))
	case *array.Int32Builder:
		fill(b, n, int32(value))
	case *array.Int16Builder:
		fill(b, n, int16(value))
	case *array.Int8Builder:
		fill(b, n, int8(value))
	case *array.Uint64Builder:
		fill(b, n, uint64(math.Max(value, 0)))
	case *array.Uint32Builder:
		fill(b, n, uint32(math.Max(value, 0)))
	case *array.Uint16Builder:
		fill(b, n, uint16(math.Max(value, 0)))
	case *array.Uint8Builder:
		fill(b, n, uint8(math.Max(value, 0)))
	}
	return b.NewArray()
}

func fill[T any](b interface{ UnsafeAppend(T) }, n int, v T) {
	for range n {
		b.UnsafeAppend(v)
	}
}

// isNumeric reports whether dt is an integer or a floating-point type
// (float16, float32, float64).
func isNumeric(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
		return true
	}
	return false
}
