package automl_test

// The second audit pass of automl's promises: the directory repository as
// a loader of what is on disk (files that are not regular, files too big
// to be a trial, a crash mid-write), successive halving's arithmetic, the
// summary's ties.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/hparams"
)

// trialsWithin calls repo.Trials and fails the test where it does not
// return within d (a read that blocks); unblock undoes what blocks it.
func trialsWithin(t *testing.T, repo *automl.DirRepository, study string, d time.Duration, unblock func()) ([]automl.Trial, error) {
	t.Helper()
	ctx := deadline(t, d)
	type reply struct {
		trials []automl.Trial
		err    error
	}
	done := make(chan reply, 1)
	go func() {
		tr, err := repo.Trials(ctx, study)
		done <- reply{tr, err}
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.trials, r.err
	case <-timer.C:
		unblock()
		<-done
		t.Fatalf("Trials did not return within %v (its context was done): it blocks on a file", d)
		return nil, nil
	}
}

// A "*.json" entry of the directory that is not a regular file (a named
// pipe: a read of it waits for a writer, whatever the context) is an
// error naming it, at once; a file too big to be a trial file is an error
// naming it too, without reading it whole.
func TestAuditDirRepositoryHostileFiles(t *testing.T) {
	ctx := deadline(t, 20*time.Second)
	dir := t.TempDir()
	repo, err := automl.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := automl.Trial{Study: "s", Search: "x", ID: "01", Status: automl.Done, Params: hparams.Values{"n": 1}, Score: 1, Started: time.Unix(0, 0).UTC()}
	if err := repo.Save(ctx, tr); err != nil {
		t.Fatal(err)
	}

	fifo := filepath.Join(dir, "pipe.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	unblock := func() { // a writer that comes and goes: the blocked open returns
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	}
	_, err = trialsWithin(t, repo, "s", 3*time.Second, unblock)
	if err == nil || !strings.Contains(err.Error(), fifo) {
		t.Errorf("named pipe: got %v; want an error naming %s", err, fifo)
	}
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}

	big := filepath.Join(dir, "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil { // a sparse terabyte: nothing on disk
		f.Close()
		t.Skipf("no sparse files here: %v", err)
	}
	f.Close()
	_, err = trialsWithin(t, repo, "s", 5*time.Second, func() { os.Remove(big) })
	if err == nil || !strings.Contains(err.Error(), big) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a terabyte file: got %v; want an error naming %s", err, big)
	}
	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}

	got, err := repo.Trials(ctx, "s")
	if err != nil || len(got) != 1 || got[0].ID != "01" {
		t.Errorf("after removing them: %+v (%v); want the one trial saved", got, err)
	}
}

// Successive halving's schedule is the documented arithmetic: rung i+1
// has floor(n_i/Eta) trials of Eta times the epochs, it ends with the last
// rung of at least one trial or the last within MaxEpochs, and the zero
// value is 27, 9, 3, 1 trials of 1, 3, 9, 27 epochs.
func TestAuditHalvingRungs(t *testing.T) {
	for _, c := range []struct {
		sh             automl.SuccessiveHalving
		trials, epochs string
	}{
		{automl.SuccessiveHalving{}, "[27 9 3 1]", "[1 3 9 27]"},
		{automl.SuccessiveHalving{MaxEpochs: 9}, "[27 9 3]", "[1 3 9]"},
		{automl.SuccessiveHalving{MaxEpochs: 8}, "[27 9]", "[1 3]"},
		{automl.SuccessiveHalving{Configs: 5, Eta: 2, MinEpochs: 2}, "[5 2 1]", "[2 4 8]"},
		{automl.SuccessiveHalving{Configs: 10, Eta: 3}, "[10 3 1]", "[1 3 9]"},
		{automl.SuccessiveHalving{Configs: 2, Eta: 3}, "[2]", "[1]"},
		{automl.SuccessiveHalving{Configs: 1}, "[1]", "[1]"},
	} {
		trials, epochs := c.sh.Rungs()
		if got := fmt.Sprint(trials); got != c.trials {
			t.Errorf("%v: rungs of %s trials; want %s", c.sh, got, c.trials)
		}
		if got := fmt.Sprint(epochs); got != c.epochs {
			t.Errorf("%v: rungs of %s epochs; want %s", c.sh, got, c.epochs)
		}
	}
}

// A rung after the first waits for the whole rung before it (ErrWait),
// then takes its best configurations in order, ties by step and failed
// trials last, with the rung's epochs; after the last rung, ErrExhausted.
func TestAuditHalvingPromotes(t *testing.T) {
	sh := automl.SuccessiveHalving{Configs: 6, Eta: 2} // rungs of 6, 3, 1 trials: steps 0-5, 6-8, 9
	space := hparams.Space{"k": hparams.IntRange(0, 100)}
	scores := []float64{math.NaN(), 1, 1, 0.5, 2, 3} // minimized: step 3, then 1 and 2 (a tie), then 4, 5, the failed 0
	var rung0 []automl.Trial
	for i, s := range scores {
		tr := automl.Trial{Step: i, Params: hparams.Values{"k": 10 * i}, Epochs: 1, Status: automl.Done, Score: s}
		if math.IsNaN(s) {
			tr.Status = automl.Failed
		}
		rung0 = append(rung0, tr)
	}
	req := automl.Request{Space: space, Step: 6, Trials: rung0[:5], Running: 1}
	if _, err := sh.Propose(req); !errors.Is(err, automl.ErrWait) {
		t.Fatalf("rung 1 with rung 0 unfinished: got %v; want ErrWait", err)
	}
	req.Trials, req.Running = rung0, 0
	for step, want := range map[int]int{6: 30, 7: 10, 8: 20} {
		req.Step = step
		p, err := sh.Propose(req)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if p.Params["k"] != want || p.Rung != 1 || p.Epochs != 2 {
			t.Errorf("step %d: %v, rung %d, %d epochs; want k=%d, rung 1, 2 epochs", step, p.Params, p.Rung, p.Epochs, want)
		}
	}
	req.Maximize = true // now step 5, 4, then 1 and 2
	for step, want := range map[int]int{6: 50, 7: 40, 8: 10} {
		req.Step = step
		if p, err := sh.Propose(req); err != nil || p.Params["k"] != want {
			t.Errorf("maximizing, step %d: %v (%v); want k=%d", step, p.Params, err, want)
		}
	}
	req.Step = 10
	if _, err := sh.Propose(req); !errors.Is(err, automl.ErrExhausted) {
		t.Errorf("after the last rung: got %v; want ErrExhausted", err)
	}
}

// Trials of equal scores, run at once and ending in any order: the best
// is the earliest step among them, and the table marks it alone.
func TestAuditBestOfTiesIsTheEarliest(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 30*time.Second)
	cfg := config(t, mem, newAffine())
	cfg.Space = hparams.Space{"model__w": hparams.Choice(2.0), "model__v": hparams.Choice(1.0)}
	cfg.Trials, cfg.Parallel = 8, 4
	res, err := automl.Search(ctx, cfg, regression(t, mem, 100, 31))
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range res.Trials {
		if tr.Score != res.Trials[0].Score {
			t.Fatalf("trial %d scored %v, trial 0 %v; want the same configuration to score the same", tr.Step, tr.Score, res.Trials[0].Score)
		}
	}
	if res.Best.Step != 0 {
		t.Errorf("best of %d equal trials is step %d; want the earliest, 0", len(res.Trials), res.Best.Step)
	}
	var table strings.Builder
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(table.String(), "*"); n != 1 {
		t.Errorf("%d trials marked best; want 1:\n%s", n, table.String())
	}
}

// A trial file whose counts are negative — rung, epochs run — is refused
// like one whose step or epochs are, naming the file: no search reads a
// rung -1 or a split that ran -3 epochs into its history.
func TestAuditDirRepositoryRefusesNegativeCounts(t *testing.T) {
	ctx := deadline(t, 10*time.Second)
	for _, field := range []string{`"rung": -1`, `"epochs_run": [2, -3]`, `"step": -1`} {
		dir := t.TempDir()
		repo, err := automl.OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "s-000000-01-00.json")
		data := `{"format": 1, "study": "s", "search": "x", "id": "01", "status": "done", "params": {}, "types": {}, "score": 1, ` + field + `}`
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := repo.Trials(ctx, "s"); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("a trial file with %s: %+v (%v); want an error naming %s", field, got, err, path)
		}
	}
}

// Save names its file inside the directory whatever the trial's ID (a
// trial read from elsewhere, copied into this repository): an ID with
// path separators or ".." does not write outside it, and the trial reads
// back with its ID unchanged.
func TestAuditDirRepositorySaveStaysInside(t *testing.T) {
	ctx := deadline(t, 10*time.Second)
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b")
	repo, err := automl.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"../../escape", "x/../../../up", "x/y", "../b2"} {
		tr := automl.Trial{Study: "s", Search: "x", ID: id, Status: automl.Done, Params: hparams.Values{}, Score: 1, Started: time.Unix(0, 0).UTC()}
		if err := repo.Save(ctx, tr); err != nil {
			t.Errorf("ID %q: %v", id, err)
		}
	}
	err = filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && filepath.Dir(path) != dir {
			t.Errorf("Save wrote %s, outside %s", path, dir)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := repo.Trials(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, tr := range got {
		ids[tr.ID] = true
	}
	if len(got) != 4 || !ids["x/../../../up"] || !ids["../../escape"] || !ids["x/y"] || !ids["../b2"] {
		t.Errorf("read back %d trials, IDs %v; want the 4 saved, IDs unchanged", len(got), ids)
	}
}

// A study whose name begins with "." (".nightly") keeps its trials: their
// files must not look like the temporary files (".…tmp") that Trials
// skips, or a resumed search would run every trial again.
func TestAuditDirRepositoryDotStudy(t *testing.T) {
	ctx := deadline(t, 10*time.Second)
	repo, err := automl.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, study := range []string{".nightly", "..", "."} {
		tr := automl.Trial{Study: study, Search: "x", ID: "01", Status: automl.Done, Params: hparams.Values{}, Score: 1, Started: time.Unix(0, 0).UTC()}
		if err := repo.Save(ctx, tr); err != nil {
			t.Fatalf("study %q: %v", study, err)
		}
		got, err := repo.Trials(ctx, study)
		if err != nil || len(got) != 1 {
			t.Errorf("study %q: read back %d trials (%v); want the one saved", study, len(got), err)
		}
	}
}

// TPE proposes at random until Startup trials are done with a finite
// score, not for its first Startup steps: at step 5, after five failed
// trials, its proposal is Random's.
func TestAuditTPEStartupCountsDoneTrials(t *testing.T) {
	space := hparams.Space{"w": hparams.Uniform(0, 10)}
	var failed []automl.Trial
	for i := range 5 {
		failed = append(failed, automl.Trial{Step: i, Status: automl.Failed, Score: math.NaN(), Params: hparams.Values{"w": float64(i)}})
	}
	req := automl.Request{Space: space, Step: 5, Seed: 3, Trials: failed}
	got, err := automl.TPE{Startup: 3}.Propose(req)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := automl.Random{}.Propose(req)
	if got.Params["w"] != want.Params["w"] {
		t.Errorf("step 5 after 5 failed trials: %v; want Random's %v", got.Params, want.Params)
	}
}
