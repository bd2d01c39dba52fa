package steps_test

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/steps"
)

// TestTrainOnlyTestOnly: TrainOnly's child runs (and is fitted) on the fit
// path only, TestOnly's on the transform path only (never fitted), in
// both engines, with the same results.
func TestTrainOnlyTestOnly(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	var outs [][]metaOut
	for _, r := range metaRunners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			train := newMetaMean("x", 0)
			test := newMetaMean("x", 0)
			test.n, test.sum = 1, 100 // fitted beforehand: mean 100
			p := metaPipeline(t,
				flow.Named("train", metaMust[*steps.TrainOnly](t)(steps.NewTrainOnly(flow.Named("center", train)))),
				flow.Named("test", metaMust[*steps.TestOnly](t)(steps.NewTestOnly(flow.Named("shift", test)))),
			)
			src := metaTensors(t, mem, 20, 5)
			fit := metaFitTransform(ctx, t, r, p, src, "x", "y")
			for i, v := range fit.x {
				// centred by the running mean, not shifted by test
				n := float64((i/5 + 1) * 5)
				if want := float64(i) - (n-1)/2; v != want {
					t.Fatalf("fit-transform row %d: got %v; want %v", i, v, want)
				}
			}
			train.check(t, "train child after fit-transform", 1, 4, 4)
			test.check(t, "test child after fit-transform", 1, 0, 0)
			if test.n != 1 {
				t.Errorf("TestOnly's child was fitted: n %v", test.n)
			}
			tr := metaTransform(ctx, t, r, p, metaRewind(t, src), "x", "y")
			for i, v := range tr.x {
				if want := float64(i) - 100; v != want {
					t.Fatalf("transform row %d: got %v; want %v (not centred, shifted by 100)", i, v, want)
				}
			}
			train.check(t, "train child after transform", 2, 4, 4)
			test.check(t, "test child after transform", 2, 0, 4)
			if _, err := r.Fit(ctx, p, metaRewind(t, src)); err != nil {
				t.Fatal(err)
			}
			train.check(t, "train child after fit", 3, 8, 8) // fit-transform: test, after it, counts as fittable
			if train.n != 40 || test.n != 1 {
				t.Errorf("after two fits: train saw %v values (want 40), test %v (want 1)", train.n, test.n)
			}
			outs = append(outs, []metaOut{fit, tr})
		})
	}
	if len(outs) == 2 && (!outs[0][0].equal(outs[1][0]) || !outs[0][1].equal(outs[1][1])) {
		t.Errorf("engines differ: %v; %v", outs[0], outs[1])
	}
}

// TestFreeze: a frozen step is never fitted, whether it is a stage, a
// step of a sub-pipeline, or a metastep's child; it transforms with the
// state it had.
func TestFreeze(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	for _, r := range metaRunners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			stage, inner, child := newMetaMean("x", 0), newMetaMean("x", 0), newMetaMean("x", 0)
			stage.n, stage.sum = 1, 1
			sub := metaPipeline(t, steps.Freeze(flow.Named("inner", inner)), flow.Named("live", newMetaMean("x", 0)))
			p := metaPipeline(t,
				steps.Freeze(flow.Named("stage", stage)),
				flow.Named("sub", sub),
				flow.Named("train", metaMust[*steps.TrainOnly](t)(steps.NewTrainOnly(steps.Freeze(flow.Named("child", child))))),
			)
			src := metaTensors(t, mem, 10, 5)
			if _, err := r.Fit(ctx, p, src); err != nil {
				t.Fatal(err)
			}
			fit := metaFitTransform(ctx, t, r, p, metaRewind(t, src), "x", "")
			for _, m := range []*metaMean{stage, inner, child} {
				if m.fits.Load() != 0 {
					t.Errorf("a frozen step was fitted %d times", m.fits.Load())
				}
			}
			if stage.n != 1 || len(fit.x) != 10 {
				t.Errorf("frozen stage's state changed (n %v) or rows lost (%d)", stage.n, len(fit.x))
			}
			if child.transforms.Load() != 2 {
				t.Errorf("the frozen child of TrainOnly was transformed %d times on the fit path; want 2", child.transforms.Load())
			}
		})
	}
}

func TestWrapConstructorsRefuse(t *testing.T) {
	bad := []flow.Node{flow.Named("", metaTimes{"x", 1}), flow.Named("a__b", metaTimes{"x", 1}), flow.Named("_a", metaTimes{"x", 1}), flow.Named("a", (*metaMean)(nil))}
	for _, n := range bad {
		for name, mk := range map[string]func(flow.Node) error{
			"TrainOnly": func(n flow.Node) error { _, err := steps.NewTrainOnly(n); return err },
			"TestOnly":  func(n flow.Node) error { _, err := steps.NewTestOnly(n); return err },
			"OnY":       func(n flow.Node) error { _, err := steps.NewOnY(n); return err },
			"Optional":  func(n flow.Node) error { _, err := steps.NewOptional(n, true); return err },
			"ExpandDim": func(n flow.Node) error { _, err := steps.NewExpandDim(n); return err },
			"ForEach":   func(n flow.Node) error { _, err := steps.NewForEach("x", n); return err },
			"Choose":    func(n flow.Node) error { _, err := steps.NewChooseOneOf(n); return err },
		} {
			if err := mk(n); err == nil || !strings.Contains(err.Error(), "steps: New") {
				t.Errorf("%s(%q, %T): got %v; want an error naming the constructor", name, n.Name, n.Step, err)
			}
		}
	}
	if _, err := steps.NewChooseOneOf(flow.Named("a", metaTimes{"x", 1}), flow.Named("a", metaTimes{"x", 2})); err == nil || !strings.Contains(err.Error(), `duplicate step name "a"`) {
		t.Errorf("duplicate branches: got %v", err)
	}
	to := metaMust[*steps.TrainOnly](t)(steps.NewTrainOnly(flow.Named("a", metaTimes{"x", 1})))
	if _, err := to.WithChildren([]flow.Node{flow.Named("b", metaTimes{"x", 1})}); err == nil || !strings.Contains(err.Error(), `want "a"`) {
		t.Errorf("WithChildren renaming the child: got %v", err)
	}
}

// TestWrapErrorNamesChild: an error of a metastep's child names the path
// through the metastep.
func TestWrapErrorNamesChild(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	defer goleak.VerifyNone(t)
	to := metaMust[*steps.TrainOnly](t)(steps.NewTrainOnly(flow.Named("noise", metaMust[*steps.GaussianNoise](t)(steps.NewGaussianNoise("nope", 1, 0)))))
	p := metaPipeline(t, flow.Named("aug", to))
	_, err := flow.Runner{Allocator: mem}.Fit(ctx, p, metaTensors(t, mem, 5, 5))
	var se *flow.StepError
	if !errors.As(err, &se) || se.Path.String() != "aug/noise" || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("got %v; want a StepError at aug/noise naming the column", err)
	}
}
