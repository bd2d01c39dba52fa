package bench_test

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
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
// runner on the same data; overhead-ns/batch-stage is the difference over
// all iterations, and median-overhead-ns/batch-stage the median of the
// iterations' differences: on a shared machine a few iterations that other
// processes slow down move the first, not the second.
// Target on two cores: noop/streaming overhead ≤ 250 ns per batch and
// stage (reference/streaming ≤ 1000). The streaming runs also time
// bench.Channels, the same goroutines and queues on plain channels with
// no cancellation, statistics or checks: channels-median-overhead is what
// the runtime alone costs on the machine, and x-vs-channels the engine's
// time over that one's.
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
		channels := func() (int64, error) { return bench.Channels(ctx, p, src), nil }
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
				var base, own, chans time.Duration
				var diffs, chanDiffs []time.Duration
				for b.Loop() {
					d0 := timed(b, src, direct)
					d1 := timed(b, src, tc.run)
					base, own, diffs = base+d0, own+d1, append(diffs, d1-d0)
					if tc.name == "streaming" {
						d2 := timed(b, src, channels)
						chans, chanDiffs = chans+d2, append(chanDiffs, d2-d0)
					}
				}
				n := units * float64(b.N)
				b.ReportMetric(float64(own.Nanoseconds())/n, "ns/batch-stage")
				b.ReportMetric(float64((own-base).Nanoseconds())/n, "overhead-ns/batch-stage")
				slices.Sort(diffs)
				b.ReportMetric(float64(diffs[len(diffs)/2].Nanoseconds())/units, "median-overhead-ns/batch-stage")
				if chanDiffs != nil {
					// The same layout on plain channels (bench.Channels), in
					// the same iterations: what the runtime alone costs here.
					slices.Sort(chanDiffs)
					b.ReportMetric(float64(chanDiffs[len(chanDiffs)/2].Nanoseconds())/units, "channels-median-overhead-ns/batch-stage")
					b.ReportMetric(float64(own.Nanoseconds())/float64(chans.Nanoseconds()), "x-vs-channels")
				}
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
// fly, through the no-work pipeline and reports, while it runs (sampled
// every millisecond):
//
//   - peak-heap-MB: the largest heap seen, garbage not yet collected
//     included. It drifts up with the number of GC cycles sampled.
//   - live-heap-MB: the median, over the GC cycles of the run, of the heap
//     that each cycle found live. Anything retained per batch would make
//     it grow with the stream; spikes of one cycle do not move it.
//   - x-vs-1e5: live-heap-MB as a ratio to a 10⁵-row run in the same
//     iteration. Target: flat (about 1).
func BenchmarkStreamMemory(b *testing.B) {
	ctx := b.Context()
	mem := memory.NewGoAllocator()
	p, err := bench.Pipeline(mem, 0)
	if err != nil {
		b.Fatal(err)
	}
	run := func(rows int64) heapUse {
		return measureHeap(b, func() {
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
			var use, base heapUse
			for b.Loop() {
				base = base.max(run(1e5))
				use = use.max(run(rows))
			}
			b.ReportMetric(float64(use.peak)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(use.live)/(1<<20), "live-heap-MB")
			b.ReportMetric(float64(use.live)/float64(base.live), "x-vs-1e5")
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

type heapUse struct{ peak, live uint64 }

func (h heapUse) max(o heapUse) heapUse { return heapUse{max(h.peak, o.peak), max(h.live, o.live)} }

// measureHeap runs fn and returns the largest heap seen and the median of
// the live heap found by each GC cycle that ended while fn ran.
func measureHeap(b *testing.B, fn func()) heapUse {
	b.Helper()
	runtime.GC()
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
	}
	var peak uint64
	var lives []uint64
	var cycle uint64
	read := func() {
		metrics.Read(samples)
		peak = max(peak, samples[0].Value.Uint64())
		if c := samples[2].Value.Uint64(); c != cycle {
			cycle = c
			lives = append(lives, samples[1].Value.Uint64())
		}
	}
	read()
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
				read()
			}
		}
	})
	fn()
	close(stop)
	wg.Wait()
	read()
	slices.Sort(lives)
	return heapUse{peak: peak, live: lives[len(lives)/2]}
}
