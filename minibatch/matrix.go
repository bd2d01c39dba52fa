package minibatch

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// This file holds what a step needs to read and write dense features: the
// Matrix view of a FixedSizeList<float32> column (Features), new matrices
// that become the X of the batch a step returns (NewMatrix, Matrix.Record),
// and the two together for a step that maps rows to rows (MapRows).

// Matrix is a dense row-major float32 matrix: row r is
// Data[r*Cols : (r+1)*Cols]. It is the form in which a step reads its
// features (Features) and writes new ones (NewMatrix, then Record).
//
// A Matrix is either a view of an Arrow column (Features: no copy, valid
// while the batch is), a matrix that owns an Arrow buffer (NewMatrix: the
// holder calls Release), or a literal over a Go slice.
type Matrix struct {
	Rows, Cols int
	Data       []float32

	col   *array.FixedSizeList // the column whose values are Data, or nil
	owned bool                 // col is NewMatrix's reference, dropped by Release
}

// Row returns row r (0 ≤ r < Rows) as a slice of Data, capacity Cols:
// writes through it change the matrix.
func (m Matrix) Row(r int) []float32 {
	return m.Data[r*m.Cols : (r+1)*m.Cols : (r+1)*m.Cols]
}

// Features returns the FixedSizeList<float32> column named column of b's X
// as a Matrix of b.Rows() rows, without copying: Data aliases the column's
// Arrow buffer and is valid while the caller holds b (a step, while it has
// not returned). Do not write through it: Arrow arrays are immutable once
// shared. Record on the view makes a record of the same column, retained.
//
// Dense features are one such column (see Pack and PackStep, which make it
// from numeric columns, or AllocTensor and NewMatrix). The error names the
// column and says what is wrong: b has no X, X has no such column (with the
// columns it has), the column has another type (with its type and how to
// pack it), or it holds nulls. Cost: O(1), plus O(rows × cols) only when the
// values carry a validity bitmap.
func Features(b flow.Batch, column string) (Matrix, error) {
	const packHint = "pack numeric columns into one float32 tensor column with minibatch.Pack or minibatch.PackStep"
	if b.X == nil {
		return Matrix{}, fmt.Errorf("minibatch: features %q: the batch has no X", column)
	}
	col, err := recordColumn(b.X, "X", column)
	if err != nil {
		return Matrix{}, fmt.Errorf("minibatch: features: %w; %s", err, packHint)
	}
	fsl, ok := col.(*array.FixedSizeList)
	if !ok || fsl.DataType().(*arrow.FixedSizeListType).Elem().ID() != arrow.FLOAT32 {
		return Matrix{}, fmt.Errorf("minibatch: features: column %q of X has type %s, want fixed_size_list<float32> (a packed tensor); %s",
			column, col.DataType(), packHint)
	}
	vals, rows, cols, err := Float32View(fsl)
	if err != nil {
		return Matrix{}, fmt.Errorf("minibatch: features: column %q of X: %w", column, err)
	}
	return Matrix{Rows: rows, Cols: cols, Data: vals, col: fsl}, nil
}

// NewMatrix returns a zeroed rows × cols matrix whose Data is an Arrow
// buffer allocated from mem (nil means memory.DefaultAllocator; in a step,
// pass flow.Allocator(ctx), the run's allocator). The caller owns it and
// calls Release when done, typically with defer; Record hands the buffer to
// a record without copying it, so the usual Transform is
//
//	out := minibatch.NewMatrix(flow.Allocator(ctx), x.Rows, x.Cols)
//	defer out.Release()
//	… fill out.Data …
//	return b.WithX(out.Record("x")), nil
//
// Finish writing Data before the record is shared. NewMatrix panics if rows
// or cols is negative, as make does. Cost: one buffer of rows × cols × 4
// bytes, zeroed.
func NewMatrix(mem memory.Allocator, rows, cols int) Matrix {
	if rows < 0 || cols < 0 {
		panic(fmt.Sprintf("minibatch: NewMatrix(%d, %d): negative size", rows, cols))
	}
	col, vals := AllocTensor(mem, rows, cols)
	return Matrix{Rows: rows, Cols: cols, Data: vals, col: col, owned: true}
}

// Release drops the reference that NewMatrix gave m; records made by Record
// keep theirs. After it m is the zero Matrix; a copy of m made before
// Release must not be used. Release is a no-op on a view (Features), on a
// literal and on a released matrix.
func (m *Matrix) Release() {
	if m.owned && m.col != nil {
		m.col.Release()
	}
	*m = Matrix{}
}

// Record returns a record of one column named name, of type
// FixedSizeList<float32> of width Cols (TensorType), whose values are
// m.Data, without copying: the column of a matrix from NewMatrix or
// Features is retained, and a literal's Data is wrapped as it is (Go
// memory, which no allocator counts). A matrix from NewMatrix or Features
// whose fields were changed since (a few rows cut off, say) no longer
// matches its column and is copied into Go memory. The caller owns the
// record and releases it, or hands it on (flow.Batch.WithX takes it over);
// m stays the caller's to release. The schema carries no metadata. Record
// panics if len(Data) is not Rows × Cols. Cost: O(1), or O(Rows × Cols)
// for the copy.
func (m Matrix) Record(name string) arrow.RecordBatch {
	if len(m.Data) != m.Rows*m.Cols {
		panic(fmt.Sprintf("minibatch: matrix record %q: %d values for %d × %d", name, len(m.Data), m.Rows, m.Cols))
	}
	col := m.backing()
	if col != nil {
		col.Retain()
	} else {
		vals := m.Data
		if m.col != nil { // Data may be Arrow memory that m's owner frees
			vals = slices.Clone(vals)
		}
		values := array.NewData(arrow.PrimitiveTypes.Float32, len(vals),
			[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Float32Traits.CastToBytes(vals))}, nil, 0, 0)
		data := array.NewData(TensorType(m.Cols), m.Rows, []*memory.Buffer{nil}, []arrow.ArrayData{values}, 0, 0)
		values.Release()
		col = array.NewFixedSizeListData(data)
		data.Release()
	}
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: name, Type: col.DataType()}}, nil)
	return array.NewRecordBatch(schema, []arrow.Array{col}, int64(m.Rows))
}

// backing returns the column whose values are exactly m.Data, or nil where
// m is a literal or its fields were changed since NewMatrix or Features.
func (m Matrix) backing() *array.FixedSizeList {
	if m.col == nil || m.col.Len() != m.Rows || int(m.col.DataType().(*arrow.FixedSizeListType).Len()) != m.Cols {
		return nil
	}
	vals, _, _, err := Float32View(m.col)
	if err != nil || len(vals) != len(m.Data) || (len(vals) > 0 && &vals[0] != &m.Data[0]) {
		return nil
	}
	return m.col
}

// MapRows is the Transform of a step that computes each output row from
// one input row. It returns b with X replaced by a one-column tensor named
// out of b.Rows() rows and cols values each: fn(x, y) is called once per row,
// in order, with row x of the tensor column in of b's X (a view, see
// Features; do not write to it) and row y of the output (cols values,
// zeroed, for fn to fill). Y, Seq and Epoch pass through (see
// flow.Batch.WithX). The output is allocated from flow.Allocator(ctx), the
// run's allocator:
//
//	func (s scale) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
//		return minibatch.MapRows(ctx, b, "x", "x", s.width, func(x, y []float32) {
//			for j, v := range x {
//				y[j] = s.by * v
//			}
//		})
//	}
//
// b is borrowed; the caller owns the returned batch. The error is that of
// Features, ctx's when it is done, or a negative cols; nothing is held
// after an error. Cost: one buffer of rows × cols float32, and the calls
// to fn.
func MapRows(ctx context.Context, b flow.Batch, in, out string, cols int, fn func(x, y []float32)) (flow.Batch, error) {
	if ctx.Err() != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	if cols < 0 {
		return flow.Batch{}, fmt.Errorf("minibatch: map rows %q to %q: %d output columns, want 0 or more", in, out, cols)
	}
	x, err := Features(b, in)
	if err != nil {
		return flow.Batch{}, err
	}
	y := NewMatrix(flow.Allocator(ctx), x.Rows, cols)
	defer y.Release()
	for r := range x.Rows {
		fn(x.Row(r), y.Row(r))
	}
	return b.WithX(y.Record(out)), nil
}

// recordColumn returns the column named column of rec, the side ("X" or
// "Y") of a batch. The error names the column, the side and the columns it
// has, at most eight of them.
func recordColumn(rec arrow.RecordBatch, side, column string) (arrow.Array, error) {
	schema := rec.Schema()
	idx := schema.FieldIndices(column)
	switch {
	case len(idx) == 0:
		return nil, fmt.Errorf("%s has no column %q (it has %s)", side, column, someColumnNames(schema, 8))
	case len(idx) > 1:
		return nil, fmt.Errorf("column %q appears %d times in %s; names must be unique", column, len(idx), side)
	}
	return rec.Column(idx[0]), nil
}

// someColumnNames is columnNames cut to the first limit names: `columns "a",
// "b", … (65 in all)`.
func someColumnNames(s *arrow.Schema, limit int) string {
	n := s.NumFields()
	if n <= limit {
		return columnNames(s)
	}
	names := make([]string, limit)
	for i := range limit {
		names[i] = fmt.Sprintf("%q", s.Field(i).Name)
	}
	return fmt.Sprintf("columns %s, … (%d in all)", strings.Join(names, ", "), n)
}
