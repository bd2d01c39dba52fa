package bench_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/bench"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/persist/checkpoint"
)

// expensiveFeatures stands for a costly feature step (an embedding, a
// large transform): rounds of transcendental work per value. It learns
// the number of rows seen, its state.
type expensiveFeatures struct {
	rounds int
	seen   int64
}

func (e *expensiveFeatures) Params() hparams.Values { return hparams.Values{"rounds": e.rounds} }
func (e *expensiveFeatures) SetParams(v hparams.Values) error {
	if r, ok := v["rounds"].(int); ok {
		e.rounds = r
	}
	return nil
}
func (e *expensiveFeatures) MarshalState(w *persist.StateWriter) error {
	w.Int64("seen", e.seen)
	return w.Err()
}
func (e *expensiveFeatures) UnmarshalState(r *persist.StateReader) (err error) {
	e.seen, err = r.Int64("seen")
	return err
}
func (e *expensiveFeatures) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	e.seen += in.Rows()
	return e.Transform(ctx, in)
}
func (e *expensiveFeatures) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return minibatch.MapRows(ctx, in, "features", "features", bench.Width, func(x, y []float32) {
		for j, v := range x {
			f := float64(v)
			for range e.rounds {
				f = math.Sqrt(math.Abs(math.Sin(f)*1e3)) + 1
			}
			y[j] = float32(f)
		}
	})
}

// ridgeSum is the cheap last step whose hyperparameter the sweep varies.
type ridgeSum struct {
	alpha float64
	acc   float64
}

func (r *ridgeSum) Fit(ctx context.Context, in flow.Batch) error {
	m, err := minibatch.Features(in, "features")
	if err != nil {
		return err
	}
	for _, v := range m.Data {
		r.acc += float64(v) / (1 + r.alpha)
	}
	return nil
}
func (r *ridgeSum) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

// BenchmarkCheckpointSweep: ten fits that differ only in the last step's
// hyperparameter, after an expensive first step, with a checkpoint
// between them (a fresh cache per sweep: one miss, nine hits) and
// without one. One op is one sweep each way; x-vs-uncached is the cached
// sweep's time over the uncached sweep's (target ≤ 0.3); hit-ms/fit is
// the time of one fit that hits (hashing the source, restoring the
// prefix, reading the cached outputs, fitting the last step).
func BenchmarkCheckpointSweep(b *testing.B) {
	const rows, rounds, fits = 20_000, 10, 10
	reg := persist.NewRegistry()
	if err := reg.Register(persist.Type{Name: "bench.ExpensiveFeatures", Version: 1, Of: (*expensiveFeatures)(nil),
		New: func(persist.Spec) (flow.Step, error) { return &expensiveFeatures{}, nil }}); err != nil {
		b.Fatal(err)
	}
	for _, e := range []flow.Engine{flow.Sequential, flow.Streaming} {
		b.Run(e.String(), func(b *testing.B) {
			ctx := b.Context()
			r := flow.Runner{Engine: e}
			var hits time.Duration
			sweep := func(c *checkpoint.Cache) {
				for i := range fits {
					t0 := time.Now()
					pre, err := flow.NewPipeline([]flow.Node{flow.Named("features", &expensiveFeatures{rounds: rounds})})
					if err != nil {
						b.Fatal(err)
					}
					suf, err := flow.NewPipeline([]flow.Node{flow.Named("ridge", &ridgeSum{alpha: float64(i) / 10})})
					if err != nil {
						b.Fatal(err)
					}
					p, err := checkpoint.New(c, pre, suf)
					if err != nil {
						b.Fatal(err)
					}
					res, err := p.Fit(ctx, r, &bench.Generator{Rows: rows})
					if err != nil {
						b.Fatal(err)
					}
					if res.Hit {
						hits += time.Since(t0)
					} else if c.Enabled() && i > 0 {
						b.Fatalf("fit %d of a sweep missed the cache", i)
					}
				}
			}
			var cached, uncached time.Duration
			var stored int64
			b.ReportAllocs()
			for b.Loop() {
				off, err := checkpoint.Open(b.TempDir(), checkpoint.Registry(reg), checkpoint.Off())
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				sweep(off)
				uncached += time.Since(t0)
				on, err := checkpoint.Open(b.TempDir(), checkpoint.Registry(reg), checkpoint.ModuleVersion("bench"))
				if err != nil {
					b.Fatal(err)
				}
				t0 = time.Now()
				sweep(on)
				cached += time.Since(t0)
				_, stored, _ = on.Entries()
			}
			n := float64(b.N)
			b.ReportMetric(float64(cached.Milliseconds())/n, "cached-ms/sweep")
			b.ReportMetric(float64(uncached.Milliseconds())/n, "uncached-ms/sweep")
			b.ReportMetric(cached.Seconds()/uncached.Seconds(), "x-vs-uncached")
			b.ReportMetric(float64(hits.Microseconds())/1e3/(n*(fits-1)), "hit-ms/fit")
			b.ReportMetric(float64(stored)/(rows*bench.Width*4), "entry-bytes/raw-byte")
			b.ReportMetric(0, "ns/op")
		})
	}
}
