package steps

import (
	"context"

	"github.com/penstock-ml/penstock/flow"
)

// This file holds the phase wrappers: TrainOnly runs its child on the fit
// path only, TestOnly on the transform path only.

// TrainOnly runs its child only when fitting: FitTransform fits the child
// (FitTransform, or Fit then Transform; a frozen child is only
// transformed) and returns its output, Fit fits it, and Transform passes
// the batch through unchanged. Wrap augmentation, re-sampling or noise
// that must not happen at inference in it.
//
// It is a flow.Composite with one child: the runners set up, copy,
// replicate and merge the child, and hparams reaches its parameters as
// "name__child__param". Of the child node's options only FitEpochs is
// honoured (see flow.Node.Fits).
//
// It is a flow.FitPather whose fit path always differs, so the runners
// take its fit path also when the child only transforms (a flip, a crop).
//
// Transform is safe for concurrent use; Fit and FitTransform are called
// as the child's are (never concurrently on one value).
type TrainOnly struct {
	child flow.Node
}

var (
	_ flow.FitPather      = (*TrainOnly)(nil)
	_ flow.FitTransformer = (*TrainOnly)(nil)
	_ flow.Fitter         = (*TrainOnly)(nil)
)

// NewTrainOnly returns the wrapper of child. The error names a child
// without a name or step, or with a reserved name.
func NewTrainOnly(child flow.Node) (*TrainOnly, error) {
	if err := wrapCheck("NewTrainOnly", child); err != nil {
		return nil, err
	}
	return &TrainOnly{child: child}, nil
}

// Children returns the child.
func (t *TrainOnly) Children() []flow.Node { return []flow.Node{t.child} }

// WithChildren returns a TrainOnly of the given child (same name).
func (t *TrainOnly) WithChildren(children []flow.Node) (flow.Composite, error) {
	if err := wrapSameChildren("TrainOnly", []flow.Node{t.child}, children); err != nil {
		return nil, err
	}
	return &TrainOnly{child: children[0]}, nil
}

// FitPathDiffers reports true: the child runs only when fitting.
func (t *TrainOnly) FitPathDiffers() bool { return true }

// FitsChild reports true: fitting fits the child.
func (t *TrainOnly) FitsChild(string) bool { return true }

// Transform passes in through: the child does not run at inference.
func (t *TrainOnly) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	return wrapPass(in), nil
}

// FitTransform fits the child on in and returns the child's output.
func (t *TrainOnly) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return wrapRun(ctx, t.child, true, in)
}

// Fit fits the child on in.
func (t *TrainOnly) Fit(ctx context.Context, in flow.Batch) error {
	return wrapFit(ctx, t.child, in)
}

// TestOnly runs its child only on the transform path: Transform returns
// the child's Transform of the batch, FitTransform passes the batch
// through, and the child is never fitted (it is fitted beforehand, or
// learns nothing). Wrap post-processing for inference in it (a threshold,
// calibration that training must not see).
//
// Like TrainOnly it is a flow.Composite with one child, and a
// flow.FitPather: its fit path always differs (the child does not run),
// and never reaches the child, which the runners therefore neither fit
// nor replicate. Its methods are safe for concurrent use where the child's
// Transform is.
type TestOnly struct {
	child flow.Node
}

var (
	_ flow.FitPather      = (*TestOnly)(nil)
	_ flow.FitTransformer = (*TestOnly)(nil)
)

// NewTestOnly returns the wrapper of child. The error names a child
// without a name or step, or with a reserved name.
func NewTestOnly(child flow.Node) (*TestOnly, error) {
	if err := wrapCheck("NewTestOnly", child); err != nil {
		return nil, err
	}
	return &TestOnly{child: child}, nil
}

// Children returns the child.
func (t *TestOnly) Children() []flow.Node { return []flow.Node{t.child} }

// WithChildren returns a TestOnly of the given child (same name).
func (t *TestOnly) WithChildren(children []flow.Node) (flow.Composite, error) {
	if err := wrapSameChildren("TestOnly", []flow.Node{t.child}, children); err != nil {
		return nil, err
	}
	return &TestOnly{child: children[0]}, nil
}

// FitPathDiffers reports true: the child does not run when fitting.
func (t *TestOnly) FitPathDiffers() bool { return true }

// FitsChild reports false: fitting never reaches the child.
func (t *TestOnly) FitsChild(string) bool { return false }

// Transform returns the child's transform of in.
func (t *TestOnly) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return wrapRun(ctx, t.child, false, in)
}

// FitTransform passes in through: the child neither fits nor runs.
func (t *TestOnly) FitTransform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	return wrapPass(in), nil
}
