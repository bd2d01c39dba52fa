package bench_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/bench"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/persist/checkpoint"
	"github.com/penstock-ml/penstock/steps"
)

// searchTrials is the number of trials of one search in
// BenchmarkParallelTrials.
const searchTrials = 8

// digitsSearch returns the configuration of a random search of a
// standardized logistic regression's learning rate and penalty on the
// digits (examples/data), holdout of 20%, 5 epochs per trial, and the
// training source (batches of 32), read into memory.
func digitsSearch(b *testing.B, mem memory.Allocator) (automl.Config, flow.Source) {
	b.Helper()
	pixels := make([]string, 64)
	for i := range pixels {
		pixels[i] = fmt.Sprint("px", i)
	}
	alloc := minibatch.WithAllocator(mem)
	csv, err := minibatch.OpenCSV(filepath.Join("..", "examples", "data", "digits.csv.gz"), alloc, minibatch.WithHeader(false),
		minibatch.WithColumnNames(append(pixels, "digit")...), minibatch.WithLabels("digit"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { csv.Close() })
	batches, err := minibatch.NewRebatcher(csv, 32, minibatch.Keep, alloc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { batches.Close() })
	// Packed once, read once: the searches split it in memory, and the
	// trials fit the model, not the data preparation.
	pack, err := flow.NewPipeline([]flow.Node{flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: pixels})})
	if err != nil {
		b.Fatal(err)
	}
	packed, err := flow.Runner{Allocator: mem}.Transform(b.Context(), pack, batches)
	if err != nil {
		b.Fatal(err)
	}
	cache, err := minibatch.NewCache(packed)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close(); packed.Close() })
	for { // the first pass fills the cache; then it replays
		batch, err := cache.Next(b.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		batch.Release()
	}
	if err := cache.Rewind(); err != nil {
		b.Fatal(err)
	}
	scale, err := steps.NewStandardScaler()
	if err != nil {
		b.Fatal(err)
	}
	model, err := steps.NewLogisticRegression("digit", 10, steps.Seed(7), steps.Momentum(0.9))
	if err != nil {
		b.Fatal(err)
	}
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("scale", scale, flow.FitEpochs(1), flow.Barrier(barrier.Joiner)),
		flow.Named("model", model),
	})
	if err != nil {
		b.Fatal(err)
	}
	cfg := automl.Config{
		Pipeline: p,
		Space: hparams.Space{
			"model__learning_rate": hparams.LogUniform(1e-3, 0.5),
			"model__alpha":         hparams.LogUniform(1e-6, 1e-2),
		},
		Splitter:   automl.Holdout(0.2, minibatch.WithSeed(1), alloc),
		Metric:     metrics.Accuracy,
		Prediction: steps.ClassColumn,
		Truth:      "digit",
		Trials:     searchTrials,
		Epochs:     5,
		// Runner.Allocator nil: the search's minibatch.Pool (the default).
	}
	return cfg, cache
}

// BenchmarkParallelTrials runs a search of 8 trials (random search of a
// logistic regression on the digits, holdout, 5 epochs, sequential
// runner) with 1 trial at a time and with 2 at once, and reports trials/s.
// Every iteration of parallel=2 also times the serial search, so
// x-vs-serial compares runs on the same machine at the same moment.
// Target on 2 cores: x-vs-serial ≥ 1.8.
//
// cached=spin times the same search, serial, with an expensive prefix
// (the scaler, then a bench.Spin of prefixSpin per batch, before the
// model) through automl's checkpoint cache (Config.Cache, a new cache
// directory every iteration, so the first trial misses and the others
// hit) against the same search without the cache, timed in the same
// iteration: x-vs-uncached is uncached time over cached time.
func BenchmarkParallelTrials(b *testing.B) {
	ctx := b.Context()
	mem := memory.NewGoAllocator()
	cfg, train := digitsSearch(b, mem)
	search := func(parallel int) time.Duration {
		c := cfg
		c.Parallel = parallel
		start := time.Now()
		res, err := automl.Search(ctx, c, train)
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if res.Ran != searchTrials || res.Best.Status != automl.Done {
			b.Fatalf("ran %d trials (best %+v); want %d", res.Ran, res.Best, searchTrials)
		}
		return d
	}
	search(1) // warm up
	b.Run("parallel=1", func(b *testing.B) {
		b.ReportAllocs()
		var own time.Duration
		for b.Loop() {
			own += search(1)
		}
		b.ReportMetric(float64(searchTrials*b.N)/own.Seconds(), "trials/s")
	})
	b.Run("parallel=2", func(b *testing.B) {
		b.ReportAllocs()
		var serial, own time.Duration
		for b.Loop() {
			serial += search(1)
			own += search(2)
		}
		b.ReportMetric(float64(searchTrials*b.N)/own.Seconds(), "trials/s")
		b.ReportMetric(serial.Seconds()/own.Seconds(), "x-vs-serial")
	})
	b.Run("cached=spin", func(b *testing.B) {
		b.ReportAllocs()
		spun, reg := spinSearch(b, cfg)
		dir := b.TempDir()
		var uncached, own time.Duration
		i := 0
		for b.Loop() {
			c := spun
			uncached += timedSearch(b, ctx, c, train)
			cache, err := checkpoint.Open(filepath.Join(dir, fmt.Sprint(i)), checkpoint.Registry(reg))
			if err != nil {
				b.Fatal(err)
			}
			c.Cache, c.CacheBefore = cache, "model"
			own += timedSearch(b, ctx, c, train)
			i++
		}
		b.ReportMetric(float64(searchTrials*b.N)/own.Seconds(), "trials/s")
		b.ReportMetric(uncached.Seconds()/own.Seconds(), "x-vs-uncached")
	})
}

// prefixSpin is the CPU time per batch of the expensive prefix step of
// BenchmarkParallelTrials/cached.
const prefixSpin = 300 * time.Microsecond

// spinSearch returns cfg with a bench.Spin{prefixSpin} between the scaler
// and the model, and a registry that knows the steps of its prefix.
func spinSearch(b *testing.B, cfg automl.Config) (automl.Config, *persist.Registry) {
	b.Helper()
	reg := persist.NewRegistry()
	if err := steps.Register(reg); err != nil {
		b.Fatal(err)
	}
	err := reg.Register(persist.Type{
		Name: "bench.Spin", Version: 1, Of: bench.Spin{},
		SaveState: func(s flow.Step, w *persist.StateWriter) error {
			w.Int64("d", int64(s.(bench.Spin).D))
			return w.Err()
		},
		New: func(sp persist.Spec) (flow.Step, error) {
			d, err := sp.State.Int64("d")
			return bench.Spin{D: time.Duration(d)}, err
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	nodes := cfg.Pipeline.Nodes()
	p, err := flow.NewPipeline([]flow.Node{nodes[0], flow.Named("spin", bench.Spin{D: prefixSpin}), nodes[1]})
	if err != nil {
		b.Fatal(err)
	}
	cfg.Pipeline = p
	return cfg, reg
}

// timedSearch runs the search cfg on train and returns how long it took.
func timedSearch(b *testing.B, ctx context.Context, cfg automl.Config, train flow.Source) time.Duration {
	b.Helper()
	start := time.Now()
	res, err := automl.Search(ctx, cfg, train)
	d := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if res.Ran != searchTrials || res.Best.Status != automl.Done {
		b.Fatalf("ran %d trials (best %+v); want %d", res.Ran, res.Best, searchTrials)
	}
	return d
}
