//go:build cuda && cgo

package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/steps/nn"
)

type kernelCase struct {
	name   string
	k      gpu.Kernel
	ins    [][]float32
	ints   []int
	floats []float64
}

func kernelCases() []kernelCase {
	rng := rand.New(rand.NewPCG(3, 4))
	var cs []kernelCase
	for _, s := range [][3]int{{37, 29, 45}, {130, 70, 300}, {1, 1, 1}, {64, 1024, 784}} {
		m, n, k := s[0], s[1], s[2]
		for _, ta := range []int{0, 1} {
			for _, tb := range []int{0, 1} {
				for _, beta := range []float64{0, 0.5} {
					cs = append(cs, kernelCase{
						name: fmt.Sprintf("gemm %dx%dx%d ta=%d tb=%d beta=%v", m, n, k, ta, tb, beta), k: gpu.Gemm,
						ins:  [][]float32{randoms(rng, m*k), randoms(rng, k*n), randoms(rng, m*n)},
						ints: []int{m, n, k, ta, tb}, floats: []float64{1.5, beta},
					})
				}
			}
		}
	}
	labels := func(rows, cols int) []float32 {
		l := make([]float32, rows)
		for i := range l {
			l[i] = float32(rng.IntN(cols))
		}
		l[rows/2] = -1 // out of range: no loss, no onehot, as on the CPU
		return l
	}
	abs := func(v []float32) []float32 {
		for i := range v {
			v[i] = float32(math.Abs(float64(v[i])))
		}
		return v
	}
	cs = append(cs,
		kernelCase{name: "bias_add", k: gpu.BiasAdd, ins: [][]float32{randoms(rng, 100*70), randoms(rng, 70)}, ints: []int{100, 70}},
		kernelCase{name: "col_sum 1000x70", k: gpu.ColSum, ins: [][]float32{randoms(rng, 1000*70), randoms(rng, 70)}, ints: []int{1000, 70}},
		kernelCase{name: "col_sum 8192x10", k: gpu.ColSum, ins: [][]float32{randoms(rng, 8192*10), randoms(rng, 10)}, ints: []int{8192, 10}},
		kernelCase{name: "relu", k: gpu.ReLU, ins: [][]float32{append(randoms(rng, 10000), float32(math.NaN()))}, ints: []int{10001}},
		kernelCase{name: "relu_grad", k: gpu.ReLUGrad, ins: [][]float32{randoms(rng, 10000), randoms(rng, 10000)}, ints: []int{10000}},
		kernelCase{name: "softmax_xent 300x10", k: gpu.SoftmaxXent,
			ins: [][]float32{randoms(rng, 300*10), labels(300, 10), randoms(rng, 300*10), {0}}, ints: []int{300, 10}},
		kernelCase{name: "softmax_xent 8192x10", k: gpu.SoftmaxXent,
			ins: [][]float32{randoms(rng, 8192*10), labels(8192, 10), randoms(rng, 8192*10), {0}}, ints: []int{8192, 10}},
		kernelCase{name: "adam", k: gpu.Adam, ins: [][]float32{randoms(rng, 5000), randoms(rng, 5000), randoms(rng, 5000), abs(randoms(rng, 5000))},
			ints: []int{5000}, floats: []float64{0.01, 0.9, 0.999, 1e-8}},
		kernelCase{name: "sum_squares", k: gpu.SumSquares, ins: [][]float32{randoms(rng, 100000), {0}}, ints: []int{100000}},
		kernelCase{name: "axpy", k: gpu.Axpy, ins: [][]float32{randoms(rng, 5000), randoms(rng, 5000)}, ints: []int{5000}, floats: []float64{0.3}},
		kernelCase{name: "scale", k: gpu.Scale, ins: [][]float32{randoms(rng, 5000)}, ints: []int{5000}, floats: []float64{-1.7}},
	)
	return cs
}

// TestKernels runs every kernel on the GPU and on the CPU device: every
// buffer after it agrees to 1e-4 (relative to the buffer's largest value).
func TestKernels(t *testing.T) {
	noLeaks(t)
	o, _ := owner(t)
	cpu := gpu.CPU()
	defer func() {
		if err := cpu.Close(); err != nil {
			t.Error(err)
		}
	}()
	seen := map[gpu.Kernel]bool{}
	for _, c := range kernelCases() {
		seen[c.k] = true
		if emulated && c.k == gpu.Gemm && len(c.ins[1]) > 1<<18 {
			t.Logf("%s: skipped with the emulated driver (too slow on a CPU)", c.name)
			continue
		}
		want, err := run(cpu, c.k, c.ins, c.ints, c.floats)
		if err != nil {
			t.Fatalf("%s on the CPU device: %v", c.name, err)
		}
		var got [][]float32
		if err := o.Do(func(dev gpu.Device) error {
			var err error
			got, err = run(dev, c.k, c.ins, c.ints, c.floats)
			return err
		}); err != nil {
			t.Fatalf("%s on the GPU: %v", c.name, err)
		}
		for i := range want {
			if d := relDiff(got[i], want[i]); d > 1e-4 || math.IsNaN(d) {
				t.Errorf("%s: buffer %d: relative difference %.3g from the CPU device; want ≤ 1e-4", c.name, i, d)
			}
		}
	}
	for _, k := range gpu.Kernels() {
		if !seen[k] {
			t.Errorf("kernel %s is not tested", k)
		}
	}
}

// TestLaunchErrors: arguments that do not fit are errors, before the GPU
// sees them; a freed buffer is refused.
func TestLaunchErrors(t *testing.T) {
	noLeaks(t)
	o, _ := owner(t)
	err := o.Do(func(dev gpu.Device) error {
		b, err := dev.Alloc(4)
		if err != nil {
			return err
		}
		for _, c := range []struct {
			a    gpu.Args
			want string
		}{
			{gpu.Args{Bufs: []gpu.Buffer{b}}, "want 1, 1 and 0"},
			{gpu.Args{Bufs: []gpu.Buffer{b}, Ints: []int{5}}, "buffer X has 4 values, want 5"},
		} {
			if err := dev.Launch(gpu.ComputeStream, gpu.ReLU, c.a); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ReLU with %v: %v; want an error containing %q", c.a, err, c.want)
			}
		}
		if err := dev.Free(b); err != nil {
			return err
		}
		if err := dev.Launch(gpu.ComputeStream, gpu.ReLU, gpu.Args{Bufs: []gpu.Buffer{b}, Ints: []int{4}}); err == nil {
			t.Error("ReLU on a freed buffer: got nil; want an error")
		}
		if err := dev.Free(b); err == nil {
			t.Error("second Free: got nil; want an error")
		}
		return dev.SynchronizeAll()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCloseLeak: Close names what was not freed (and frees it).
func TestCloseLeak(t *testing.T) {
	defer goleak.VerifyNone(t)
	o, err := gpu.Start(func() (gpu.Device, error) { return Open(0) })
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Do(func(dev gpu.Device) error {
		if _, err := dev.Alloc(10); err != nil {
			return err
		}
		_, err := dev.AllocPinned(10)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err = o.Close()
	if err == nil || !strings.Contains(err.Error(), "1 device buffers, 1 pinned buffers and 0 events not freed") {
		t.Errorf("Close with a buffer and a pinned buffer: %v; want an error naming them", err)
	}
	if err := o.Do(func(gpu.Device) error { return nil }); !errors.Is(err, gpu.ErrClosed) {
		t.Errorf("Do after Close: %v; want ErrClosed", err)
	}
}

func digitsSpec() nn.Spec {
	s := nn.Default(nn.CrossEntropy)
	s.Hidden = []int{64, 32}
	s.Seed = 7
	return s
}

// TestFit100 fits the stage on the GPU and on the CPU device, with the
// same spec and seed, on the same 100 batches of 64 rows (10 classes, 64
// features): the weights agree to 1e-4 (relative) and so do the
// predictions.
func TestFit100(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := flow.WithAllocator(deadline(t, 2*time.Minute), checked(t))
	mem := flow.Allocator(ctx)
	var stages []*gpu.Stage
	for _, open := range []func() (gpu.Device, error){
		func() (gpu.Device, error) { return gpu.CPU(), nil },
		func() (gpu.Device, error) { return Open(0) },
	} {
		s, err := gpu.NewStage(10, digitsSpec(), gpu.WithDevice(open))
		if err != nil {
			t.Fatal(err)
		}
		stages = append(stages, s)
	}
	var classes [2][]int64
	for i, s := range stages {
		if err := s.Setup(ctx); err != nil {
			t.Fatal(err)
		}
		data := newBlobs(7)
		for n := range 100 {
			b := data.next(mem, 64)
			err := s.Fit(ctx, b)
			b.Release()
			if err != nil {
				t.Fatalf("device %d: batch %d: %v", i, n, err)
			}
		}
		probe := newBlobs(7).next(mem, 500)
		out, err := s.Transform(ctx, probe)
		probe.Release()
		if err != nil {
			t.Fatal(err)
		}
		classes[i] = append(classes[i], out.X.Column(0).(interface{ Int64Values() []int64 }).Int64Values()...)
		out.Release()
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Batches != 100 || st.Busy <= 0 || st.Busy > 1 {
			t.Errorf("device %d: stats %+v; want 100 batches and busy in (0, 1]", i, st)
		}
		if err := s.Teardown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	diff := layersDiff(t, stages[1].Weights(), stages[0].Weights())
	if diff > 1e-4 {
		t.Errorf("after 100 Adam steps: relative difference %.3g between the GPU and the CPU device; want ≤ 1e-4", diff)
	}
	t.Logf("after 100 Adam steps the GPU's weights differ from the CPU device's by %.3g (relative)", diff)
	agree := 0
	for i := range classes[0] {
		if classes[0][i] == classes[1][i] {
			agree++
		}
	}
	if agree < len(classes[0])-2 {
		t.Errorf("predicted classes agree on %d of %d rows; want all (or all but two)", agree, len(classes[0]))
	}
}

// TestFault: a kernel fault in batch 2 (the emulated driver's
// FAKECUDA_FAIL_LAUNCH) is returned by Fit 3 and every later Fit, and
// Teardown, which does not return it again, frees and ends the owner.
func TestFault(t *testing.T) {
	if !emulated {
		t.Skip("needs the emulated driver's fault injection (FAKECUDA_FAIL_LAUNCH)")
	}
	defer goleak.VerifyNone(t)
	t.Setenv("FAKECUDA_FAIL_LAUNCH", "50") // batches launch 23 kernels: 50 is in batch 2
	ctx := flow.WithAllocator(deadline(t, time.Minute), checked(t))
	mem := flow.Allocator(ctx)
	s, err := gpu.NewStage(10, digitsSpec(), gpu.WithDevice(func() (gpu.Device, error) { return Open(0) }))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	data := newBlobs(1)
	fit := func() error {
		b := data.next(mem, 64)
		defer b.Release()
		return s.Fit(ctx, b)
	}
	for n := range 3 {
		if err := fit(); err != nil {
			t.Fatalf("batch %d: %v; want no error before batch 3", n, err)
		}
	}
	for n := 3; n < 5; n++ {
		if err := fit(); err == nil || !strings.Contains(err.Error(), "LaunchFailed") {
			t.Errorf("batch %d: %v; want the launch failure of batch 2", n, err)
		}
	}
	if err := s.Teardown(ctx); err != nil {
		t.Errorf("teardown after the fault was returned: %v; want nil", err)
	}
}
