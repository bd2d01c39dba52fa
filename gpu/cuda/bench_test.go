//go:build cuda && cgo

package cuda

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"gorgonia.org/cu"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/steps/nn"
)

// BenchmarkStage is the GPU run of the issue: the stage fitting an MLP
// 784-1024-1024-10 on batches of 64, 1024 and 8192 rows of 784 random
// features, with 2 slots. It reports rows/s (wall time), busy % (the
// compute stream's use over the run's span) and overlap % (the fraction
// of upload time during which the compute stream was training, that is
// the upload time hidden), from the stage's events, and the kernel
// launches per batch. Run it with a count of batches, on a quiet GPU:
//
//	./cuda.test -test.run '^$' -test.bench Stage -test.benchtime 200x
func BenchmarkStage(b *testing.B) {
	if emulated {
		b.Skip("the emulated driver runs the kernels on the CPU: far too slow for an MLP 784-1024-1024-10")
	}
	const features, classes = 784, 10
	spec := nn.Default(nn.CrossEntropy)
	spec.Hidden = []int{1024, 1024}
	spec.Seed = 1
	for _, rows := range []int{64, 1024, 8192} {
		b.Run(fmt.Sprintf("batch=%d", rows), func(b *testing.B) {
			mem := memory.NewGoAllocator()
			ctx := flow.WithAllocator(context.Background(), mem)
			rng := rand.New(rand.NewPCG(5, uint64(rows)))
			var batches []flow.Batch
			for range 4 {
				xs := randoms(rng, rows*features)
				ys := make([]int64, rows)
				for i := range ys {
					ys[i] = int64(rng.IntN(classes))
				}
				batches = append(batches, makeBatch(mem, features, xs, ys))
			}
			defer func() {
				for _, bt := range batches {
					bt.Release()
				}
			}()
			var dev *Device
			s, err := gpu.NewStage(classes, spec, gpu.WithDevice(func() (gpu.Device, error) {
				var err error
				dev, err = Open(0)
				return dev, err
			}))
			if err != nil {
				b.Fatal(err)
			}
			// A first run fits one batch: the model's allocation, the
			// slots' and the JIT are not measured.
			if err := s.Setup(ctx); err != nil {
				b.Fatal(err)
			}
			if err := s.Fit(ctx, batches[0]); err != nil {
				b.Fatal(err)
			}
			if err := s.Teardown(ctx); err != nil {
				b.Fatal(err)
			}
			if err := s.Setup(ctx); err != nil {
				b.Fatal(err)
			}
			if err := s.Fit(ctx, batches[0]); err != nil { // the slot's memory
				b.Fatal(err)
			}
			if _, err := s.Stats(); err != nil {
				b.Fatal(err)
			}
			before := dev.Launches() // read after Stats' Do: ordered after the owner's launches
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if err := s.Fit(ctx, batches[(i+1)%len(batches)]); err != nil {
					b.Fatal(err)
				}
			}
			st, err := s.Stats() // waits for the queued batches
			wall := time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			launches := dev.Launches() - before
			if err := s.Teardown(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*rows)/wall.Seconds(), "rows/s")
			b.ReportMetric(100*st.Busy, "busy%")
			b.ReportMetric(100*st.Overlap, "overlap%")
			b.ReportMetric(float64(launches)/float64(b.N), "launches/batch")
			b.ReportMetric(float64(st.Copy)/float64(st.Batches)/1e3, "upload-µs/batch")
			b.ReportMetric(float64(st.Compute)/float64(st.Batches)/1e3, "train-µs/batch")
			b.Logf("%s: %d batches of %d rows: %v wall, span %v, copy %v, compute %v", dev.Name(), st.Batches, rows, wall, st.Span, st.Copy, st.Compute)
		})
	}
}

// BenchmarkH2D measures host-to-device bandwidth for a batch of 8192
// rows of 784 features and their labels (25.7 MB): from pinned memory
// (cuMemHostAlloc, the stage's slots) with an asynchronous copy, and from
// pageable Go memory with a synchronous one, timed by events on the copy
// stream.
func BenchmarkH2D(b *testing.B) {
	const n = 8192 * (784 + 1)
	o, d := owner(b)
	var buf gpu.Buffer
	var pin *gpu.Pinned
	var start, end gpu.Event
	if err := o.Do(func(dev gpu.Device) error {
		var err error
		if buf, err = dev.Alloc(n); err != nil {
			return err
		}
		if pin, err = dev.AllocPinned(n); err != nil {
			return err
		}
		if start, err = dev.NewEvent(); err != nil {
			return err
		}
		end, err = dev.NewEvent()
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := o.Do(func(dev gpu.Device) error {
			_ = dev.Free(buf)
			_ = dev.FreePinned(pin)
			_ = dev.DestroyEvent(start)
			return dev.DestroyEvent(end)
		}); err != nil {
			b.Error(err)
		}
	}()
	pageable := make([]float32, n)
	for _, kind := range []string{"pinned", "pageable"} {
		b.Run(kind, func(b *testing.B) {
			b.SetBytes(4 * n)
			var total time.Duration
			for range b.N {
				err := o.Do(func(dev gpu.Device) error {
					if err := dev.Record(gpu.CopyStream, start); err != nil {
						return err
					}
					if kind == "pinned" {
						if err := dev.Upload(gpu.CopyStream, buf, pin); err != nil {
							return err
						}
					} else {
						p, err := d.ptr(buf)
						if err != nil {
							return err
						}
						if err := cu.MemcpyHtoD(p, unsafe.Pointer(&pageable[0]), 4*n); err != nil {
							return err
						}
					}
					if err := dev.Record(gpu.CopyStream, end); err != nil {
						return err
					}
					if err := dev.Synchronize(end); err != nil {
						return err
					}
					t, err := dev.Elapsed(start, end)
					total += t
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			// The pageable copy runs on the legacy stream, outside the
			// events' stream: its time is the wall time of the loop.
			if kind == "pageable" {
				total = b.Elapsed()
			}
			b.ReportMetric(4*n*float64(b.N)/total.Seconds()/1e9, "GB/s")
		})
	}
}
