package steps_test

import (
	"testing"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/steps"
	"go.uber.org/goleak"
)

// TrainOnly of a step that only transforms still runs it when fitting, and
// TestOnly of one never runs it then: the wrappers are flow.FitPathers.
func TestPhaseWrappersOfTransformOnlySteps(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	for _, r := range metaRunners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			src := metaTensors(t, mem, 40, 10) // x = 0 … 39, mean 19.5
			train := metaMust[*steps.TrainOnly](t)(steps.NewTrainOnly(flow.Named("double", metaTimes{"x", 2})))
			test := metaMust[*steps.TestOnly](t)(steps.NewTestOnly(flow.Named("triple", metaTimes{"x", 3})))
			m := newMetaMean("x", 0)
			p := metaPipeline(t, flow.Named("train", train), flow.Named("test", test), flow.Named("mean", m))
			if _, err := r.Fit(ctx, p, src); err != nil {
				t.Fatal(err)
			}
			// Fitted on x doubled (train-only) and not tripled (test-only).
			if got := m.mean(); got != 39 {
				t.Errorf("mean fitted on %v; want 39 (x doubled, not tripled)", got)
			}
			// Transformed: not doubled, tripled, minus the mean.
			got := metaTransform(ctx, t, r, p, metaRewind(t, src), "x", "")
			for i, v := range got.x {
				if want := 3*float64(i) - 39; v != want {
					t.Fatalf("row %d: %v; want %v", i, v, want)
				}
			}
		})
	}
}

// A step frozen with FitEpochs(0) inside a replicated sub-pipeline keeps
// its state: it is shared by the replicas, not replaced by an empty one.
func TestFrozenInsideReplicatedPipeline(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	defer goleak.VerifyNone(t)
	src := metaTensors(t, mem, 100, 10)
	frozen := newMetaMean("x", 0)
	frozen.n, frozen.sum = 1, 100 // learned before: mean 100
	live := newMetaMean("x", 0)
	sub := metaPipeline(t, steps.Freeze(flow.Named("frozen", frozen)), flow.Named("live", live))
	p := metaPipeline(t, flow.Named("sub", sub, flow.Replicas(2)))
	r := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	if _, err := r.Fit(ctx, p, src); err != nil {
		t.Fatal(err)
	}
	if frozen.n != 1 || frozen.mean() != 100 || frozen.fits.Load() != 0 {
		t.Errorf("frozen step: n %v mean %v, %d fits; want untouched (1, 100, 0)", frozen.n, frozen.mean(), frozen.fits.Load())
	}
	// live was fitted on x - 100 by the replicas, merged: 100 rows, mean -50.5.
	if live.n != 100 || live.mean() != -50.5 {
		t.Errorf("live step: n %v mean %v; want 100 rows of mean -50.5", live.n, live.mean())
	}
}
