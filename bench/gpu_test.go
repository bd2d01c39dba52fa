package bench_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps/nn"
)

// BenchmarkOwner measures the owner's two calls: Submit (queue a function
// for the locked thread, without waiting) and Do (a round trip to it).
func BenchmarkOwner(b *testing.B) {
	o, err := gpu.Start(func() (gpu.Device, error) { return gpu.CPU(), nil })
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := o.Close(); err != nil {
			b.Error(err)
		}
	}()
	nop := func(gpu.Device) error { return nil }
	b.Run("submit", func(b *testing.B) {
		for b.Loop() {
			if err := o.Submit(nop); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if err := o.Do(nop); err != nil { // drain outside the timer
			b.Fatal(err)
		}
	})
	b.Run("do", func(b *testing.B) {
		for b.Loop() {
			if err := o.Do(nop); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// stageBatches returns n batches of rows random rows of cols features
// (X "x") and a class 0 to 9 (Y "y").
func stageBatches(mem memory.Allocator, n, rows, cols int) []flow.Batch {
	rng := rand.New(rand.NewPCG(1, 1))
	out := make([]flow.Batch, n)
	for i := range out {
		x := minibatch.NewMatrix(mem, rows, cols)
		for j := range x.Data {
			x.Data[j] = float32(rng.NormFloat64())
		}
		yb := array.NewInt64Builder(mem)
		for range rows {
			yb.Append(rng.Int64N(10))
		}
		col := yb.NewArray()
		y := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "y", Type: col.DataType()}}, nil), []arrow.Array{col}, int64(rows))
		out[i] = flow.Batch{X: x.Record("x"), Y: y}
		col.Release()
		yb.Release()
		x.Release()
	}
	return out
}

// BenchmarkStage fits the stage on the CPU device: batches of 256 rows ×
// 64 features, an MLP 64-128-10, with 1, 2 and 3 slots. It reports
// rows/s, the compute stream's busy % and the % of upload time hidden
// behind training. "measured" puts each operation's wall time on the
// device clock (the Go kernels dominate; an upload is a memcpy);
// "modelled" gives each upload and each step 2 ms of virtual time, and
// its vrows/s is rows per second of that virtual time.
func BenchmarkStage(b *testing.B) {
	mem := memory.NewGoAllocator()
	const rows, cols = 256, 64
	batches := stageBatches(mem, 16, rows, cols)
	defer func() {
		for _, bt := range batches {
			bt.Release()
		}
	}()
	spec := nn.Default(nn.CrossEntropy)
	spec.Hidden = []int{128}
	modelled := gpu.WithDevice(func() (gpu.Device, error) {
		return gpu.CPU(gpu.WithLatency(func(op gpu.Op) time.Duration {
			if op.Kind == gpu.OpUpload || op.Kernel == gpu.Adam {
				return 2 * time.Millisecond
			}
			return 0
		})), nil
	})
	for _, kind := range []string{"measured", "modelled"} {
		for _, slots := range []int{1, 2, 3} {
			b.Run(fmt.Sprintf("%s/slots=%d", kind, slots), func(b *testing.B) {
				opts := []gpu.Option{gpu.Slots(slots)}
				if kind == "modelled" {
					opts = append(opts, modelled)
				}
				st, err := gpu.NewStage(10, spec, opts...)
				if err != nil {
					b.Fatal(err)
				}
				ctx := flow.WithAllocator(b.Context(), mem)
				if err := st.Setup(ctx); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				n := 0
				for b.Loop() {
					if err := st.Fit(ctx, batches[n%len(batches)]); err != nil {
						b.Fatal(err)
					}
					n++
				}
				if err := st.Teardown(ctx); err != nil { // waits for the queued steps
					b.Fatal(err)
				}
				elapsed := time.Since(start)
				s, err := st.Stats()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(n*rows)/elapsed.Seconds(), "rows/s")
				if kind == "modelled" && s.Span > 0 {
					b.ReportMetric(float64(n*rows)/s.Span.Seconds(), "vrows/s")
				}
				b.ReportMetric(100*s.Busy, "busy%")
				b.ReportMetric(100*s.Overlap, "overlap%")
			})
		}
	}
}
