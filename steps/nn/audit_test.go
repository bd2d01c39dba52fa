package nn_test

// An adversarial audit of the promises of nn's doc comments: a refused
// Update, SetSpec or WithParams changes nothing; Update allocates nothing
// after the first; Mask with no dropout draws nothing; a Clone goes on
// alike and apart, optimizer state included; Params round-trips every
// field; equal specs give equal models.

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/steps/nn"
)

// TestAuditUpdateRefusedChangesNothing: an Update with gradients of
// another shape, or of no rows, is an error and leaves the model as it
// was (no step counted, no optimizer state allocated), before the first
// step and after.
func TestAuditUpdateRefusedChangesNothing(t *testing.T) {
	for _, opt := range []nn.Optimizer{nn.Adam, nn.SGD} {
		for _, stepped := range []bool{false, true} {
			m := model(t, func(s *nn.Spec) { s.Optimizer = opt })
			if stepped {
				if err := m.Update(grads(m, 0.5), 3); err != nil {
					t.Fatal(err)
				}
			}
			bad := map[string]func() ([]nn.Layer, int){
				"short weights": func() ([]nn.Layer, int) { g := grads(m, 1); g[1].W = g[1].W[:2]; return g, 3 },
				"long biases":   func() ([]nn.Layer, int) { g := grads(m, 1); g[0].B = append(g[0].B, 1); return g, 3 },
				"extra layer":   func() ([]nn.Layer, int) { g := grads(m, 1); return append(g, g[0]), 3 },
				"no layers":     func() ([]nn.Layer, int) { return nil, 3 },
				"no rows":       func() ([]nn.Layer, int) { return grads(m, 1), 0 },
				"negative rows": func() ([]nn.Layer, int) { return grads(m, 1), -2 },
			}
			for name, mk := range bad {
				before := m.State()
				g, rows := mk()
				if err := m.Update(g, rows); err == nil {
					t.Errorf("%s, stepped %v, %s: got nil; want an error", opt, stepped, name)
				}
				if !equalState(before, m.State()) {
					t.Errorf("%s, stepped %v, %s: the refused Update changed the model", opt, stepped, name)
				}
			}
		}
	}
	empty, err := nn.NewModel(nn.Default(nn.MSE))
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Update(nil, 1); err == nil {
		t.Error("Update before Init: got nil; want an error")
	}
}

// TestAuditUpdateAllocs: Update allocates nothing after the first, for
// either optimizer.
func TestAuditUpdateAllocs(t *testing.T) {
	for _, opt := range []nn.Optimizer{nn.Adam, nn.SGD} {
		m := model(t, func(s *nn.Spec) { s.Optimizer = opt; s.Hidden = []int{16, 8} })
		g := grads(m, 0.01)
		if err := m.Update(g, 4); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(20, func() { _ = m.Update(g, 4) }); n != 0 {
			t.Errorf("%s: %v allocations per Update after the first; want 0", opt, n)
		}
	}
}

// TestAuditMaskNoDropout: with Dropout 0, Mask fills 1s and draws nothing:
// the generator stays where it was.
func TestAuditMaskNoDropout(t *testing.T) {
	m := model(t, nil)
	before := m.State().RNG
	m.Mask(make([]float32, 100))
	if !slices.Equal(before, m.State().RNG) {
		t.Error("Mask with dropout 0 moved the generator")
	}
}

// TestAuditCloneAlikeAndApart: a clone fitted alike stays equal to the
// original, optimizer state and generator included, for either
// optimizer; fitting or masking one leaves the other as it was.
func TestAuditCloneAlikeAndApart(t *testing.T) {
	for _, opt := range []nn.Optimizer{nn.Adam, nn.SGD} {
		m := model(t, func(s *nn.Spec) { s.Optimizer = opt; s.Dropout = 0.3 })
		if err := m.Update(grads(m, 0.2), 2); err != nil {
			t.Fatal(err)
		}
		c := m.Clone()
		for i := range 3 {
			for _, x := range []*nn.Model{m, c} {
				x.Mask(make([]float32, 7))
				if err := x.Update(grads(x, float32(i)-0.5), 2); err != nil {
					t.Fatal(err)
				}
			}
		}
		if !equalModels(m, c) {
			t.Errorf("%s: a clone fitted alike differs from the original", opt)
		}
		before := m.State()
		c.Mask(make([]float32, 7))
		if err := c.Update(grads(c, 1), 2); err != nil {
			t.Fatal(err)
		}
		c.Layers()[0].W[0] = 42
		if !equalState(before, m.State()) {
			t.Errorf("%s: fitting, masking or writing the clone changed the original", opt)
		}
		if c.Spec().Hidden[0] = 99; m.Spec().Hidden[0] == 99 {
			t.Errorf("%s: the clone's spec shares Hidden with the original", opt)
		}
	}
}

// TestAuditSetSpecRefusedChangesNothing: a SetSpec whose spec does not
// Validate changes neither the spec nor the learned state.
func TestAuditSetSpecRefusedChangesNothing(t *testing.T) {
	m := model(t, nil)
	if err := m.Update(grads(m, 0.3), 2); err != nil {
		t.Fatal(err)
	}
	before, spec := m.State(), m.Spec()
	bad := m.Spec()
	bad.Hidden = []int{7} // would drop the state
	bad.LearningRate = -1
	if err := m.SetSpec(bad); err == nil {
		t.Fatal("SetSpec of a spec that does not Validate: got nil; want its error")
	}
	if !equalState(before, m.State()) || m.Spec().LearningRate != spec.LearningRate || !slices.Equal(m.Spec().Hidden, spec.Hidden) {
		t.Error("a refused SetSpec changed the model")
	}
}

// TestAuditParamsRoundTrip: WithParams(Params()) gives back every field
// of the spec, and WithParams leaves its receiver as it was, also when
// it refuses.
func TestAuditParamsRoundTrip(t *testing.T) {
	specs := []nn.Spec{nn.Default(nn.CrossEntropy), nn.Default(nn.MSE)}
	odd := nn.Default(nn.CrossEntropy)
	odd.Hidden, odd.Activation, odd.Optimizer, odd.Init = []int{3, 1, nn.MaxUnits}, nn.Sigmoid, nn.SGD, nn.HeUniform
	odd.LearningRate, odd.Momentum, odd.Beta1, odd.Beta2, odd.Epsilon, odd.L2, odd.Dropout = 0.123, 0.5, 0.1, 0.2, 1e-3, 0, 0.75
	odd.Seed = math.MaxInt64
	none := nn.Default(nn.MSE)
	none.Hidden = nil
	specs = append(specs, odd, none)
	for _, s := range specs {
		back, err := s.WithParams(s.Params())
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		if !slices.Equal(back.Hidden, s.Hidden) {
			t.Errorf("hidden %v came back as %v", s.Hidden, back.Hidden)
		}
		back.Hidden, s.Hidden = nil, nil
		if !reflect.DeepEqual(back, s) {
			t.Errorf("WithParams(Params()) = %+v; want %+v", back, s)
		}
	}
	s := nn.Default(nn.CrossEntropy)
	s.Hidden = []int{10, 20}
	got, err := s.WithParams(hparams.Values{nn.ParamLR: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	got.Hidden[0] = 99
	if s.Hidden[0] != 10 {
		t.Error("the spec WithParams returned shares Hidden with its receiver")
	}
	for _, p := range []hparams.Values{
		{nn.ParamLR: 0.5, nn.ParamHidden: "5,x"},
		{nn.ParamHidden: "5", nn.ParamDropout: 1.5},
		{nn.ParamHidden: "5", "nope": 1},
	} {
		out, err := s.WithParams(p)
		if err == nil {
			t.Errorf("WithParams(%v): got nil; want an error", p)
		}
		if s.LearningRate != 1e-3 || !slices.Equal(s.Hidden, []int{10, 20}) || !slices.Equal(out.Hidden, s.Hidden) || out.LearningRate != s.LearningRate {
			t.Errorf("WithParams(%v) refused but changed the spec, or returned another: %+v", p, out)
		}
	}
}

// TestAuditSameSeedSameModel: equal specs and sizes give equal models,
// fitted alike; another seed gives other weights; Init again starts over
// (weights, optimizer, generator).
func TestAuditSameSeedSameModel(t *testing.T) {
	for _, init := range []nn.Init{nn.GlorotUniform, nn.GlorotNormal, nn.HeUniform} {
		mk := func(seed uint64) *nn.Model {
			return model(t, func(s *nn.Spec) { s.Init, s.Seed, s.Dropout = init, seed, 0.2 })
		}
		a, b, other := mk(5), mk(5), mk(6)
		if !equalModels(a, b) {
			t.Errorf("%s: equal specs gave other models", init)
		}
		if slices.Equal(a.Layers()[0].W, other.Layers()[0].W) {
			t.Errorf("%s: seeds 5 and 6 gave the same weights", init)
		}
		fresh := a.State()
		a.Mask(make([]float32, 9))
		if err := a.Update(grads(a, 0.1), 1); err != nil {
			t.Fatal(err)
		}
		if err := a.Init(4, 3); err != nil {
			t.Fatal(err)
		}
		if !equalState(fresh, a.State()) {
			t.Errorf("%s: Init again did not start over", init)
		}
	}
}

// TestAuditSeedBeyondInt: the "seed" hyperparameter is an int, so a Seed
// beyond math.MaxInt cannot round-trip through Params (which persist
// saves): such a spec does not Validate, rather than coming back from a
// save with another seed.
func TestAuditSeedBeyondInt(t *testing.T) {
	for _, seed := range []uint64{math.MaxInt, math.MaxInt + 1, math.MaxUint64} {
		s := nn.Default(nn.CrossEntropy)
		s.Seed = seed
		if err := s.Validate(); err != nil {
			if seed <= math.MaxInt || !strings.Contains(err.Error(), "seed") {
				t.Errorf("seed %d: Validate: %v", seed, err)
			}
			if _, err := nn.NewModel(s); err == nil {
				t.Errorf("seed %d: NewModel accepted a spec that does not Validate", seed)
			}
			continue
		}
		back, err := s.WithParams(s.Params())
		if err != nil || back.Seed != seed {
			t.Errorf("seed %d came back from Params as %d (%v)", seed, back.Seed, err)
		}
	}
}
