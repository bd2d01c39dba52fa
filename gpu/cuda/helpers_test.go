//go:build cuda && cgo

package cuda

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/gpu"
	// Ends the test binary, before gorgonia.org/cu's init can exit it,
	// where the machine has no GPU (see its doc).
	_ "github.com/penstock-ml/penstock/gpu/cuda/internal/skipnogpu"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps/nn"
)

func deadline(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func checked(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// emulated reports whether the driver is .ci/cuda.sh's stand-in
// (internal/emu/driver), whose kernels run on the CPU: slow for big ones.
var emulated = os.Getenv("PENSTOCK_CUDA_EMULATED") == "1"

// noLeaks checks for leaked goroutines when the test's cleanups ran
// (the owner's Close among them): call it first.
func noLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// owner starts an owner on GPU 0 and closes it at the end of the test.
func owner(t testing.TB) (*gpu.Owner, *Device) {
	t.Helper()
	var d *Device
	o, err := gpu.Start(func() (gpu.Device, error) {
		var err error
		d, err = Open(0)
		return d, err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := o.Close(); err != nil {
			t.Error(err)
		}
	})
	return o, d
}

func randoms(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// run uploads ins into buffers of their sizes, launches k on them and
// returns every buffer downloaded after it, through dev's interface.
func run(dev gpu.Device, k gpu.Kernel, ins [][]float32, ints []int, floats []float64) (outs [][]float32, err error) {
	var bufs []gpu.Buffer
	var pins []*gpu.Pinned
	var evs []gpu.Event
	defer func() {
		_ = dev.SynchronizeAll()
		for i := range bufs {
			err = errors.Join(err, dev.Free(bufs[i]))
		}
		for i := range pins {
			err = errors.Join(err, dev.FreePinned(pins[i]))
		}
		for _, e := range evs {
			err = errors.Join(err, dev.DestroyEvent(e))
		}
	}()
	for _, in := range ins {
		b, err := dev.Alloc(len(in))
		if err != nil {
			return nil, err
		}
		bufs = append(bufs, b)
		p, err := dev.AllocPinned(len(in))
		if err != nil {
			return nil, err
		}
		pins = append(pins, p)
		h, err := dev.Host(p)
		if err != nil {
			return nil, err
		}
		copy(h, in)
		if err := dev.Upload(gpu.CopyStream, b, p); err != nil {
			return nil, err
		}
	}
	for range 2 {
		e, err := dev.NewEvent()
		if err != nil {
			return nil, err
		}
		evs = append(evs, e)
	}
	steps := []func() error{
		func() error { return dev.Record(gpu.CopyStream, evs[0]) },
		func() error { return dev.Wait(gpu.ComputeStream, evs[0]) },
		func() error {
			return dev.Launch(gpu.ComputeStream, k, gpu.Args{Bufs: bufs, Ints: ints, Floats: floats})
		},
		func() error { return dev.Record(gpu.ComputeStream, evs[1]) },
		func() error { return dev.Wait(gpu.CopyStream, evs[1]) },
	}
	for _, f := range steps {
		if err := f(); err != nil {
			return nil, err
		}
	}
	for i := range bufs {
		if err := dev.Download(gpu.CopyStream, pins[i], bufs[i]); err != nil {
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
		outs = append(outs, append([]float32(nil), h...))
	}
	return outs, nil
}

// relDiff returns max|a−b| / max|b| (0 where both are all zero).
func relDiff(got, want []float32) float64 {
	var diff, scale float64
	for i := range want {
		diff = max(diff, math.Abs(float64(got[i])-float64(want[i])))
		scale = max(scale, math.Abs(float64(want[i])))
	}
	if scale == 0 {
		return diff
	}
	return diff / scale
}

// layersDiff is relDiff over the layers' weights and biases together.
func layersDiff(t *testing.T, got, want []nn.Layer) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d layers; want %d", len(got), len(want))
	}
	var g, w []float32
	for i := range got {
		if len(got[i].W) != len(want[i].W) || len(got[i].B) != len(want[i].B) {
			t.Fatalf("layer %d: got %d+%d values; want %d+%d", i, len(got[i].W), len(got[i].B), len(want[i].W), len(want[i].B))
		}
		g = append(append(g, got[i].W...), got[i].B...)
		w = append(append(w, want[i].W...), want[i].B...)
	}
	return relDiff(g, w)
}

// blobs are rows of 64 features around 10 class centres: a data set
// made in the test binary, so that the binary carried to a GPU machine
// needs no file.
type blobs struct {
	centres [10][64]float32
	rng     *rand.Rand
}

func newBlobs(seed uint64) *blobs {
	b := &blobs{rng: rand.New(rand.NewPCG(seed, 99))}
	for c := range b.centres {
		for j := range b.centres[c] {
			b.centres[c][j] = float32(2 * b.rng.NormFloat64())
		}
	}
	return b
}

// next returns the next batch of rows rows. The caller releases it.
func (b *blobs) next(mem memory.Allocator, rows int) flow.Batch {
	xs := make([]float32, 0, rows*64)
	ys := make([]int64, 0, rows)
	for range rows {
		c := b.rng.IntN(10)
		for j := range 64 {
			xs = append(xs, b.centres[c][j]+float32(b.rng.NormFloat64()))
		}
		ys = append(ys, int64(c))
	}
	return makeBatch(mem, 64, xs, ys)
}

// makeBatch returns X the tensor column "x" of cols values per row, Y the
// int64 column "y". The caller releases it.
func makeBatch(mem memory.Allocator, cols int, xs []float32, ys []int64) flow.Batch {
	x := minibatch.NewMatrix(mem, len(ys), cols)
	defer x.Release()
	copy(x.Data, xs)
	yb := array.NewInt64Builder(mem)
	defer yb.Release()
	yb.AppendValues(ys, nil)
	col := yb.NewArray()
	defer col.Release()
	y := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "y", Type: col.DataType()}}, nil), []arrow.Array{col}, int64(len(ys)))
	return flow.Batch{X: x.Record("x"), Y: y}
}
