package steps

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
)

// This file holds what LinearRegression and LogisticRegression share:
// their options and hyperparameters, and the mini-batch SGD kernel.

// The columns of X that the linear models write.
const (
	// ClassColumn is the predicted class index (int64) of a classifier.
	ClassColumn = "class"
	// ProbaColumn holds a classifier's class probabilities, a
	// FixedSizeList<float32> of width K (with Probabilities(true)).
	ProbaColumn = "proba"
	// PredColumn is a regressor's prediction (float32).
	PredColumn = "pred"
)

// The values of the linear models' hyperparameter "penalty".
const (
	PenaltyNone = "none"
	PenaltyL2   = "l2"
)

// LinearOption configures a linear model (NewLinearRegression,
// NewLogisticRegression). An option that does not apply, or has a value
// outside the model's hyperparameter space, makes the constructor return
// an error.
type LinearOption func(*linearConfig)

type linearConfig struct {
	in       string
	rate     float64
	penalty  string
	alpha    float64
	momentum float64
	seed     uint64
	proba    bool
	probaSet bool
	err      error
}

// LinearColumn sets the tensor column of X that the model reads; the
// default is DefaultFeatures, "x".
func LinearColumn(name string) LinearOption {
	return func(c *linearConfig) {
		if name == "" && c.err == nil {
			c.err = errors.New("LinearColumn: empty column name")
		}
		c.in = name
	}
}

// LearningRate sets the step size of SGD, the hyperparameter
// "learning_rate" (LogUniform(1e-5, 10)); the default is 0.01.
func LearningRate(r float64) LinearOption { return func(c *linearConfig) { c.rate = r } }

// L2 sets the strength alpha of the L2 penalty (alpha/2 × the sum of the
// squared weights, biases excepted, added to the mean loss of a batch):
// the hyperparameters "penalty" ("l2", or "none" for alpha 0) and "alpha"
// (LogUniform(1e-8, 10), where penalty is "l2"). The default is no penalty
// for LinearRegression and 1e-4 for LogisticRegression.
func L2(alpha float64) LinearOption {
	return func(c *linearConfig) {
		switch {
		case alpha == 0:
			c.penalty = PenaltyNone
		case alpha > 0:
			c.penalty, c.alpha = PenaltyL2, alpha
		default:
			if c.err == nil {
				c.err = fmt.Errorf("L2(%v): want 0 or more", alpha)
			}
		}
	}
}

// Momentum sets the heavy-ball momentum of SGD, the hyperparameter
// "momentum" (Uniform(0, 0.99)); the default is 0, plain SGD.
func Momentum(m float64) LinearOption { return func(c *linearConfig) { c.momentum = m } }

// Seed seeds the PCG generator that draws the initial weights, the
// hyperparameter "seed"; the default is 0. The same seed and batches give
// the same model.
func Seed(s uint64) LinearOption { return func(c *linearConfig) { c.seed = s } }

// Probabilities sets whether a LogisticRegression adds the class
// probabilities (ProbaColumn) to its output, the hyperparameter
// "probabilities"; the default is false: the class only.
func Probabilities(on bool) LinearOption {
	return func(c *linearConfig) { c.proba, c.probaSet = on, true }
}

// linearParams returns the hyperparameters that both models have.
func (c linearConfig) params() hparams.Values {
	return hparams.Values{
		"learning_rate": c.rate,
		"penalty":       c.penalty,
		"alpha":         c.alpha,
		"momentum":      c.momentum,
		"seed":          int(c.seed),
	}
}

// linearSpace is the space of both models' hyperparameters.
func linearSpace() hparams.Space {
	return hparams.Space{
		"learning_rate": hparams.LogUniform(1e-5, 10),
		"penalty":       hparams.Choice(PenaltyNone, PenaltyL2),
		"alpha":         hparams.When(hparams.LogUniform(1e-8, 10), "penalty", PenaltyL2),
		"momentum":      hparams.Uniform(0, 0.99),
	}
}

// set applies converted values (see convertParams) to c.
func (c *linearConfig) set(v hparams.Values) {
	for name, x := range v {
		switch name {
		case "learning_rate":
			c.rate = x.(float64)
		case "penalty":
			c.penalty = x.(string)
		case "alpha":
			c.alpha = x.(float64)
		case "momentum":
			c.momentum = x.(float64)
		case "seed":
			c.seed = uint64(x.(int))
		case "probabilities":
			c.proba = x.(bool)
		}
	}
}

// newLinearConfig applies opts over the defaults.
func newLinearConfig(what string, classifier bool, opts []LinearOption) (linearConfig, error) {
	c := linearConfig{in: DefaultFeatures, rate: 0.01, penalty: PenaltyNone, alpha: 1e-4}
	if classifier {
		c.penalty = PenaltyL2
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.err != nil {
		return c, fmt.Errorf("%s: %w", what, c.err)
	}
	if c.probaSet && !classifier {
		return c, fmt.Errorf("%s: option Probabilities applies to a classifier only", what)
	}
	return c, nil
}

// sgd is the state of a linear model fitted by mini-batch SGD: outputs
// rows of cols weights and a bias, row-major in w, and the velocity of
// the momentum.
type sgd struct {
	outputs, cols int
	w, vel        []float64
	steps         int64
	grad, z       []float64 // step's scratch: never shared (clone drops it)
}

func (s sgd) fitted() bool { return s.w != nil }

func (s sgd) clone() sgd {
	s.w, s.vel = slices.Clone(s.w), slices.Clone(s.vel)
	s.grad, s.z = nil, nil
	return s
}

// next returns a copy of s to take a step on, made in spare's buffers, so
// that a model fitted batch after batch allocates nothing per batch; the
// model keeps s until the step has succeeded, then keeps the copy and
// makes s its next spare.
func (s sgd) next(spare sgd) sgd {
	out := s
	out.w = append(spare.w[:0], s.w...)
	out.vel = append(spare.vel[:0], s.vel...)
	if s.w == nil {
		out.w, out.vel = nil, nil
	}
	out.grad, out.z = spare.grad, spare.z
	return out
}

// init draws the weights from N(0, 0.01²) with a PCG seeded by seed; the
// biases start at 0.
func (s *sgd) init(outputs, cols int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	s.outputs, s.cols = outputs, cols
	s.w, s.vel = make([]float64, outputs*(cols+1)), make([]float64, outputs*(cols+1))
	for k := range outputs {
		for j := range cols {
			s.w[k*(cols+1)+j] = 0.01 * r.NormFloat64()
		}
	}
}

// linear writes the outputs of row x into out.
func (s sgd) linear(x []float32, out []float64) {
	for k := range s.outputs {
		w := s.w[k*(s.cols+1) : (k+1)*(s.cols+1)]
		z := w[s.cols]
		for j, v := range x {
			z += w[j] * float64(v)
		}
		out[k] = z
	}
}

// step takes one SGD step on the batch x: residual(r, z) turns the
// outputs z of row r into the gradient of the row's loss in them (in
// place); the gradient is averaged over the rows.
func (s *sgd) step(x minibatch.Matrix, cfg linearConfig, residual func(r int, z []float64)) {
	width := s.cols + 1
	if len(s.grad) != len(s.w) || len(s.z) != s.outputs {
		s.grad, s.z = make([]float64, len(s.w)), make([]float64, s.outputs)
	}
	grad, z := s.grad, s.z
	clear(grad)
	for r := range x.Rows {
		row := x.Row(r)
		s.linear(row, z)
		residual(r, z)
		for k, e := range z {
			if e == 0 {
				continue
			}
			g := grad[k*width : (k+1)*width]
			for j, v := range row {
				g[j] += e * float64(v)
			}
			g[s.cols] += e
		}
	}
	inv := 1 / float64(x.Rows)
	for i := range grad {
		grad[i] *= inv
		if cfg.penalty == PenaltyL2 && i%width != s.cols {
			grad[i] += cfg.alpha * s.w[i]
		}
		s.vel[i] = cfg.momentum*s.vel[i] - cfg.rate*grad[i]
		s.w[i] += s.vel[i]
	}
	s.steps++
}

// input reads the features of in, the column col of X, for the operation
// op of the model named name, and checks their width against the one the
// model was fitted on, if it was.
func (s sgd) input(name, op, col string, in flow.Batch) (minibatch.Matrix, error) {
	x, err := minibatch.Features(in, col)
	if err != nil {
		return minibatch.Matrix{}, fmt.Errorf("%s: %s: %w", name, op, err)
	}
	if s.fitted() && x.Cols != s.cols {
		return minibatch.Matrix{}, fmt.Errorf("%s: %s: column %q of X has width %d, want %d (the width it was fitted on)", name, op, col, x.Cols, s.cols)
	}
	return x, nil
}

// fit takes one step from s on x (see step) in spare's buffers and returns
// the model after it, drawn first if s is not fitted, and the model to
// keep as the next spare. A batch of no rows changes nothing. The error,
// for weights that are no longer finite, leaves s as it was.
func (s sgd) fit(spare sgd, name string, x minibatch.Matrix, outputs int, cfg linearConfig, residual func(r int, z []float64)) (model, nextSpare sgd, err error) {
	if x.Rows == 0 {
		return s, spare, nil
	}
	next := s.next(spare)
	if !next.fitted() {
		next.init(outputs, x.Cols, cfg.seed)
	}
	next.step(x, cfg, residual)
	if next.diverged() {
		if j := slices.IndexFunc(x.Data, notFinite32); j >= 0 {
			return s, spare, fmt.Errorf("%s: fit: column %q of X has %v at value %d of row %d; want finite features (fill or drop them first: Imputer)", name, cfg.in, x.Data[j], j%x.Cols, j/x.Cols)
		}
		return s, spare, fmt.Errorf("%s: fit: the weights are no longer finite after %d steps; lower learning_rate (%v) or scale the features", name, next.steps, cfg.rate)
	}
	return next, s, nil
}

// notFinite32 reports whether v is NaN or infinite.
func notFinite32(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }

// diverged reports whether a weight is no longer finite.
func (s sgd) diverged() bool {
	return slices.ContainsFunc(s.w, func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) })
}

// coef returns the weights of output k (without its bias).
func (s sgd) coef(k int) []float64 {
	return slices.Clone(s.w[k*(s.cols+1) : k*(s.cols+1)+s.cols])
}

func (s sgd) intercept(k int) float64 { return s.w[k*(s.cols+1)+s.cols] }
