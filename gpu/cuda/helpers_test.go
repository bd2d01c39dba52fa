//go:build cuda && cgo

package cuda

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

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

var digitsPath = filepath.Join("..", "..", "examples", "data", "digits.csv.gz")

// digits are the UCI digits (1797 rows × 64 pixels), standardized, as in
// package gpu's tests.
type digits struct {
	x []float32
	y []int64
}

var (
	digitsOnce sync.Once
	digitsData *digits
	digitsErr  error
)

func loadDigits(t testing.TB) *digits {
	t.Helper()
	digitsOnce.Do(func() { digitsData, digitsErr = readDigits() })
	if digitsErr != nil {
		t.Fatal(digitsErr)
	}
	return digitsData
}

func readDigits() (*digits, error) {
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	pixels := make([]string, 64)
	for i := range pixels {
		pixels[i] = fmt.Sprint("px", i)
	}
	src, err := minibatch.OpenCSV(digitsPath, minibatch.WithAllocator(mem), minibatch.WithHeader(false),
		minibatch.WithColumnNames(append(pixels, "digit")...), minibatch.WithLabels("digit"))
	if err != nil {
		return nil, err
	}
	defer src.Close()
	d := &digits{}
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		rec, err := minibatch.Pack(b.X, mem, "pixels", pixels...)
		if err != nil {
			return nil, err
		}
		x, err := minibatch.Features(flow.Batch{X: rec}, "pixels")
		if err != nil {
			return nil, err
		}
		d.x = append(d.x, x.Data...)
		y, err := minibatch.LabelsInt64(b, "digit")
		if err != nil {
			return nil, err
		}
		d.y = append(d.y, y...)
		rec.Release()
		b.Release()
	}
	const w = 64
	n := len(d.y)
	for j := range w {
		var sum, sq float64
		for r := range n {
			v := float64(d.x[r*w+j])
			sum, sq = sum+v, sq+v*v
		}
		mean := sum / float64(n)
		sd := math.Sqrt(max(sq/float64(n)-mean*mean, 0))
		if sd == 0 {
			sd = 1
		}
		for r := range n {
			d.x[r*w+j] = float32((float64(d.x[r*w+j]) - mean) / sd)
		}
	}
	return d, nil
}

// batchAt returns batch i of rows rows of d, cycling over d's rows.
func (d *digits) batchAt(mem memory.Allocator, i, rows int) flow.Batch {
	const w = 64
	n := len(d.y)
	xs := make([]float32, 0, rows*w)
	ys := make([]int64, 0, rows)
	for r := range rows {
		k := (i*rows + r) % n
		xs = append(xs, d.x[k*w:(k+1)*w]...)
		ys = append(ys, d.y[k])
	}
	return makeBatch(mem, w, xs, ys)
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
