package mlp

import (
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps/nn"
)

// This file holds the saved state of the Classifier and the Regressor
// (persist.Stater): the configuration that Params do not hold (columns,
// classes, WithProba) and the learned state of the nn.Model (weights,
// optimizer moments, steps, the dropout generator). The compiled
// programs are not saved: a loaded model is not set up, and the run that
// sets it up builds them from the weights.

var (
	_ persist.Stater = (*Classifier)(nil)
	_ persist.Stater = (*Regressor)(nil)
)

// marshal writes the columns ("features", "label") and the model's
// learned state: "steps", "rng" (the PCG's state), "layers" (their
// count, 0 before the first fit) and, for each layer i, the float32
// tensors "w<i>" of shape [in, out] and "b<i>" of [out], with the
// optimizer's state of the same shapes after the first step: "m_w<i>",
// "m_b<i>" (Adam's first moments, SGD's velocity) and, with Adam,
// "v_w<i>", "v_b<i>".
func (c *core) marshal(w *persist.StateWriter) {
	w.String("features", c.features)
	w.String("label", c.label)
	s := c.nm.State()
	w.Int64("steps", s.Steps)
	w.Bytes("rng", s.RNG)
	w.Int64("layers", int64(len(s.Layers)))
	put := func(prefix string, ls []nn.Layer) {
		for i, l := range ls {
			w.Float32s(fmt.Sprint(prefix, "w", i), l.W, l.In, l.Out)
			w.Float32s(fmt.Sprint(prefix, "b", i), l.B, l.Out)
		}
	}
	put("", s.Layers)
	put("m_", s.M)
	put("v_", s.V)
}

// unmarshal reads what marshal wrote into c's model, checked against its
// spec (nn.Model.SetState), and drops the programs built on the old
// weights.
func (c *core) unmarshal(r *persist.StateReader) error {
	s, err := c.readState(r)
	if err != nil {
		return fmt.Errorf("%s: load: %w", c.name, err)
	}
	if err := c.nm.SetState(s); err != nil {
		return fmt.Errorf("%s: load: %w", c.name, err)
	}
	c.drop()
	return nil
}

func (c *core) readState(r *persist.StateReader) (nn.ModelState, error) {
	var s nn.ModelState
	var err error
	if s.Steps, err = r.Int64("steps"); err != nil {
		return s, err
	}
	if s.RNG, err = r.Bytes("rng"); err != nil {
		return s, err
	}
	n, err := r.Int("layers")
	if err != nil {
		return s, err
	}
	want := len(c.nm.Spec().Hidden) + 1
	if n != 0 && n != want {
		return s, fmt.Errorf("state \"layers\" is %d, want %d for hidden layers %v (or 0 before the first fit)", n, want, c.nm.Spec().Hidden)
	}
	if n == 0 {
		return s, nil
	}
	get := func(prefix string) ([]nn.Layer, error) {
		ls := make([]nn.Layer, n)
		for i := range ls {
			wn, bn := fmt.Sprint(prefix, "w", i), fmt.Sprint(prefix, "b", i)
			shape := r.Shape(wn)
			w, err := r.Float32s(wn)
			if err != nil {
				return nil, err
			}
			if len(shape) != 2 {
				return nil, fmt.Errorf("state %q has shape %v, want [inputs, outputs]", wn, shape)
			}
			b, err := r.Float32s(bn)
			if err != nil {
				return nil, err
			}
			ls[i] = nn.Layer{In: shape[0], Out: shape[1], W: w, B: b}
		}
		return ls, nil
	}
	if s.Layers, err = get(""); err != nil {
		return s, err
	}
	if r.Has("m_w0") {
		if s.M, err = get("m_"); err != nil {
			return s, err
		}
	}
	if r.Has("v_w0") {
		if s.V, err = get("v_"); err != nil {
			return s, err
		}
	}
	return s, nil
}

// MarshalState writes "classes", "proba" and the columns and learned
// state (see the file's comment: "features", "label", "steps", "rng",
// "layers", the tensors "w<i>", "b<i>", "m_w<i>", … of each layer).
func (m *Classifier) MarshalState(w *persist.StateWriter) error {
	w.Int64("classes", int64(m.c.outputs))
	w.Bool("proba", m.proba)
	m.c.marshal(w)
	return nil
}

// UnmarshalState reads the learned state that MarshalState wrote.
func (m *Classifier) UnmarshalState(r *persist.StateReader) error { return m.c.unmarshal(r) }

// MarshalState writes the columns and the learned state (as the
// Classifier's, without "classes" and "proba").
func (m *Regressor) MarshalState(w *persist.StateWriter) error {
	m.c.marshal(w)
	return nil
}

// UnmarshalState reads the learned state that MarshalState wrote.
func (m *Regressor) UnmarshalState(r *persist.StateReader) error { return m.c.unmarshal(r) }

// columnOptions reads the columns that marshal wrote as Options.
func columnOptions(st *persist.StateReader) ([]Option, error) {
	features, err := st.String("features")
	if err != nil {
		return nil, err
	}
	label, err := st.String("label")
	if err != nil {
		return nil, err
	}
	return []Option{Features(features), Label(label)}, nil
}

// stateNewClassifier builds a Classifier of the saved classes, columns
// and WithProba; Load then sets its Params (the spec) and its learned
// state.
func stateNewClassifier(spec persist.Spec) (flow.Step, error) {
	opts, err := columnOptions(spec.State)
	if err != nil {
		return nil, err
	}
	classes, err := spec.State.Int("classes")
	if err != nil {
		return nil, err
	}
	proba, err := spec.State.Bool("proba")
	if err != nil {
		return nil, err
	}
	if proba {
		opts = append(opts, WithProba())
	}
	return NewClassifier(classes, nn.Default(nn.CrossEntropy), opts...)
}

// stateNewRegressor builds a Regressor of the saved columns.
func stateNewRegressor(spec persist.Spec) (flow.Step, error) {
	opts, err := columnOptions(spec.State)
	if err != nil {
		return nil, err
	}
	return NewRegressor(nn.Default(nn.MSE), opts...)
}
