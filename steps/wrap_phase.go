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
// The runners tell the fit path from the transform path only for a
// fittable tree (flow: a composite is fittable when a step below it has
// Fit or FitTransform): give TrainOnly a child that learns or has a fit
// path of its own (GaussianNoise, Window, a model); a child with
// Transform only is run by the runners on neither path when fitting —
// they call TrainOnly's Transform, which passes the batch through.
//
// Transform is safe for concurrent use; Fit and FitTransform are called
// as the child's are (never concurrently on one value).
type TrainOnly struct {
	child flow.Node
}

var (
	_ flow.Composite      = (*TrainOnly)(nil)
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
// Like TrainOnly it is a flow.Composite with one child, and the runners
// tell its paths apart only where the child is fittable (has Fit or
// FitTransform, or a fittable step below): a child with Transform only is
// run on the fit path too, because the runners then call TestOnly's
// Transform when fitting. Its methods are safe for concurrent use where
// the child's Transform is.
type TestOnly struct {
	child flow.Node
}

var (
	_ flow.Composite      = (*TestOnly)(nil)
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

// Transform returns the child's transform of in.
func (t *TestOnly) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return wrapRun(ctx, t.child, false, in)
}

// FitTransform passes in through: the child neither fits nor runs.
func (t *TestOnly) FitTransform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	return wrapPass(in), nil
}
