package gpu_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/persist/persisttest"
)

func classesOf(t *testing.T, s flow.Step, b flow.Batch) []int64 {
	t.Helper()
	ctx := deadline(t, 30*time.Second)
	out, err := s.Transform(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	return slices.Clone(out.X.Column(0).(*array.Int64).Int64Values())
}

// TestSaveLoad fits a stage on the CPU device, saves it with persist and
// loads it: the loaded stage has the same spec, columns and steps, gives
// the same classes, and goes on fitting as the original does (Adam's
// moments came back too).
func TestSaveLoad(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := deadline(t, 60*time.Second)
	mem := checked(t)
	d := loadDigits(t)
	spec := digitsSpec()
	spec.L2 = 1e-3
	st, err := gpu.NewStage(10, spec, gpu.Features("x"), gpu.Label("y"), gpu.Slots(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := fitN(ctx, st, d, mem, 30, 64); err != nil {
		t.Fatal(err)
	}
	saved, err := persist.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	m, err := persist.Unmarshal(saved)
	if err != nil {
		t.Fatal(err)
	}
	ld, ok := m.Step.(*gpu.Stage)
	if !ok {
		t.Fatalf("loaded a %T; want *gpu.Stage", m.Step)
	}
	if !slices.Equal(ld.Spec().Hidden, spec.Hidden) || ld.Spec().L2 != spec.L2 || ld.Spec().Seed != spec.Seed {
		t.Errorf("loaded spec %+v; want %+v", ld.Spec(), spec)
	}
	if got, want := ld.Steps(), st.Steps(); got != want || got != 30 {
		t.Errorf("loaded %d steps; want %d (and 30)", got, want)
	}
	ctx2 := flow.WithAllocator(ctx, mem)
	probe := d.batchAt(mem, 5, 300)
	defer probe.Release()
	var outs [2][]int64
	for i, s := range []*gpu.Stage{st, ld} {
		if err := s.Setup(ctx2); err != nil {
			t.Fatal(err)
		}
		outs[i] = classesOf(t, s, probe)
		if err := s.Teardown(ctx2); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(outs[0], outs[1]) {
		t.Errorf("the loaded stage's classes differ from the original's:\n%v\n%v", outs[1][:20], outs[0][:20])
	}
	// Ten more batches each: the same weights, to the bit.
	for _, s := range []*gpu.Stage{st, ld} {
		if err := fitN(ctx, s, d, mem, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	if diff := relDiff(t, ld.Weights(), st.Weights()); diff != 0 {
		t.Errorf("after 10 more steps the loaded stage's weights differ from the original's by %.3g; want 0", diff)
	}
}

// TestSaveDuringRun: a save during a run waits for the queued batches and
// saves what the device learned; the run goes on.
func TestSaveDuringRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := flow.WithAllocator(deadline(t, 60*time.Second), checked(t))
	mem := flow.Allocator(ctx)
	d := loadDigits(t)
	devs := cpuDevices()
	st, err := gpu.NewStage(10, digitsSpec(), devs.option())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		b := d.batchAt(mem, i, 64)
		err := st.Fit(ctx, b)
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	saved, err := persist.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	b := d.batchAt(mem, 5, 64)
	err = st.Fit(ctx, b)
	b.Release()
	if err != nil {
		t.Fatalf("fit after a save during the run: %v", err)
	}
	if err := st.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	devs.assertFreed(t)
	m, err := persist.Unmarshal(saved)
	if err != nil {
		t.Fatal(err)
	}
	ld := m.Step.(*gpu.Stage)
	// The reference: 5 steps in a run of their own.
	ref, err := gpu.NewStage(10, digitsSpec())
	if err != nil {
		t.Fatal(err)
	}
	if err := fitN(ctx, ref, d, mem, 5, 64); err != nil {
		t.Fatal(err)
	}
	if ld.Steps() != 5 {
		t.Errorf("saved during the run with %d steps; want 5", ld.Steps())
	}
	if diff := relDiff(t, ld.Weights(), ref.Weights()); diff != 0 {
		t.Errorf("saved during the run: weights differ from 5 steps' by %.3g; want 0", diff)
	}
}

// TestLoadRefuses: a saved stage whose state does not fit the spec, or
// whose moments are missing, is an error naming what is wrong.
func TestLoadRefuses(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := deadline(t, 60*time.Second)
	mem := checked(t)
	d := loadDigits(t)
	st, err := gpu.NewStage(10, digitsSpec())
	if err != nil {
		t.Fatal(err)
	}
	if err := fitN(ctx, st, d, mem, 2, 64); err != nil {
		t.Fatal(err)
	}
	// Another network in the manifest than the state's.
	dir := filepath.Join(t.TempDir(), "model")
	if err := persist.SaveDir(dir, st); err != nil {
		t.Fatal(err)
	}
	if err := persisttest.ReplaceInManifest(dir, `"hidden":{"string":"64,32"}`, `"hidden":{"string":"16"}`); err != nil {
		t.Fatal(err)
	}
	_, err = persist.LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "gpu.Stage") || !strings.Contains(err.Error(), `"layers" is 3, want 2`) {
		t.Errorf("load of another network: %v; want an error naming gpu.Stage and the layer counts", err)
	}
	// A fresh stage round-trips through Marshal and Unmarshal.
	fresh, err := gpu.NewStage(3, digitsSpec())
	if err != nil {
		t.Fatal(err)
	}
	saved, err := persist.Marshal(fresh)
	if err != nil {
		t.Fatal(err)
	}
	m, err := persist.Unmarshal(saved)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Step.(*gpu.Stage); got.Weights() != nil || got.Steps() != 0 {
		t.Errorf("a fresh stage loaded with %d layers and %d steps; want none", len(got.Weights()), got.Steps())
	}
}
