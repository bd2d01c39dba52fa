package steps

import (
	"context"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
)

// SelectColumns is a step that keeps the named columns of X, in the order
// given, and drops the others; Y, Seq and Epoch pass through. The kept
// columns are not copied (they are retained). A batch whose X lacks some of
// the columns is an error that lists all the missing ones and the columns
// X has. SelectColumns learns nothing and has no hyperparameters;
// Transform does not change it, so replicas may share it.
type SelectColumns struct {
	names []string
}

// DropColumns is a step that drops the named columns of X and keeps the
// others in their order; Y, Seq and Epoch pass through, the kept columns
// retained, not copied. A batch whose X lacks some of the columns is an
// error that lists the missing ones (a drop that drops nothing is a
// mistake in the pipeline, not a no-op). Dropping every column of X is an
// error too. DropColumns learns nothing and has no hyperparameters; replicas
// may share it.
type DropColumns struct {
	names []string
}

var (
	_ flow.Step = (*SelectColumns)(nil)
	_ flow.Step = (*DropColumns)(nil)
)

// NewSelectColumns returns a step that keeps the columns names of X, in
// that order. names must be non-empty and distinct.
func NewSelectColumns(names ...string) (*SelectColumns, error) {
	if err := checkColumnNames("steps.SelectColumns", "X", names, false); err != nil {
		return nil, err
	}
	return &SelectColumns{names: slices.Clone(names)}, nil
}

// NewDropColumns returns a step that drops the columns names of X. names
// must be non-empty and distinct.
func NewDropColumns(names ...string) (*DropColumns, error) {
	if err := checkColumnNames("steps.DropColumns", "X", names, false); err != nil {
		return nil, err
	}
	return &DropColumns{names: slices.Clone(names)}, nil
}

// Columns returns the names of the columns that the step keeps.
func (s *SelectColumns) Columns() []string { return slices.Clone(s.names) }

// Columns returns the names of the columns that the step drops.
func (s *DropColumns) Columns() []string { return slices.Clone(s.names) }

// Transform borrows in and returns a batch whose X holds the selected
// columns (retained) and whose Y is in's, retained. Cost: O(columns).
func (s *SelectColumns) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, err
	}
	if in.X == nil {
		return flow.Batch{}, fmt.Errorf("steps.SelectColumns: transform: the batch has no X, want columns %s", columnList(s.names))
	}
	idx := make([]int, len(s.names))
	var missing []string
	for i, n := range s.names {
		j, err := uniqueColumn(in.X, n)
		if err != nil {
			if !isMissing(in.X, n) {
				return flow.Batch{}, fmt.Errorf("steps.SelectColumns: transform: %w", err)
			}
			missing = append(missing, n)
			continue
		}
		idx[i] = j
	}
	if len(missing) > 0 {
		return flow.Batch{}, fmt.Errorf("steps.SelectColumns: transform: X has no column %s (it has %s)",
			columnList(missing), columnList(schemaNames(in.X.Schema())))
	}
	return in.WithX(projectRecord(in.X, idx)), nil
}

// Transform borrows in and returns a batch whose X holds the remaining
// columns (retained) and whose Y is in's, retained. Cost: O(columns).
func (s *DropColumns) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, err
	}
	if in.X == nil {
		return flow.Batch{}, fmt.Errorf("steps.DropColumns: transform: the batch has no X, want columns %s", columnList(s.names))
	}
	var missing []string
	for _, n := range s.names {
		if isMissing(in.X, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return flow.Batch{}, fmt.Errorf("steps.DropColumns: transform: X has no column %s to drop (it has %s)",
			columnList(missing), columnList(schemaNames(in.X.Schema())))
	}
	var idx []int
	for i, f := range in.X.Schema().Fields() {
		if !slices.Contains(s.names, f.Name) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return flow.Batch{}, fmt.Errorf("steps.DropColumns: transform: dropping %s leaves X without columns", columnList(s.names))
	}
	return in.WithX(projectRecord(in.X, idx)), nil
}

// The record functions below are shared by the steps of this package that
// read or replace one column of X or Y.

// uniqueColumn returns the index of the column named name of rec; the
// error says that there is none (with the columns rec has) or that there
// are several.
func uniqueColumn(rec arrow.RecordBatch, name string) (int, error) {
	idx := rec.Schema().FieldIndices(name)
	switch len(idx) {
	case 1:
		return idx[0], nil
	case 0:
		return -1, fmt.Errorf("no column %q (it has %s)", name, columnList(schemaNames(rec.Schema())))
	}
	return -1, fmt.Errorf("column %q appears %d times; names must be unique", name, len(idx))
}

// isMissing reports whether rec has no column named name.
func isMissing(rec arrow.RecordBatch, name string) bool {
	return len(rec.Schema().FieldIndices(name)) == 0
}

func schemaNames(s *arrow.Schema) []string {
	names := make([]string, s.NumFields())
	for i := range names {
		names[i] = s.Field(i).Name
	}
	return names
}

// projectRecord returns a new record of the columns idx of rec, in that
// order, retained. The schema keeps rec's metadata.
func projectRecord(rec arrow.RecordBatch, idx []int) arrow.RecordBatch {
	fields := make([]arrow.Field, len(idx))
	cols := make([]arrow.Array, len(idx))
	for i, j := range idx {
		fields[i], cols[i] = rec.Schema().Field(j), rec.Column(j)
	}
	md := rec.Schema().Metadata()
	return array.NewRecordBatch(arrow.NewSchema(fields, &md), cols, rec.NumRows())
}

// replaceColumn returns a new record like rec whose column i is col, named
// name (nullable where col has nulls); the other columns are retained and
// col is retained too (the caller keeps its reference). An error where
// name is already the name of another column.
func replaceColumn(rec arrow.RecordBatch, i int, name string, col arrow.Array) (arrow.RecordBatch, error) {
	schema := rec.Schema()
	for _, j := range schema.FieldIndices(name) {
		if j != i {
			return nil, fmt.Errorf("the output column %q already exists; choose another name", name)
		}
	}
	f := arrow.Field{Name: name, Type: col.DataType(), Nullable: col.NullN() > 0}
	cols := make([]arrow.Array, rec.NumCols())
	for j := range cols {
		cols[j] = rec.Column(j)
	}
	cols[i] = col
	if old := schema.Field(i); old.Name == f.Name && old.Nullable == f.Nullable && arrow.TypeEqual(old.Type, f.Type) && old.Metadata.Len() == 0 {
		// The common case, a column replaced by one of its kind: the
		// schema stays (no schema built per batch).
		return array.NewRecordBatch(schema, cols, rec.NumRows()), nil
	}
	fields := slices.Clone(schema.Fields())
	fields[i] = f
	md := schema.Metadata()
	return array.NewRecordBatch(arrow.NewSchema(fields, &md), cols, rec.NumRows()), nil
}
