package automl_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/automl"
)

// TestConcurrentSearchesOfOneStudy: two searches of one study on one
// repository at once each numbered their trials from the repository's
// history as it was when they started, so both recorded trials at the
// same steps (with TPE, different trials: its proposals follow each
// search's own history), and a resumed search skipped a step's second
// trial. The searches of a study in one process (on the same repository
// value, or a directory opened twice) share it: each step is claimed
// under the study's lock, so every trial has its own step; each search's
// history, its sampler's and its budget's, holds the others' trials; and
// a search of the study with another configuration is refused at once
// with ErrMismatch (subtest "mismatch"), as by the repository once a
// trial is recorded.
func TestConcurrentSearchesOfOneStudy(t *testing.T) {
	for _, kind := range []string{"memory", "dir", "mismatch"} {
		t.Run(kind, func(t *testing.T) {
			ctx := deadline(t, 60*time.Second)
			mem := checkedMem(t)
			dir := t.TempDir()
			shared := automl.NewMemoryRepository()
			repo := func() automl.Repository {
				if kind != "dir" {
					return shared
				}
				r, err := automl.OpenDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			blocked, started, release := blockingAffine()
			cfg := func(a *affine, trials int, seed uint64) automl.Config {
				c := config(t, mem, a)
				c.Study, c.Trials, c.Sampler, c.Seed, c.Repository = "shared", trials, automl.TPE{Startup: 2}, seed, repo()
				return c
			}
			type outcome struct {
				res automl.Result
				err error
			}
			first := make(chan outcome, 1)
			go func() {
				res, err := automl.Search(ctx, cfg(blocked, 4, 5), regression(t, mem, 200, 1))
				first <- outcome{res, err}
			}()
			select {
			case <-started:
			case o := <-first:
				t.Fatalf("first search ended before its first fit: %v", o.err)
			}
			if kind == "mismatch" {
				// The first search has recorded nothing: only the study's
				// state knows of it.
				_, err := automl.Search(ctx, cfg(newAffine(), 4, 6), regression(t, mem, 200, 1))
				if !errors.Is(err, automl.ErrMismatch) {
					t.Errorf("a search of the study with another seed, at the same time: got %v; want ErrMismatch", err)
				}
				if trials, err := repo().Trials(ctx, "shared"); err != nil || len(trials) != 0 {
					t.Errorf("the refused search recorded %d trials (%v); want none", len(trials), err)
				}
				close(release)
				if o := <-first; o.err != nil {
					t.Fatalf("first search: %v", o.err)
				}
				return
			}
			second, err := automl.Search(ctx, cfg(newAffine(), 4, 5), regression(t, mem, 200, 1))
			if err != nil {
				t.Fatalf("second search: %v", err)
			}
			close(release)
			o := <-first
			if o.err != nil {
				t.Fatalf("first search: %v", o.err)
			}
			if got := o.res.Ran + second.Ran; got != 4 {
				t.Errorf("the searches ran %d + %d trials; want 4 in all (the study's budget)", o.res.Ran, second.Ran)
			}
			if len(o.res.Trials) != 4 {
				t.Errorf("the first search's history has %d trials; want the study's 4", len(o.res.Trials))
			}
			trials, err := repo().Trials(ctx, "shared")
			if err != nil {
				t.Fatal(err)
			}
			steps := map[int][]string{}
			for _, tr := range trials {
				steps[tr.Step] = append(steps[tr.Step], tr.ID)
			}
			if len(trials) != 4 || len(steps) != 4 {
				t.Errorf("%d trials recorded at %d steps (%v); want 4 trials at 4 steps", len(trials), len(steps), fmt.Sprint(steps))
			}
			res, err := automl.Search(ctx, cfg(newAffine(), 6, 5), regression(t, mem, 200, 1))
			if err != nil {
				t.Fatalf("a search of the study after the others returned: %v", err)
			}
			if res.Ran != 2 || len(res.Trials) != 6 {
				t.Errorf("the resumed search ran %d trials of %d; want 2 of 6", res.Ran, len(res.Trials))
			}
		})
	}
}

// TestConcurrentHalvingOfOneStudy: two successive-halving searches of one
// study at once: the second runs the rest of rung 0 while the first's
// trial runs, then waits for that trial (its sampler waits for the rung,
// and the trial is the other search's) instead of failing with "waits
// with no trial running"; together they run the schedule once, each
// step once.
func TestConcurrentHalvingOfOneStudy(t *testing.T) {
	ctx := deadline(t, 60*time.Second)
	mem := checkedMem(t)
	repo := automl.NewMemoryRepository()
	blocked, started, release := blockingAffine()
	cfg := func(a *affine) automl.Config {
		c := config(t, mem, a)
		c.Study, c.Repository = "halving", repo
		c.Sampler = automl.SuccessiveHalving{Configs: 4, Eta: 2}
		return c
	}
	type outcome struct {
		res automl.Result
		err error
	}
	first, second := make(chan outcome, 1), make(chan outcome, 1)
	go func() {
		res, err := automl.Search(ctx, cfg(blocked), regression(t, mem, 200, 1))
		first <- outcome{res, err}
	}()
	<-started
	go func() {
		res, err := automl.Search(ctx, cfg(newAffine()), regression(t, mem, 200, 1))
		second <- outcome{res, err}
	}()
	for {
		trials, err := repo.Trials(ctx, "halving")
		if err != nil {
			t.Fatal(err)
		}
		if len(trials) >= 3 { // the rest of rung 0
			break
		}
		select {
		case o := <-second:
			t.Fatalf("second search returned before the first's trial ended: %+v, %v", o.res.Ran, o.err)
		case <-time.After(time.Millisecond):
		}
	}
	close(release)
	a, b := <-first, <-second
	if a.err != nil || b.err != nil {
		t.Fatalf("searches: %v; %v", a.err, b.err)
	}
	trials, err := repo.Trials(ctx, "halving")
	if err != nil {
		t.Fatal(err)
	}
	steps, rungs := map[int]int{}, map[int]int{}
	for _, tr := range trials {
		steps[tr.Step]++
		rungs[tr.Rung]++
	}
	if len(trials) != 7 || len(steps) != 7 || a.res.Ran+b.res.Ran != 7 {
		t.Errorf("%d trials at %d steps (%v), ran %d + %d; want the schedule's 7, each step once", len(trials), len(steps), steps, a.res.Ran, b.res.Ran)
	}
	if rungs[0] != 4 || rungs[1] != 2 || rungs[2] != 1 {
		t.Errorf("trials per rung %v; want 4, 2 and 1", rungs)
	}
	// The search that ran the last trial has it as its best; the other may
	// have returned before it ended (nothing was left for it to run).
	if a.res.Best.Rung != 2 && b.res.Best.Rung != 2 {
		t.Errorf("best trials of rungs %d and %d; want one of the last rung, 2", a.res.Best.Rung, b.res.Best.Rung)
	}
}

// blockingAffine returns an affine step whose Fit says it has started (on
// started, once) and then waits for release to be closed, or for its ctx.
func blockingAffine() (a *affine, started chan struct{}, release chan struct{}) {
	started, release = make(chan struct{}, 1), make(chan struct{})
	a = newAffine()
	a.onFit = func(ctx context.Context, _ *affine) error {
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return a, started, release
}
