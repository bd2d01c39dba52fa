package nn_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/steps/nn"
)

// TestStateRoundTrip: a model given another's State goes on exactly as
// that one does (weights, moments, steps and dropout masks), with Adam
// and with SGD, and State is a copy.
func TestStateRoundTrip(t *testing.T) {
	for _, opt := range []nn.Optimizer{nn.Adam, nn.SGD} {
		a := model(t, func(s *nn.Spec) { s.Optimizer, s.Dropout, s.Seed = opt, 0.3, 9 })
		mask := make([]float32, 20)
		a.Mask(mask) // move the generator on
		for range 3 {
			if err := a.Update(grads(a, 0.1), 4); err != nil {
				t.Fatal(err)
			}
		}
		st := a.State()
		if st.Steps != 3 || len(st.Layers) != 2 || len(st.M) != 2 || (opt == nn.Adam) != (st.V != nil) {
			t.Fatalf("%s: state of %d steps, %d layers, %d and %d moments; want 3, 2, 2 and %d", opt, st.Steps, len(st.Layers), len(st.M), len(st.V), map[bool]int{true: 2}[opt == nn.Adam])
		}
		st.Layers[0].W[0] += 1 // a copy: a is unchanged
		if a.Layers()[0].W[0] == st.Layers[0].W[0] {
			t.Fatalf("%s: State shares the weights with the model", opt)
		}
		st = a.State()
		b := model(t, func(s *nn.Spec) { s.Optimizer, s.Dropout, s.Seed = opt, 0.3, 9 })
		b.Reset()
		if err := b.SetState(st); err != nil {
			t.Fatal(err)
		}
		for _, m := range []*nn.Model{a, b} {
			m.Mask(mask)
			if err := m.Update(grads(m, -0.2), 4); err != nil {
				t.Fatal(err)
			}
		}
		ma, mb := make([]float32, 50), make([]float32, 50)
		a.Mask(ma)
		b.Mask(mb)
		if !slices.Equal(ma, mb) {
			t.Errorf("%s: the masks differ after SetState", opt)
		}
		if !equalModels(a, b) || a.Steps() != b.Steps() {
			t.Errorf("%s: the models differ after SetState and one update", opt)
		}
	}
	// The state of a model never fitted.
	a := model(t, nil)
	a.Reset()
	b := model(t, nil)
	if err := b.SetState(a.State()); err != nil {
		t.Fatal(err)
	}
	if b.Initialized() || b.Steps() != 0 {
		t.Errorf("SetState of an empty state: initialized %v, %d steps; want false, 0", b.Initialized(), b.Steps())
	}
}

func equalModels(a, b *nn.Model) bool { return equalState(a.State(), b.State()) }

// TestSetStateRefuses: a state that Init and Update could not have left
// is an error that names what is wrong, and the model is unchanged.
func TestSetStateRefuses(t *testing.T) {
	fitted := func() nn.ModelState {
		m := model(t, nil)
		if err := m.Update(grads(m, 0.1), 2); err != nil {
			t.Fatal(err)
		}
		return m.State()
	}
	cases := []struct {
		name string
		mod  func(*nn.ModelState)
		want string
	}{
		{"rng", func(s *nn.ModelState) { s.RNG = []byte("nope") }, "generator"},
		{"steps", func(s *nn.ModelState) { s.Steps = -1 }, "-1 steps"},
		{"layers", func(s *nn.ModelState) { s.Layers = s.Layers[:1] }, "1 layers, want 2"},
		{"shape", func(s *nn.ModelState) { s.Layers[1].W = s.Layers[1].W[:3] }, "layer 1"},
		{"nan", func(s *nn.ModelState) { s.Layers[0].B[2] = float32(math.NaN()) }, "NaN"},
		{"no moments", func(s *nn.ModelState) { s.M, s.V = nil, nil }, "optimizer state"},
		{"no second moments", func(s *nn.ModelState) { s.V = nil }, "second moments"},
		{"moment shape", func(s *nn.ModelState) { s.M[0].B = nil }, "first moments of layer 0"},
		{"steps without layers", func(s *nn.ModelState) { s.Layers, s.M, s.V = nil, nil, nil }, "no layers"},
	}
	for _, c := range cases {
		st := fitted()
		c.mod(&st)
		m := model(t, nil)
		before := m.State()
		err := m.SetState(st)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v; want one containing %q", c.name, err, c.want)
		}
		if !equalState(before, m.State()) {
			t.Errorf("%s: a refused state changed the model", c.name)
		}
	}
}

func equalState(x, y nn.ModelState) bool {
	eq := func(p, q []nn.Layer) bool {
		return slices.EqualFunc(p, q, func(l, m nn.Layer) bool {
			return l.In == m.In && l.Out == m.Out && slices.Equal(l.W, m.W) && slices.Equal(l.B, m.B)
		})
	}
	return eq(x.Layers, y.Layers) && eq(x.M, y.M) && eq(x.V, y.V) && x.Steps == y.Steps && slices.Equal(x.RNG, y.RNG)
}
