package automl_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

// Random search with 30 trials over w lands within 10% of its range of the
// best value.
func TestRandomSearchFindsBest(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 30*time.Second)
	cfg := config(t, mem, newAffine())
	cfg.Trials, cfg.Seed = 30, 1
	cfg.Override = hparams.Space{"model__v": hparams.Fixed(trueV)}
	res, err := automl.Search(ctx, cfg, regression(t, mem, 200, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Trials) != 30 || res.Ran != 30 {
		t.Fatalf("got %d trials (%d ran); want 30", len(res.Trials), res.Ran)
	}
	w, v := res.Best.Params["model__w"].(float64), res.Best.Params["model__v"].(float64)
	if math.Abs(w-trueW) > 1 || v != trueV {
		t.Errorf("best w %.3f, v %v; want w within 1 (10%% of the range 10) of %v, v %v", w, v, trueW, trueV)
	}
	for _, tr := range res.Trials {
		if better := tr.Score < res.Best.Score; better {
			t.Errorf("trial %d has mse %v, better than the best %v", tr.Step, tr.Score, res.Best.Score)
		}
	}
	if res.Maximize || res.Metric != "mse" {
		t.Errorf("metric %q, maximize %v; want mse, false", res.Metric, res.Maximize)
	}
}

// Over 5 fixed seeds, TPE's mean distance to the best is at most random's.
func TestTPEAtLeastAsCloseAsRandom(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 60*time.Second)
	src := regression(t, mem, 200, 2)
	mean := func(s automl.Sampler) float64 {
		var sum float64
		for seed := range uint64(5) {
			cfg := config(t, mem, newAffine())
			cfg.Trials, cfg.Seed, cfg.Sampler = 30, seed, s
			res, err := automl.Search(ctx, cfg, src)
			if err != nil {
				t.Fatal(err)
			}
			sum += distance(res.Best)
		}
		return sum / 5
	}
	random, tpe := mean(automl.Random{}), mean(automl.TPE{})
	t.Logf("mean distance to the best over 5 seeds: random %.4f, TPE %.4f", random, tpe)
	if tpe > random {
		t.Errorf("TPE's mean distance %.4f; want at most random's %.4f", tpe, random)
	}
}

// Grid search over {w: 3 values} × {v: 2 values} runs exactly 6 distinct
// trials, and a smaller budget stops it early.
func TestGridRunsEveryCombinationOnce(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 30*time.Second)
	src := regression(t, mem, 100, 3)
	for _, tc := range []struct {
		trials, parallel, want int
	}{{0, 1, 6}, {0, 3, 6}, {20, 2, 6}, {4, 1, 4}} {
		cfg := config(t, mem, newAffine())
		cfg.Sampler = &automl.Grid{}
		cfg.Override = hparams.Space{"model__w": hparams.Choice(1.0, 2.0, 3.0), "model__v": hparams.Choice(0.0, 1.0)}
		cfg.Trials, cfg.Parallel = tc.trials, tc.parallel
		res, err := automl.Search(ctx, cfg, src)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, tr := range res.Trials {
			seen[tr.Params.String()] = true
		}
		if len(res.Trials) != tc.want || len(seen) != tc.want {
			t.Errorf("trials %d, parallel %d: got %d trials, %d distinct; want %d", tc.trials, tc.parallel, len(res.Trials), len(seen), tc.want)
		}
		if tc.want == 6 && (res.Best.Params["model__w"] != 3.0 || res.Best.Params["model__v"] != 1.0) {
			t.Errorf("best %v; want w 3, v 1 (closest to %v, %v)", res.Best.Params, trueW, trueV)
		}
	}
}

// A grid over a space that is not finite is an error that says so.
func TestGridRefusesInfiniteSpace(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 10*time.Second)
	cfg := config(t, mem, newAffine())
	cfg.Sampler = &automl.Grid{}
	_, err := automl.Search(ctx, cfg, regression(t, mem, 100, 3))
	if !errors.Is(err, hparams.ErrNotFinite) {
		t.Fatalf("got %v; want an error wrapping hparams.ErrNotFinite", err)
	}
}

// bomb panics in Fit where its parameter "at" is 2.
type bomb struct{ at int }

func (b *bomb) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

func (b *bomb) Fit(context.Context, flow.Batch) error {
	if b.at == 2 {
		panic("boom at 2")
	}
	return nil
}
func (b *bomb) Copy() flow.Step        { c := *b; return &c }
func (b *bomb) Params() hparams.Values { return hparams.Values{"at": b.at} }
func (b *bomb) SetParams(p hparams.Values) error {
	v, err := hparams.Convert(p["at"], hparams.Int)
	if err != nil {
		return err
	}
	b.at = v.(int)
	return nil
}
func (b *bomb) Space() hparams.Space { return hparams.Space{"at": hparams.IntRange(1, 4)} }

func bombConfig(t *testing.T) (automl.Config, flow.Source) {
	mem := checkedMem(t)
	a := newAffine()
	p, err := flow.NewPipeline([]flow.Node{flow.Named("bomb", &bomb{}), flow.Named("model", a)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(t, mem, a)
	cfg.Pipeline, cfg.Sampler, cfg.Parallel = p, &automl.Grid{}, 2
	cfg.Override = hparams.Space{"model__w": hparams.Fixed(2.5), "model__v": hparams.Fixed(0.8)}
	return cfg, regression(t, mem, 100, 4)
}

// A trial that panics is recorded as failed with its message; the search
// completes and leaves no goroutine (TestMain checks).
func TestPanickingTrialIsRecorded(t *testing.T) {
	ctx := deadline(t, 30*time.Second)
	cfg, src := bombConfig(t)
	res, err := automl.Search(ctx, cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Trials) != 4 {
		t.Fatalf("got %d trials; want 4 (at = 1 … 4)", len(res.Trials))
	}
	for _, tr := range res.Trials {
		at := tr.Params["bomb__at"]
		switch {
		case at == 2 && (tr.Status != automl.Failed || !strings.Contains(tr.Error, "boom at 2") || !math.IsNaN(tr.Score)):
			t.Errorf("trial at=2: status %s, score %v, error %q; want failed, NaN, with the panic's message", tr.Status, tr.Score, tr.Error)
		case at != 2 && tr.Status != automl.Done:
			t.Errorf("trial at=%v: status %s (%s); want done", at, tr.Status, tr.Error)
		}
	}
	if res.Best.Status != automl.Done || res.Best.Params["bomb__at"] == 2 {
		t.Errorf("best %+v; want a trial that is done", res.Best)
	}
}

// StopOnError ends the search at the first failure, with its error.
func TestStopOnError(t *testing.T) {
	ctx := deadline(t, 30*time.Second)
	cfg, src := bombConfig(t)
	cfg.StopOnError, cfg.Parallel = true, 1
	res, err := automl.Search(ctx, cfg, src)
	if err == nil || !strings.Contains(err.Error(), "boom at 2") {
		t.Fatalf("got %v; want the failed trial's error", err)
	}
	if len(res.Trials) != 2 {
		t.Errorf("got %d trials; want 2 (at = 1, then the failure at 2)", len(res.Trials))
	}
}

// Parallel trials run at once, each on its own copy of the pipeline.
func TestParallelTrialsRunAtOnce(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 30*time.Second)
	var c concurrency
	a := newAffine()
	a.onFit = func(ctx context.Context, a *affine) error {
		c.enter()
		defer c.leave()
		time.Sleep(2 * time.Millisecond)
		return nil
	}
	cfg := config(t, mem, a)
	cfg.Trials, cfg.Parallel = 8, 3
	res, err := automl.Search(ctx, cfg, regression(t, mem, 100, 5))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Trials) != 8 {
		t.Fatalf("got %d trials; want 8", len(res.Trials))
	}
	if c.peak() < 2 || c.peak() > 3 {
		t.Errorf("at most %d fits at once; want 2 or 3 (Parallel 3)", c.peak())
	}
	if a.fits != 0 {
		t.Errorf("the configured pipeline was fitted %d times; want 0 (trials fit copies)", a.fits)
	}
	steps := make([]int, 0, 8)
	for _, tr := range res.Trials {
		steps = append(steps, tr.Step)
	}
	if !slices.Equal(steps, []int{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("steps %v; want 0 … 7 in order", steps)
	}
}

// A trial's score is the mean over the splits, with the spread.
func TestScoreIsMeanOverSplits(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 30*time.Second)
	for _, sp := range []automl.Splitter{automl.KFold(3), automl.WalkForward(2)} {
		cfg := config(t, mem, newAffine())
		cfg.Splitter, cfg.Trials = sp, 3
		res, err := automl.Search(ctx, cfg, regression(t, mem, 150, 6))
		if err != nil {
			t.Fatalf("%v: %v", sp, err)
		}
		want := 3
		if strings.HasPrefix(sp.String(), "Walk") {
			want = 2
		}
		for _, tr := range res.Trials {
			if len(tr.Scores) != want {
				t.Fatalf("%v: trial %d has %d scores; want %d", sp, tr.Step, len(tr.Scores), want)
			}
			var mean float64
			for _, s := range tr.Scores {
				mean += s
			}
			mean /= float64(want)
			var v float64
			for _, s := range tr.Scores {
				v += (s - mean) * (s - mean)
			}
			spread := math.Sqrt(v / float64(want))
			if math.Abs(tr.Score-mean) > 1e-12 || math.Abs(tr.Spread-spread) > 1e-12 || spread == 0 {
				t.Errorf("%v: trial %d: score %v ± %v; want %v ± %v (non-zero)", sp, tr.Step, tr.Score, tr.Spread, mean, spread)
			}
		}
	}
}

// Refit returns the best pipeline fitted on the whole training data.
func TestRefit(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 30*time.Second)
	a := newAffine()
	cfg := config(t, mem, a)
	cfg.Trials, cfg.Refit = 10, true
	src := regression(t, mem, 100, 7)
	res, err := automl.Search(ctx, cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pipeline == nil {
		t.Fatal("no refitted pipeline")
	}
	got, err := hparams.Get(res.Pipeline)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range res.Best.Params {
		if got[k] != v {
			t.Errorf("refitted %s = %v; want the best's %v", k, got[k], v)
		}
	}
	m := res.Pipeline.Step("model").(*affine)
	if m == a || m.fits != 4 {
		t.Errorf("refitted model: %d fits (same value as configured: %v); want 4 (100 rows in batches of 25) on a copy", m.fits, m == a)
	}
}

// The configuration is checked before anything runs.
func TestConfigErrors(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 10*time.Second)
	src := regression(t, mem, 100, 8)
	for _, tc := range []struct {
		name string
		edit func(*automl.Config)
		want string
	}{
		{"no pipeline", func(c *automl.Config) { c.Pipeline = nil }, "no Pipeline"},
		{"no splitter", func(c *automl.Config) { c.Splitter = nil }, "no Splitter"},
		{"no metric", func(c *automl.Config) { c.Metric = nil }, "no Metric"},
		{"no columns", func(c *automl.Config) { c.Prediction = "" }, "Prediction"},
		{"negative", func(c *automl.Config) { c.Parallel = -1 }, "want none negative"},
		{"no budget", func(c *automl.Config) { c.Trials = 0 }, "no budget"},
		{"bad override", func(c *automl.Config) { c.Override = hparams.Space{"model__q": hparams.Fixed(1.0)} }, "model__q"},
		{"override out of range", func(c *automl.Config) { c.Override = hparams.Space{"model__w": hparams.Uniform(-1, 1)} }, "not within"},
	} {
		cfg := config(t, mem, newAffine())
		cfg.Trials = 3
		tc.edit(&cfg)
		_, err := automl.Search(ctx, cfg, src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v; want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}

// A split that cannot be made (a source that cannot be read again) is the
// search's error, and nothing is left allocated.
func TestSplitError(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 10*time.Second)
	cfg := config(t, mem, newAffine())
	cfg.Trials = 3
	_, err := automl.Search(ctx, cfg, onePass{regression(t, mem, 100, 8)})
	if err == nil || !strings.Contains(err.Error(), "split") {
		t.Fatalf("got %v; want the split's error", err)
	}
}

type onePass struct{ flow.Source }

// Timeout stops starting trials; those running finish and are recorded.
func TestTimeout(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 30*time.Second)
	a := newAffine()
	a.onFit = func(context.Context, *affine) error { time.Sleep(3 * time.Millisecond); return nil }
	cfg := config(t, mem, a)
	cfg.Timeout, cfg.Parallel = 50*time.Millisecond, 2
	start := time.Now()
	res, err := automl.Search(ctx, cfg, regression(t, mem, 100, 18))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); len(res.Trials) == 0 || took > 5*time.Second {
		t.Errorf("%d trials in %v; want some, and an end soon after the 50ms timeout", len(res.Trials), took)
	}
	for _, tr := range res.Trials {
		if tr.Status != automl.Done {
			t.Errorf("trial %d: %s %s; want done (a timeout lets running trials finish)", tr.Step, tr.Status, tr.Error)
		}
	}
}

// panicky panics in SetParams: code that the search calls itself, outside
// the runner's guard.
type panicky struct{ affine }

func (p *panicky) Copy() flow.Step { c := *p; return &c }
func (p *panicky) SetParams(v hparams.Values) error {
	if v["w"].(float64) > 5 {
		panic("SetParams refuses w > 5")
	}
	return p.affine.SetParams(v)
}

func TestPanicOutsideTheRunner(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 30*time.Second)
	cfg := config(t, mem, newAffine())
	p, err := flow.NewPipeline([]flow.Node{flow.Named("model", &panicky{affine: *newAffine()})})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Pipeline, cfg.Trials, cfg.Parallel = p, 10, 2
	res, err := automl.Search(ctx, cfg, regression(t, mem, 100, 19))
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, tr := range res.Trials {
		big := tr.Params["model__w"].(float64) > 5
		if big != (tr.Status == automl.Failed) || (big && !strings.Contains(tr.Error, "SetParams refuses w > 5")) {
			t.Errorf("trial %d (w %v): %s %q", tr.Step, tr.Params["model__w"], tr.Status, firstLine(tr.Error))
		}
		if big {
			failed++
		}
	}
	if len(res.Trials) != 10 || failed == 0 {
		t.Errorf("%d trials, %d failed; want 10, some failed", len(res.Trials), failed)
	}
}
