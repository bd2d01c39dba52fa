package steps

import (
	"context"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
)

// LinearRegression is a least-squares linear regression on a tensor
// column of X, fitted by mini-batch SGD on half the mean squared error of
// each batch, with an optional L2 penalty (ridge) and momentum. The target
// is a numeric column of Y (see minibatch.LabelsFloat32).
//
// Fit is a partial fit: one SGD step per batch. The weights are drawn at
// the first fit from a PCG seeded by "seed", in float64, so the same seed
// and batches give the same model in both engines; standardize the
// features first (StandardScaler), or the default learning rate may be
// too high or too low. A weight that stops being finite is an error.
//
// Transform replaces X by the column PredColumn ("pred", float32); Y
// passes through (retained). Transform before any fit is an error;
// Transform does not change the step and may be called concurrently.
//
// Like LogisticRegression it is not a flow.Merger: averaged SGD replicas
// are not what one SGD run learns, so a replicated stage refuses to fit
// it. Hyperparameters: "learning_rate", "penalty", "alpha", "momentum" and
// "seed", as LogisticRegression's.
type LinearRegression struct {
	target string
	cfg    linearConfig
	m      sgd
	spare  sgd // the buffers of the next step (see sgd.next)
}

const linearRegressionName = "steps.LinearRegression"

var (
	_ flow.Fitter     = (*LinearRegression)(nil)
	_ flow.Copier     = (*LinearRegression)(nil)
	_ flow.Resetter   = (*LinearRegression)(nil)
	_ hparams.Tunable = (*LinearRegression)(nil)
	_ hparams.Spacer  = (*LinearRegression)(nil)
)

// NewLinearRegression returns an unfitted regressor of the column target
// of Y. Options: LinearColumn (default "x"), LearningRate (0.01), L2 (none),
// Momentum (0), Seed (0).
func NewLinearRegression(target string, opts ...LinearOption) (*LinearRegression, error) {
	if target == "" {
		return nil, fmt.Errorf("%s: empty target column name", linearRegressionName)
	}
	cfg, err := newLinearConfig(linearRegressionName, false, opts)
	if err != nil {
		return nil, err
	}
	m := &LinearRegression{target: target, cfg: cfg}
	if err := checkOwnParams(linearRegressionName, m.Params(), m.Space()); err != nil {
		return nil, err
	}
	return m, nil
}

// Fit takes one SGD step on in's rows; a batch of no rows changes nothing.
func (m *LinearRegression) Fit(ctx context.Context, in flow.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	x, err := m.m.input(linearRegressionName, "fit", m.cfg.in, in)
	if err != nil {
		return err
	}
	y, err := minibatch.LabelsFloat32(in, m.target)
	if err != nil {
		return fmt.Errorf("%s: fit: %w", linearRegressionName, err)
	}
	if i := slices.IndexFunc(y, notFinite32); i >= 0 {
		return fmt.Errorf("%s: fit: column %q of Y has %v at row %d; want finite targets", linearRegressionName, m.target, y[i], i)
	}
	m.m, m.spare, err = m.m.fit(m.spare, linearRegressionName, x, 1, m.cfg, func(r int, z []float64) { z[0] -= float64(y[r]) })
	return err
}

// Transform borrows in and returns a batch whose X is the column "pred",
// from the run's allocator; Y is retained. Cost: O(rows × width).
func (m *LinearRegression) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, err
	}
	if !m.m.fitted() {
		return flow.Batch{}, fmt.Errorf("%s: transform: not fitted: fit it on data with targets first", linearRegressionName)
	}
	x, err := m.m.input(linearRegressionName, "transform", m.cfg.in, in)
	if err != nil {
		return flow.Batch{}, err
	}
	b := array.NewFloat32Builder(flow.Allocator(ctx))
	defer b.Release()
	b.Reserve(x.Rows)
	z := make([]float64, 1)
	for r := range x.Rows {
		m.m.linear(x.Row(r), z)
		b.UnsafeAppend(float32(z[0]))
	}
	col := b.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: PredColumn, Type: arrow.PrimitiveTypes.Float32}}, nil)
	return in.WithX(array.NewRecordBatch(schema, []arrow.Array{col}, int64(x.Rows))), nil
}

// Coef returns the weight of each feature; nil before any fit.
func (m *LinearRegression) Coef() []float64 {
	if !m.m.fitted() {
		return nil
	}
	return m.m.coef(0)
}

// Intercept returns the bias; 0 before any fit.
func (m *LinearRegression) Intercept() float64 {
	if !m.m.fitted() {
		return 0
	}
	return m.m.intercept(0)
}

// Steps returns the number of SGD steps taken (batches fitted).
func (m *LinearRegression) Steps() int64 { return m.m.steps }

// Copy returns an independent regressor in the same state.
func (m *LinearRegression) Copy() flow.Step {
	c := *m
	c.m = m.m.clone()
	c.spare = sgd{}
	return &c
}

// Reset forgets the weights: the next fit draws them again from "seed".
func (m *LinearRegression) Reset() { m.m, m.spare = sgd{}, sgd{} }

// Params returns the hyperparameters.
func (m *LinearRegression) Params() hparams.Values { return m.cfg.params() }

// SetParams sets hyperparameters, all or none.
func (m *LinearRegression) SetParams(p hparams.Values) error {
	c, err := convertParams(linearRegressionName, m.Params(), m.Space(), p)
	if err != nil {
		return err
	}
	m.cfg.set(c)
	return nil
}

// Space returns the distributions of "learning_rate", "penalty", "alpha"
// (where penalty is "l2") and "momentum".
func (m *LinearRegression) Space() hparams.Space { return linearSpace() }
