package steps

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
)

// MinMaxScaler maps each feature of a tensor column of X from its fitted
// [min, max] onto the feature range [lo, hi] (default [0, 1]): z = (x -
// min) × (hi - lo) / (max - min) + lo. Values outside the fitted range map
// outside [lo, hi] (no clipping), as in scikit-learn.
//
// Fit is a partial fit that keeps the minimum and maximum of each feature;
// replicas merge exactly (the min of the mins, the max of the maxes). A
// constant feature (max = min) is scaled by 1: it maps to lo. Fit ignores
// NaN (a feature seen only as NaN is scaled as a constant 0 would be);
// Transform propagates it; nulls are an error.
//
// Hyperparameters: "feature_min", lo (Uniform(-1e6, 1e6)), and
// "feature_span", hi - lo (LogUniform(1e-6, 2e6)): a span rather than hi,
// so that every sample of the space is a valid range. The space is the
// valid domain; narrow it with hparams.Space.Override to search (e.g.
// Choice(-1.0, 0.0) for "feature_min" and Choice(1.0, 2.0) for
// "feature_span").
// Transform before any fit is an error; Transform does not change the
// step and may be called concurrently.
type MinMaxScaler struct {
	cfg      scaleConfig
	n        int64
	min, max []float64 // ±Inf where no value but NaN was seen
}

const minMaxScalerName = "steps.MinMaxScaler"

var (
	_ flow.Fitter     = (*MinMaxScaler)(nil)
	_ flow.Merger     = (*MinMaxScaler)(nil)
	_ flow.Copier     = (*MinMaxScaler)(nil)
	_ flow.Resetter   = (*MinMaxScaler)(nil)
	_ hparams.Tunable = (*MinMaxScaler)(nil)
	_ hparams.Spacer  = (*MinMaxScaler)(nil)
)

// NewMinMaxScaler returns an unfitted min-max scaler (the zero
// MinMaxScaler is not usable). Options: ScaleColumn (default "x"),
// ScaleOutput (default: the input column), FeatureRange (default [0, 1]).
func NewMinMaxScaler(opts ...ScaleOption) (*MinMaxScaler, error) {
	cfg, err := newScaleConfig(minMaxScalerName, false, opts)
	if err != nil {
		return nil, err
	}
	s := &MinMaxScaler{cfg: cfg}
	if err := checkOwnParams(minMaxScalerName, s.Params(), s.Space()); err != nil {
		return nil, err
	}
	return s, nil
}

// Fit folds the rows of the input column of in's X into the minimum and
// maximum of each feature. The column must keep the width of the first
// batch fitted.
func (s *MinMaxScaler) Fit(ctx context.Context, in flow.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	x, err := minibatch.Features(in, s.cfg.in)
	if err != nil {
		return fmt.Errorf("%s: fit: %w", minMaxScalerName, err)
	}
	if s.n > 0 && x.Cols != len(s.min) {
		return fmt.Errorf("%s: fit: column %q of X has width %d, want %d (the width it was fitted on)", minMaxScalerName, s.cfg.in, x.Cols, len(s.min))
	}
	if x.Rows == 0 {
		return nil
	}
	if s.n == 0 {
		s.min, s.max = make([]float64, x.Cols), make([]float64, x.Cols)
		for j := range s.min {
			s.min[j], s.max[j] = math.Inf(1), math.Inf(-1)
		}
	}
	for r := range x.Rows {
		for j, v := range x.Row(r) {
			f := float64(v)
			if f < s.min[j] { // false for NaN
				s.min[j] = f
			}
			if f > s.max[j] {
				s.max[j] = f
			}
		}
	}
	s.n += int64(x.Rows)
	return nil
}

// Transform borrows in and returns a batch whose input column is replaced
// by the scaled one (a new float32 tensor from the run's allocator); Y and
// the other columns of X are retained. Cost: O(rows × width).
func (s *MinMaxScaler) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if s.n == 0 {
		return flow.Batch{}, fmt.Errorf("%s: transform: not fitted: fit it on data first (column %q of X)", minMaxScalerName, s.cfg.in)
	}
	shift, mul := make([]float64, len(s.min)), make([]float64, len(s.min))
	for j := range s.min {
		lo, hi := s.min[j], s.max[j]
		if math.IsInf(lo, 0) { // only NaN seen
			lo, hi = 0, 0
		}
		shift[j], mul[j] = lo, 1
		if hi > lo {
			mul[j] = (s.cfg.hi - s.cfg.lo) / (hi - lo)
		}
	}
	return affineFeatures(ctx, minMaxScalerName, in, s.cfg.in, s.cfg.out, shift, mul, s.cfg.lo)
}

// Count returns the number of rows fitted.
func (s *MinMaxScaler) Count() int64 { return s.n }

// Min returns the fitted minimum of each feature (+Inf for a feature that
// was NaN on every row); nil before any fit.
func (s *MinMaxScaler) Min() []float64 { return slices.Clone(s.min) }

// Max returns the fitted maximum of each feature (-Inf for a feature that
// was NaN on every row); nil before any fit.
func (s *MinMaxScaler) Max() []float64 { return slices.Clone(s.max) }

// Replica returns an unfitted scaler with the same configuration.
func (s *MinMaxScaler) Replica() flow.Step { return &MinMaxScaler{cfg: s.cfg} }

// Merge folds the minima and maxima of replicas (MinMaxScalers) into the
// receiver's, exactly. It changes nothing when it fails.
func (s *MinMaxScaler) Merge(replicas []flow.Step) error {
	n, lo, hi := s.n, slices.Clone(s.min), slices.Clone(s.max)
	for i, r := range replicas {
		o, ok := r.(*MinMaxScaler)
		if !ok {
			return fmt.Errorf("%s: merge: replica %d is a %T, want a *steps.MinMaxScaler", minMaxScalerName, i, r)
		}
		if o.n == 0 {
			continue
		}
		if n == 0 {
			n, lo, hi = o.n, slices.Clone(o.min), slices.Clone(o.max)
			continue
		}
		if len(o.min) != len(lo) {
			return fmt.Errorf("%s: merge: replica %d was fitted on width %d, want %d", minMaxScalerName, i, len(o.min), len(lo))
		}
		for j := range lo {
			lo[j], hi[j] = math.Min(lo[j], o.min[j]), math.Max(hi[j], o.max[j])
		}
		n += o.n
	}
	s.n, s.min, s.max = n, lo, hi
	return nil
}

// Copy returns an independent scaler in the same state.
func (s *MinMaxScaler) Copy() flow.Step {
	return &MinMaxScaler{cfg: s.cfg, n: s.n, min: slices.Clone(s.min), max: slices.Clone(s.max)}
}

// Reset forgets the fitted minima and maxima.
func (s *MinMaxScaler) Reset() { s.n, s.min, s.max = 0, nil, nil }

// Params returns "feature_min" and "feature_span".
func (s *MinMaxScaler) Params() hparams.Values {
	return hparams.Values{"feature_min": s.cfg.lo, "feature_span": s.cfg.hi - s.cfg.lo}
}

// SetParams sets "feature_min" and "feature_span", all or none; the top of
// the range becomes feature_min + feature_span.
func (s *MinMaxScaler) SetParams(p hparams.Values) error {
	c, err := convertParams(minMaxScalerName, s.Params(), s.Space(), p)
	if err != nil {
		return err
	}
	lo, span := s.cfg.lo, s.cfg.hi-s.cfg.lo
	if v, ok := c["feature_min"]; ok {
		lo = v.(float64)
	}
	if v, ok := c["feature_span"]; ok {
		span = v.(float64)
	}
	s.cfg.lo, s.cfg.hi = lo, lo+span
	return nil
}

// Space returns Uniform(-1e6, 1e6) for "feature_min" and
// LogUniform(1e-6, 2e6) for "feature_span".
func (s *MinMaxScaler) Space() hparams.Space {
	return hparams.Space{"feature_min": hparams.Uniform(-1e6, 1e6), "feature_span": hparams.LogUniform(1e-6, 2e6)}
}
