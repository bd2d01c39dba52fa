package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// ModelState is the learned state of a Model as plain data, what a
// package that saves models (persist) writes and reads back: the layers,
// the optimizer's state, the count of steps and the dropout generator's
// position. It holds no spec: a state is set on a model of the spec it
// was taken from (SetState checks the shapes against it).
type ModelState struct {
	// Layers are the weights, nil before Init.
	Layers []Layer
	// M and V are the optimizer's state, of the layers' shapes: Adam's
	// first and second moments, or SGD's velocity in M (V nil). Both are
	// nil before the first Update.
	M, V []Layer
	// Steps is the number of Updates since Init.
	Steps int64
	// RNG is the dropout generator's state, as rand.PCG's MarshalBinary
	// writes it.
	RNG []byte
}

// State returns a deep copy of the model's learned state.
func (m *Model) State() ModelState {
	rng, err := m.pcg.MarshalBinary()
	if err != nil {
		panic(err) // rand.PCG.MarshalBinary never fails
	}
	return ModelState{Layers: cloneLayers(m.layers), M: cloneLayers(m.m), V: cloneLayers(m.v), Steps: m.steps, RNG: rng}
}

func cloneLayers(ls []Layer) []Layer {
	if ls == nil {
		return nil
	}
	out := make([]Layer, len(ls))
	for i, l := range ls {
		out[i] = l.clone()
	}
	return out
}

// SetState replaces the model's learned state with s (whose slices the
// model keeps: the caller must not change them), checked as Init and
// Update would leave it: the layers of Spec().Sizes for their first input
// and last output width, finite weights, optimizer state of the layers'
// shapes (V with Adam only) present exactly when Steps is above 0, and a
// generator state that rand.PCG reads. The error names what is wrong;
// nothing changes then.
func (m *Model) SetState(s ModelState) error {
	var pcg rand.PCG
	if err := pcg.UnmarshalBinary(s.RNG); err != nil {
		return fmt.Errorf("nn: set state: the generator's state: %w", err)
	}
	if err := m.checkState(s); err != nil {
		return fmt.Errorf("nn: set state: %w", err)
	}
	m.layers, m.m, m.v, m.steps = s.Layers, s.M, s.V, s.Steps
	if m.layers == nil {
		m.m, m.v = nil, nil
	}
	m.pcg = pcg
	m.rng = rand.New(&m.pcg)
	return nil
}

func (m *Model) checkState(s ModelState) error {
	if s.Steps < 0 {
		return fmt.Errorf("%d steps, want 0 or more", s.Steps)
	}
	if s.Layers == nil {
		if s.M != nil || s.V != nil || s.Steps != 0 {
			return fmt.Errorf("no layers but %d steps and optimizer state", s.Steps)
		}
		return nil
	}
	if len(s.Layers) == 0 {
		return fmt.Errorf("0 layers, want %d", len(m.spec.Hidden)+1)
	}
	in, out := s.Layers[0].In, s.Layers[len(s.Layers)-1].Out
	if in < 1 || in > MaxUnits || out < 1 || out > MaxUnits {
		return fmt.Errorf("%d inputs and %d outputs, want 1 to %d each", in, out, MaxUnits)
	}
	sizes := m.spec.Sizes(in, out)
	if len(s.Layers) != len(sizes)-1 {
		return fmt.Errorf("%d layers, want %d (sizes %v)", len(s.Layers), len(sizes)-1, sizes)
	}
	for i, l := range s.Layers {
		if err := checkLayer("layer", i, l, sizes[i], sizes[i+1]); err != nil {
			return err
		}
		for _, v := range [][]float32{l.W, l.B} {
			for _, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					return fmt.Errorf("layer %d: a weight is %v, want finite values", i, x)
				}
			}
		}
	}
	wantV := m.spec.Optimizer == Adam
	switch {
	case (s.M != nil) != (s.Steps > 0):
		return fmt.Errorf("%d steps and optimizer state present: %v; want it exactly after the first step", s.Steps, s.M != nil)
	case s.M != nil && wantV != (s.V != nil):
		return fmt.Errorf("optimizer %s with second moments present: %v", m.spec.Optimizer, s.V != nil)
	case s.M == nil && s.V != nil:
		return fmt.Errorf("second moments without first moments")
	}
	for k, st := range [][]Layer{s.M, s.V} {
		what := [...]string{"first moments", "second moments"}[k]
		if st == nil {
			continue
		}
		if len(st) != len(s.Layers) {
			return fmt.Errorf("%d layers of %s, want %d", len(st), what, len(s.Layers))
		}
		for i, l := range st {
			if err := checkLayer(what+" of layer", i, l, sizes[i], sizes[i+1]); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkLayer(what string, i int, l Layer, in, out int) error {
	if l.In != in || l.Out != out || len(l.W) != in*out || len(l.B) != out {
		return fmt.Errorf("%s %d: %d × %d with %d weights and %d biases, want %d × %d with %d and %d", what, i, l.In, l.Out, len(l.W), len(l.B), in, out, in*out, out)
	}
	return nil
}
