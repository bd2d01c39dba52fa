//go:build cgo

package emu

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/gpu"
)

func randoms(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// onCPU runs k on the CPU device and returns every buffer after it.
func onCPU(k gpu.Kernel, ins [][]float32, ints []int, floats []float64) (outs [][]float32, err error) {
	dev := gpu.CPU()
	defer func() { err = errors.Join(err, dev.Close()) }()
	var bufs []gpu.Buffer
	var pins []*gpu.Pinned
	defer func() {
		for i := range bufs {
			err = errors.Join(err, dev.Free(bufs[i]), dev.FreePinned(pins[i]))
		}
	}()
	for _, in := range ins {
		b, err := dev.Alloc(len(in))
		if err != nil {
			return nil, err
		}
		p, err := dev.AllocPinned(len(in))
		if err != nil {
			return nil, errors.Join(err, dev.Free(b))
		}
		bufs, pins = append(bufs, b), append(pins, p)
		h, err := dev.Host(p)
		if err != nil {
			return nil, err
		}
		copy(h, in)
		if err := dev.Upload(gpu.ComputeStream, b, p); err != nil {
			return nil, err
		}
	}
	if err := dev.Launch(gpu.ComputeStream, k, gpu.Args{Bufs: bufs, Ints: ints, Floats: floats}); err != nil {
		return nil, err
	}
	for i := range bufs {
		if err := dev.Download(gpu.ComputeStream, pins[i], bufs[i]); err != nil {
			return nil, err
		}
	}
	if err := dev.SynchronizeAll(); err != nil {
		return nil, err
	}
	for _, p := range pins {
		h, err := dev.Host(p)
		if err != nil {
			return nil, err
		}
		outs = append(outs, slices.Clone(h))
	}
	return outs, nil
}

func relDiff(got, want []float32) float64 {
	var diff, scale float64
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return math.NaN()
		}
		diff = max(diff, d)
		scale = max(scale, math.Abs(float64(want[i])))
	}
	if scale == 0 {
		return diff
	}
	return diff / scale
}

type kernelCase struct {
	name   string
	k      gpu.Kernel
	ins    [][]float32
	ints   []int
	floats []float64
}

func cases() []kernelCase {
	rng := rand.New(rand.NewPCG(3, 4))
	var cs []kernelCase
	for _, s := range [][3]int{{37, 29, 45}, {1, 1, 1}, {20, 70, 130}} {
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
		l[rows/2] = -1
		return l
	}
	abs := func(v []float32) []float32 {
		for i := range v {
			v[i] = float32(math.Abs(float64(v[i])))
		}
		return v
	}
	return append(cs,
		kernelCase{name: "bias_add", k: gpu.BiasAdd, ins: [][]float32{randoms(rng, 100*70), randoms(rng, 70)}, ints: []int{100, 70}},
		kernelCase{name: "col_sum 300x70", k: gpu.ColSum, ins: [][]float32{randoms(rng, 300*70), randoms(rng, 70)}, ints: []int{300, 70}},
		kernelCase{name: "col_sum 1000x10", k: gpu.ColSum, ins: [][]float32{randoms(rng, 1000*10), randoms(rng, 10)}, ints: []int{1000, 10}},
		kernelCase{name: "relu", k: gpu.ReLU, ins: [][]float32{append(randoms(rng, 1000), float32(math.NaN()))}, ints: []int{1001}},
		kernelCase{name: "relu_grad", k: gpu.ReLUGrad, ins: [][]float32{randoms(rng, 1000), randoms(rng, 1000)}, ints: []int{1000}},
		kernelCase{name: "softmax_xent 300x10", k: gpu.SoftmaxXent,
			ins: [][]float32{randoms(rng, 300*10), labels(300, 10), randoms(rng, 300*10), {0}}, ints: []int{300, 10}},
		kernelCase{name: "adam", k: gpu.Adam, ins: [][]float32{randoms(rng, 700), randoms(rng, 700), randoms(rng, 700), abs(randoms(rng, 700))},
			ints: []int{700}, floats: []float64{0.01, 0.9, 0.999, 1e-8}},
		kernelCase{name: "sum_squares", k: gpu.SumSquares, ins: [][]float32{randoms(rng, 10000), {0}}, ints: []int{10000}},
		kernelCase{name: "axpy", k: gpu.Axpy, ins: [][]float32{randoms(rng, 700), randoms(rng, 700)}, ints: []int{700}, floats: []float64{0.3}},
		kernelCase{name: "scale", k: gpu.Scale, ins: [][]float32{randoms(rng, 700)}, ints: []int{700}, floats: []float64{-1.7}},
	)
}

// TestKernels runs the CUDA source of every kernel, in the GPU's launch
// geometry, and the CPU device's kernel on the same values: every buffer
// agrees to 1e-4 (relative to its largest value).
func TestKernels(t *testing.T) {
	defer goleak.VerifyNone(t)
	seen := map[gpu.Kernel]bool{}
	for _, c := range cases() {
		seen[c.k] = true
		want, err := onCPU(c.k, c.ins, c.ints, c.floats)
		if err != nil {
			t.Fatalf("%s on the CPU device: %v", c.name, err)
		}
		got := make([][]float32, len(c.ins))
		for i, in := range c.ins {
			got[i] = slices.Clone(in)
		}
		if err := Launch(c.k, got, c.ints, c.floats); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i := range want {
			if d := relDiff(got[i], want[i]); !(d <= 1e-4) {
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

// TestGridLoops runs every case in grids of at most 2 blocks (gemm's row
// tiles, the flat kernels' blocks), which the kernels loop over: the
// results are the CPU device's still.
func TestGridLoops(t *testing.T) {
	for _, c := range cases() {
		want, err := onCPU(c.k, c.ins, c.ints, c.floats)
		if err != nil {
			t.Fatalf("%s on the CPU device: %v", c.name, err)
		}
		got := make([][]float32, len(c.ins))
		for i, in := range c.ins {
			got[i] = slices.Clone(in)
		}
		if err := launchWithin(c.k, got, c.ints, c.floats, 2); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i := range want {
			if d := relDiff(got[i], want[i]); !(d <= 1e-4) {
				t.Errorf("%s in a grid of 2: buffer %d: relative difference %.3g from the CPU device; want ≤ 1e-4", c.name, i, d)
			}
		}
	}
}

// TestLaunchChecks: arguments that do not fit are refused before the
// kernel runs.
func TestLaunchChecks(t *testing.T) {
	if err := Launch(gpu.ReLU, [][]float32{make([]float32, 3)}, []int{4}, nil); err == nil {
		t.Error("ReLU over 4 values of 3: got nil; want an error")
	}
	if err := Launch(gpu.Kernel(42), nil, nil, nil); err == nil {
		t.Error("kernel 42: got nil; want an error")
	}
}
