package automl_test

// An adversarial audit of the promises of automl's doc comments:
// cancellation with a cause at every stage of a search, however the steps
// report it, in both engines; trials running at once that share nothing;
// a seeded search that is reproducible whatever the parallelism; a
// failing trial that does not stop the others.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"go.uber.org/goleak"
)

var auditEngines = []flow.Engine{flow.Sequential, flow.Streaming}

func engineName(e flow.Engine) string {
	if e == flow.Streaming {
		return "streaming"
	}
	return "sequential"
}

// How a test step reports a cancelled context.
var auditCtxModes = []struct {
	name   string
	report func(ctx context.Context) error
}{
	{"ctx.Err", func(ctx context.Context) error { return ctx.Err() }},
	{"Cause", func(ctx context.Context) error { return context.Cause(ctx) }},
	{"wrapped", func(ctx context.Context) error { return fmt.Errorf("affine: waiting: %w", ctx.Err()) }},
}

// A search cancelled with a cause in the middle of its trials returns the
// cause, the trials recorded so far (all finished), the best of them, and
// no goroutine or batch left behind.
func TestAuditSearchCancelCause(t *testing.T) {
	for _, eng := range auditEngines {
		for _, mode := range auditCtxModes {
			t.Run(engineName(eng)+"/"+mode.name, func(t *testing.T) {
				defer goleak.VerifyNone(t)
				mem := checkedMem(t)
				ctx := deadline(t, 30*time.Second)
				src := regression(t, mem, 100, 5)
				cause := errors.New("audit: operator stop")
				stop, cancel := context.WithCancelCause(ctx)
				defer cancel(nil)
				var fits atomic.Int64
				a := newAffine()
				a.onFit = func(ctx context.Context, _ *affine) error {
					if fits.Add(1) == 20 {
						cancel(cause)
					}
					if ctx.Err() != nil {
						return mode.report(ctx)
					}
					return nil
				}
				cfg := config(t, mem, a)
				cfg.Runner.Engine = eng
				cfg.Trials, cfg.Parallel, cfg.Seed = 40, 3, 9
				res, err := automl.Search(stop, cfg, src)
				if !errors.Is(err, cause) {
					t.Fatalf("got %v; want an error wrapping the cause", err)
				}
				if len(res.Trials) == 0 || len(res.Trials) >= 40 {
					t.Fatalf("%d trials recorded; want some, not all", len(res.Trials))
				}
				want := math.Inf(1)
				for _, tr := range res.Trials {
					if tr.Status != automl.Done {
						t.Errorf("trial %d recorded as %s (%s); want only finished trials", tr.Step, tr.Status, tr.Error)
					}
					want = min(want, tr.Score)
				}
				if res.Best.Status != automl.Done || res.Best.Score != want {
					t.Errorf("best so far: %s, score %v; want done, %v", res.Best.Status, res.Best.Score, want)
				}
				if res.Ran != len(res.Trials) {
					t.Errorf("Ran = %d; want %d", res.Ran, len(res.Trials))
				}
			})
		}
	}
}

// A context cancelled with a cause before the search reads its data (or
// while it reads it) gives the cause too.
func TestAuditSearchCancelledBeforeStart(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checkedMem(t)
	ctx := deadline(t, 10*time.Second)
	src := regression(t, mem, 100, 5)
	cause := errors.New("audit: never mind")
	stop, cancel := context.WithCancelCause(ctx)
	cancel(cause)
	var fits atomic.Int64
	a := newAffine()
	a.onFit = func(context.Context, *affine) error { fits.Add(1); return nil }
	cfg := config(t, mem, a)
	cfg.Trials = 5
	res, err := automl.Search(stop, cfg, src)
	if !errors.Is(err, cause) {
		t.Fatalf("got %v; want an error wrapping the cause", err)
	}
	if len(res.Trials) != 0 || fits.Load() != 0 {
		t.Errorf("%d trials, %d fits; want none", len(res.Trials), fits.Load())
	}
}

// The same seed gives the same trials — parameters, scores, identities —
// in both engines, and for Random whatever the number of trials run at
// once; another seed gives others.
func TestAuditSeededSearchReproducible(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checkedMem(t)
	ctx := deadline(t, 60*time.Second)
	src := regression(t, mem, 100, 5)
	run := func(seed uint64, parallel int, eng flow.Engine, sampler automl.Sampler) []automl.Trial {
		t.Helper()
		cfg := config(t, mem, newAffine())
		cfg.Trials, cfg.Parallel, cfg.Seed, cfg.Sampler = 12, parallel, seed, sampler
		cfg.Runner.Engine = eng
		cfg.Epochs = 2
		if err := src.Rewind(); err != nil {
			t.Fatal(err)
		}
		res, err := automl.Search(ctx, cfg, src)
		if err != nil {
			t.Fatal(err)
		}
		return res.Trials
	}
	// TPE's proposals depend on the trials finished so far, so only one
	// trial at a time makes its history the same from run to run.
	for _, c := range []struct {
		sampler  automl.Sampler
		parallel int
	}{{automl.Random{}, 4}, {automl.TPE{}, 1}} {
		sampler := c.sampler
		ref := run(7, 1, flow.Sequential, sampler)
		for _, c := range []struct {
			parallel int
			eng      flow.Engine
		}{{c.parallel, flow.Sequential}, {c.parallel, flow.Streaming}} {
			got := run(7, c.parallel, c.eng, sampler)
			if len(got) != len(ref) {
				t.Fatalf("%v, %d at once, %s: %d trials; want %d", sampler, c.parallel, engineName(c.eng), len(got), len(ref))
			}
			for i := range ref {
				g, w := got[i], ref[i]
				if g.ID != w.ID || fmt.Sprint(g.Params) != fmt.Sprint(w.Params) || g.Score != w.Score {
					t.Errorf("%v, %d at once, %s: trial %d is %s %v score %v; want %s %v score %v",
						sampler, c.parallel, engineName(c.eng), i, g.ID, g.Params, g.Score, w.ID, w.Params, w.Score)
				}
			}
		}
		other := run(8, 1, flow.Sequential, sampler)
		if fmt.Sprint(other[0].Params) == fmt.Sprint(ref[0].Params) {
			t.Errorf("%v: seeds 7 and 8 both start with %v; want different draws", sampler, ref[0].Params)
		}
	}
}

// Trials running at once fit copies that share no state: a step whose
// fit counts its own batches ends, in every fit, at the count of a fit run
// alone, and each fit has a step of its own (run under -race: the copies
// are written at once).
func TestAuditConcurrentTrialsShareNothing(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checkedMem(t)
	ctx := deadline(t, 60*time.Second)
	src := regression(t, mem, 100, 5)
	run := func(trials, parallel int) map[*affine]int64 {
		t.Helper()
		var mu sync.Mutex
		seen := map[*affine]int64{}
		a := newAffine()
		a.onFit = func(_ context.Context, a *affine) error {
			mu.Lock()
			seen[a] = max(seen[a], a.fits+1)
			mu.Unlock()
			time.Sleep(time.Millisecond) // let the trials overlap
			return nil
		}
		cfg := config(t, mem, a)
		cfg.Trials, cfg.Parallel, cfg.Epochs = trials, parallel, 2
		cfg.Runner.Allocator = nil // the search's shared pool
		if err := src.Rewind(); err != nil {
			t.Fatal(err)
		}
		res, err := automl.Search(ctx, cfg, src)
		if err != nil {
			t.Fatal(err)
		}
		if a.fits != 0 || a.b != 0 {
			t.Errorf("the configured step was fitted (%d fits, b = %v); want it untouched", a.fits, a.b)
		}
		for _, tr := range res.Trials {
			if tr.Status != automl.Done {
				t.Errorf("trial %d: %s (%s); want done", tr.Step, tr.Status, tr.Error)
			}
		}
		return seen
	}
	var want int64
	for _, n := range run(1, 1) {
		want = n
	}
	got := run(16, 8)
	if len(got) != 16 {
		t.Errorf("%d steps fitted by 16 trials of one split; want one each", len(got))
	}
	for _, n := range got {
		if n != want {
			t.Errorf("a trial's step was fitted on %d batches; want %d, as alone", n, want)
		}
	}
}

// A trial that fails in its fit or in its validation is recorded with its
// error, the others go on and the best is one that finished.
func TestAuditFailingTrialsDoNotStopOthers(t *testing.T) {
	for _, eng := range auditEngines {
		t.Run(engineName(eng), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			mem := checkedMem(t)
			ctx := deadline(t, 30*time.Second)
			src := regression(t, mem, 100, 5)
			a := newAffine()
			a.onFit = func(_ context.Context, a *affine) error {
				if a.w > 5 {
					return fmt.Errorf("audit: w = %v is too large", a.w)
				}
				if a.w < 1 {
					panic("audit: w below 1")
				}
				return nil
			}
			cfg := config(t, mem, a)
			cfg.Runner.Engine = eng
			cfg.Trials, cfg.Parallel, cfg.Seed = 20, 4, 3
			res, err := automl.Search(ctx, cfg, src)
			if err != nil {
				t.Fatal(err)
			}
			var failed, done int
			for _, tr := range res.Trials {
				w := tr.Params["model__w"].(float64)
				switch {
				case w > 5 || w < 1:
					failed++
					if tr.Status != automl.Failed || tr.Error == "" || !math.IsNaN(tr.Score) {
						t.Errorf("trial %d (w = %v): %s, error %q, score %v; want failed with its error and a NaN score", tr.Step, w, tr.Status, tr.Error, tr.Score)
					}
				default:
					done++
					if tr.Status != automl.Done {
						t.Errorf("trial %d (w = %v): %s (%s); want done", tr.Step, w, tr.Status, tr.Error)
					}
				}
			}
			if len(res.Trials) != 20 || failed == 0 || done == 0 {
				t.Fatalf("%d trials, %d failed, %d done; want 20 of both kinds", len(res.Trials), failed, done)
			}
			if res.Best.Status != automl.Done {
				t.Errorf("best is %s; want a finished trial", res.Best.Status)
			}
		})
	}
}

// offset adds its hyperparameter "shift" to "pred": a transform-only step
// with a hyperparameter and no Copy, which flow.Copy shares between
// copies (it has no fitted state).
type offset struct{ shift float64 }

func (o *offset) Params() hparams.Values { return hparams.Values{"shift": o.shift} }
func (o *offset) SetParams(v hparams.Values) error {
	f, err := hparams.Convert(v["shift"], hparams.Float)
	if err != nil {
		return err
	}
	o.shift = f.(float64)
	return nil
}
func (o *offset) Space() hparams.Space { return hparams.Space{"shift": hparams.Uniform(-1, 1)} }
func (o *offset) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

// A step with hyperparameters that flow.Copy would share between trials
// (it is no flow.Copier) is refused before any trial runs, naming it: the
// trials would set one value at once, and the configured pipeline would
// change, against "each fit works on its own copy".
func TestAuditSharedTunableStepRefused(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checkedMem(t)
	ctx := deadline(t, 10*time.Second)
	src := regression(t, mem, 100, 5)
	cfg := config(t, mem, newAffine())
	o := &offset{shift: 0.25}
	p, err := flow.NewPipeline([]flow.Node{flow.Named("model", newAffine()), flow.Named("shift", o)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Pipeline, cfg.Trials, cfg.Parallel = p, 8, 4
	res, err := automl.Search(ctx, cfg, src)
	if err == nil || !strings.Contains(err.Error(), `"shift"`) || !strings.Contains(err.Error(), "Copier") {
		t.Fatalf("got %v; want an error naming the step \"shift\" and flow.Copier", err)
	}
	if len(res.Trials) != 0 {
		t.Errorf("%d trials ran; want none", len(res.Trials))
	}
	if o.shift != 0.25 {
		t.Errorf("the configured step's shift is %v; want 0.25, untouched", o.shift)
	}
}

// The callbacks of trials running at once, in both engines (run with
// -race): the best checkpoint keeps the best epoch of all, early stopping
// stops fits, the log has a line per epoch; a cancellation with a cause
// in the middle stops the search with the cause and leaves nothing
// running.
func TestAuditCallbacksOfParallelTrials(t *testing.T) {
	for _, eng := range auditEngines {
		t.Run(engineName(eng), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			ctx := deadline(t, 60*time.Second)
			cfg := slowConfig(t, 30)
			cfg.Override = hparams.Space{"model__v": hparams.Fixed(trueV)}
			cfg.Runner.Engine = eng
			cfg.Trials, cfg.Parallel = 8, 4
			saver := &fakeSaver{}
			ckpt := automl.BestCheckpoint(saver, "best")
			var log syncBuffer
			var mu sync.Mutex
			best := math.Inf(1)
			record := automl.CallbackFunc(func(ctx context.Context, e *automl.EpochEnd) error {
				s, err := e.Score(ctx)
				mu.Lock()
				best = min(best, s)
				mu.Unlock()
				return err
			})
			cfg.Callbacks = []automl.Callback{automl.LogEpochs(&log), automl.EarlyStopping(2, 1e-3), ckpt, record}
			res, err := automl.Search(ctx, cfg, regression(t, cfg.Runner.Allocator, 100, 14))
			if err != nil {
				t.Fatal(err)
			}
			score, _, _, _, ok := ckpt.Best()
			if !ok || score != best {
				t.Errorf("the checkpoint holds score %v (%v); want the best epoch's %v", score, ok, best)
			}
			epochs := 0
			for _, tr := range res.Trials {
				if tr.Status != automl.Done {
					t.Errorf("trial %d: %s (%s)", tr.Step, tr.Status, tr.Error)
				}
				for _, n := range tr.EpochsRun {
					epochs += n
				}
			}
			if lines := strings.Count(log.String(), "\n"); lines != epochs {
				t.Errorf("%d log lines; want one per epoch run, %d", lines, epochs)
			}

			cause := errors.New("audit: stop the search")
			stop, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			var n atomic.Int64
			cfg.Callbacks = append(cfg.Callbacks, automl.CallbackFunc(func(ctx context.Context, e *automl.EpochEnd) error {
				if n.Add(1) == 10 {
					cancel(cause)
				}
				return nil
			}))
			cfg.Repository = nil
			cfg.Pipeline = pipeline(t, func() *affine { a := newAffine(); a.rate = 0.2; return a }())
			if _, err := automl.Search(stop, cfg, regression(t, cfg.Runner.Allocator, 100, 14)); !errors.Is(err, cause) {
				t.Errorf("cancelled in a callback: %v; want the cause", err)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
