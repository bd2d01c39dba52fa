package gpu_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/gpu"
)

// run uploads the inputs, launches k and downloads buffer out, on the
// compute stream after the copy stream, ordered by events.
func launch(t *testing.T, dev *gpu.CPUDevice, k gpu.Kernel, ins [][]float32, ints []int, floats []float64, out int) []float32 {
	t.Helper()
	var bufs []gpu.Buffer
	var pins []*gpu.Pinned
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, in := range ins {
		b, err := dev.Alloc(len(in))
		must(err)
		p, err := dev.AllocPinned(len(in))
		must(err)
		h, err := dev.Host(p)
		must(err)
		copy(h, in)
		must(dev.Upload(gpu.CopyStream, b, p))
		bufs, pins = append(bufs, b), append(pins, p)
	}
	up, err := dev.NewEvent()
	must(err)
	must(dev.Record(gpu.CopyStream, up))
	must(dev.Wait(gpu.ComputeStream, up))
	must(dev.Launch(gpu.ComputeStream, k, gpu.Args{Bufs: bufs, Ints: ints, Floats: floats}))
	done, err := dev.NewEvent()
	must(err)
	must(dev.Record(gpu.ComputeStream, done))
	must(dev.Wait(gpu.CopyStream, done))
	must(dev.Download(gpu.CopyStream, pins[out], bufs[out]))
	must(dev.SynchronizeAll())
	h, err := dev.Host(pins[out])
	must(err)
	res := append([]float32(nil), h...)
	for i := range bufs {
		must(dev.Free(bufs[i]))
		must(dev.FreePinned(pins[i]))
	}
	must(dev.DestroyEvent(up))
	must(dev.DestroyEvent(done))
	return res
}

func randoms(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// TestGemm checks the four transposes against a naive product.
func TestGemm(t *testing.T) {
	defer goleak.VerifyNone(t)
	dev := gpu.CPU()
	defer dev.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	const m, n, k = 5, 7, 3
	for _, ta := range []int{0, 1} {
		for _, tb := range []int{0, 1} {
			a, b, c := randoms(rng, m*k), randoms(rng, k*n), randoms(rng, m*n)
			at := func(i, p int) float32 {
				if ta == 1 {
					return a[p*m+i]
				}
				return a[i*k+p]
			}
			bt := func(p, j int) float32 {
				if tb == 1 {
					return b[j*k+p]
				}
				return b[p*n+j]
			}
			got := launch(t, dev, gpu.Gemm, [][]float32{a, b, c}, []int{m, n, k, ta, tb}, []float64{2, 0.5}, 2)
			for i := range m {
				for j := range n {
					var want float64
					for p := range k {
						want += float64(at(i, p)) * float64(bt(p, j))
					}
					want = 2*want + 0.5*float64(c[i*n+j])
					if d := math.Abs(float64(got[i*n+j]) - want); d > 1e-5 {
						t.Errorf("transA %d transB %d: C[%d][%d] = %v; want %v", ta, tb, i, j, got[i*n+j], want)
					}
				}
			}
		}
	}
}

// TestKernels checks the other kernels on small inputs.
func TestKernels(t *testing.T) {
	defer goleak.VerifyNone(t)
	dev := gpu.CPU()
	defer dev.Close()
	eq := func(name string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-5 {
				t.Errorf("%s: got %v; want %v", name, got, want)
				return
			}
		}
	}
	eq("bias_add", launch(t, dev, gpu.BiasAdd, [][]float32{{1, 2, 3, 4}, {10, 20}}, []int{2, 2}, nil, 0), []float32{11, 22, 13, 24})
	eq("col_sum", launch(t, dev, gpu.ColSum, [][]float32{{1, 2, 3, 4}, {9, 9}}, []int{2, 2}, nil, 1), []float32{4, 6})
	eq("relu", launch(t, dev, gpu.ReLU, [][]float32{{-1, 0, 2}}, []int{3}, nil, 0), []float32{0, 0, 2})
	eq("relu_grad", launch(t, dev, gpu.ReLUGrad, [][]float32{{5, 6, 7}, {0, 1, -1}}, []int{3}, nil, 0), []float32{0, 6, 0})
	eq("axpy", launch(t, dev, gpu.Axpy, [][]float32{{1, 2}, {10, 10}}, []int{2}, []float64{0.5}, 1), []float32{10.5, 11})
	eq("scale", launch(t, dev, gpu.Scale, [][]float32{{1, -2}}, []int{2}, []float64{3}, 0), []float32{3, -6})
	eq("sum_squares", launch(t, dev, gpu.SumSquares, [][]float32{{3, 4}, {0}}, []int{2}, nil, 1), []float32{25})
	// Softmax cross-entropy of equal logits: loss log 2, gradient ±1/4.
	z := [][]float32{{0, 0, 1, 1}, {1, 0}, {0, 0, 0, 0}, {0}}
	eq("softmax_xent loss", launch(t, dev, gpu.SoftmaxXent, z, []int{2, 2}, nil, 3), []float32{float32(math.Ln2)})
	eq("softmax_xent grad", launch(t, dev, gpu.SoftmaxXent, z, []int{2, 2}, nil, 2), []float32{0.25, -0.25, -0.25, 0.25})
	// One Adam step from zero moments moves each weight by about rate.
	got := launch(t, dev, gpu.Adam, [][]float32{{1, 1}, {0.5, -2}, {0, 0}, {0, 0}}, []int{2}, []float64{0.1, 0.9, 0.999, 1e-8}, 0)
	eq("adam", got, []float32{1 - 0.1*0.05/(float32(math.Sqrt(0.001*0.25))+1e-8), 1 + 0.1*0.2/(float32(math.Sqrt(0.001*4))+1e-8)})
	// Wrong arity and short buffers are errors, not panics.
	b, err := dev.Alloc(4)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Launch(gpu.ComputeStream, gpu.ReLU, gpu.Args{Bufs: []gpu.Buffer{b}}); err == nil {
		t.Error("ReLU without its count: got nil; want an error")
	}
	if err := dev.Launch(gpu.ComputeStream, gpu.ReLU, gpu.Args{Bufs: []gpu.Buffer{b}, Ints: []int{5}}); err == nil {
		t.Error("ReLU over 5 values of a buffer of 4: got nil; want an error")
	}
	if err := dev.Free(b); err != nil {
		t.Fatal(err)
	}
}

// TestHazardCheck: unordered conflicting accesses are refused whatever
// the timing; an event and a wait make them legal.
func TestHazardCheck(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, slow := range []gpu.Stream{gpu.CopyStream, gpu.ComputeStream} {
		dev := gpu.CPU(gpu.WithLatency(func(op gpu.Op) time.Duration {
			if op.Stream == slow {
				return time.Second
			}
			return 0
		}))
		x, _ := dev.Alloc(8)
		p, _ := dev.AllocPinned(8)
		if err := dev.Upload(gpu.CopyStream, x, p); err != nil {
			t.Fatal(err)
		}
		// Reading x on the compute stream without waiting: a hazard.
		err := dev.Launch(gpu.ComputeStream, gpu.ReLU, gpu.Args{Bufs: []gpu.Buffer{x}, Ints: []int{8}})
		if !errors.Is(err, gpu.ErrHazard) {
			t.Errorf("kernel on a buffer an unordered upload writes: got %v; want ErrHazard", err)
		}
		// The host writing the pinned source before the upload completed.
		if _, err := dev.Host(p); !errors.Is(err, gpu.ErrHazard) {
			t.Errorf("host access to a pinned buffer an upload reads: got %v; want ErrHazard", err)
		}
		e, _ := dev.NewEvent()
		if err := errors.Join(dev.Record(gpu.CopyStream, e), dev.Wait(gpu.ComputeStream, e)); err != nil {
			t.Fatal(err)
		}
		if err := dev.Launch(gpu.ComputeStream, gpu.ReLU, gpu.Args{Bufs: []gpu.Buffer{x}, Ints: []int{8}}); err != nil {
			t.Errorf("kernel after a wait: %v", err)
		}
		// A new upload into x while the kernel may still read it.
		if err := dev.Upload(gpu.CopyStream, x, p); !errors.Is(err, gpu.ErrHazard) {
			t.Errorf("upload over a buffer an unordered kernel reads: got %v; want ErrHazard", err)
		}
		if err := dev.SynchronizeAll(); err != nil {
			t.Fatal(err)
		}
		if _, err := dev.Host(p); err != nil {
			t.Errorf("host access after SynchronizeAll: %v", err)
		}
		if err := errors.Join(dev.Free(x), dev.FreePinned(p), dev.DestroyEvent(e), dev.Close()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCloseLeaks: Close reports what is still allocated, and calls after
// Close fail.
func TestCloseLeaks(t *testing.T) {
	defer goleak.VerifyNone(t)
	dev := gpu.CPU()
	if _, err := dev.Alloc(3); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err == nil {
		t.Error("Close with a buffer allocated: got nil; want an error")
	}
	if _, err := dev.Alloc(3); !errors.Is(err, gpu.ErrClosed) {
		t.Errorf("Alloc after Close: got %v; want ErrClosed", err)
	}
}
