package steps

import (
	"context"

	"github.com/penstock-ml/penstock/flow"
)

// This file holds OnY, which applies a step to the expected outputs.

// OnY applies its child to Y instead of X: the child gets the batch with
// X and Y swapped (its X is the batch's Y, its Y the batch's X), and what
// it returns is swapped back. So a scaler fitted under OnY standardizes
// regression targets, an encoder one-hot encodes labels; a child may
// change the number of rows, and must then return as many rows of its Y
// (the batch's X) as of its X, as any step must.
//
// On every path a batch without Y (inference) passes through unchanged:
// there is nothing to transform. Fit, FitTransform and Transform are the
// child's, on the swapped batch; a frozen child is only transformed. It is
// a flow.Composite with one child, whose parameters hparams reaches as
// "name__child__param". Its methods are safe for concurrent use where the
// child's are.
type OnY struct {
	child flow.Node
}

var (
	_ flow.Composite      = (*OnY)(nil)
	_ flow.FitTransformer = (*OnY)(nil)
	_ flow.Fitter         = (*OnY)(nil)
)

// NewOnY returns the wrapper that applies child to Y. The error names a
// child without a name or step, or with a reserved name.
func NewOnY(child flow.Node) (*OnY, error) {
	if err := wrapCheck("NewOnY", child); err != nil {
		return nil, err
	}
	return &OnY{child: child}, nil
}

// Children returns the child.
func (o *OnY) Children() []flow.Node { return []flow.Node{o.child} }

// WithChildren returns an OnY of the given child (same name).
func (o *OnY) WithChildren(children []flow.Node) (flow.Composite, error) {
	if err := wrapSameChildren("OnY", []flow.Node{o.child}, children); err != nil {
		return nil, err
	}
	return &OnY{child: children[0]}, nil
}

func onYSwap(b flow.Batch) flow.Batch { b.X, b.Y = b.Y, b.X; return b }

func (o *OnY) run(ctx context.Context, fit bool, in flow.Batch) (flow.Batch, error) {
	if in.Y == nil {
		return wrapPass(in), nil
	}
	out, err := wrapRun(ctx, o.child, fit, onYSwap(in))
	if err != nil {
		return flow.Batch{}, err
	}
	return onYSwap(out), nil
}

// Transform returns in with Y transformed by the child.
func (o *OnY) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return o.run(ctx, false, in)
}

// FitTransform fits the child on Y and returns in with Y transformed.
func (o *OnY) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return o.run(ctx, true, in)
}

// Fit fits the child on Y.
func (o *OnY) Fit(ctx context.Context, in flow.Batch) error {
	if in.Y == nil {
		return nil
	}
	return wrapFit(ctx, o.child, onYSwap(in))
}
