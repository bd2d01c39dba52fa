package mlp

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps/nn"
)

// Regressor is a multilayer perceptron that predicts one real target,
// fitted on half the mean squared error (see nn.Spec for the network and
// how it learns).
//
// It reads the FixedSizeList<float32> column Features of X and, to fit,
// the numeric column Label of Y; it returns X replaced by PredColumn
// (float32), Y passed through. Everything else is as for Classifier:
// one optimizer step per batch, dropout only on the fit path, the network
// built in the run, learned state in host memory, not a flow.Merger.
type Regressor struct {
	c *core
}

var (
	_ flow.Fitter         = (*Regressor)(nil)
	_ flow.FitTransformer = (*Regressor)(nil)
	_ flow.Setupper       = (*Regressor)(nil)
	_ flow.Teardowner     = (*Regressor)(nil)
	_ flow.Copier         = (*Regressor)(nil)
	_ flow.Resetter       = (*Regressor)(nil)
	_ hparams.Tunable     = (*Regressor)(nil)
	_ hparams.Spacer      = (*Regressor)(nil)
)

const regressorName = "mlp.Regressor"

// NewRegressor returns a regressor built from spec, whose Loss must be
// nn.MSE (start from nn.Default(nn.MSE)). It returns spec's error.
// Nothing is built or allocated until a run.
func NewRegressor(spec nn.Spec, opts ...Option) (*Regressor, error) {
	if spec.Loss != nn.MSE {
		return nil, fmt.Errorf("%s: loss %q, want %q", regressorName, spec.Loss, nn.MSE)
	}
	c, err := newCore(regressorName, 1, spec, configOf(opts))
	if err != nil {
		return nil, err
	}
	return &Regressor{c: c}, nil
}

// Spec returns the regressor's spec.
func (m *Regressor) Spec() nn.Spec { return m.c.nm.Spec() }

// Weights returns a copy of the learned layers, nil before the first fit.
func (m *Regressor) Weights() []nn.Layer { return m.c.nm.Weights() }

// Steps returns the number of optimizer steps (fitted batches) so far.
func (m *Regressor) Steps() int64 { return m.c.nm.Steps() }

// Setup prepares the regressor for a run.
func (m *Regressor) Setup(ctx context.Context) error { return m.c.setup(ctx) }

// Teardown releases the compiled networks; the learned state stays.
func (m *Regressor) Teardown(context.Context) error { return m.c.teardown() }

// Copy returns an independent regressor in m's state, not set up.
func (m *Regressor) Copy() flow.Step { return &Regressor{c: m.c.copyCore()} }

// Reset forgets what was learned.
func (m *Regressor) Reset() {
	m.c.nm.Reset()
	m.c.drop()
}

// Params returns the hyperparameters (see nn.Spec.Params).
func (m *Regressor) Params() hparams.Values { return m.c.params() }

// SetParams sets hyperparameters; the loss stays nn.MSE.
func (m *Regressor) SetParams(p hparams.Values) error { return m.c.setParams(p, nn.MSE) }

// Space returns the default search space (see nn.Spec.Space).
func (m *Regressor) Space() hparams.Space { return m.c.space() }

// Fit takes one optimizer step on the batch.
func (m *Regressor) Fit(ctx context.Context, b flow.Batch) error {
	return m.c.fitStep(ctx, b, m.targets, nil)
}

// FitTransform takes one optimizer step on the batch and returns the
// predictions of that step's pass (before the step, with dropout).
func (m *Regressor) FitTransform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	return m.c.fitTransform(ctx, b, m.targets, m.output)
}

// targets reads the target column of b's Y and returns what copies it
// into the targets.
func (m *Regressor) targets(b flow.Batch) (func(y []float32) error, error) {
	targets, err := minibatch.LabelsFloat32(b, m.c.label)
	if err != nil {
		return nil, err
	}
	return func(y []float32) error {
		copy(y, targets)
		return nil
	}, nil
}

// Transform returns the predictions for the batch's rows. It never drops
// out.
func (m *Regressor) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	return m.c.transform(ctx, b, m.output)
}

func (m *Regressor) output(ctx context.Context, b flow.Batch, pred []float32) flow.Batch {
	bld := array.NewFloat32Builder(flow.Allocator(ctx))
	defer bld.Release()
	bld.AppendValues(pred, nil)
	col := bld.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: PredColumn, Type: arrow.PrimitiveTypes.Float32}}, nil)
	return b.WithX(array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len())))
}
