package steps

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
)

// StandardScaler standardizes each feature of a tensor column of X: z =
// (x - mean) / std, with the mean and the population standard deviation
// (ddof 0, as scikit-learn's) of the rows it was fitted on.
//
// Fit is a partial fit: each batch's count, means and sums of squared
// deviations (M2) are computed in float64 and merged into the running ones
// with the parallel formula of Chan, Golub and LeVeque, which is exact up
// to rounding whatever the batch sizes, and numerically stable (no sum of
// squares minus a squared sum). Replicas fitted on shares of a stream merge
// with the same formula (Merger), so a replicated fit equals a sequential
// one to rounding, also after an earlier fit.
//
// A constant feature (std 0) is scaled by 1: it is only centred (to 0 with
// with_mean, else left as it is), never divided by zero. NaN in the input
// propagates (impute missing values first, see Imputer); nulls are an
// error.
//
// Hyperparameters (Params, SetParams, Space): "with_mean" and "with_std",
// bools, both true by default. Changing them keeps what was learned.
// Transform before any fit is an error; Transform does not change the
// step and may be called concurrently.
type StandardScaler struct {
	cfg  scaleConfig
	mom  moments
	coef *coefCache // the coefficients of the current moments, for Transform
}

// coefCache keeps the coefficients that Transform last computed, with what
// they were computed from: Transform computes them once per fitted state,
// not once per batch, and Transforms that run at once share them safely.
type coefCache struct{ p atomic.Pointer[coefs] }

type coefs struct {
	n                 int64
	mean, m2          *float64 // the moments' slices they came from
	withMean, withStd bool
	shift, mul        []float64
}

const standardScalerName = "steps.StandardScaler"

// moments are the count, means and M2 (sums of squared deviations from the
// mean) of each column of the rows seen so far.
type moments struct {
	n        int64
	mean, m2 []float64
}

// merge folds o into m: Chan et al.'s pairwise update of the mean and M2.
func (m *moments) merge(o moments) {
	switch {
	case o.n == 0:
		return
	case m.n == 0:
		*m = o.clone()
		return
	}
	na, nb := float64(m.n), float64(o.n)
	n := na + nb
	for j := range m.mean {
		d := o.mean[j] - m.mean[j]
		m.mean[j] += d * nb / n
		m.m2[j] += o.m2[j] + d*d*na*nb/n
	}
	m.n += o.n
}

func (m moments) clone() moments {
	return moments{n: m.n, mean: slices.Clone(m.mean), m2: slices.Clone(m.m2)}
}

// batchMoments returns the moments of the rows of x, by two passes in
// float64.
func batchMoments(x minibatch.Matrix) moments {
	m := moments{n: int64(x.Rows), mean: make([]float64, x.Cols), m2: make([]float64, x.Cols)}
	if x.Rows == 0 {
		return moments{mean: m.mean, m2: m.m2}
	}
	for r := range x.Rows {
		for j, v := range x.Row(r) {
			m.mean[j] += float64(v)
		}
	}
	for j := range m.mean {
		m.mean[j] /= float64(x.Rows)
	}
	for r := range x.Rows {
		for j, v := range x.Row(r) {
			d := float64(v) - m.mean[j]
			m.m2[j] += d * d
		}
	}
	return m
}

var (
	_ flow.Fitter     = (*StandardScaler)(nil)
	_ flow.Merger     = (*StandardScaler)(nil)
	_ flow.Copier     = (*StandardScaler)(nil)
	_ flow.Resetter   = (*StandardScaler)(nil)
	_ hparams.Tunable = (*StandardScaler)(nil)
	_ hparams.Spacer  = (*StandardScaler)(nil)
)

// NewStandardScaler returns an unfitted standard scaler (the zero
// StandardScaler is not usable). Options:
// ScaleColumn (default "x"), ScaleOutput (default: the input column),
// WithMean and WithStd (default true).
func NewStandardScaler(opts ...ScaleOption) (*StandardScaler, error) {
	const what = standardScalerName
	cfg, err := newScaleConfig(what, true, opts)
	if err != nil {
		return nil, err
	}
	s := &StandardScaler{cfg: cfg, coef: &coefCache{}}
	if err := checkOwnParams(what, s.Params(), s.Space()); err != nil {
		return nil, err
	}
	return s, nil
}

// Fit adds the rows of the input column of in's X to the statistics. The
// column must keep the width of the first batch fitted. A batch of no rows
// changes nothing.
func (s *StandardScaler) Fit(ctx context.Context, in flow.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	x, err := minibatch.Features(in, s.cfg.in)
	if err != nil {
		return fmt.Errorf("%s: fit: %w", standardScalerName, err)
	}
	if s.mom.n > 0 && x.Cols != len(s.mom.mean) {
		return fmt.Errorf("%s: fit: column %q of X has width %d, want %d (the width it was fitted on)", standardScalerName, s.cfg.in, x.Cols, len(s.mom.mean))
	}
	if x.Rows == 0 {
		return nil
	}
	s.mom.merge(batchMoments(x))
	return nil
}

// Transform borrows in and returns a batch whose input column is replaced
// by the standardized one (a new float32 tensor from the run's allocator);
// Y and the other columns of X are retained. Cost: O(rows × width).
func (s *StandardScaler) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if s.mom.n == 0 {
		return flow.Batch{}, fmt.Errorf("%s: transform: not fitted: fit it on data first (column %q of X)", standardScalerName, s.cfg.in)
	}
	shift, mul := s.cachedCoefficients()
	return affineFeatures(ctx, standardScalerName, in, s.cfg.in, s.cfg.out, shift, mul, 0)
}

// cachedCoefficients returns the coefficients, computed once for the
// current moments. The slices are shared: read only.
func (s *StandardScaler) cachedCoefficients() (shift, mul []float64) {
	if s.coef == nil || len(s.mom.mean) == 0 {
		return s.coefficients()
	}
	key := coefs{n: s.mom.n, mean: &s.mom.mean[0], m2: &s.mom.m2[0], withMean: s.cfg.withMean, withStd: s.cfg.withStd}
	if c := s.coef.p.Load(); c != nil && c.n == key.n && c.mean == key.mean && c.m2 == key.m2 &&
		c.withMean == key.withMean && c.withStd == key.withStd {
		return c.shift, c.mul
	}
	key.shift, key.mul = s.coefficients()
	s.coef.p.Store(&key)
	return key.shift, key.mul
}

// coefficients returns what the features are shifted by and then
// multiplied by.
func (s *StandardScaler) coefficients() (shift, mul []float64) {
	w := len(s.mom.mean)
	shift, mul = make([]float64, w), make([]float64, w)
	for j := range w {
		mul[j] = 1
		if s.cfg.withMean {
			shift[j] = s.mom.mean[j]
		}
		if sd := math.Sqrt(s.mom.m2[j] / float64(s.mom.n)); s.cfg.withStd && sd > 0 {
			mul[j] = 1 / sd
		}
	}
	return shift, mul
}

// Count returns the number of rows fitted.
func (s *StandardScaler) Count() int64 { return s.mom.n }

// Mean returns the fitted mean of each feature; nil before any fit.
func (s *StandardScaler) Mean() []float64 { return slices.Clone(s.mom.mean) }

// Variance returns the fitted population variance of each feature; nil
// before any fit.
func (s *StandardScaler) Variance() []float64 {
	if s.mom.n == 0 {
		return nil
	}
	v := make([]float64, len(s.mom.m2))
	for j, m2 := range s.mom.m2 {
		v[j] = m2 / float64(s.mom.n)
	}
	return v
}

// Scale returns what each feature is divided by: its standard deviation,
// or 1 for a constant feature or without with_std; nil before any fit.
func (s *StandardScaler) Scale() []float64 {
	if s.mom.n == 0 {
		return nil
	}
	_, mul := s.coefficients()
	for j := range mul {
		mul[j] = 1 / mul[j]
	}
	return mul
}

// Replica returns an unfitted scaler with the same configuration.
func (s *StandardScaler) Replica() flow.Step { return &StandardScaler{cfg: s.cfg, coef: &coefCache{}} }

// Merge folds the statistics of replicas (StandardScalers, from Replica)
// into the receiver's. It changes nothing when it fails: a replica of
// another type or of another width.
func (s *StandardScaler) Merge(replicas []flow.Step) error {
	m := s.mom.clone()
	for i, r := range replicas {
		o, ok := r.(*StandardScaler)
		if !ok {
			return fmt.Errorf("%s: merge: replica %d is a %T, want a *steps.StandardScaler", standardScalerName, i, r)
		}
		if m.n > 0 && o.mom.n > 0 && len(o.mom.mean) != len(m.mean) {
			return fmt.Errorf("%s: merge: replica %d was fitted on width %d, want %d", standardScalerName, i, len(o.mom.mean), len(m.mean))
		}
		m.merge(o.mom)
	}
	s.mom = m
	return nil
}

// Copy returns an independent scaler in the same state.
func (s *StandardScaler) Copy() flow.Step {
	return &StandardScaler{cfg: s.cfg, mom: s.mom.clone(), coef: &coefCache{}}
}

// Reset forgets the fitted statistics.
func (s *StandardScaler) Reset() { s.mom = moments{} }

// Params returns "with_mean" and "with_std".
func (s *StandardScaler) Params() hparams.Values {
	return hparams.Values{"with_mean": s.cfg.withMean, "with_std": s.cfg.withStd}
}

// SetParams sets "with_mean" and "with_std", all or none.
func (s *StandardScaler) SetParams(p hparams.Values) error {
	c, err := convertParams(standardScalerName, s.Params(), s.Space(), p)
	if err != nil {
		return err
	}
	if v, ok := c["with_mean"]; ok {
		s.cfg.withMean = v.(bool)
	}
	if v, ok := c["with_std"]; ok {
		s.cfg.withStd = v.(bool)
	}
	return nil
}

// Space returns Boolean(0.5) for "with_mean" and "with_std".
func (s *StandardScaler) Space() hparams.Space {
	return hparams.Space{"with_mean": hparams.Boolean(0.5), "with_std": hparams.Boolean(0.5)}
}
