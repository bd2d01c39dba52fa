package steps

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// This file holds ExpandDim, which shows its child the whole batch as one
// item.

// ExpandDim shows its child the whole batch as one item: the child sees a
// batch of one row in which every column c of type T of X (and of Y,
// where there is one) is a column c of type list<T> whose one row holds
// all of c's values (no copy). The child returns a batch of one row whose
// columns are all lists; ExpandDim unwraps each into a column of its items,
// so the output has as many rows as the lists have items (the lists of X
// and Y must agree: the child may change the number of rows, not make X
// and Y disagree). ExpandDim(ForEach(child)) is child itself, batch by
// batch: Neuraxle's ExpandDim.
//
// Fit, FitTransform and Transform are the child's, on the expanded batch.
// It is a flow.Composite with one child, whose parameters hparams reaches
// as "name__child__param". Its methods are safe for concurrent use where
// the child's are. Cost: the offsets of one row per column, each way.
type ExpandDim struct {
	child flow.Node
}

var (
	_ flow.Composite      = (*ExpandDim)(nil)
	_ flow.FitTransformer = (*ExpandDim)(nil)
	_ flow.Fitter         = (*ExpandDim)(nil)
)

// NewExpandDim returns the wrapper of child. The error names a child
// without a name or step, or with a reserved name.
func NewExpandDim(child flow.Node) (*ExpandDim, error) {
	if err := wrapCheck("NewExpandDim", child); err != nil {
		return nil, err
	}
	return &ExpandDim{child: child}, nil
}

// Children returns the child.
func (e *ExpandDim) Children() []flow.Node { return []flow.Node{e.child} }

// WithChildren returns an ExpandDim of the given child (same name).
func (e *ExpandDim) WithChildren(children []flow.Node) (flow.Composite, error) {
	if err := wrapSameChildren("ExpandDim", []flow.Node{e.child}, children); err != nil {
		return nil, err
	}
	return &ExpandDim{child: children[0]}, nil
}

// expandDimOf returns rec as one row of lists; nil for nil.
func expandDimOf(mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	if rec == nil {
		return nil, nil
	}
	fields := make([]arrow.Field, rec.NumCols())
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for j, f := range rec.Schema().Fields() {
		l, err := wrapNewList(mem, rec.Column(j), []int{int(rec.NumRows())})
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", f.Name, err)
		}
		cols[j] = l
		f.Type = l.DataType()
		fields[j] = f
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, 1), nil
}

// squeezeDim unwraps rec, one row of lists, into the columns of their items;
// side ("X" or "Y") names it in errors.
func squeezeDim(rec arrow.RecordBatch, side string) (arrow.RecordBatch, error) {
	if rec == nil {
		return nil, nil
	}
	if rec.NumRows() != 1 {
		return nil, fmt.Errorf("the child returned %s with %d rows, want 1 (one row of lists)", side, rec.NumRows())
	}
	fields := make([]arrow.Field, rec.NumCols())
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	rows := -1
	for j, f := range rec.Schema().Fields() {
		l, ok := rec.Column(j).(*array.List)
		if !ok || l.IsNull(0) {
			return nil, fmt.Errorf("the child returned column %q of %s of type %s, want a list with one row that is not null", f.Name, side, rec.Column(j).DataType())
		}
		cols[j] = wrapListRow(l, 0)
		if rows >= 0 && cols[j].Len() != rows {
			return nil, fmt.Errorf("the child returned lists of %d and %d items in %s; every column must have as many", rows, cols[j].Len(), side)
		}
		rows = cols[j].Len()
		f.Type = cols[j].DataType()
		fields[j] = f
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(max(rows, 0))), nil
}

func (e *ExpandDim) expanded(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	mem := flow.Allocator(ctx)
	x, err := expandDimOf(mem, in.X)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("steps.ExpandDim: X: %w", err)
	}
	y, err := expandDimOf(mem, in.Y)
	if err != nil {
		if x != nil {
			x.Release()
		}
		return flow.Batch{}, fmt.Errorf("steps.ExpandDim: Y: %w", err)
	}
	return flow.Batch{Seq: in.Seq, Epoch: in.Epoch, X: x, Y: y}, nil
}

func (e *ExpandDim) run(ctx context.Context, fit bool, in flow.Batch) (flow.Batch, error) {
	b, err := e.expanded(ctx, in)
	if err != nil {
		return flow.Batch{}, err
	}
	out, err := wrapRun(ctx, e.child, fit, b)
	b.Release()
	if err != nil {
		return flow.Batch{}, err
	}
	defer out.Release()
	x, err := squeezeDim(out.X, "X")
	if err != nil {
		return flow.Batch{}, wrapError(e.child, "transform", &in, fmt.Errorf("steps.ExpandDim: %w", err))
	}
	y, err := squeezeDim(out.Y, "Y")
	if err != nil {
		if x != nil {
			x.Release()
		}
		return flow.Batch{}, wrapError(e.child, "transform", &in, fmt.Errorf("steps.ExpandDim: %w", err))
	}
	return flow.Batch{Seq: in.Seq, Epoch: in.Epoch, X: x, Y: y}, nil
}

// Transform runs the child's Transform on the batch as one item.
func (e *ExpandDim) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return e.run(ctx, false, in)
}

// FitTransform fits the child on the batch as one item and returns its
// output unwrapped.
func (e *ExpandDim) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return e.run(ctx, true, in)
}

// Fit fits the child on the batch as one item.
func (e *ExpandDim) Fit(ctx context.Context, in flow.Batch) error {
	if !e.child.Fits(in.Epoch) {
		return nil
	}
	b, err := e.expanded(ctx, in)
	if err != nil {
		return err
	}
	defer b.Release()
	return wrapFit(ctx, e.child, b)
}
