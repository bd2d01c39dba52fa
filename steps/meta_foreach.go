package steps

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
)

// This file holds ForEach, which applies a step to each item of a list.

// ForEach applies its child to each row of a list column of X,
// separately: a list<T> column (list<float32> for a sequence of numbers,
// list<fixed_size_list<float32>> for a sequence of feature vectors) whose
// every row is one sequence. For row r the child sees a batch of its own
// whose X has one column, named like the list column, of type T, with one
// row per item of sequence r (an empty sequence gives an empty batch), no
// Y, and the outer batch's Seq and Epoch. The child's output must have one
// X column (a Y it returns is dropped); its rows become the items of row r of the output column,
// which takes the list column's place and name, of type list<the child's
// column type>. The child may change the number of items; the outer batch
// keeps its rows, its other X columns and its Y, which pass through.
//
// On the fit path the child is fitted on each sequence in turn (a partial
// fit per row), on the transform path it transforms each. A batch of no
// rows passes through. It is a flow.Composite with one child, whose
// parameters hparams reaches as "name__child__param". Its methods are
// safe for concurrent use where the child's are. Cost: one call of the
// child per row, and a copy of the child's outputs into one column.
type ForEach struct {
	column string
	child  flow.Node
}

var (
	_ flow.Composite      = (*ForEach)(nil)
	_ flow.FitTransformer = (*ForEach)(nil)
	_ flow.Fitter         = (*ForEach)(nil)
)

// NewForEach returns the step that applies child to each sequence of the
// list column column of X. The error names an empty column name, or a
// child without a name or step, or with a reserved name.
func NewForEach(column string, child flow.Node) (*ForEach, error) {
	if column == "" {
		return nil, errors.New("steps: NewForEach: empty column name")
	}
	if err := wrapCheck("NewForEach", child); err != nil {
		return nil, err
	}
	return &ForEach{column: column, child: child}, nil
}

// Children returns the child.
func (f *ForEach) Children() []flow.Node { return []flow.Node{f.child} }

// WithChildren returns a ForEach of the given child (same name) over the
// same column.
func (f *ForEach) WithChildren(children []flow.Node) (flow.Composite, error) {
	if err := wrapSameChildren("ForEach", []flow.Node{f.child}, children); err != nil {
		return nil, err
	}
	return &ForEach{column: f.column, child: children[0]}, nil
}

// list returns the list column of in's X.
func (f *ForEach) list(in flow.Batch) (*array.List, error) {
	if in.X == nil {
		return nil, fmt.Errorf("steps.ForEach: column %q: the batch has no X", f.column)
	}
	idx := in.X.Schema().FieldIndices(f.column)
	if len(idx) != 1 {
		return nil, fmt.Errorf("steps.ForEach: X has %d columns %q, want one (a list column)", len(idx), f.column)
	}
	l, ok := in.X.Column(idx[0]).(*array.List)
	if !ok {
		return nil, fmt.Errorf("steps.ForEach: column %q of X has type %s, want a list (list<float32>: one sequence per row)", f.column, in.X.Column(idx[0]).DataType())
	}
	if l.NullN() > 0 {
		return nil, fmt.Errorf("steps.ForEach: column %q of X has %d null rows; give an empty sequence instead", f.column, l.NullN())
	}
	return l, nil
}

// item returns the child's batch for row r of l.
func (f *ForEach) item(in flow.Batch, l *array.List, r int) flow.Batch {
	vals := wrapListRow(l, r)
	defer vals.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: f.column, Type: vals.DataType()}}, nil)
	return flow.Batch{Seq: in.Seq, Epoch: in.Epoch, X: array.NewRecordBatch(schema, []arrow.Array{vals}, int64(vals.Len()))}
}

func (f *ForEach) run(ctx context.Context, fit bool, in flow.Batch) (flow.Batch, error) {
	l, err := f.list(in)
	if err != nil {
		return flow.Batch{}, err
	}
	if l.Len() == 0 {
		return wrapPass(in), nil
	}
	outs := make([]arrow.Array, 0, l.Len())
	defer func() {
		for _, a := range outs {
			a.Release()
		}
	}()
	lengths := make([]int, l.Len())
	for r := range l.Len() {
		sub := f.item(in, l, r)
		out, err := wrapRun(ctx, f.child, fit, sub)
		sub.Release()
		if err != nil {
			return flow.Batch{}, err
		}
		if out.X == nil || out.X.NumCols() != 1 {
			out.Release()
			return flow.Batch{}, wrapError(f.child, "transform", &in, fmt.Errorf("steps.ForEach: row %d: the child returned X with %d columns, want 1", r, wrapNumCols(out.X)))
		}
		col := out.X.Column(0)
		col.Retain()
		out.Release()
		outs = append(outs, col)
		lengths[r] = col.Len()
	}
	mem := flow.Allocator(ctx)
	values, err := array.Concatenate(outs, mem)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("steps.ForEach: the child's outputs for the rows of column %q do not join (their types must agree): %w", f.column, err)
	}
	defer values.Release()
	list, err := wrapNewList(mem, values, lengths)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("steps.ForEach: column %q: %w", f.column, err)
	}
	defer list.Release()
	return in.WithX(wrapReplaceColumn(in.X, f.column, list)), nil
}

func wrapNumCols(rec arrow.RecordBatch) int64 {
	if rec == nil {
		return 0
	}
	return rec.NumCols()
}

// Transform transforms each sequence with the child.
func (f *ForEach) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return f.run(ctx, false, in)
}

// FitTransform fits the child on each sequence, in order, and returns the
// transformed sequences.
func (f *ForEach) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return f.run(ctx, true, in)
}

// Fit fits the child on each sequence, in order.
func (f *ForEach) Fit(ctx context.Context, in flow.Batch) error {
	if !f.child.Fits(in.Epoch) {
		return nil
	}
	l, err := f.list(in)
	if err != nil {
		return err
	}
	for r := range l.Len() {
		sub := f.item(in, l, r)
		err := wrapFit(ctx, f.child, sub)
		sub.Release()
		if err != nil {
			return err
		}
	}
	return nil
}
