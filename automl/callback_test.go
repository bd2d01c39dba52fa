package automl_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

// slowConfig is a search whose model improves epoch after epoch: its bias
// moves a fifth of the way at each batch.
func slowConfig(t *testing.T, epochs int) automl.Config {
	mem := checkedMem(t)
	a := newAffine()
	a.rate = 0.2
	cfg := config(t, mem, a)
	cfg.Epochs, cfg.Trials = epochs, 3
	cfg.Override = hparams.Space{"model__w": hparams.Fixed(trueW), "model__v": hparams.Fixed(trueV)}
	return cfg
}

// Early stopping ends a fit after patience epochs without improvement; the
// trial's score is its validation score at that epoch; the log has one
// line per epoch run.
func TestEarlyStopping(t *testing.T) {
	for _, engine := range []flow.Engine{flow.Sequential, flow.Streaming} {
		t.Run(engine.String(), func(t *testing.T) { testEarlyStopping(t, engine) })
	}
}

func testEarlyStopping(t *testing.T, engine flow.Engine) {
	ctx := deadline(t, 30*time.Second)
	cfg := slowConfig(t, 200)
	cfg.Runner.Engine = engine
	var log bytes.Buffer
	var mu sync.Mutex
	last := map[int]float64{}
	record := automl.CallbackFunc(func(ctx context.Context, e *automl.EpochEnd) error {
		s, err := e.Score(ctx)
		mu.Lock()
		last[e.Fit.Step] = s
		mu.Unlock()
		return err
	})
	cfg.Callbacks = []automl.Callback{automl.LogEpochs(&log), automl.EarlyStopping(2, 1e-6), record}
	cfg.Parallel = 2
	res, err := automl.Search(ctx, cfg, regression(t, cfg.Runner.Allocator, 100, 13))
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for _, tr := range res.Trials {
		if tr.Status != automl.Done {
			t.Fatalf("trial %d: %s", tr.Step, tr.Error)
		}
		if len(tr.EpochsRun) != 1 || tr.EpochsRun[0] < 3 || tr.EpochsRun[0] >= 200 {
			t.Errorf("trial %d ran %v epochs; want between 3 and 199 (stopped early)", tr.Step, tr.EpochsRun)
		}
		if tr.Score != last[tr.Step] {
			t.Errorf("trial %d: score %v; want the score at the epoch it stopped, %v", tr.Step, tr.Score, last[tr.Step])
		}
		lines += tr.EpochsRun[0]
	}
	if got := strings.Count(log.String(), "\n"); got != lines {
		t.Errorf("%d log lines; want %d, one per epoch run", got, lines)
	}
	if !strings.Contains(log.String(), "trial 0 split 1/1 epoch 0: mse ") {
		t.Errorf("log %q; want lines like \"trial 0 split 1/1 epoch 0: mse …\"", firstLine(log.String()))
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// fakeSaver records what a checkpoint saves.
type fakeSaver struct {
	mu     sync.Mutex
	paths  []string
	biases []float64
	fail   error
}

func (f *fakeSaver) Save(_ context.Context, path string, p *flow.Pipeline) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.paths = append(f.paths, path)
	f.biases = append(f.biases, p.Step("model").(*affine).b)
	return nil
}

// The best checkpoint saves a copy of the model at every epoch whose score
// is the best of the search so far, and nowhere else.
func TestBestCheckpoint(t *testing.T) {
	ctx := deadline(t, 30*time.Second)
	cfg := slowConfig(t, 6)
	cfg.Override = hparams.Space{"model__v": hparams.Fixed(trueV)} // w varies
	cfg.Trials = 4
	saver := &fakeSaver{}
	ckpt := automl.BestCheckpoint(saver, "best.model")
	var scores []float64
	var fitted []*flow.Pipeline
	record := automl.CallbackFunc(func(ctx context.Context, e *automl.EpochEnd) error {
		s, err := e.Score(ctx)
		scores = append(scores, s)
		fitted = append(fitted, e.Pipeline)
		return err
	})
	cfg.Callbacks = []automl.Callback{ckpt, record}
	res, err := automl.Search(ctx, cfg, regression(t, cfg.Runner.Allocator, 100, 14))
	if err != nil {
		t.Fatal(err)
	}
	newBest := 0
	bestSoFar := 0.0
	for i, s := range scores {
		if i == 0 || s < bestSoFar {
			newBest++
			bestSoFar = s
		}
	}
	score, fit, _, saves, ok := ckpt.Best()
	if !ok || saves != newBest || len(saver.paths) != newBest {
		t.Fatalf("%d saves (%d by the saver); want %d, one per new best epoch", saves, len(saver.paths), newBest)
	}
	if score != bestSoFar || score > res.Best.Score {
		t.Errorf("checkpoint score %v; want the best epoch's %v, at most the best trial's %v", score, bestSoFar, res.Best.Score)
	}
	if fit.Step != res.Best.Step {
		t.Errorf("checkpoint from trial %d; want the best trial %d", fit.Step, res.Best.Step)
	}
	for _, path := range saver.paths {
		if path != "best.model" {
			t.Errorf("saved to %q; want best.model", path)
		}
	}
	saver.fail = errors.New("disk full")
	cfg.Callbacks = []automl.Callback{automl.BestCheckpoint(saver, "x")}
	res, err = automl.Search(ctx, cfg, regression(t, cfg.Runner.Allocator, 100, 14))
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range res.Trials {
		if tr.Status != automl.Failed || !strings.Contains(tr.Error, "disk full") {
			t.Errorf("trial %d: %s %q; want failed with the saver's error", tr.Step, tr.Status, tr.Error)
		}
	}
}

// A user callback that returns an error fails its trial; one that panics
// too; flow.ErrStop from a TrialEnder ends the search cleanly.
func TestUserCallbacks(t *testing.T) {
	ctx := deadline(t, 30*time.Second)
	cfg := slowConfig(t, 3)
	cfg.Callbacks = []automl.Callback{automl.CallbackFunc(func(ctx context.Context, e *automl.EpochEnd) error {
		switch {
		case e.Fit.Step == 1 && e.Epoch == 1:
			return errors.New("refused")
		case e.Fit.Step == 2:
			panic("callback panic")
		}
		return nil
	})}
	res, err := automl.Search(ctx, cfg, regression(t, cfg.Runner.Allocator, 100, 15))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "refused", "callback panic"}
	for i, tr := range res.Trials {
		if (want[i] == "") != (tr.Status == automl.Done) || !strings.Contains(tr.Error, want[i]) {
			t.Errorf("trial %d: %s %q; want error %q", i, tr.Status, tr.Error, want[i])
		}
	}
	cfg.Callbacks = []automl.Callback{stopAt(2)}
	cfg.Trials = 10
	res, err = automl.Search(ctx, cfg, regression(t, cfg.Runner.Allocator, 100, 15))
	if err != nil || len(res.Trials) != 2 {
		t.Errorf("stopped by a TrialEnder: %d trials (%v); want 2, no error", len(res.Trials), err)
	}
}

type stopAt int

func (s stopAt) Begin(automl.Fit) automl.EpochFunc { return nil }
func (s stopAt) TrialEnd(_ context.Context, t automl.Trial) error {
	if t.Step+1 >= int(s) {
		return flow.ErrStop
	}
	return nil
}

// Successive halving: rungs of 9, 3 and 1 trials for 1, 3 and 9 epochs,
// each rung the best third of the one before.
func TestSuccessiveHalving(t *testing.T) {
	ctx := deadline(t, 30*time.Second)
	cfg := slowConfig(t, 1)
	cfg.Override = hparams.Space{"model__v": hparams.Fixed(trueV)}
	cfg.Trials, cfg.Parallel = 0, 2
	sh := automl.SuccessiveHalving{Configs: 9, Eta: 3}
	cfg.Sampler = sh
	trials, epochs := sh.Rungs()
	if fmt.Sprint(trials, epochs) != "[9 3 1] [1 3 9]" {
		t.Fatalf("rungs %v of %v epochs; want [9 3 1] of [1 3 9]", trials, epochs)
	}
	res, err := automl.Search(ctx, cfg, regression(t, cfg.Runner.Allocator, 100, 16))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Trials) != 13 {
		t.Fatalf("%d trials; want 13", len(res.Trials))
	}
	byRung := map[int][]automl.Trial{}
	for _, tr := range res.Trials {
		byRung[tr.Rung] = append(byRung[tr.Rung], tr)
		if want := epochs[tr.Rung]; tr.Epochs != want || tr.EpochsRun[0] != want {
			t.Errorf("trial %d of rung %d: %d epochs (ran %v); want %d", tr.Step, tr.Rung, tr.Epochs, tr.EpochsRun, want)
		}
	}
	for r := 1; r < 3; r++ {
		prev := append([]automl.Trial(nil), byRung[r-1]...)
		for _, tr := range byRung[r] {
			rank := 0
			for _, p := range prev {
				if p.Score < scoreOf(prev, tr.Params) {
					rank++
				}
			}
			if rank >= len(byRung[r]) {
				t.Errorf("rung %d: trial %d's configuration ranked %d in rung %d; want in the top %d", r, tr.Step, rank, r-1, len(byRung[r]))
			}
		}
	}
	if res.Best.Rung != 2 {
		t.Errorf("best from rung %d; want the last rung, 2", res.Best.Rung)
	}
}

func scoreOf(trials []automl.Trial, p hparams.Values) float64 {
	for _, t := range trials {
		if t.Params.String() == p.String() {
			return t.Score
		}
	}
	return -1
}

// passThrough learns nothing but is fittable: a stand-in for a scaler
// fitted on the first epoch before a Joiner.
type passThrough struct{ fits int }

func (p *passThrough) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}
func (p *passThrough) Fit(context.Context, flow.Batch) error { p.fits++; return nil }
func (p *passThrough) Copy() flow.Step                       { c := *p; return &c }

// Behind a Joiner, callbacks see the epochs of the last pass only, the one
// that fits the model.
func TestCallbacksSeeTheLastPass(t *testing.T) {
	ctx := deadline(t, 30*time.Second)
	cfg := slowConfig(t, 5)
	a := newAffine()
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("first", &passThrough{}, flow.FitEpochs(1), flow.Barrier(barrier.Joiner)),
		flow.Named("model", a),
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Pipeline, cfg.Trials = p, 2
	var mu sync.Mutex
	epochs := map[int][]int{}
	cfg.Callbacks = []automl.Callback{automl.CallbackFunc(func(ctx context.Context, e *automl.EpochEnd) error {
		if _, err := e.Score(ctx); err != nil {
			return err
		}
		mu.Lock()
		epochs[e.Fit.Step] = append(epochs[e.Fit.Step], e.Epoch)
		mu.Unlock()
		return nil
	})}
	for _, engine := range []flow.Engine{flow.Sequential, flow.Streaming} {
		cfg.Runner.Engine = engine
		clear(epochs)
		res, err := automl.Search(ctx, cfg, regression(t, cfg.Runner.Allocator, 100, 21))
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range res.Trials {
			if tr.Status != automl.Done || fmt.Sprint(tr.EpochsRun) != "[5]" || fmt.Sprint(epochs[tr.Step]) != "[0 1 2 3 4]" {
				t.Errorf("%v: trial %d: %s %q, ran %v epochs, callbacks saw %v; want done, [5], [0 1 2 3 4]", engine, tr.Step, tr.Status, tr.Error, tr.EpochsRun, epochs[tr.Step])
			}
		}
	}
}
