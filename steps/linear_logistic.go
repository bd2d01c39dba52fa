package steps

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
)

// LogisticRegression is a multiclass logistic (softmax) regression on a
// tensor column of X, fitted by mini-batch SGD on the mean cross-entropy
// of each batch, with an optional L2 penalty and momentum.
//
// Fit is a partial fit: one SGD step per batch (epochs come from the
// source, e.g. minibatch.Repeat). The labels are the class indices 0 to
// K-1 of a column of Y (any integer type, or whole floats; a LabelEncoder
// makes them from other labels). The weights are drawn at the first fit
// from a PCG seeded by "seed", in float64, so the same seed and batches
// give the same model in both engines. A weight that stops being finite
// (a learning rate too high for the data) is an error, not a silent NaN.
//
// Transform replaces X by the prediction: the column ClassColumn ("class",
// int64, the most probable class, the lowest index among ties) and, with
// "probabilities" true, ProbaColumn ("proba", FixedSizeList<float32> of
// width K). Y passes through (retained), so metrics.Score can compare
// "class" with the labels. Transform before any fit is an error;
// Transform does not change the step and may be called concurrently.
//
// LogisticRegression is not a flow.Merger: averaging the weights of
// replicas fitted on shares of a stream is not the model that one SGD run
// would learn (nor any loss's optimum), so a replicated stage refuses to
// fit it; replicate the preprocessing instead, or run it with
// flow.Replicas(1).
//
// Hyperparameters: "learning_rate", "penalty", "alpha", "momentum" (see
// LearningRate, L2, Momentum), "seed" and "probabilities" (no
// distribution). Changing them keeps the weights; "seed" applies at the
// next first fit (after Reset).
type LogisticRegression struct {
	label   string
	classes int
	cfg     linearConfig
	m       sgd
	spare   sgd // the buffers of the next step (see sgd.next)
}

const logisticName = "steps.LogisticRegression"

var (
	_ flow.Fitter     = (*LogisticRegression)(nil)
	_ flow.Copier     = (*LogisticRegression)(nil)
	_ flow.Resetter   = (*LogisticRegression)(nil)
	_ hparams.Tunable = (*LogisticRegression)(nil)
	_ hparams.Spacer  = (*LogisticRegression)(nil)
)

// NewLogisticRegression returns an unfitted classifier of classes classes
// (at least 2) whose labels are the column label of Y. Options:
// LinearColumn (default "x"), LearningRate (0.01), L2 (1e-4), Momentum
// (0), Seed (0), Probabilities (false).
func NewLogisticRegression(label string, classes int, opts ...LinearOption) (*LogisticRegression, error) {
	if label == "" {
		return nil, fmt.Errorf("%s: empty label column name", logisticName)
	}
	if classes < 2 {
		return nil, fmt.Errorf("%s: %d classes, want at least 2", logisticName, classes)
	}
	cfg, err := newLinearConfig(logisticName, true, opts)
	if err != nil {
		return nil, err
	}
	m := &LogisticRegression{label: label, classes: classes, cfg: cfg}
	if err := checkOwnParams(logisticName, m.Params(), m.Space()); err != nil {
		return nil, err
	}
	return m, nil
}

// Fit takes one SGD step on in's rows; a batch of no rows changes nothing.
func (m *LogisticRegression) Fit(ctx context.Context, in flow.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	x, err := m.m.input(logisticName, "fit", m.cfg.in, in)
	if err != nil {
		return err
	}
	y, err := minibatch.Classes(in, m.label, m.classes)
	if err != nil {
		return fmt.Errorf("%s: fit: %w", logisticName, err)
	}
	m.m, m.spare, err = m.m.fit(m.spare, logisticName, x, m.classes, m.cfg, func(r int, z []float64) {
		Softmax(z)
		z[y[r]]--
	})
	return err
}

// Transform borrows in and returns a batch whose X is the prediction
// ("class", and "proba" where asked), from the run's allocator; Y is
// retained. Cost: O(rows × width × K).
func (m *LogisticRegression) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, err
	}
	if !m.m.fitted() {
		return flow.Batch{}, fmt.Errorf("%s: transform: not fitted: fit it on labelled data first", logisticName)
	}
	x, err := m.m.input(logisticName, "transform", m.cfg.in, in)
	if err != nil {
		return flow.Batch{}, err
	}
	mem := flow.Allocator(ctx)
	classes := make([]int64, x.Rows)
	var proba minibatch.Matrix
	if m.cfg.proba {
		proba = minibatch.NewMatrix(mem, x.Rows, m.classes)
		defer proba.Release()
	}
	z := make([]float64, m.classes)
	for r := range x.Rows {
		m.m.linear(x.Row(r), z)
		Softmax(z)
		best := 0
		for k, p := range z {
			if p > z[best] {
				best = k
			}
		}
		classes[r] = int64(best)
		if m.cfg.proba {
			for k, p := range z {
				proba.Data[r*m.classes+k] = float32(p)
			}
		}
	}
	cls := int64Array(mem, classes)
	defer cls.Release()
	fields := []arrow.Field{{Name: ClassColumn, Type: arrow.PrimitiveTypes.Int64}}
	cols := []arrow.Array{cls}
	if m.cfg.proba {
		rec := proba.Record(ProbaColumn)
		defer rec.Release()
		fields = append(fields, rec.Schema().Field(0))
		cols = append(cols, rec.Column(0))
	}
	return in.WithX(array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(x.Rows))), nil
}

// Classes returns K.
func (m *LogisticRegression) Classes() int { return m.classes }

// Steps returns the number of SGD steps taken (batches fitted).
func (m *LogisticRegression) Steps() int64 { return m.m.steps }

// Coef returns the weights of class k (one per feature); nil before any
// fit.
func (m *LogisticRegression) Coef(k int) []float64 {
	if !m.m.fitted() {
		return nil
	}
	return m.m.coef(k)
}

// Intercept returns the bias of class k; 0 before any fit.
func (m *LogisticRegression) Intercept(k int) float64 {
	if !m.m.fitted() {
		return 0
	}
	return m.m.intercept(k)
}

// Copy returns an independent classifier in the same state.
func (m *LogisticRegression) Copy() flow.Step {
	c := *m
	c.m = m.m.clone()
	c.spare = sgd{}
	return &c
}

// Reset forgets the weights: the next fit draws them again from "seed".
func (m *LogisticRegression) Reset() { m.m, m.spare = sgd{}, sgd{} }

// Params returns the hyperparameters.
func (m *LogisticRegression) Params() hparams.Values {
	p := m.cfg.params()
	p["probabilities"] = m.cfg.proba
	return p
}

// SetParams sets hyperparameters, all or none.
func (m *LogisticRegression) SetParams(p hparams.Values) error {
	c, err := convertParams(logisticName, m.Params(), m.Space(), p)
	if err != nil {
		return err
	}
	m.cfg.set(c)
	return nil
}

// Space returns the distributions of "learning_rate", "penalty", "alpha"
// (where penalty is "l2") and "momentum".
func (m *LogisticRegression) Space() hparams.Space { return linearSpace() }
