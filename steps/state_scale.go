package steps

import (
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
)

// This file holds the saved state of the scalers (persist.Stater): their
// columns (which their Params do not hold) and what they learned.

var (
	_ persist.Stater = (*StandardScaler)(nil)
	_ persist.Stater = (*MinMaxScaler)(nil)
)

// stateScaleConfig reads the columns that MarshalState wrote.
func stateScaleConfig(r *persist.StateReader) ([]ScaleOption, error) {
	in, err := r.String("column")
	if err != nil {
		return nil, err
	}
	out, err := r.String("output")
	if err != nil {
		return nil, err
	}
	return []ScaleOption{ScaleColumn(in), ScaleOutput(out)}, nil
}

func stateNewStandardScaler(spec persist.Spec) (flow.Step, error) {
	opts, err := stateScaleConfig(spec.State)
	if err != nil {
		return nil, err
	}
	return NewStandardScaler(opts...)
}

// MarshalState writes the columns ("column", "output"), the count "n" and
// the float64 tensors "mean" and "m2" (sums of squared deviations).
func (s *StandardScaler) MarshalState(w *persist.StateWriter) error {
	w.String("column", s.cfg.in)
	w.String("output", s.cfg.out)
	w.Int64("n", s.mom.n)
	w.Float64s("mean", s.mom.mean)
	w.Float64s("m2", s.mom.m2)
	return nil
}

// UnmarshalState reads what MarshalState wrote.
func (s *StandardScaler) UnmarshalState(r *persist.StateReader) error {
	n, err := r.Int64("n")
	if err != nil {
		return err
	}
	mean, err := r.Float64s("mean")
	if err != nil {
		return err
	}
	m2, err := r.Float64s("m2")
	if err != nil {
		return err
	}
	switch {
	case n < 0:
		return fmt.Errorf("%s: count %d, want 0 or more", standardScalerName, n)
	case len(mean) != len(m2):
		return fmt.Errorf("%s: %d means and %d sums of squares, want as many", standardScalerName, len(mean), len(m2))
	case n > 0 && len(mean) == 0:
		return fmt.Errorf("%s: fitted on %d rows of no features", standardScalerName, n)
	}
	s.mom = moments{n: n}
	if n > 0 {
		s.mom.mean, s.mom.m2 = mean, m2
	}
	return nil
}

func stateNewMinMaxScaler(spec persist.Spec) (flow.Step, error) {
	opts, err := stateScaleConfig(spec.State)
	if err != nil {
		return nil, err
	}
	return NewMinMaxScaler(opts...)
}

// MarshalState writes the columns ("column", "output"), the range
// ("range_lo", "range_hi": exactly, where feature_min + feature_span
// would round), the count "n" and the float64 tensors "min" and "max".
func (s *MinMaxScaler) MarshalState(w *persist.StateWriter) error {
	w.String("column", s.cfg.in)
	w.String("output", s.cfg.out)
	w.Float64("range_lo", s.cfg.lo)
	w.Float64("range_hi", s.cfg.hi)
	w.Int64("n", s.n)
	w.Float64s("min", s.min)
	w.Float64s("max", s.max)
	return nil
}

// UnmarshalState reads what MarshalState wrote.
func (s *MinMaxScaler) UnmarshalState(r *persist.StateReader) error {
	lo, err := r.Float64("range_lo")
	if err != nil {
		return err
	}
	hi, err := r.Float64("range_hi")
	if err != nil {
		return err
	}
	n, err := r.Int64("n")
	if err != nil {
		return err
	}
	mins, err := r.Float64s("min")
	if err != nil {
		return err
	}
	maxs, err := r.Float64s("max")
	if err != nil {
		return err
	}
	switch {
	case !(lo < hi):
		return fmt.Errorf("%s: range [%v, %v], want lo < hi", minMaxScalerName, lo, hi)
	case lo != s.cfg.lo:
		return fmt.Errorf("%s: range_lo %v differs from feature_min %v", minMaxScalerName, lo, s.cfg.lo)
	case n < 0:
		return fmt.Errorf("%s: count %d, want 0 or more", minMaxScalerName, n)
	case len(mins) != len(maxs):
		return fmt.Errorf("%s: %d minima and %d maxima, want as many", minMaxScalerName, len(mins), len(maxs))
	case n > 0 && len(mins) == 0:
		return fmt.Errorf("%s: fitted on %d rows of no features", minMaxScalerName, n)
	}
	s.cfg.lo, s.cfg.hi, s.n, s.min, s.max = lo, hi, n, nil, nil
	if n > 0 {
		s.min, s.max = mins, maxs
	}
	return nil
}
