package automl_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

// stopAfter is a TrialEnder that cancels the search's context after n
// trials: a search killed midway.
type stopAfter struct {
	n      int
	seen   int
	cancel context.CancelFunc
}

func (s *stopAfter) Begin(automl.Fit) automl.EpochFunc { return nil }
func (s *stopAfter) TrialEnd(context.Context, automl.Trial) error {
	s.seen++
	if s.seen == s.n {
		s.cancel()
	}
	return nil
}

// Killing a directory-backed search after 5 of 10 trials and starting it
// again runs exactly the 5 remaining trials, the same ones as a search
// that was never killed.
func TestResumeRunsOnlyTheRemainingTrials(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 30*time.Second)
	src := regression(t, mem, 100, 10)
	for _, sampler := range []automl.Sampler{automl.Random{}, automl.TPE{Startup: 3}} {
		t.Run(sampler.String(), func(t *testing.T) {
			dir := t.TempDir()
			repo, err := automl.OpenDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg := config(t, mem, newAffine())
			cfg.Trials, cfg.Seed, cfg.Repository, cfg.Sampler = 10, 4, repo, sampler
			killed, cancel := context.WithCancel(ctx)
			defer cancel()
			first := cfg
			first.Callbacks = []automl.Callback{&stopAfter{n: 5, cancel: cancel}}
			res, err := automl.Search(killed, first, src)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("killed search: got %v; want context.Canceled", err)
			}
			if res.Ran != 5 || len(res.Trials) != 5 {
				t.Fatalf("killed search: ran %d, %d trials; want 5", res.Ran, len(res.Trials))
			}
			again, err := automl.OpenDir(dir) // a new process would open it anew
			if err != nil {
				t.Fatal(err)
			}
			cfg.Repository = again
			res2, err := automl.Search(ctx, cfg, src)
			if err != nil {
				t.Fatal(err)
			}
			if res2.Ran != 5 || len(res2.Trials) != 10 {
				t.Fatalf("resumed search: ran %d, %d trials; want 5 run, 10 in all", res2.Ran, len(res2.Trials))
			}
			for i, tr := range res2.Trials {
				if tr.Step != i {
					t.Fatalf("resumed search: trial %d has step %d; want steps 0 … 9", i, tr.Step)
				}
				if i < 5 && tr.ID != res.Trials[i].ID {
					t.Errorf("step %d: ID %s after resuming; want the recorded %s", i, tr.ID, res.Trials[i].ID)
				}
			}
			if sampler.String() == "Random" { // proposals do not depend on history: the same trials as one run
				cfg.Repository = automl.NewMemoryRepository()
				whole, err := automl.Search(ctx, cfg, src)
				if err != nil {
					t.Fatal(err)
				}
				for i := range whole.Trials {
					if whole.Trials[i].ID != res2.Trials[i].ID || whole.Trials[i].Score != res2.Trials[i].Score {
						t.Errorf("step %d: %s (%v) resumed, %s (%v) in one run; want the same", i, res2.Trials[i].ID, res2.Trials[i].Score, whole.Trials[i].ID, whole.Trials[i].Score)
					}
				}
			}
			// A third start has nothing left to run.
			cfg.Repository = again
			res3, err := automl.Search(ctx, cfg, src)
			if err != nil || res3.Ran != 0 || len(res3.Trials) != 10 {
				t.Errorf("third start: ran %d of %d trials (%v); want 0 of 10", res3.Ran, len(res3.Trials), err)
			}
		})
	}
}

// A search killed by cancelling its context while trials run in parallel
// records only the trials that finished; starting again completes the
// budget without running a recorded step again.
func TestResumeAfterCancelWithParallelTrials(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 30*time.Second)
	src := regression(t, mem, 100, 11)
	repo, err := automl.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	killed, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	fits := 0
	a := newAffine()
	a.onFit = func(ctx context.Context, _ *affine) error {
		mu.Lock()
		fits++
		if fits == 30 {
			cancel()
		}
		mu.Unlock()
		return ctx.Err()
	}
	cfg := config(t, mem, a)
	cfg.Trials, cfg.Parallel, cfg.Repository = 12, 3, repo
	res, err := automl.Search(killed, cfg, src)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want context.Canceled", err)
	}
	for _, tr := range res.Trials {
		if tr.Status != automl.Done {
			t.Errorf("trial %d recorded as %s (%s); want only finished trials recorded", tr.Step, tr.Status, tr.Error)
		}
	}
	recorded := len(res.Trials)
	if recorded == 0 || recorded >= 12 {
		t.Fatalf("%d trials recorded before the kill; want some, not all", recorded)
	}
	cfg.Pipeline = pipeline(t, newAffine())
	res2, err := automl.Search(ctx, cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Ran != 12-recorded || len(res2.Trials) != 12 {
		t.Errorf("resumed: ran %d, %d in all; want %d run, 12 in all", res2.Ran, len(res2.Trials), 12-recorded)
	}
	steps := map[int]bool{}
	for _, tr := range res2.Trials {
		steps[tr.Step] = true
	}
	if len(steps) != 12 {
		t.Errorf("%d distinct steps; want 12", len(steps))
	}
}

// Two searches sharing a directory never overwrite each other's trials:
// two studies at once keep theirs apart, and two runs of one study at
// once both keep every trial they ran.
func TestSearchesShareADirectory(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 30*time.Second)
	dir := t.TempDir()
	run := func(study string, seed uint64) (automl.Result, error) {
		repo, err := automl.OpenDir(dir)
		if err != nil {
			return automl.Result{}, err
		}
		cfg := config(t, mem, newAffine())
		cfg.Study, cfg.Trials, cfg.Parallel, cfg.Repository = study, 6, 2, repo
		return automl.Search(ctx, cfg, regression(t, mem, 100, seed))
	}
	var wg sync.WaitGroup
	results := make([]automl.Result, 4)
	errs := make([]error, 4)
	for i, study := range []string{"a", "b", "same", "same"} {
		wg.Go(func() { results[i], errs[i] = run(study, uint64(20+i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("search %d: %v", i, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left", e.Name())
		}
		study, _, _ := strings.Cut(e.Name(), "-")
		files[study]++
	}
	ran := results[2].Ran + results[3].Ran
	if files["a"] != 6 || files["b"] != 6 || files["same"] != ran || ran < 6 {
		t.Errorf("files per study %v; want a: 6, b: 6, same: %d (every trial that either run ran, at least 6)", files, ran)
	}
	repo, _ := automl.OpenDir(dir)
	for _, study := range []string{"a", "b"} {
		trials, err := repo.Trials(ctx, study)
		if err != nil || len(trials) != 6 {
			t.Errorf("study %s: %d trials (%v); want 6", study, len(trials), err)
		}
	}
}

// A trial goes through a directory and back unchanged: types, NaN scores,
// errors; a file that is not a trial is an error that names it, and
// temporary files are ignored.
func TestDirRepositoryRoundTrip(t *testing.T) {
	ctx := deadline(t, 10*time.Second)
	dir := t.TempDir()
	repo, err := automl.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	want := []automl.Trial{
		{Study: "s/1", Search: "abc", ID: "0011", Step: 3, Rung: 1, Epochs: 2, Status: automl.Done,
			Params: hparams.Values{"a__lr": 0.1, "n": 3, "on": true, "kind": "x", "big": 1e300},
			Score:  0.25, Spread: 0.01, Scores: []float64{0.24, 0.26}, EpochsRun: []int{2, 1}, Started: started, Duration: 1500 * time.Millisecond},
		{Study: "s/1", Search: "abc", ID: "0022", Step: 4, Status: automl.Failed, Params: hparams.Values{"n": 1},
			Score: math.NaN(), Spread: math.NaN(), Error: "split 1/2: panic: boom\nstack", Started: started},
		{Study: "other", Search: "def", ID: "0033", Step: 0, Status: automl.Done, Params: hparams.Values{"n": 2}, Score: math.Inf(1), Started: started},
	}
	for _, tr := range want {
		if err := repo.Save(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".half.json.tmp"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := repo.Trials(ctx, "s/1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d trials of study s/1; want 2", len(got))
	}
	if got[0].Step != 3 {
		got[0], got[1] = got[1], got[0]
	}
	for i, g := range got {
		w := want[i]
		if math.IsNaN(w.Score) != math.IsNaN(g.Score) || (!math.IsNaN(w.Score) && g.Score != w.Score) {
			t.Errorf("trial %d: score %v; want %v", i, g.Score, w.Score)
		}
		g.Score, w.Score, g.Spread, w.Spread = 0, 0, 0, 0
		if !g.Started.Equal(w.Started) {
			t.Errorf("trial %d: started %v; want %v", i, g.Started, w.Started)
		}
		g.Started, w.Started = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("trial %d:\n got %#v\nwant %#v", i, g, w)
		}
	}
	other, err := repo.Trials(ctx, "other")
	if err != nil || len(other) != 1 || !math.IsInf(other[0].Score, 1) {
		t.Errorf("study other: %+v (%v); want one trial with score +Inf", other, err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"format": 1, "study": "s/1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Trials(ctx, "s/1"); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("got %v; want an error naming %s", err, bad)
	}
}

// A study whose recorded trials come from another configuration is refused.
func TestRepositoryMismatch(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 10*time.Second)
	repo := automl.NewMemoryRepository()
	src := regression(t, mem, 100, 12)
	cfg := config(t, mem, newAffine())
	cfg.Trials, cfg.Repository = 2, repo
	if _, err := automl.Search(ctx, cfg, src); err != nil {
		t.Fatal(err)
	}
	cfg.Seed = 99
	if _, err := automl.Search(ctx, cfg, src); !errors.Is(err, automl.ErrMismatch) {
		t.Errorf("another seed: got %v; want ErrMismatch", err)
	}
	cfg.Study = "fresh"
	if res, err := automl.Search(ctx, cfg, src); err != nil || res.Ran != 2 {
		t.Errorf("another study: ran %d (%v); want 2", res.Ran, err)
	}
}

var _ flow.Source = onePass{}
