package gpu_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps/mlp"
	"github.com/penstock-ml/penstock/steps/nn"
)

func digitsSpec() nn.Spec {
	s := nn.Default(nn.CrossEntropy)
	s.Hidden = []int{64, 32}
	s.Seed = 7
	return s
}

// relDiff returns max|a−b| / max|b| over the layers' weights and biases.
func relDiff(t *testing.T, got, want []nn.Layer) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d layers; want %d", len(got), len(want))
	}
	var diff, scale float64
	for i := range got {
		for _, p := range [][2][]float32{{got[i].W, want[i].W}, {got[i].B, want[i].B}} {
			if len(p[0]) != len(p[1]) {
				t.Fatalf("layer %d: got %d values; want %d", i, len(p[0]), len(p[1]))
			}
			for j := range p[0] {
				diff = max(diff, math.Abs(float64(p[0][j]-p[1][j])))
				scale = max(scale, math.Abs(float64(p[1][j])))
			}
		}
	}
	return diff / scale
}

// TestMatchesMLP fits the stage on the CPU device and steps/mlp's
// gorgonia classifier with the same spec and seed on the same 100
// batches of digits: the weights agree to 1e-4 (relative), before and
// after, and the predictions agree.
func TestMatchesMLP(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := deadline(t, 60*time.Second)
	mem := checked(t)
	d := loadDigits(t)
	spec := digitsSpec()
	ref, err := mlp.NewClassifier(10, spec)
	if err != nil {
		t.Fatal(err)
	}
	devs := cpuDevices()
	st, err := gpu.NewStage(10, spec, devs.option())
	if err != nil {
		t.Fatal(err)
	}
	if err := fitN(ctx, ref, d, mem, 1, 64); err != nil {
		t.Fatal(err)
	}
	if err := fitN(ctx, st, d, mem, 1, 64); err != nil {
		t.Fatal(err)
	}
	if diff := relDiff(t, st.Weights(), ref.Weights()); diff > 1e-6 {
		t.Errorf("after 1 step: relative difference %.3g; want ≤ 1e-6", diff)
	}
	// 99 more steps, in a second run each: the state survives Teardown.
	ctx2 := flow.WithAllocator(ctx, mem)
	for _, s := range []flow.Step{ref, st} {
		if err := s.(flow.Setupper).Setup(ctx2); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < 100; i++ {
			b := d.batchAt(mem, i, 64)
			err := s.(flow.Fitter).Fit(ctx2, b)
			b.Release()
			if err != nil {
				t.Fatalf("%T: batch %d: %v", s, i, err)
			}
		}
	}
	// Predictions before Teardown: Transform waits for the queued steps.
	probe := d.batchAt(mem, 3, 200)
	defer probe.Release()
	var classes [2][]int64
	for i, s := range []flow.Step{ref, st} {
		out, err := s.Transform(ctx2, probe)
		if err != nil {
			t.Fatal(err)
		}
		col := out.X.Column(0)
		classes[i] = append(classes[i], col.(interface{ Int64Values() []int64 }).Int64Values()...)
		out.Release()
	}
	agree := 0
	for i := range classes[0] {
		if classes[0][i] == classes[1][i] {
			agree++
		}
	}
	if agree < len(classes[0])-1 {
		t.Errorf("predicted classes agree on %d of %d rows; want all (or all but one)", agree, len(classes[0]))
	}
	for _, s := range []flow.Step{ref, st} {
		if err := s.(flow.Teardowner).Teardown(ctx2); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := st.Steps(), ref.Steps(); got != want || got != 100 {
		t.Errorf("got %d steps; want %d (and 100)", got, want)
	}
	diff := relDiff(t, st.Weights(), ref.Weights())
	if diff > 1e-4 {
		t.Errorf("after 100 Adam steps: relative difference %.3g; want ≤ 1e-4", diff)
	}
	t.Logf("after 100 Adam steps the relative difference is %.3g", diff)
	devs.assertFreed(t)
}

// TestSameStart: a run with no batch learns nothing, and the stage
// starts from nn.Model.Init's weights.
func TestSameStart(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := deadline(t, 30*time.Second)
	mem := checked(t)
	d := loadDigits(t)
	st, err := gpu.NewStage(10, digitsSpec())
	if err != nil {
		t.Fatal(err)
	}
	// A frozen pass: Fit never called, so no weights.
	if err := fitN(ctx, st, d, mem, 0, 64); err != nil {
		t.Fatal(err)
	}
	if w := st.Weights(); w != nil {
		t.Fatalf("weights before any fit: got %d layers; want none", len(w))
	}
	nm, err := nn.NewModel(digitsSpec())
	if err != nil {
		t.Fatal(err)
	}
	if err := nm.Init(64, 10); err != nil {
		t.Fatal(err)
	}
	// One step with learning rate ~0 keeps the initial weights.
	tiny := digitsSpec()
	tiny.LearningRate = 1e-30
	st2, err := gpu.NewStage(10, tiny)
	if err != nil {
		t.Fatal(err)
	}
	if err := fitN(ctx, st2, d, mem, 1, 16); err != nil {
		t.Fatal(err)
	}
	if diff := relDiff(t, st2.Weights(), nm.Weights()); diff > 1e-7 {
		t.Errorf("weights after a step of rate 1e-30 differ from nn.Model.Init's by %.3g; want none", diff)
	}
}

// TestRunner fits and transforms through a flow.Runner, in both engines,
// with a checked allocator.
func TestRunner(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	for _, engine := range []flow.Engine{flow.Sequential, flow.Streaming} {
		t.Run(engine.String(), func(t *testing.T) {
			ctx := deadline(t, 60*time.Second)
			mem := checked(t)
			src := d.memorySource(t, mem, 1024)
			defer src.Close()
			perm, err := minibatch.Permute(src, 64, minibatch.WithSeed(0))
			if err != nil {
				t.Fatal(err)
			}
			defer perm.Close()
			rep, err := minibatch.Repeat(perm, 10)
			if err != nil {
				t.Fatal(err)
			}
			defer rep.Close()
			devs := cpuDevices()
			st, err := gpu.NewStage(10, digitsSpec(), devs.option())
			if err != nil {
				t.Fatal(err)
			}
			p, err := flow.NewPipeline([]flow.Node{flow.Named("gpu", st)})
			if err != nil {
				t.Fatal(err)
			}
			r := flow.Runner{Engine: engine, Allocator: mem}
			if _, err := r.Fit(ctx, p, rep); err != nil {
				t.Fatal(err)
			}
			if got := st.Steps(); got != 160 {
				t.Errorf("got %d steps; want 160 (16 batches × 10 epochs)", got)
			}
			test := d.memorySource(t, mem, 1797)
			defer test.Close()
			out, err := r.Transform(ctx, p, test)
			if err != nil {
				t.Fatal(err)
			}
			correct, total := 0, 0
			for {
				b, err := out.Next(ctx)
				if err != nil {
					break
				}
				cls := b.X.Column(0).(interface{ Int64Values() []int64 }).Int64Values()
				ys, err := minibatch.LabelsInt64(b, "y")
				if err != nil {
					t.Fatal(err)
				}
				for i := range cls {
					if cls[i] == ys[i] {
						correct++
					}
					total++
				}
				b.Release()
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
			if acc := float64(correct) / float64(total); total != 1797 || acc < 0.9 {
				t.Errorf("accuracy %.3f over %d rows; want ≥ 0.9 over 1797", acc, total)
			}
			devs.assertFreed(t)
		})
	}
}

// TestCancel: a run cancelled midway frees everything.
func TestCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	mem := checked(t)
	ctx, cancel := context.WithCancel(deadline(t, 30*time.Second))
	src := d.memorySource(t, mem, 1024)
	defer src.Close()
	rep, err := minibatch.Repeat(src, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	devs := cpuDevices(gpu.WithFault(func(op gpu.Op) error {
		if op.Kernel == gpu.Adam && op.Seq == 5 {
			cancel() // the run is cancelled while batches are in flight
		}
		return nil
	}))
	st, err := gpu.NewStage(10, digitsSpec(), devs.option())
	if err != nil {
		t.Fatal(err)
	}
	p, err := flow.NewPipeline([]flow.Node{flow.Named("gpu", st)})
	if err != nil {
		t.Fatal(err)
	}
	r := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	_, err = r.Fit(ctx, p, rep)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v; want context.Canceled", err)
	}
	devs.assertFreed(t)
}

// TestLifecycle: Teardown after a failed Setup, twice, and Fit outside a
// run.
func TestLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := deadline(t, 10*time.Second)
	boom := errors.New("no device here")
	st, err := gpu.NewStage(10, digitsSpec(), gpu.WithDevice(func() (gpu.Device, error) { return nil, boom }))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(ctx); !errors.Is(err, boom) {
		t.Fatalf("Setup: got %v; want %v", err, boom)
	}
	for i := range 2 {
		if err := st.Teardown(ctx); err != nil {
			t.Errorf("Teardown %d after a failed Setup: %v", i, err)
		}
	}
	mem := checked(t)
	b := loadDigits(t).batchAt(mem, 0, 8)
	defer b.Release()
	if err := st.Fit(flow.WithAllocator(ctx, mem), b); err == nil || !strings.Contains(err.Error(), "not set up") {
		t.Errorf("Fit outside a run: got %v; want a 'not set up' error", err)
	}
	// A good run, torn down twice.
	devs := cpuDevices()
	st, err = gpu.NewStage(10, digitsSpec(), devs.option())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(ctx); err == nil {
		t.Error("a second Setup: got nil; want an error")
	}
	if err := st.Fit(flow.WithAllocator(ctx, mem), b); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := st.Teardown(ctx); err != nil {
			t.Errorf("Teardown %d: %v", i, err)
		}
	}
	if st.Weights() == nil {
		t.Error("no weights on the host after Teardown")
	}
	if _, err := st.Transform(ctx, b); err == nil {
		t.Error("Transform after Teardown: got nil; want an error")
	}
}

// TestFault: a device error injected in batch n is returned by Fit n+1 or
// by Teardown, never by an earlier Fit, and the device is freed.
func TestFault(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	for _, n := range []int{0, 3, 7} {
		ctx := flow.WithAllocator(deadline(t, 20*time.Second), checked(t))
		mem := flow.Allocator(ctx)
		boom := errors.New("illegal address")
		devs := cpuDevices(gpu.WithFault(func(op gpu.Op) error {
			if op.Kind == gpu.OpKernel && op.Kernel == gpu.Adam && op.Seq == int64(n) {
				return boom
			}
			return nil
		}))
		st, err := gpu.NewStage(10, digitsSpec(), devs.option())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Setup(ctx); err != nil {
			t.Fatal(err)
		}
		var got error
		for i := 0; i <= n+1; i++ {
			b := d.batchAt(mem, i, 32)
			err := st.Fit(ctx, b)
			b.Release()
			if i <= n && err != nil {
				t.Errorf("n=%d: Fit %d: %v; want nil (the fault is in batch %d)", n, i, err, n)
			}
			if i == n+1 {
				got = err
			}
		}
		td := st.Teardown(ctx)
		switch {
		case got != nil && !errors.Is(got, boom):
			t.Errorf("n=%d: Fit %d: got %v; want %v", n, n+1, got, boom)
		case got != nil && td != nil:
			t.Errorf("n=%d: Teardown returned %v again after Fit %d did", n, td, n+1)
		case got == nil && !errors.Is(td, boom):
			t.Errorf("n=%d: Fit %d returned nil and Teardown %v; want %v", n, n+1, td, boom)
		}
		devs.assertFreed(t)
	}
}

// TestVirtualClock: copy = compute = 2 ms, 50 batches: with 2 slots the
// uploads hide behind the training; with 1 it takes twice as long. All on
// the virtual clock.
func TestVirtualClock(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	const ms = time.Millisecond
	spans := map[int]time.Duration{}
	for _, slots := range []int{1, 2, 3} {
		ctx := deadline(t, 30*time.Second)
		mem := checked(t)
		st, err := gpu.NewStage(10, digitsSpec(), gpu.Slots(slots), cpuDevices(latency(2*ms, 2*ms)).option())
		if err != nil {
			t.Fatal(err)
		}
		if err := fitN(ctx, st, d, mem, 50, 32); err != nil {
			t.Fatal(err)
		}
		s, err := st.Stats()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d slots: %+v", slots, s)
		if s.Batches != 50 || s.Copy != 100*ms || s.Compute != 100*ms {
			t.Errorf("%d slots: %d batches, copy %v, compute %v; want 50, 100ms, 100ms", slots, s.Batches, s.Copy, s.Compute)
		}
		spans[slots] = s.Span
		if slots >= 2 {
			if limit := time.Duration(1.1 * 51 * float64(2*ms)); s.Span > limit {
				t.Errorf("%d slots: span %v; want ≤ %v", slots, s.Span, limit)
			}
			if s.Overlap < 0.9 || s.Busy < 0.9 {
				t.Errorf("%d slots: overlap %.3f, busy %.3f; want ≥ 0.9 each", slots, s.Overlap, s.Busy)
			}
		} else if s.Overlap > 0.05 || s.Busy > 0.55 {
			t.Errorf("1 slot: overlap %.3f, busy %.3f; want ≈ 0 and ≈ 0.5", s.Overlap, s.Busy)
		}
	}
	if r := float64(spans[1]) / float64(spans[2]); r < 1.8 || r > 2.1 {
		t.Errorf("1 slot takes %.2f× the time of 2; want about 2×", r)
	}
}

// TestHazards: random latencies (seeded) never trip the hazard check,
// whatever the slots; dropping the wait before a slot's reuse does, as
// an error wrapping gpu.ErrHazard.
func TestHazards(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	for seed := range uint64(6) {
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(seed, 1))
		devs := cpuDevices(gpu.WithLatency(func(gpu.Op) time.Duration {
			mu.Lock()
			defer mu.Unlock()
			return time.Duration(rng.IntN(5000)) * time.Microsecond
		}))
		st, err := gpu.NewStage(10, digitsSpec(), gpu.Slots(1+int(seed%3)), devs.option())
		if err != nil {
			t.Fatal(err)
		}
		if err := fitN(deadline(t, 20*time.Second), st, d, checked(t), 30, 16+int(seed)); err != nil {
			t.Errorf("seed %d: %v", seed, err)
		}
	}
	for _, slots := range []int{1, 2} {
		// Every operation takes 10 ms on the device, so that the host
		// reuses a slot while its last operation is still running however
		// loaded the machine is: without the latency, a slow host found
		// the work done and no hazard to report.
		devs := cpuDevices(gpu.WithLatency(func(gpu.Op) time.Duration { return 10 * time.Millisecond }))
		st, err := gpu.NewStage(10, digitsSpec(), gpu.Slots(slots), devs.option())
		if err != nil {
			t.Fatal(err)
		}
		gpu.DropReuseWait(st)
		err = fitN(deadline(t, 20*time.Second), st, d, checked(t), 10, 16)
		if !errors.Is(err, gpu.ErrHazard) {
			t.Errorf("%d slots without the wait before reuse: got %v; want an error wrapping gpu.ErrHazard", slots, err)
		}
		devs.assertFreed(t)
	}
}

// TestSpecSubset: what the device does not support is an error naming
// the field; the parameters are nn's.
func TestSpecSubset(t *testing.T) {
	bad := digitsSpec()
	bad.Activation, bad.Optimizer, bad.Dropout = nn.Tanh, nn.SGD, 0.2
	_, err := gpu.NewStage(10, bad)
	for _, field := range []string{"Activation", "Optimizer", "Dropout"} {
		if err == nil || !strings.Contains(err.Error(), "spec field "+field) {
			t.Errorf("NewStage with an unsupported %s: got %v; want an error naming it", field, err)
		}
	}
	if _, err := gpu.NewStage(10, nn.Default(nn.MSE)); err == nil || !strings.Contains(err.Error(), "Loss") {
		t.Errorf("NewStage with MSE: got %v; want an error naming Loss", err)
	}
	st, err := gpu.NewStage(10, digitsSpec())
	if err != nil {
		t.Fatal(err)
	}
	ref, err := mlp.NewClassifier(10, digitsSpec())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Params(), ref.Params(); len(got) != len(want) || got[nn.ParamLR] != want[nn.ParamLR] || got[nn.ParamHidden] != want[nn.ParamHidden] {
		t.Errorf("params %v; want steps/mlp's %v", got, want)
	}
	if err := st.SetParams(hparams.Values{nn.ParamActivation: "sigmoid"}); err == nil {
		t.Error("SetParams(activation sigmoid): got nil; want an error")
	}
	if err := st.SetParams(hparams.Values{nn.ParamLR: 0.01, nn.ParamHidden: "32"}); err != nil {
		t.Fatal(err)
	}
	if s := st.Spec(); s.LearningRate != 0.01 || len(s.Hidden) != 1 || s.Hidden[0] != 32 {
		t.Errorf("spec after SetParams: %+v", s)
	}
	space := st.Space()
	for _, k := range []string{nn.ParamHidden, nn.ParamLR, nn.ParamL2, nn.ParamBeta1} {
		if _, ok := space[k]; !ok {
			t.Errorf("the space has no %q", k)
		}
	}
	if _, ok := space[nn.ParamMomentum]; ok {
		t.Error("the space searches momentum, which the stage does not use")
	}
}

// TestCopy: a copy carries the learned state (weights, Adam's moments and
// steps): fitted alike, the original and the copy stay equal; and they
// are independent.
func TestCopy(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := deadline(t, 30*time.Second)
	mem := checked(t)
	d := loadDigits(t)
	st, err := gpu.NewStage(10, digitsSpec())
	if err != nil {
		t.Fatal(err)
	}
	if err := fitN(ctx, st, d, mem, 5, 32); err != nil {
		t.Fatal(err)
	}
	cp := st.Copy().(*gpu.Stage)
	for _, s := range []*gpu.Stage{st, cp} {
		if err := fitN(ctx, s, d, mem, 5, 32); err != nil {
			t.Fatal(err)
		}
	}
	if diff := relDiff(t, cp.Weights(), st.Weights()); diff != 0 || cp.Steps() != 10 {
		t.Errorf("copy after equal fits: relative difference %.3g and %d steps; want 0 and 10", diff, cp.Steps())
	}
	if err := fitN(ctx, cp, d, mem, 1, 32); err != nil {
		t.Fatal(err)
	}
	if diff := relDiff(t, cp.Weights(), st.Weights()); diff == 0 || st.Steps() != 10 {
		t.Errorf("fitting the copy changed the original (steps %d), or did nothing", st.Steps())
	}
	st.Reset()
	if st.Weights() != nil || st.Steps() != 0 {
		t.Error("Reset kept learned state")
	}
}
