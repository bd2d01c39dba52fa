package automl_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/persist/checkpoint"
)

// counts are the calls of every center step of one test, copies and
// steps restored from a cache included.
type counts struct{ fits, transforms atomic.Int64 }

// center stands for an expensive prefix step: it sleeps a little per
// batch, counts its calls, learns the running mean of column x and
// outputs x - mean (z passes through).
type center struct {
	n     *counts
	sum   float64
	count int64
}

var (
	_ flow.Fitter    = (*center)(nil)
	_ flow.Copier    = (*center)(nil)
	_ persist.Stater = (*center)(nil)
)

func (c *center) Copy() flow.Step { d := *c; return &d }

func (c *center) Fit(ctx context.Context, in flow.Batch) error {
	c.n.fits.Add(1)
	time.Sleep(100 * time.Microsecond)
	x, _, _, err := columns(in)
	if err != nil {
		return err
	}
	for _, v := range x {
		c.sum += v
		c.count++
	}
	return nil
}

func (c *center) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	c.n.transforms.Add(1)
	x, _, _, err := columns(in)
	if err != nil {
		return flow.Batch{}, err
	}
	var mean float64
	if c.count > 0 {
		mean = c.sum / float64(c.count)
	}
	bld := array.NewFloat64Builder(flow.Allocator(ctx))
	defer bld.Release()
	for _, v := range x {
		bld.Append(v - mean)
	}
	cx := bld.NewArray()
	defer cx.Release()
	z := in.X.Column(1)
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64}, {Name: "z", Type: arrow.PrimitiveTypes.Float64}}, nil)
	return in.WithX(array.NewRecordBatch(schema, []arrow.Array{cx, z}, int64(len(x)))), nil
}

func (c *center) MarshalState(w *persist.StateWriter) error {
	w.Float64("sum", c.sum)
	w.Int64("count", c.count)
	return w.Err()
}

func (c *center) UnmarshalState(r *persist.StateReader) (err error) {
	if c.sum, err = r.Float64("sum"); err != nil {
		return err
	}
	c.count, err = r.Int64("count")
	return err
}

// centerCache opens a cache in a temporary directory whose registry knows
// center, its steps counting into n.
func centerCache(t *testing.T, n *counts) *checkpoint.Cache {
	t.Helper()
	reg := persist.NewRegistry()
	err := reg.Register(persist.Type{Name: "automltest.Center", Version: 1, Of: (*center)(nil),
		New: func(persist.Spec) (flow.Step, error) { return &center{n: n}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	c, err := checkpoint.Open(t.TempDir(), checkpoint.Registry(reg), checkpoint.ModuleVersion("v0.0.0-automltest"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// centerSearch is a grid search of center → affine over 4 values of the
// model's w (the prefix never changes), 3-fold, 2 epochs.
func centerSearch(t *testing.T, mem memory.Allocator, e flow.Engine, n *counts) automl.Config {
	t.Helper()
	p, err := flow.NewPipeline([]flow.Node{flow.Named("center", &center{n: n}), flow.Named("model", newAffine())})
	if err != nil {
		t.Fatal(err)
	}
	return automl.Config{
		Pipeline:   p,
		Splitter:   automl.KFold(3, minibatch.WithAllocator(mem)),
		Sampler:    &automl.Grid{},
		Space:      hparams.Space{"model__w": hparams.Choice(1.0, 2.0, 2.5, 3.0)},
		Metric:     metrics.MSE,
		Prediction: "pred",
		Truth:      "y",
		Epochs:     2,
		Parallel:   2,
		Runner:     flow.Runner{Engine: e, Allocator: mem},
	}
}

// Trials that share a prefix with the same hyperparameters fit it once
// per split through the cache (and transform each validation side once
// per split), against once per trial without; the scores are the same.
func TestCacheReusesPrefix(t *testing.T) {
	const rows, trials, splits, epochs = 150, 4, 3, 2
	for _, e := range []flow.Engine{flow.Sequential, flow.Streaming} {
		t.Run(fmt.Sprint(e), func(t *testing.T) {
			mem := checkedMem(t)
			ctx := deadline(t, 60*time.Second)
			train := regression(t, mem, rows, 9)
			var plain counts
			cfg := centerSearch(t, mem, e, &plain)
			want, err := automl.Search(ctx, cfg, train)
			if err != nil {
				t.Fatal(err)
			}
			if want.Ran != trials {
				t.Fatalf("uncached: ran %d trials; want %d", want.Ran, trials)
			}
			// Without the cache every trial fits the prefix on every split,
			// epochs times, and transforms on the fit path and on every
			// validation side.
			fitsPerSplit := plain.fits.Load() / (trials * splits)
			if fitsPerSplit == 0 || plain.fits.Load() != trials*splits*fitsPerSplit || fitsPerSplit%epochs != 0 {
				t.Fatalf("uncached: center fitted %d batches; want a multiple of %d trials × %d splits × %d epochs", plain.fits.Load(), trials, splits, epochs)
			}

			var cached counts
			cfg = centerSearch(t, mem, e, &cached)
			cfg.Cache, cfg.CacheBefore = centerCache(t, &cached), "model"
			cfg.Parallel = 1 // two trials at once would both miss
			got, err := automl.Search(ctx, cfg, train)
			if err != nil {
				t.Fatal(err)
			}
			if got.Ran != trials {
				t.Fatalf("cached: ran %d trials; want %d", got.Ran, trials)
			}
			if n, w := cached.fits.Load(), splits*fitsPerSplit; n != w {
				t.Errorf("cached: center fitted %d batches; want %d (once per split, not per trial)", n, w)
			}
			// The transforms (fit path and validation sides) too: once per
			// split, against once per trial and split.
			if n, w := cached.transforms.Load(), plain.transforms.Load()/trials; n != w || n <= cached.fits.Load() || plain.transforms.Load()%trials != 0 {
				t.Errorf("cached: center transformed %d batches (uncached %d); want %d, once per split", n, plain.transforms.Load(), w)
			}
			for i := range want.Trials {
				a, b := want.Trials[i], got.Trials[i]
				if b.Status != automl.Done || a.Status != automl.Done {
					t.Fatalf("trial %d: status %q cached, %q uncached (%s %s); want both done", i, b.Status, a.Status, b.Error, a.Error)
				}
				if fmt.Sprint(a.Params) != fmt.Sprint(b.Params) || len(a.Scores) != len(b.Scores) {
					t.Fatalf("trial %d: cached %v %v; uncached %v %v", i, b.Params, b.Scores, a.Params, a.Scores)
				}
				for j := range a.Scores {
					if math.Float64bits(a.Scores[j]) != math.Float64bits(b.Scores[j]) {
						t.Errorf("trial %d split %d: cached score %v; uncached %v", i, j, b.Scores[j], a.Scores[j])
					}
				}
				if fmt.Sprint(a.EpochsRun) != fmt.Sprint(b.EpochsRun) {
					t.Errorf("trial %d: cached epochs run %v; uncached %v", i, b.EpochsRun, a.EpochsRun)
				}
			}
			if want.Best.Params["model__w"] != 2.5 || got.Best.Params["model__w"] != 2.5 {
				t.Errorf("best w: cached %v, uncached %v; want 2.5", got.Best.Params["model__w"], want.Best.Params["model__w"])
			}
			n, _, err := cfg.Cache.Entries()
			if err != nil || n == 0 {
				t.Errorf("cache holds %d entries (%v); want some", n, err)
			}
		})
	}
}

// Parallel trials share the cache: the scores are those of the serial
// search, and the prefix runs at most once per split per trial running at
// once.
func TestCacheParallel(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 60*time.Second)
	train := regression(t, mem, 150, 9)
	var serial, par counts
	cfg := centerSearch(t, mem, flow.Sequential, &serial)
	cfg.Cache, cfg.CacheBefore, cfg.Parallel = centerCache(t, &serial), "model", 1
	want, err := automl.Search(ctx, cfg, train)
	if err != nil {
		t.Fatal(err)
	}
	cfg = centerSearch(t, mem, flow.Sequential, &par)
	cfg.Cache, cfg.CacheBefore, cfg.Parallel = centerCache(t, &par), "model", 2
	got, err := automl.Search(ctx, cfg, train)
	if err != nil {
		t.Fatal(err)
	}
	if n, most := par.fits.Load(), 2*serial.fits.Load(); n > most || n < serial.fits.Load() {
		t.Errorf("parallel: center fitted %d batches; want between %d and %d", n, serial.fits.Load(), most)
	}
	for i := range want.Trials {
		if fmt.Sprint(want.Trials[i].Scores) != fmt.Sprint(got.Trials[i].Scores) || got.Trials[i].Status != automl.Done {
			t.Errorf("trial %d: parallel %v %v; serial %v", i, got.Trials[i].Status, got.Trials[i].Scores, want.Trials[i].Scores)
		}
	}
}

// The cached path refuses what it cannot serve, with a configuration
// error that says what to change.
func TestCacheConfigErrors(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 30*time.Second)
	var n counts
	c := centerCache(t, &n)
	cases := []struct {
		name string
		edit func(*automl.Config)
		want string
	}{
		{"no CacheBefore", func(cfg *automl.Config) { cfg.Cache = c }, "without CacheBefore"},
		{"CacheBefore alone", func(cfg *automl.Config) { cfg.CacheBefore = "model" }, "without a Cache"},
		{"unknown node", func(cfg *automl.Config) { cfg.Cache, cfg.CacheBefore = c, "nope" }, `Split before "nope"`},
		{"first node", func(cfg *automl.Config) { cfg.Cache, cfg.CacheBefore = c, "center" }, "after the first"},
		{"callbacks", func(cfg *automl.Config) {
			cfg.Cache, cfg.CacheBefore = c, "model"
			cfg.Callbacks = []automl.Callback{automl.EarlyStopping(2, 0)}
		}, "Callbacks with a Cache"},
		{"OnEpoch", func(cfg *automl.Config) {
			cfg.Cache, cfg.CacheBefore = c, "model"
			cfg.Runner.OnEpoch = func(context.Context, flow.EpochEnd) error { return nil }
		}, "Runner.OnEpoch with a Cache"},
	}
	for _, tc := range cases {
		cfg := centerSearch(t, mem, flow.Sequential, &n)
		tc.edit(&cfg)
		_, err := automl.Search(ctx, cfg, regression(t, mem, 50, 1))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "automl: config:") {
			t.Errorf("%s: got %v; want a config error containing %q", tc.name, err, tc.want)
		}
	}
	if n.fits.Load() != 0 {
		t.Errorf("refused searches fitted %d batches; want none", n.fits.Load())
	}
}

// Successive halving through the cache: each rung's epochs are their own
// entries, and the scores are those of the uncached search.
func TestCacheSuccessiveHalving(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 60*time.Second)
	train := regression(t, mem, 150, 4)
	search := func(cache bool) automl.Result {
		var n counts
		cfg := centerSearch(t, mem, flow.Sequential, &n)
		cfg.Sampler = automl.SuccessiveHalving{Sampler: &automl.Grid{}, Configs: 4, Eta: 2, MinEpochs: 1}
		cfg.Parallel = 1
		if cache {
			cfg.Cache, cfg.CacheBefore = centerCache(t, &n), "model"
		}
		res, err := automl.Search(ctx, cfg, train)
		if err != nil {
			t.Fatalf("cache %v: %v", cache, err)
		}
		return res
	}
	want, got := search(false), search(true)
	if len(got.Trials) != len(want.Trials) || len(got.Trials) < 6 {
		t.Fatalf("cached: %d trials; uncached %d; want the same, at least 6 (4 + 2 + 1 rungs)", len(got.Trials), len(want.Trials))
	}
	for i := range want.Trials {
		a, b := want.Trials[i], got.Trials[i]
		if b.Status != automl.Done || a.Epochs != b.Epochs || fmt.Sprint(a.Scores) != fmt.Sprint(b.Scores) || fmt.Sprint(a.EpochsRun) != fmt.Sprint(b.EpochsRun) {
			t.Errorf("trial %d: cached %s %d epochs %v run %v; uncached %d epochs %v run %v", i, b.Status, b.Epochs, b.Scores, b.EpochsRun, a.Epochs, a.Scores, a.EpochsRun)
		}
	}
}
