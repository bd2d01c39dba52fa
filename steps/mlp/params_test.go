package mlp_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/steps/mlp"
	"github.com/penstock-ml/penstock/steps/nn"
)

func TestParams(t *testing.T) {
	m := newClassifier(t, smallSpec())
	p := pipeline(t, m)
	got, err := hparams.Get(p)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{"mlp__hidden": "16", "mlp__lr": 0.01, "mlp__optimizer": "adam", "mlp__loss": "cross_entropy", "mlp__dropout": 0.0, "mlp__seed": 0} {
		if got[key] != want {
			t.Errorf("Get: %s = %v; want %v", key, got[key], want)
		}
	}
	if _, ok := got["mlp__momentum"]; ok {
		t.Error("Get returned momentum; want it only with optimizer sgd")
	}
	space, err := hparams.Gather(p)
	if err != nil {
		t.Fatal(err)
	}
	// Set of a sample, then Get, gives the sample back.
	r := hparams.NewRand(3)
	for range 20 {
		v, err := space.Sample(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := hparams.Set(p, v); err != nil {
			t.Fatalf("Set(%v): %v", v, err)
		}
		back, err := hparams.Get(p)
		if err != nil {
			t.Fatal(err)
		}
		for k, x := range v {
			if back[k] != x {
				t.Errorf("after Set of a sample, %s = %v; want %v", k, back[k], x)
			}
		}
	}
	for _, tc := range []struct {
		v    hparams.Values
		want string
	}{
		{hparams.Values{"mlp__lr": -1.0}, "mlp__lr"},
		{hparams.Values{"mlp__activation": "gelu"}, "mlp__activation"},
		{hparams.Values{"mlp__loss": "mse"}, "mlp__loss"},
		{hparams.Values{"mlp__units": 3}, "mlp__units"},
	} {
		if err := hparams.Set(p, tc.v); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Set(%v): got %v; want an error naming %s", tc.v, err, tc.want)
		}
	}
	if err := m.SetParams(hparams.Values{"hidden": "8,x"}); err == nil || !strings.Contains(err.Error(), `"8,x"`) {
		t.Errorf(`SetParams(hidden "8,x"): got %v; want an error naming the value`, err)
	}
	if err := m.SetParams(hparams.Values{"loss": "mse"}); err == nil || !strings.Contains(err.Error(), "cross_entropy") {
		t.Errorf(`SetParams(loss "mse") on a classifier: got %v; want an error saying it must be cross_entropy`, err)
	}
}

// TestSetParamsKeepsOrDrops: a new learning rate fine-tunes the fitted
// weights; a new network starts over.
func TestSetParamsKeepsOrDrops(t *testing.T) {
	defer goleak.VerifyNone(t)
	r := flow.Runner{Allocator: checked(t)}
	ctx := deadline(t, 30*time.Second)
	m := newClassifier(t, smallSpec())
	fitBlobs(t, ctx, r, pipeline(t, m), 1)
	w := m.Weights()
	if err := m.SetParams(hparams.Values{"lr": 0.001, "dropout": 0.1}); err != nil {
		t.Fatal(err)
	}
	if !equalLayers(m.Weights(), w) {
		t.Error("a new learning rate dropped the weights")
	}
	fitBlobs(t, ctx, r, pipeline(t, m), 1) // the graph with dropout is built anew
	if err := m.SetParams(hparams.Values{"hidden": "8,8"}); err != nil {
		t.Fatal(err)
	}
	if m.Weights() != nil || m.Steps() != 0 {
		t.Error("a new network kept the old weights")
	}
	fitBlobs(t, ctx, r, pipeline(t, m), 1)
	if got := len(m.Weights()); got != 3 {
		t.Errorf("after hidden 8,8: %d layers; want 3", got)
	}
}

func TestErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checked(t)
	ctx := flow.WithAllocator(deadline(t, 10*time.Second), mem)
	for _, tc := range []struct {
		classes int
		spec    func(*nn.Spec)
		want    string
	}{
		{1, func(*nn.Spec) {}, "1 classes, want 2"},
		{3, func(s *nn.Spec) { s.Loss = nn.MSE }, `loss "mse", want "cross_entropy"`},
		{3, func(s *nn.Spec) { s.LearningRate = 0 }, "learning rate 0"},
		{3, func(s *nn.Spec) { s.Hidden = []int{0} }, "hidden layer 0 has 0 units"},
	} {
		spec := smallSpec()
		tc.spec(&spec)
		if _, err := mlp.NewClassifier(tc.classes, spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewClassifier(%d, …): got %v; want an error containing %q", tc.classes, err, tc.want)
		}
	}
	if _, err := mlp.NewRegressor(smallSpec()); err == nil || !strings.Contains(err.Error(), `want "mse"`) {
		t.Errorf("NewRegressor with cross-entropy: got %v; want an error asking for mse", err)
	}

	m := newClassifier(t, smallSpec(), mlp.Features("f"), mlp.Label("digit"))
	setUp(t, m)
	xs, ys := blobs(6, 1)
	y := int64Record(mem, "y", ys)
	b := batch(mem, 4, xs, y)
	defer b.Release()
	if err := m.Fit(ctx, b); err == nil || !strings.Contains(err.Error(), `no column "f"`) {
		t.Errorf("fit without the features column: got %v; want an error naming it", err)
	}
	m = newClassifier(t, smallSpec(), mlp.Label("digit"))
	setUp(t, m)
	m.Reset()
	if err := m.Fit(ctx, flow.Batch{X: b.X, Y: b.Y}); err == nil || !strings.Contains(err.Error(), `no column "digit"`) {
		t.Errorf("fit without the label column: got %v; want an error naming it", err)
	}
	m = newClassifier(t, smallSpec())
	setUp(t, m)
	bad := int64Record(mem, "y", []int64{0, 1, 2, 3, 0, 1})
	bb := batch(mem, 4, xs, bad)
	defer bb.Release()
	if err := m.Fit(ctx, bb); err == nil || !strings.Contains(err.Error(), `column "y" of Y, row 3, holds 3; want 0 to 2 (classes is 3)`) {
		t.Errorf("fit with class 3 of 3: got %v; want an error naming the row and the class", err)
	}
	if err := m.Fit(ctx, b); err != nil {
		t.Fatal(err)
	}
	narrow := batch(mem, 2, xs, nil)
	defer narrow.Release()
	if _, err := m.Transform(ctx, narrow); err == nil || !strings.Contains(err.Error(), "width 2, want 4") {
		t.Errorf("transform of 2 features after a fit on 4: got %v; want an error naming both widths", err)
	}
	// A diverging fit says so.
	spec := smallSpec()
	spec.Optimizer, spec.LearningRate = nn.SGD, 1e30
	div := newClassifier(t, spec)
	setUp(t, div)
	var err error
	for range 5 {
		if err = div.Fit(ctx, b); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "diverged") {
		t.Errorf("fit at learning rate 1e30: got %v; want an error saying it diverged", err)
	}
	// A cancelled context stops a fit.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Fit(cancelled, b); !errors.Is(err, context.Canceled) {
		t.Errorf("fit with a cancelled context: got %v; want context.Canceled", err)
	}
}

// TestRegressor fits y = x₀ − 2·x₁ + noise and predicts it.
func TestRegressor(t *testing.T) {
	engines(t, func(t *testing.T, r flow.Runner) {
		ctx := deadline(t, 30*time.Second)
		gen := rand.New(rand.NewPCG(5, 5))
		n := 512
		xs, ys := make([]float32, n*2), make([]float32, n)
		for i := range n {
			a, b := float32(gen.NormFloat64()), float32(gen.NormFloat64())
			xs[2*i], xs[2*i+1] = a, b
			ys[i] = a - 2*b + 0.05*float32(gen.NormFloat64())
		}
		x := batch(r.Allocator, 2, xs, float32Record(r.Allocator, "y", ys))
		src := minibatchOf(t, x)
		x.Release()
		spec := nn.Default(nn.MSE)
		spec.Hidden, spec.LearningRate = []int{16}, 0.01
		m, err := mlp.NewRegressor(spec)
		if err != nil {
			t.Fatal(err)
		}
		perm, err := minibatchPermute(src)
		if err != nil {
			t.Fatal(err)
		}
		defer perm.Close()
		stream, err := repeat(perm, 30)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Fit(ctx, pipeline(t, m), stream); err != nil {
			t.Fatal(err)
		}
		if err := src.(interface{ Rewind() error }).Rewind(); err != nil {
			t.Fatal(err)
		}
		scores, err := metrics.Score(ctx, r, pipeline(t, m), src, mlp.PredColumn, "y", metrics.MSE(), metrics.R2())
		if err != nil {
			t.Fatal(err)
		}
		if scores["r2"] < 0.98 || math.IsNaN(scores["mse"]) {
			t.Errorf("regression: R² %.4f, MSE %.4f; want R² at least 0.98", scores["r2"], scores["mse"])
		}
	})
}
