package flow

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Union is a feature union: it sends each batch to several branches and
// joins their outputs side by side, row by row. Output column c of branch b
// is named "b__c", in the order the branches were declared; Y is the first
// branch's. Every branch must return the same number of rows.
//
// In the streaming runner each branch is its own chain of stages, with its
// own replicas, fed with the same batches; their outputs are joined batch by
// batch, by sequence number. Used directly as a step, a Union runs its
// branches one after the other.
type Union struct {
	branches []Node
}

var (
	_ FitTransformer = (*Union)(nil)
	_ Composite      = (*Union)(nil)
)

// NewUnion checks the branches as NewPipeline checks nodes and returns the
// union of them. A branch may be a pipeline.
func NewUnion(branches ...Node) (*Union, error) {
	if err := checkNodes("union", branches); err != nil {
		return nil, err
	}
	u := &Union{branches: append([]Node(nil), branches...)}
	for _, b := range branches {
		if hasJoiner(b.Step) {
			return nil, fmt.Errorf("penstock: union: branch %q has a Joiner; a Joiner belongs to the outer pipeline", b.Name)
		}
		if configOf(b.opts).barrierSet {
			return nil, fmt.Errorf("penstock: union: branch %q sets a Barrier; branch outputs are always joined in order", b.Name)
		}
		// What the plan refuses in a branch (Replicas below a metastep),
		// NewUnion refuses too.
		if err := (&plan{}).addNode(b, nil, stageConfig{}, -1); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// Branches returns the union's branches, in declared order.
func (u *Union) Branches() []Node { return append([]Node(nil), u.branches...) }

// Children returns the union's branches (see Composite).
func (u *Union) Children() []Node { return u.Branches() }

// WithChildren returns a union of the given branches, checked as NewUnion
// checks them.
func (u *Union) WithChildren(children []Node) (Composite, error) {
	if err := sameNames(u.branches, children); err != nil {
		return nil, err
	}
	return NewUnion(children...)
}

// Transform transforms in with every branch and joins the outputs.
func (u *Union) Transform(ctx context.Context, in Batch) (Batch, error) {
	return u.run(ctx, in, opTransform)
}

// FitTransform fits every fittable branch on in and joins the outputs.
func (u *Union) FitTransform(ctx context.Context, in Batch) (Batch, error) {
	return u.run(ctx, in, opFitTransform)
}

func (u *Union) run(ctx context.Context, in Batch, o op) (Batch, error) {
	if len(u.branches) == 0 {
		return Batch{}, errors.New("penstock: union: no branches (a zero Union: build it with NewUnion)")
	}
	outs := make([]Batch, 0, len(u.branches))
	defer func() {
		for _, b := range outs {
			b.Release()
		}
	}()
	for _, br := range u.branches {
		bo := o
		if !nodeFits(br, in.Epoch) { // frozen, or past its FitEpochs, as the runners do
			bo = opTransform
		}
		out, err := apply(ctx, br.Step, bo, in)
		if err != nil {
			return Batch{}, stepError(Path{br.Name}, br.Step, bo.String(), &in, err)
		}
		outs = append(outs, out)
	}
	return joinBranches(u.branches, outs)
}

// joinBranches concatenates the X columns of outs (borrowed), one per
// branch, prefixing each column with its branch's name.
func joinBranches(branches []Node, outs []Batch) (Batch, error) {
	rows := outs[0].Rows()
	var fields []arrow.Field
	var cols []arrow.Array
	for i, o := range outs {
		if o.Rows() != rows {
			return Batch{}, fmt.Errorf("penstock: union: branch %q returned %d rows, branch %q %d; branches must keep the row count equal",
				branches[i].Name, o.Rows(), branches[0].Name, rows)
		}
		if o.X == nil {
			return Batch{}, fmt.Errorf("penstock: union: branch %q returned no X", branches[i].Name)
		}
		for j, f := range o.X.Schema().Fields() {
			f.Name = branches[i].Name + "__" + f.Name
			fields = append(fields, f)
			cols = append(cols, o.X.Column(j))
		}
	}
	var out Batch
	err := guard(func() error { // NewRecordBatch panics on inconsistent input
		out.X = array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rows)
		return nil
	})
	if err != nil {
		return Batch{}, errors.Join(errors.New("penstock: union: joining branch outputs"), err)
	}
	if out.Y = outs[0].Y; out.Y != nil {
		out.Y.Retain()
	}
	out.Seq, out.Epoch = outs[0].Seq, outs[0].Epoch
	return out, nil
}
