package nn_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/steps/nn"
)

func model(t *testing.T, mod func(*nn.Spec)) *nn.Model {
	t.Helper()
	s := nn.Default(nn.CrossEntropy)
	s.Hidden = []int{5}
	if mod != nil {
		mod(&s)
	}
	m, err := nn.NewModel(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(4, 3); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestInit(t *testing.T) {
	for _, init := range []nn.Init{nn.GlorotUniform, nn.GlorotNormal, nn.HeUniform} {
		a := model(t, func(s *nn.Spec) { s.Init = init })
		b := model(t, func(s *nn.Spec) { s.Init = init })
		c := model(t, func(s *nn.Spec) { s.Init, s.Seed = init, 1 })
		if !slices.Equal(a.Layers()[0].W, b.Layers()[0].W) {
			t.Errorf("%s: the same seed gave other weights", init)
		}
		if slices.Equal(a.Layers()[0].W, c.Layers()[0].W) {
			t.Errorf("%s: seeds 0 and 1 gave the same weights", init)
		}
		for i, l := range a.Layers() {
			limit := math.Sqrt(6 / float64(l.In+l.Out))
			if init == nn.HeUniform {
				limit = math.Sqrt(6 / float64(l.In))
			}
			var sq float64
			for _, w := range l.W {
				if init != nn.GlorotNormal && math.Abs(float64(w)) > limit {
					t.Errorf("%s: layer %d: weight %v beyond ±%.3f", init, i, w, limit)
				}
				sq += float64(w) * float64(w)
			}
			if sq == 0 {
				t.Errorf("%s: layer %d: all weights 0", init, i)
			}
			if slices.ContainsFunc(l.B, func(b float32) bool { return b != 0 }) {
				t.Errorf("%s: layer %d: biases %v; want 0", init, i, l.B)
			}
		}
	}
	m := model(t, nil)
	if got := [2]int{m.Inputs(), m.Outputs()}; got != [2]int{4, 3} {
		t.Errorf("inputs, outputs: got %v; want [4 3]", got)
	}
	if err := m.Init(0, 3); err == nil {
		t.Error("Init(0, 3): got no error")
	}
}

// grads returns gradients of m's shapes, all g.
func grads(m *nn.Model, g float32) []nn.Layer {
	out := m.Weights()
	for _, l := range out {
		for i := range l.W {
			l.W[i] = g
		}
		for i := range l.B {
			l.B[i] = g
		}
	}
	return out
}

func TestAdam(t *testing.T) {
	m := model(t, func(s *nn.Spec) { s.L2 = 0 })
	w0 := m.Weights()
	// Adam's first step moves every parameter by lr·g/(|g|+ε') ≈ lr
	// against the gradient's sign, whatever its size.
	if err := m.Update(grads(m, 0.3), 10); err != nil {
		t.Fatal(err)
	}
	for i, l := range m.Layers() {
		for j, w := range l.W {
			if d := float64(w0[i].W[j] - w); math.Abs(d-1e-3) > 1e-6 {
				t.Fatalf("layer %d weight %d moved by %v; want 0.001", i, j, d)
			}
		}
	}
	// Second step, by hand: m = 0.9·m₁ + 0.1·g, v likewise, bias-corrected.
	w1 := m.Weights()
	g2 := float64(-0.1)
	if err := m.Update(grads(m, float32(g2)), 10); err != nil {
		t.Fatal(err)
	}
	m1, v1 := 0.1*0.3, 0.001*0.09
	m2, v2 := 0.9*m1+0.1*g2, 0.999*v1+0.001*g2*g2
	rate := 1e-3 * math.Sqrt(1-0.999*0.999) / (1 - 0.9*0.9)
	want := float64(w1[0].W[0]) - rate*m2/(math.Sqrt(v2)+1e-8)
	if got := float64(m.Layers()[0].W[0]); math.Abs(got-want) > 1e-6 {
		t.Errorf("second Adam step: got %v; want %v", got, want)
	}
	if m.Steps() != 2 {
		t.Errorf("steps: got %d; want 2", m.Steps())
	}
}

func TestSGDAndL2(t *testing.T) {
	m := model(t, func(s *nn.Spec) { s.Optimizer, s.LearningRate, s.Momentum, s.L2 = nn.SGD, 0.1, 0.5, 2 })
	w0 := m.Weights()
	if err := m.Update(grads(m, 1), 4); err != nil {
		t.Fatal(err)
	}
	w1 := m.Weights()
	if err := m.Update(grads(m, 1), 4); err != nil {
		t.Fatal(err)
	}
	// v₁ = −0.1·(1 + 2/4·w₀); v₂ = 0.5·v₁ − 0.1·(1 + 2/4·w₁). Biases have no L2.
	w, w1w := float64(w0[0].W[0]), float64(w1[0].W[0])
	v1 := -0.1 * (1 + 0.5*w)
	if got := w1w; math.Abs(got-(w+v1)) > 1e-6 {
		t.Errorf("first SGD step: got %v; want %v", got, w+v1)
	}
	v2 := 0.5*v1 - 0.1*(1+0.5*w1w)
	if got := float64(m.Layers()[0].W[0]); math.Abs(got-(w1w+v2)) > 1e-6 {
		t.Errorf("second SGD step: got %v; want %v", got, w1w+v2)
	}
	if got := m.Layers()[0].B[0]; math.Abs(float64(got)-(-0.1-0.15)) > 1e-6 {
		t.Errorf("bias after two steps: got %v; want -0.25 (no L2 on biases)", got)
	}
	if err := m.Update(grads(m, 1)[:1], 4); err == nil || !strings.Contains(err.Error(), "1 layers of gradients for 2") {
		t.Errorf("update with one layer of gradients: got %v", err)
	}
}

func TestMaskAndClone(t *testing.T) {
	m := model(t, func(s *nn.Spec) { s.Dropout = 0.25 })
	mask := make([]float32, 10000)
	m.Mask(mask)
	zeros := 0
	for _, v := range mask {
		switch v {
		case 0:
			zeros++
		case float32(1 / 0.75):
		default:
			t.Fatalf("mask value %v; want 0 or 1/0.75", v)
		}
	}
	if zeros < 2300 || zeros > 2700 {
		t.Errorf("%d of 10000 dropped; want about 2500", zeros)
	}
	c := m.Clone()
	a, b := make([]float32, 64), make([]float32, 64)
	m.Mask(a)
	c.Mask(b)
	if !slices.Equal(a, b) {
		t.Error("a clone drew another mask: the generator was not copied")
	}
	m.Mask(b)
	if slices.Equal(a, b) {
		t.Error("two masks in a row are equal")
	}
	if err := c.Update(grads(c, 1), 1); err != nil {
		t.Fatal(err)
	}
	if slices.Equal(c.Layers()[0].W, m.Layers()[0].W) {
		t.Error("updating a clone changed the original")
	}
	none := model(t, nil)
	none.Mask(a)
	if slices.ContainsFunc(a, func(v float32) bool { return v != 1 }) {
		t.Error("dropout 0: the mask is not all 1s")
	}
}

func TestSetSpec(t *testing.T) {
	m := model(t, nil)
	if err := m.Update(grads(m, 1), 1); err != nil {
		t.Fatal(err)
	}
	s := m.Spec()
	s.LearningRate = 0.1
	if err := m.SetSpec(s); err != nil || !m.Initialized() || m.Steps() != 1 {
		t.Errorf("a new learning rate: err %v, initialised %v, steps %d; want the state kept", err, m.Initialized(), m.Steps())
	}
	s.Optimizer = nn.SGD
	if err := m.SetSpec(s); err != nil || !m.Initialized() || m.Steps() != 0 {
		t.Errorf("a new optimizer: err %v, initialised %v, steps %d; want the weights kept, the optimizer reset", err, m.Initialized(), m.Steps())
	}
	s.Hidden = []int{7}
	if err := m.SetSpec(s); err != nil || m.Initialized() {
		t.Errorf("a new network: err %v, initialised %v; want the state dropped", err, m.Initialized())
	}
	s.Dropout = 1
	if err := m.SetSpec(s); err == nil || !strings.Contains(err.Error(), "dropout 1") {
		t.Errorf("dropout 1: got %v", err)
	}
}

func TestParams(t *testing.T) {
	s := nn.Default(nn.MSE)
	back, err := s.WithParams(s.Params())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Hidden, s.Hidden) || back.LearningRate != s.LearningRate || back.Loss != s.Loss {
		t.Errorf("WithParams(Params()) = %+v; want %+v", back, s)
	}
	// The defaults lie in the space.
	sp := s.Space()
	for k, v := range s.Params() {
		if d, ok := sp[k]; ok && !d.Contains(v) {
			t.Errorf("default %s = %v is not in %v", k, v, d)
		}
	}
	if err := sp.Check(); err != nil {
		t.Fatal(err)
	}
	got, err := s.WithParams(hparams.Values{"hidden": " 128, 64 ", "optimizer": "sgd", "seed": 9, "lr": 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Hidden, []int{128, 64}) || got.Optimizer != nn.SGD || got.Seed != 9 || got.LearningRate != 1 {
		t.Errorf("WithParams: got %+v", got)
	}
	for _, tc := range []struct {
		v    hparams.Values
		want string
	}{
		{hparams.Values{"hidden": "0"}, `part 0 ("0")`},
		{hparams.Values{"activation": "gelu"}, `activation "gelu"`},
		{hparams.Values{"seed": -1}, "want 0 or more"},
		{hparams.Values{"lr": "fast"}, `"lr"`},
		{hparams.Values{"width": 3}, `unknown parameter "width"`},
	} {
		if _, err := s.WithParams(tc.v); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WithParams(%v): got %v; want an error containing %q", tc.v, err, tc.want)
		}
	}
	if h, err := nn.ParseHidden(""); err != nil || h != nil {
		t.Errorf(`ParseHidden(""): got %v, %v; want no layers`, h, err)
	}
	if got := nn.FormatHidden([]int{3, 2}); got != "3,2" {
		t.Errorf("FormatHidden: got %q", got)
	}
}

func TestValidate(t *testing.T) {
	s := nn.Default(nn.CrossEntropy)
	s.Activation, s.Loss, s.Optimizer, s.Init = "a", "b", "c", "d"
	s.LearningRate, s.Momentum, s.Beta1, s.Beta2, s.Epsilon, s.L2, s.Dropout = math.Inf(1), 1, -1, 2, 0, math.NaN(), -0.1
	err := s.Validate()
	for _, want := range []string{"activation", "loss", "optimizer", "init", "learning rate", "momentum", "beta1", "beta2", "epsilon", "l2", "dropout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: got %v; want it to name %s", err, want)
		}
	}
}
