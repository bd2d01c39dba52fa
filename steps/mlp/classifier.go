package mlp

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
	"github.com/penstock-ml/penstock/steps/nn"
)

// Classifier is a multilayer perceptron that classifies rows into
// classes 0 to classes−1, fitted on the softmax cross-entropy of its
// outputs (see nn.Spec for the network and how it learns).
//
// It reads the FixedSizeList<float32> column Features of X and, to fit,
// the integer column Label of Y; it returns X replaced by ClassColumn
// (int64, the most probable class) and, WithProba, ProbaColumn
// (FixedSizeList<float32> of width classes, the probabilities), Y passed
// through. The input width is fixed by the first fitted batch.
//
// Fit takes one optimizer step per batch (partial fit: epochs are
// repeated streams, see minibatch.Repeat). FitTransform takes that step
// and returns the outputs of its pass, dropout and all, computed before
// the step; Transform never drops out. Transform is safe for concurrent
// calls; the others are not (see flow.Step).
//
// The network is built in Setup's run, never in the constructor: a
// Classifier can be copied (Copy) for trials first. Each batch size gets
// its compiled program at its first batch, kept until Teardown; Fit and
// Transform outside a run (without flow.Setup) are errors. What it
// learned (nn.Model: weights, optimizer moments, the dropout generator)
// is host memory and survives Teardown. It is not a flow.Merger: the
// runner refuses to fit it with replicas.
type Classifier struct {
	c     *core
	proba bool
}

var (
	_ flow.Fitter         = (*Classifier)(nil)
	_ flow.FitTransformer = (*Classifier)(nil)
	_ flow.Setupper       = (*Classifier)(nil)
	_ flow.Teardowner     = (*Classifier)(nil)
	_ flow.Copier         = (*Classifier)(nil)
	_ flow.Resetter       = (*Classifier)(nil)
	_ hparams.Tunable     = (*Classifier)(nil)
	_ hparams.Spacer      = (*Classifier)(nil)
)

const classifierName = "mlp.Classifier"

// NewClassifier returns a classifier of classes classes (2 or more) built
// from spec, whose Loss must be nn.CrossEntropy (start from
// nn.Default(nn.CrossEntropy)). It returns an error naming what is wrong
// with classes or spec. Nothing is built or allocated until a run.
func NewClassifier(classes int, spec nn.Spec, opts ...Option) (*Classifier, error) {
	if classes < 2 || classes > nn.MaxUnits {
		return nil, fmt.Errorf("%s: %d classes, want 2 to %d", classifierName, classes, nn.MaxUnits)
	}
	if spec.Loss != nn.CrossEntropy {
		return nil, fmt.Errorf("%s: loss %q, want %q", classifierName, spec.Loss, nn.CrossEntropy)
	}
	cfg := configOf(opts)
	c, err := newCore(classifierName, classes, spec, cfg)
	if err != nil {
		return nil, err
	}
	return &Classifier{c: c, proba: cfg.proba}, nil
}

// Classes returns the number of classes.
func (m *Classifier) Classes() int { return m.c.outputs }

// Spec returns the classifier's spec.
func (m *Classifier) Spec() nn.Spec { return m.c.nm.Spec() }

// Weights returns a copy of the learned layers, nil before the first fit.
func (m *Classifier) Weights() []nn.Layer { return m.c.nm.Weights() }

// Steps returns the number of optimizer steps (fitted batches) so far.
func (m *Classifier) Steps() int64 { return m.c.nm.Steps() }

// Setup prepares the classifier for a run.
func (m *Classifier) Setup(ctx context.Context) error { return m.c.setup(ctx) }

// Teardown releases the compiled networks; the learned state stays.
func (m *Classifier) Teardown(context.Context) error { return m.c.teardown() }

// Copy returns an independent classifier in m's state (weights, optimizer
// moments, generator), not set up.
func (m *Classifier) Copy() flow.Step { return &Classifier{c: m.c.copyCore(), proba: m.proba} }

// Reset forgets what was learned; the next fit starts from the initial
// weights of the spec's seed.
func (m *Classifier) Reset() {
	m.c.nm.Reset()
	m.c.drop()
}

// Params returns the hyperparameters (see nn.Spec.Params).
func (m *Classifier) Params() hparams.Values { return m.c.params() }

// SetParams sets hyperparameters (see nn.Spec.WithParams and
// nn.Model.SetSpec: a change of the network drops what was learned). The
// loss stays nn.CrossEntropy.
func (m *Classifier) SetParams(p hparams.Values) error { return m.c.setParams(p, nn.CrossEntropy) }

// Space returns the default search space (see nn.Spec.Space).
func (m *Classifier) Space() hparams.Space { return m.c.space() }

// Fit takes one optimizer step on the batch.
func (m *Classifier) Fit(ctx context.Context, b flow.Batch) error {
	return m.c.fitStep(ctx, b, m.targets, nil)
}

// FitTransform takes one optimizer step on the batch and returns the
// predictions of that step's pass (before the step, with dropout).
func (m *Classifier) FitTransform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	return m.c.fitTransform(ctx, b, m.targets, m.output)
}

// targets reads the class labels of b's Y and returns what writes them
// one-hot into the rows × classes targets.
func (m *Classifier) targets(b flow.Batch) (func(y []float32) error, error) {
	k := m.c.outputs
	labels, err := minibatch.Classes(b, m.c.label, k)
	if err != nil {
		return nil, err
	}
	return func(y []float32) error {
		for r, l := range labels {
			y[r*k+int(l)] = 1
		}
		return nil
	}, nil
}

// Transform returns the predicted classes (and probabilities) of the
// batch's rows. It never drops out.
func (m *Classifier) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	return m.c.transform(ctx, b, m.output)
}

// output returns b with X replaced by the classes and probabilities of
// the logits (rows × classes).
func (m *Classifier) output(ctx context.Context, b flow.Batch, logits []float32) flow.Batch {
	mem := flow.Allocator(ctx)
	k := m.c.outputs
	rows := int(b.Rows())
	classes := array.NewInt64Builder(mem)
	defer classes.Release()
	classes.Reserve(rows)
	var proba minibatch.Matrix
	if m.proba {
		proba = minibatch.NewMatrix(mem, rows, k)
		defer proba.Release()
	}
	for r := range rows {
		z := logits[r*k : (r+1)*k]
		best := 0
		for j, v := range z {
			if v > z[best] {
				best = j
			}
		}
		classes.UnsafeAppend(int64(best))
		if m.proba {
			p := proba.Row(r)
			copy(p, z)
			steps.Softmax(p)
		}
	}
	col := classes.NewArray()
	defer col.Release()
	fields := []arrow.Field{{Name: ClassColumn, Type: arrow.PrimitiveTypes.Int64}}
	cols := []arrow.Array{col}
	if m.proba {
		rec := proba.Record(ProbaColumn)
		defer rec.Release()
		fields = append(fields, rec.Schema().Field(0))
		cols = append(cols, rec.Column(0))
	}
	return b.WithX(array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(rows)))
}
