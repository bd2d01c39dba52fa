package gpu

import (
	"errors"
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps/nn"
)

// This file saves and loads the Stage with package persist, as
// steps/mlp saves its Classifier: the hyperparameters are the Params
// (persist saves them), and the state written here holds the columns, the
// classes, the slots and what was learned, in steps/mlp's layout.

const typeName = "gpu.Stage"

var _ persist.Stater = (*Stage)(nil)

// Register registers the Stage in r, at version 1, as "gpu.Stage".
// Package gpu registers it in persist.Default when it is imported. A
// loaded stage opens the CPU device; UseDevice sets another (the device
// is not saved: a CUDA device, say, is opened where the model runs).
func Register(r *persist.Registry) error {
	return r.Register(persist.Type{Name: typeName, Version: 1, Of: (*Stage)(nil), New: stateNewStage})
}

func init() {
	if err := Register(persist.Default); err != nil {
		panic(err) // a bug of this package: the name is its own
	}
}

// UseDevice sets how the owner opens the device from the next Setup on
// (as the option WithDevice). Not during a run.
func (s *Stage) UseDevice(open func() (Device, error)) error {
	if open == nil {
		return fmt.Errorf("%s: use device: open is nil", stageName)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.r != nil {
		return fmt.Errorf("%s: use device during a run; tear it down first", stageName)
	}
	s.open = open
	return nil
}

// MarshalState writes "classes", "features", "label", "slots", "steps"
// (Adam's), "rng" (the model's generator, unused without dropout),
// "layers" (their count, 0 before the first fit) and, for each layer i,
// the float32 tensors "w<i>" [in, out] and "b<i>" [out] and, after the
// first step, Adam's moments "m_w<i>", "m_b<i>", "v_w<i>", "v_b<i>":
// steps/mlp's names and shapes. During a run it first waits for the
// queued batches and downloads the learned state (the run goes on).
func (s *Stage) MarshalState(w *persist.StateWriter) error {
	if err := s.sync("save"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Int64("classes", int64(s.classes))
	w.String("features", s.features)
	w.String("label", s.label)
	w.Int64("slots", int64(s.slots))
	st := s.nm.State()
	w.Int64("steps", s.opt.steps)
	w.Bytes("rng", st.RNG)
	w.Int64("layers", int64(len(st.Layers)))
	off := 0
	for i, l := range st.Layers {
		w.Float32s(fmt.Sprint("w", i), l.W, l.In, l.Out)
		w.Float32s(fmt.Sprint("b", i), l.B, l.Out)
		if s.opt.steps > 0 && len(s.opt.m) > 0 {
			nw, nb := len(l.W), len(l.B)
			w.Float32s(fmt.Sprint("m_w", i), s.opt.m[off:off+nw], l.In, l.Out)
			w.Float32s(fmt.Sprint("m_b", i), s.opt.m[off+nw:off+nw+nb], l.Out)
			w.Float32s(fmt.Sprint("v_w", i), s.opt.v[off:off+nw], l.In, l.Out)
			w.Float32s(fmt.Sprint("v_b", i), s.opt.v[off+nw:off+nw+nb], l.Out)
			off += nw + nb
		}
	}
	return nil
}

// sync downloads the learned state of a run into host memory, after the
// queued batches, for op (a save, a copy); outside a run it does nothing.
func (s *Stage) sync(op string) error {
	s.mu.Lock()
	r := s.r
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	if err := r.failed(); err != nil {
		return fmt.Errorf("%s: %s: %w", stageName, op, err)
	}
	r.mu.Lock()
	fitted := r.onDevice
	r.mu.Unlock()
	if !fitted {
		return nil
	}
	err := r.owner.Do(func(dev Device) error {
		if err := dev.SynchronizeAll(); err != nil {
			return err
		}
		return r.download(dev)
	})
	if err != nil {
		return r.fail(fmt.Errorf("%s: %s: %w", stageName, op, err))
	}
	return nil
}

// UnmarshalState reads what MarshalState wrote, checked against the
// stage's spec (the shapes of the layers and of Adam's moments). Not
// during a run.
func (s *Stage) UnmarshalState(r *persist.StateReader) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.r != nil {
		return fmt.Errorf("%s: load during a run; tear it down first", stageName)
	}
	ms, opt, err := s.readState(r)
	if err != nil {
		return fmt.Errorf("%s: load: %w", stageName, err)
	}
	if err := s.nm.SetState(ms); err != nil {
		return fmt.Errorf("%s: load: %w", stageName, err)
	}
	if ms.Layers != nil && ms.Layers[len(ms.Layers)-1].Out != s.classes {
		return fmt.Errorf("%s: load: the last layer has %d outputs, want %d classes", stageName, ms.Layers[len(ms.Layers)-1].Out, s.classes)
	}
	s.opt = opt
	return nil
}

func (s *Stage) readState(r *persist.StateReader) (nn.ModelState, optState, error) {
	var ms nn.ModelState
	var opt optState
	var err error
	if opt.steps, err = r.Int64("steps"); err != nil {
		return ms, opt, err
	}
	if opt.steps < 0 {
		return ms, opt, fmt.Errorf("state \"steps\" is %d, want 0 or more", opt.steps)
	}
	if ms.RNG, err = r.Bytes("rng"); err != nil {
		return ms, opt, err
	}
	n, err := r.Int("layers")
	if err != nil {
		return ms, opt, err
	}
	want := len(s.nm.Spec().Hidden) + 1
	if n != 0 && n != want {
		return ms, opt, fmt.Errorf("state \"layers\" is %d, want %d for hidden layers %v (or 0 before the first fit)", n, want, s.nm.Spec().Hidden)
	}
	if n == 0 {
		if opt.steps != 0 {
			return ms, opt, fmt.Errorf("state \"steps\" is %d with no layers, want 0", opt.steps)
		}
		return ms, opt, nil
	}
	moments := opt.steps > 0
	for i := range n {
		wn, bn := fmt.Sprint("w", i), fmt.Sprint("b", i)
		shape := r.Shape(wn)
		w, err := r.Float32s(wn)
		if err != nil {
			return ms, opt, err
		}
		if len(shape) != 2 {
			return ms, opt, fmt.Errorf("state %q has shape %v, want [inputs, outputs]", wn, shape)
		}
		b, err := r.Float32s(bn)
		if err != nil {
			return ms, opt, err
		}
		ms.Layers = append(ms.Layers, nn.Layer{In: shape[0], Out: shape[1], W: w, B: b})
		if !moments {
			continue
		}
		for _, m := range []struct {
			name string
			dst  *[]float32
			n    int
		}{{"m_w", &opt.m, len(w)}, {"m_b", &opt.m, len(b)}, {"v_w", &opt.v, len(w)}, {"v_b", &opt.v, len(b)}} {
			name := fmt.Sprint(m.name, i)
			v, err := r.Float32s(name)
			if err != nil {
				return ms, opt, fmt.Errorf("%w (Adam's moments, present after the first of %d steps)", err, opt.steps)
			}
			if len(v) != m.n {
				return ms, opt, fmt.Errorf("state %q has %d values, want %d (the layer's)", name, len(v), m.n)
			}
			*m.dst = append(*m.dst, v...)
		}
	}
	if !moments && (r.Has("m_w0") || r.Has("v_w0")) {
		return ms, opt, errors.New("state \"m_w0\" (Adam's moments) is saved with 0 steps; want the moments only after the first step")
	}
	// The flat layout: each layer's W then its B, moments alike. The
	// moments above were appended as m_w0, m_b0, m_w1, …: the same order.
	return ms, opt, nil
}

// stateNewStage builds a stage of the saved classes, columns and slots;
// Load then sets its Params (the spec) and its learned state.
func stateNewStage(spec persist.Spec) (flow.Step, error) {
	st := spec.State
	classes, err := st.Int("classes")
	if err != nil {
		return nil, err
	}
	features, err := st.String("features")
	if err != nil {
		return nil, err
	}
	label, err := st.String("label")
	if err != nil {
		return nil, err
	}
	slots, err := st.Int("slots")
	if err != nil {
		return nil, err
	}
	return NewStage(classes, nn.Default(nn.CrossEntropy), Features(features), Label(label), Slots(slots))
}
