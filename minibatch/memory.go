package minibatch

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// Column is one named column of Go values for FromSlices. Make it with
// Float64s, Float32s, Int64s or Strings; the zero Column is rejected by
// FromSlices. A Column refers to the caller's slice (it does not copy it);
// FromSlices copies the values into Arrow buffers.
type Column struct {
	name     string
	n        int
	typ      arrow.DataType
	appendTo func(b array.Builder, lo, hi int)
}

// Name returns the column's name.
func (c Column) Name() string { return c.name }

// Len returns the number of values in the column.
func (c Column) Len() int { return c.n }

// Float64s returns a float64 column named name holding v.
func Float64s(name string, v []float64) Column {
	return Column{name: name, n: len(v), typ: arrow.PrimitiveTypes.Float64,
		appendTo: func(b array.Builder, lo, hi int) { b.(*array.Float64Builder).AppendValues(v[lo:hi], nil) }}
}

// Float32s returns a float32 column named name holding v.
func Float32s(name string, v []float32) Column {
	return Column{name: name, n: len(v), typ: arrow.PrimitiveTypes.Float32,
		appendTo: func(b array.Builder, lo, hi int) { b.(*array.Float32Builder).AppendValues(v[lo:hi], nil) }}
}

// Int64s returns an int64 column named name holding v.
func Int64s(name string, v []int64) Column {
	return Column{name: name, n: len(v), typ: arrow.PrimitiveTypes.Int64,
		appendTo: func(b array.Builder, lo, hi int) { b.(*array.Int64Builder).AppendValues(v[lo:hi], nil) }}
}

// Strings returns a utf8 string column named name holding v.
func Strings(name string, v []string) Column {
	return Column{name: name, n: len(v), typ: arrow.BinaryTypes.String,
		appendTo: func(b array.Builder, lo, hi int) { b.(*array.StringBuilder).AppendValues(v[lo:hi], nil) }}
}

// Memory is an in-memory, replayable source: a fixed list of record
// batches, returned in order with Seq 0, 1, 2, … and Epoch 0. It implements
// flow.Source and flow.Rewinder.
//
// Memory holds one reference to each of its records until Close. Every
// batch that Next returns carries its own references (Retain), which the
// caller releases; they stay valid after the Memory is closed. Next costs
// O(1) and copies nothing.
//
// Like every source, a Memory is read by one goroutine at a time; Next,
// Rewind and Close must not be called concurrently.
type Memory struct {
	x, y   []arrow.RecordBatch
	schema *arrow.Schema // X's schema; nil when there are no records
	starts []int64       // starts[i] is the global index of the first row of x[i]; len(x)+1 entries
	pos    int
	closed bool
}

var (
	_ flow.Source   = (*Memory)(nil)
	_ flow.Rewinder = (*Memory)(nil)
	_ io.Closer     = (*Memory)(nil)
)

// FromSlices builds a Memory source from Go slices: batches of rowsPerBatch
// rows (the last one shorter when the row count is not a multiple), X made
// of the columns x and Y of the columns y, in the order given. y may be nil
// (Batch.Y is then nil). Every column, of x and of y, must have the same
// length; names must be unique within x and within y.
//
// The values are copied into Arrow buffers allocated from WithAllocator
// (default memory.DefaultAllocator): O(rows × columns) time and memory,
// held by the returned Memory until its Close. The caller keeps its slices.
// Options: WithAllocator.
func FromSlices(rowsPerBatch int, x []Column, y []Column, opts ...Option) (*Memory, error) {
	cfg, err := newStageConfig("from slices", opts)
	if err != nil {
		return nil, err
	}
	mem := cfg.mem
	if rowsPerBatch < 1 {
		return nil, fmt.Errorf("minibatch: from slices: rowsPerBatch is %d, want at least 1", rowsPerBatch)
	}
	if len(x) == 0 {
		return nil, errors.New("minibatch: from slices: no X columns, want at least one")
	}
	xs, err := columnsSchema("X", x)
	if err != nil {
		return nil, err
	}
	var ys *arrow.Schema
	if y != nil {
		if ys, err = columnsSchema("Y", y); err != nil {
			return nil, err
		}
	}
	rows := x[0].n
	for _, group := range []struct {
		role string
		cols []Column
	}{{"X", x}, {"Y", y}} {
		for _, c := range group.cols {
			if c.n != rows {
				return nil, fmt.Errorf("minibatch: from slices: %s column %q has %d rows, want %d (the length of X column %q)",
					group.role, c.name, c.n, rows, x[0].name)
			}
		}
	}

	m := &Memory{starts: []int64{0}, schema: xs}
	for lo := 0; lo < rows; lo += rowsPerBatch {
		hi := min(lo+rowsPerBatch, rows)
		m.x = append(m.x, recordFromColumns(mem, xs, x, lo, hi))
		if ys != nil {
			m.y = append(m.y, recordFromColumns(mem, ys, y, lo, hi))
		}
		m.starts = append(m.starts, int64(hi))
	}
	return m, nil
}

func columnsSchema(role string, cols []Column) (*arrow.Schema, error) {
	fields := make([]arrow.Field, len(cols))
	seen := make(map[string]int, len(cols))
	for i, c := range cols {
		if c.typ == nil {
			return nil, fmt.Errorf("minibatch: from slices: %s column %d is a zero Column; make it with Float64s, Float32s, Int64s or Strings", role, i)
		}
		if j, dup := seen[c.name]; dup {
			return nil, fmt.Errorf("minibatch: from slices: %s column %q appears twice (positions %d and %d); names must be unique", role, c.name, j, i)
		}
		seen[c.name] = i
		fields[i] = arrow.Field{Name: c.name, Type: c.typ}
	}
	return arrow.NewSchema(fields, nil), nil
}

func recordFromColumns(mem memory.Allocator, schema *arrow.Schema, cols []Column, lo, hi int) arrow.RecordBatch {
	arrs := make([]arrow.Array, len(cols))
	for i, c := range cols {
		b := array.NewBuilder(mem, c.typ)
		b.Reserve(hi - lo)
		c.appendTo(b, lo, hi)
		arrs[i] = b.NewArray()
		b.Release()
	}
	rec := array.NewRecordBatch(schema, arrs, int64(hi-lo))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}

// FromRecords builds a Memory source that returns the given records in
// order, x[i] as X and y[i] as Y of batch i. It retains every record: the
// caller keeps (and releases) its own references. y may be nil; otherwise it
// has one record per record of x, with the same number of rows. All records
// of x must have the same columns (names and types), and likewise those of y.
// Cost: O(len(x)); nothing is copied.
func FromRecords(x, y []arrow.RecordBatch) (*Memory, error) {
	if y != nil && len(y) != len(x) {
		return nil, fmt.Errorf("minibatch: from records: %d Y records for %d X records, want one per X record (or y nil)", len(y), len(x))
	}
	for i, r := range x {
		if r == nil {
			return nil, fmt.Errorf("minibatch: from records: x[%d] is nil", i)
		}
		if err := sameColumns("X", x[0].Schema(), r.Schema(), int64(i)); err != nil {
			return nil, fmt.Errorf("minibatch: from records: %w", err)
		}
		if y == nil {
			continue
		}
		if y[i] == nil {
			return nil, fmt.Errorf("minibatch: from records: y[%d] is nil", i)
		}
		if err := sameColumns("Y", y[0].Schema(), y[i].Schema(), int64(i)); err != nil {
			return nil, fmt.Errorf("minibatch: from records: %w", err)
		}
		if y[i].NumRows() != r.NumRows() {
			return nil, fmt.Errorf("minibatch: from records: y[%d] has %d rows, want %d (the rows of x[%d])", i, y[i].NumRows(), r.NumRows(), i)
		}
	}
	m := &Memory{starts: make([]int64, 1, len(x)+1)}
	if len(x) > 0 {
		m.schema = x[0].Schema()
	}
	for i, r := range x {
		r.Retain()
		m.x = append(m.x, r)
		if y != nil {
			y[i].Retain()
			m.y = append(m.y, y[i])
		}
		m.starts = append(m.starts, m.starts[i]+r.NumRows())
	}
	return m, nil
}

// Next returns the next batch, with Seq equal to its index and Epoch 0, or
// io.EOF after the last one. The returned batch holds its own references,
// which the caller releases. Next returns context.Cause(ctx) if ctx is done.
func (m *Memory) Next(ctx context.Context) (flow.Batch, error) {
	if ctx.Err() != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	if m.closed {
		return flow.Batch{}, errors.New("minibatch: memory: Next after Close")
	}
	if m.pos >= len(m.x) {
		return flow.Batch{}, io.EOF
	}
	b := flow.Batch{Seq: int64(m.pos), X: m.x[m.pos]}
	if m.y != nil {
		b.Y = m.y[m.pos]
	}
	b.Retain()
	m.pos++
	return b, nil
}

// Rewind makes the next call to Next return the first batch again. It costs
// O(1) and fails only after Close.
func (m *Memory) Rewind() error {
	if m.closed {
		return errors.New("minibatch: memory: Rewind after Close")
	}
	m.pos = 0
	return nil
}

// Close drops the source's references to its records. Batches already
// returned by Next stay valid until their holders release them. Calling
// Close more than once is safe; Next and Rewind fail afterwards.
func (m *Memory) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	for _, r := range m.x {
		r.Release()
	}
	for _, r := range m.y {
		r.Release()
	}
	m.x, m.y = nil, nil
	return nil
}

// Replayable reports true until Close: a Memory can always be rewound.
func (m *Memory) Replayable() bool { return !m.closed }

// Schema returns the schema of X: that of the columns given to FromSlices,
// even when they hold no rows (and no record is made), or that of the
// first record given to FromRecords, nil when it was given none.
func (m *Memory) Schema() *arrow.Schema { return m.schema }

// Len returns the number of batches that one pass returns.
func (m *Memory) Len() int { return len(m.x) }

// Rows returns the number of rows that one pass returns.
func (m *Memory) Rows() int64 {
	if len(m.starts) == 0 {
		return 0
	}
	return m.starts[len(m.starts)-1]
}

// SchemaError reports an input batch whose columns differ from those of the
// first batch of its stream. Use errors.As to inspect it.
type SchemaError struct {
	Role   string // "X" or "Y"
	Batch  int64  // index of the offending input batch in its stream, from 0
	Column string // name of the first differing column (empty when only the column count differs)
	Got    string // what the batch has: a type, a name or a column count
	Want   string // what the first batch had
	What   string // "type", "name" or "columns"
}

func (e *SchemaError) Error() string {
	role := ""
	if e.Role == "Y" {
		role = "Y "
	}
	switch e.What {
	case "columns":
		return fmt.Sprintf("%sbatch %d has %s columns, want %s", role, e.Batch, e.Got, e.Want)
	case "name":
		return fmt.Sprintf("%scolumn %s is named %q in batch %d, want %q", role, e.Column, e.Got, e.Batch, e.Want)
	}
	return fmt.Sprintf("%scolumn %q has type %s in batch %d, want %s", role, e.Column, e.Got, e.Batch, e.Want)
}

// sameColumns reports, as a *SchemaError, the first difference in column
// count, names or types between want and got. Nullability and metadata are
// not compared.
func sameColumns(role string, want, got *arrow.Schema, batch int64) error {
	if want.NumFields() != got.NumFields() {
		return &SchemaError{Role: role, Batch: batch, What: "columns",
			Got: fmt.Sprint(got.NumFields()), Want: fmt.Sprint(want.NumFields())}
	}
	for i := range want.NumFields() {
		w, g := want.Field(i), got.Field(i)
		if w.Name != g.Name {
			return &SchemaError{Role: role, Batch: batch, What: "name", Column: fmt.Sprint(i), Got: g.Name, Want: w.Name}
		}
		if !arrow.TypeEqual(w.Type, g.Type) {
			return &SchemaError{Role: role, Batch: batch, What: "type", Column: w.Name, Got: g.Type.String(), Want: w.Type.String()}
		}
	}
	return nil
}
