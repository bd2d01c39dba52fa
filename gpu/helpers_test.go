package gpu_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/minibatch"
)

var digitsPath = filepath.Join("..", "examples", "data", "digits.csv.gz")

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

// digits are the UCI digits (1797 rows × 64 pixels), standardized.
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

// batchAt returns batch i of rows rows of d, cycling over d's rows: X
// the tensor column "x", Y the int64 column "y". The caller releases it.
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

// memorySource returns a Memory source of the rows [0, n) of d, in one
// record. The caller closes it.
func (d *digits) memorySource(t testing.TB, mem memory.Allocator, n int) *minibatch.Memory {
	t.Helper()
	b := makeBatch(mem, 64, d.x[:n*64], d.y[:n])
	defer b.Release()
	m, err := minibatch.FromRecords([]arrow.RecordBatch{b.X}, []arrow.RecordBatch{b.Y})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fitN sets s up, fits it on batches 0 to n−1 of rows rows and tears it
// down, returning the first error of Fit (with the batch) or Teardown.
func fitN(ctx context.Context, s flow.Step, d *digits, mem memory.Allocator, n, rows int) error {
	ctx = flow.WithAllocator(ctx, mem)
	if st, ok := s.(flow.Setupper); ok {
		if err := st.Setup(ctx); err != nil {
			return err
		}
	}
	var fitErr error
	for i := range n {
		b := d.batchAt(mem, i, rows)
		err := s.(flow.Fitter).Fit(ctx, b)
		b.Release()
		if err != nil {
			fitErr = fmt.Errorf("batch %d: %w", i, err)
			break
		}
	}
	tdErr := s.(flow.Teardowner).Teardown(ctx)
	return errors.Join(fitErr, tdErr)
}

// latency returns a latency model: uploads take upload, the Adam kernel
// compute (the whole step's time), every other operation nothing.
func latency(upload, compute time.Duration) gpu.CPUOption {
	return gpu.WithLatency(func(op gpu.Op) time.Duration {
		switch {
		case op.Kind == gpu.OpUpload:
			return upload
		case op.Kind == gpu.OpKernel && op.Kernel == gpu.Adam:
			return compute
		}
		return 0
	})
}

// devices opens a CPU device of its options for each run, and remembers
// them.
type devices struct {
	opts []gpu.CPUOption
	mu   sync.Mutex
	all  []*gpu.CPUDevice
}

func cpuDevices(opts ...gpu.CPUOption) *devices { return &devices{opts: opts} }

// option is the stage option that opens the devices.
func (d *devices) option() gpu.Option {
	return gpu.WithDevice(func() (gpu.Device, error) {
		dev := gpu.CPU(d.opts...)
		d.mu.Lock()
		d.all = append(d.all, dev)
		d.mu.Unlock()
		return dev, nil
	})
}

// assertFreed fails t where a device opened holds memory or events.
func (d *devices) assertFreed(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.all) == 0 {
		t.Error("no device was opened")
	}
	for i, dev := range d.all {
		if b, p, e := dev.Live(); b+p+e != 0 {
			t.Errorf("device %d holds %d buffers, %d pinned buffers and %d events; want none", i, b, p, e)
		}
	}
}

func withMem(ctx context.Context, mem memory.Allocator) context.Context {
	return flow.WithAllocator(ctx, mem)
}
