package bench_test

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/bench"
	"github.com/penstock-ml/penstock/flow"
)

func materialize(b *testing.B, mem memory.Allocator) *bench.Replay {
	b.Helper()
	batches, err := bench.Materialize(b.Context(), mem, bench.Rows)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, x := range batches {
			x.Release()
		}
	})
	return &bench.Replay{Batches: batches}
}

// timed runs fn over src from its first batch and returns how long it took.
func timed(b *testing.B, src flow.Rewinder, fn func() (int64, error)) time.Duration {
	b.Helper()
	if err := src.Rewind(); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	rows, err := fn()
	d := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if rows != bench.Rows {
		b.Fatalf("got %d rows out; want %d", rows, bench.Rows)
	}
	return d
}

// BenchmarkStageOverhead measures what a runner costs per batch and per
// stage over calling the steps directly in a loop, on two pipelines: the
// reference one with no work in the middle step ("reference": ×2, nothing,
// ×0.5), and one whose three steps do nothing at all ("noop"), which shows
// the runtime's own cost. Each iteration times the direct loop and the
// runner on the same data; overhead-ns/batch-stage is the difference.
// Target: streaming ≤ 1000 over direct.
func BenchmarkStageOverhead(b *testing.B) {
	ctx := b.Context()
	mem := memory.NewGoAllocator()
	src := materialize(b, mem)
	reference, err := bench.Pipeline(mem, 0)
	if err != nil {
		b.Fatal(err)
	}
	noop, err := flow.NewPipeline([]flow.Node{
		flow.Named("a", bench.Spin{}), flow.Named("b", bench.Spin{}), flow.Named("c", bench.Spin{}),
	}, flow.QueueCapacity(bench.Capacity))
	if err != nil {
		b.Fatal(err)
	}
	for _, pl := range []struct {
		name string
		p    *flow.Pipeline
	}{{"reference", reference}, {"noop", noop}} {
		p := pl.p
		units := float64(len(src.Batches) * len(p.Nodes()))
		direct := func() (int64, error) { return bench.Direct(ctx, p, src) }
		for _, tc := range []struct {
			name string
			run  func() (int64, error)
		}{
			{"direct", direct},
			{"sequential", func() (int64, error) { return bench.Drain(ctx, flow.Runner{}, p, src) }},
			{"streaming", func() (int64, error) {
				return bench.Drain(ctx, flow.Runner{Engine: flow.Streaming}, p, src)
			}},
		} {
			b.Run(pl.name+"/"+tc.name, func(b *testing.B) {
				b.ReportAllocs()
				var base, own time.Duration
				for b.Loop() {
					base += timed(b, src, direct)
					own += timed(b, src, tc.run)
				}
				n := units * float64(b.N)
				b.ReportMetric(float64(own.Nanoseconds())/n, "ns/batch-stage")
				b.ReportMetric(float64((own-base).Nanoseconds())/n, "overhead-ns/batch-stage")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// BenchmarkReplicas runs the reference pipeline with a middle step that
// spins 1 ms per batch: sequentially, then streaming with 1 and 2 replicas
// of the middle step, in order and out of order. Each iteration also times
// the sequential runner, so x-vs-sequential compares runs on the same
// machine at the same moment. Target on 2 cores: ≥ 1.95 with 2 replicas in
// order.
func BenchmarkReplicas(b *testing.B) {
	ctx := b.Context()
	mem := memory.NewGoAllocator()
	src := materialize(b, mem)
	seqP, err := bench.Pipeline(mem, time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	sequential := func() (int64, error) { return bench.Drain(ctx, flow.Runner{}, seqP, src) }
	b.Run("sequential", func(b *testing.B) {
		var own time.Duration
		for b.Loop() {
			own += timed(b, src, sequential)
		}
		b.ReportMetric(float64(bench.Rows)*float64(b.N)/own.Seconds(), "rows/s")
		b.ReportMetric(0, "ns/op")
	})
	for _, tc := range []struct {
		replicas int
		barrier  barrier.Kind
	}{{1, barrier.InOrder}, {2, barrier.InOrder}, {2, barrier.OutOfOrder}} {
		b.Run(fmt.Sprintf("streaming/replicas=%d/%v", tc.replicas, tc.barrier), func(b *testing.B) {
			p, err := bench.Pipeline(mem, time.Millisecond, flow.Replicas(tc.replicas), flow.Barrier(tc.barrier))
			if err != nil {
				b.Fatal(err)
			}
			run := func() (int64, error) { return bench.Drain(ctx, flow.Runner{Engine: flow.Streaming}, p, src) }
			var base, own time.Duration
			for b.Loop() {
				base += timed(b, src, sequential)
				own += timed(b, src, run)
			}
			b.ReportMetric(float64(bench.Rows)*float64(b.N)/own.Seconds(), "rows/s")
			b.ReportMetric(base.Seconds()/own.Seconds(), "x-vs-sequential")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkStreamMemory streams 10⁵, 10⁶ and 10⁷ rows, generated on the
// fly, through the no-work pipeline and reports the peak of the Go heap
// while it runs (sampled every millisecond), and that peak as a ratio to
// the peak of a 10⁵-row run in the same iteration. Target: flat.
func BenchmarkStreamMemory(b *testing.B) {
	ctx := b.Context()
	mem := memory.NewGoAllocator()
	p, err := bench.Pipeline(mem, 0)
	if err != nil {
		b.Fatal(err)
	}
	run := func(rows int64) uint64 {
		return peakHeap(b, func() {
			g := &bench.Generator{Mem: mem, Rows: rows}
			n, err := bench.Drain(ctx, flow.Runner{Engine: flow.Streaming}, p, g)
			if err != nil {
				b.Fatal(err)
			}
			if n != rows {
				b.Fatalf("got %d rows; want %d", n, rows)
			}
		})
	}
	for _, rows := range []int64{1e5, 1e6, 1e7} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			var peak, base uint64
			for b.Loop() {
				base = max(base, run(1e5))
				peak = max(peak, run(rows))
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(peak)/float64(base), "x-vs-1e5")
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// peakHeap runs fn and returns the largest heap-object size seen while it
// ran.
func peakHeap(b *testing.B, fn func()) uint64 {
	b.Helper()
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	peak := read()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				peak = max(peak, read())
			}
		}
	})
	fn()
	close(stop)
	wg.Wait()
	return max(peak, read())
}
