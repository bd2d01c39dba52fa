package steps

import (
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
)

// This file holds the saved state of the linear models (persist.Stater):
// their columns and the SGD state (weights, momentum velocity, steps).

var (
	_ persist.Stater = (*LinearRegression)(nil)
	_ persist.Stater = (*LogisticRegression)(nil)
)

// marshal writes the SGD state: "outputs", "cols", "steps" and, once
// fitted, the float64 tensors "weights" and "velocity" of shape
// [outputs, cols+1] (each row's bias last).
func (s sgd) marshal(w *persist.StateWriter) {
	w.Int64("outputs", int64(s.outputs))
	w.Int64("cols", int64(s.cols))
	w.Int64("steps", s.steps)
	if s.fitted() {
		w.Float64s("weights", s.w, s.outputs, s.cols+1)
		w.Float64s("velocity", s.vel, s.outputs, s.cols+1)
	}
}

// unmarshalSGD reads what marshal wrote, for a model of outputs outputs.
func unmarshalSGD(what string, r *persist.StateReader, outputs int) (sgd, error) {
	var s sgd
	o, err := r.Int("outputs")
	if err != nil {
		return s, err
	}
	cols, err := r.Int("cols")
	if err != nil {
		return s, err
	}
	steps, err := r.Int64("steps")
	if err != nil {
		return s, err
	}
	if !r.Has("weights") {
		if steps != 0 {
			return s, fmt.Errorf("%s: %d steps taken but no weights", what, steps)
		}
		return sgd{}, nil
	}
	wts, err := r.Float64s("weights")
	if err != nil {
		return s, err
	}
	vel, err := r.Float64s("velocity")
	if err != nil {
		return s, err
	}
	switch {
	case o != outputs:
		return s, fmt.Errorf("%s: %d outputs, want %d", what, o, outputs)
	case cols < 1 || steps < 0:
		return s, fmt.Errorf("%s: %d features and %d steps, want at least 1 and 0", what, cols, steps)
	case int64(len(wts)) != int64(o)*int64(cols+1) || len(vel) != len(wts):
		return s, fmt.Errorf("%s: %d weights and %d velocities, want %d × %d", what, len(wts), len(vel), o, cols+1)
	}
	s = sgd{outputs: o, cols: cols, w: wts, vel: vel, steps: steps}
	if s.diverged() {
		return sgd{}, fmt.Errorf("%s: a weight is not finite", what)
	}
	return s, nil
}

func stateNewLinearRegression(spec persist.Spec) (flow.Step, error) {
	target, err := spec.State.String("target")
	if err != nil {
		return nil, err
	}
	in, err := spec.State.String("column")
	if err != nil {
		return nil, err
	}
	return NewLinearRegression(target, LinearColumn(in))
}

// MarshalState writes the columns ("target", "column") and the SGD state
// (see sgd.marshal).
func (m *LinearRegression) MarshalState(w *persist.StateWriter) error {
	w.String("target", m.target)
	w.String("column", m.cfg.in)
	m.m.marshal(w)
	return nil
}

// UnmarshalState reads the SGD state that MarshalState wrote.
func (m *LinearRegression) UnmarshalState(r *persist.StateReader) error {
	s, err := unmarshalSGD(linearRegressionName, r, 1)
	if err != nil {
		return err
	}
	m.m = s
	return nil
}

func stateNewLogisticRegression(spec persist.Spec) (flow.Step, error) {
	label, err := spec.State.String("label")
	if err != nil {
		return nil, err
	}
	in, err := spec.State.String("column")
	if err != nil {
		return nil, err
	}
	classes, err := spec.State.Int("classes")
	if err != nil {
		return nil, err
	}
	return NewLogisticRegression(label, classes, LinearColumn(in))
}

// MarshalState writes the columns ("label", "column"), "classes" and the
// SGD state (see sgd.marshal).
func (m *LogisticRegression) MarshalState(w *persist.StateWriter) error {
	w.String("label", m.label)
	w.String("column", m.cfg.in)
	w.Int64("classes", int64(m.classes))
	m.m.marshal(w)
	return nil
}

// UnmarshalState reads the SGD state that MarshalState wrote.
func (m *LogisticRegression) UnmarshalState(r *persist.StateReader) error {
	s, err := unmarshalSGD(logisticName, r, m.classes)
	if err != nil {
		return err
	}
	m.m = s
	return nil
}
