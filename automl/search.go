package automl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
)

// Result is what a search found.
type Result struct {
	Study  string
	Metric string // the metric's name
	// Maximize is the metric's HigherIsBetter.
	Maximize bool
	// Best is the best trial that finished: of the highest rung reached
	// (successive halving), the best score, the earliest step among ties.
	// Its Status is "" where no trial finished.
	Best Trial
	// Trials is the study's whole history, by step: the trials found in
	// the Repository, those this search ran and those that searches of the
	// study running at once in this process recorded while it ran.
	Trials []Trial
	// Ran is the number of trials this call ran (the others were already
	// in the Repository).
	Ran int
	// Pipeline is the best trial's pipeline fitted on the whole training
	// data, where Config.Refit asked for it; nil otherwise.
	Pipeline *flow.Pipeline
}

// Search tunes cfg.Pipeline on train: it splits train once with
// cfg.Splitter, then runs trials — cfg.Sampler's proposals, cfg.Parallel at
// once, each fitting its own copy of the pipeline (flow.Copy, then
// hparams.Set) on the train side of every fold and scoring it on the
// validation side — until the budget (Trials, Timeout) or the sampler runs
// out, and returns the best trial and the history.
//
// train must be replayable (see minibatch.Holdout). Every side of every
// fold is read once and kept in memory, as reference-counted batches, so
// that the trials read them independently; what the split copied is
// released when Search returns.
//
// Every trial is recorded in cfg.Repository when it ends. A trial that
// fails (an error, a panic anywhere in its steps, metric or callbacks) is
// recorded as Failed with its error, and the search goes on, unless
// cfg.StopOnError. When ctx is cancelled, the trials that are running are
// stopped and not recorded, so that a search started again with the same
// Study, Repository and configuration runs exactly the trials that were
// not recorded (it skips the steps that were). Search returns the result
// so far with ctx's cause in that case.
//
// Searches of one study on one repository that run at once in this
// process share its steps, trials and budget (see the package
// documentation): every trial of the study has its own step. A search of
// the study with another configuration (space, sampler or seed) is
// refused at once with an error wrapping ErrMismatch.
//
// Every goroutine that Search starts has returned when it returns.
func Search(ctx context.Context, cfg Config, train flow.Source) (Result, error) {
	c, err := cfg.resolve()
	if err != nil {
		return Result{}, err
	}
	if train == nil {
		return Result{}, errors.New("automl: search: nil training source")
	}
	if _, err := copyPipeline(c.Pipeline); err != nil {
		return Result{}, fmt.Errorf("automl: search %q: %w", c.Study, err)
	}
	study, leave, err := joinStudy(c.Repository, c.Study, c.search)
	if err != nil {
		return Result{}, err
	}
	defer leave()
	s := &search{cfg: c, study: study}
	res := Result{Study: c.Study, Metric: c.metric, Maximize: c.maximize}
	loaded, err := c.Repository.Trials(ctx, c.Study)
	if err != nil {
		return res, stopped(ctx, c.Study, fmt.Errorf("automl: search %q: load the repository: %w", c.Study, err))
	}
	s.history, err = history(loaded, c.search, c.space)
	if err != nil {
		return res, err
	}
	res.Trials = slices.Clone(s.history)
	if c.Trials > 0 && len(s.history) >= c.Trials {
		res.Best = best(s.history, c.maximize)
		return s.finish(ctx, res, train, nil)
	}
	s.folds, err = readFolds(ctx, c.Splitter, train)
	if err != nil {
		return res, stopped(ctx, c.Study, fmt.Errorf("automl: search %q: %w", c.Study, err))
	}
	defer func() {
		for _, f := range s.folds {
			f.train.release()
			f.validation.release()
		}
	}()
	runErr := s.run(ctx)
	res.Trials = slices.Clone(s.history)
	res.Ran = s.ran
	res.Best = best(s.history, c.maximize)
	return s.finish(ctx, res, train, runErr)
}

// finish refits the best trial where asked, reports the summary and
// writes the CSV.
func (s *search) finish(ctx context.Context, res Result, train flow.Source, runErr error) (Result, error) {
	c := s.cfg
	if runErr == nil && c.Refit && res.Best.Status == Done {
		p, err := s.refit(ctx, res.Best, train)
		if err != nil {
			runErr = stopped(ctx, c.Study, fmt.Errorf("automl: search %q: refit trial %d: %w", c.Study, res.Best.Step, err))
		}
		res.Pipeline = p
	}
	if c.Progress != nil {
		s.progress().finish(res)
	}
	if c.CSV != "" {
		if err := writeCSVFile(c.CSV, res); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	return res, runErr
}

// stopped returns err, a failure of the search, or where ctx is done and
// err does not carry its cause, an error that does: the search stopped
// because ctx was cancelled, and its caller looks for the cause.
func stopped(ctx context.Context, study string, err error) error {
	if ctx.Err() == nil || errors.Is(err, context.Cause(ctx)) {
		return err
	}
	return fmt.Errorf("automl: search %q stopped: %w (%v)", study, context.Cause(ctx), err)
}

// search is one call of Search.
type search struct {
	cfg     *resolved
	folds   []fold
	history []Trial // finished, by step
	ran     int
	prog    *progress
	study   *studyState // shared with the searches of the study that run at once
	seen    int         // trials of study.done merged into history
}

func (s *search) progress() *progress {
	if s.prog == nil {
		s.prog = newProgress(s.cfg.Progress, s.cfg.Trials, s.cfg.metric, s.cfg.maximize)
	}
	return s.prog
}

// outcome is a trial that ended, sent by its goroutine.
type outcome struct {
	t   Trial
	err error // the trial's error; nil when Done
}

// run is the coordinating loop: it starts trials while the budget allows,
// records each one that ends and stops on the first fatal error. It waits
// for every trial it started.
func (s *search) run(parent context.Context) error {
	c := s.cfg
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var deadline <-chan time.Time
	if c.Timeout > 0 {
		timer := time.NewTimer(c.Timeout)
		defer timer.Stop()
		deadline = timer.C
	}
	recorded := map[int]bool{}
	for _, t := range s.history {
		recorded[t.Step] = true
	}
	running := map[int]bool{}
	results := make(chan outcome, c.Parallel) // every trial sends once, never blocks
	var fatal error
	proposing := true
	waiting := false // the sampler waits for a running trial
	if c.Progress != nil {
		s.progress().start(len(s.history))
	}
	var changed <-chan struct{} // waiting for another search of the study
	for {
		for proposing && !waiting && len(running) < c.Parallel {
			select {
			case <-deadline:
				proposing, deadline = false, nil
				continue
			default:
			}
			if ctx.Err() != nil {
				proposing = false
				break
			}
			step, inStudy, ok := s.study.claim(s, recorded)
			if !ok {
				proposing = false
				break
			}
			p, err := s.propose(step, inStudy)
			switch {
			case errors.Is(err, ErrExhausted):
				s.study.drop(step)
				proposing = false
				continue
			case errors.Is(err, ErrWait):
				s.study.drop(step)
				fresh, others, ch := s.study.wait(s, len(running))
				switch {
				case fresh: // another search recorded a trial: propose again
				case len(running) == 0 && !others:
					fatal = fmt.Errorf("automl: search %q: %v waits at step %d with no trial running", c.Study, c.Sampler, step)
					proposing = false
				default:
					waiting, changed = true, ch
				}
				continue
			case err != nil:
				s.study.drop(step)
				fatal = fmt.Errorf("automl: search %q: step %d: %w", c.Study, step, err)
				proposing = false
				continue
			}
			running[step] = true
			s.study.start(step)
			go func() { results <- s.trial(ctx, step, p) }()
		}
		if fatal != nil {
			cancel(fatal)
		}
		if !proposing {
			waiting, changed = false, nil
		}
		if len(running) == 0 && changed == nil {
			break
		}
		var stop <-chan struct{}
		if changed != nil {
			stop = ctx.Done()
		}
		var o outcome
		select {
		case o = <-results:
		case <-deadline:
			proposing = false
			deadline = nil
			continue
		case <-changed: // another search's trial ended
			waiting, changed = false, nil
			continue
		case <-stop:
			proposing = false
			continue
		}
		delete(running, o.t.Step)
		waiting, changed = false, nil
		if o.err != nil && ctx.Err() != nil {
			s.study.release(o.t.Step)
			continue // stopped, not failed: a resumed search runs it again
		}
		// A trial that finished is saved even while the search stops.
		if err := c.Repository.Save(context.WithoutCancel(ctx), o.t); err != nil {
			s.study.release(o.t.Step)
			if fatal == nil {
				fatal = fmt.Errorf("automl: search %q: record trial %d: %w", c.Study, o.t.Step, err)
			}
			proposing = false
			continue
		}
		s.study.record(o.t)
		recorded[o.t.Step] = true
		s.history = insertTrial(s.history, o.t)
		s.ran++
		if c.Progress != nil {
			s.progress().trial(o.t, best(s.history, c.maximize))
		}
		if o.err != nil && c.StopOnError && fatal == nil {
			fatal = fmt.Errorf("automl: search %q: trial %d failed: %w", c.Study, o.t.Step, o.err)
			proposing = false
		}
		if err := s.trialEnd(ctx, o.t); err != nil {
			proposing = false
			if !errors.Is(err, flow.ErrStop) && fatal == nil {
				fatal = err
			}
		}
	}
	if fatal != nil {
		return fatal
	}
	if parent.Err() != nil {
		return fmt.Errorf("automl: search %q stopped: %w", c.Study, context.Cause(parent))
	}
	return nil
}

// propose asks the sampler for step, guarding against its panics.
func (s *search) propose(step, running int) (p Proposal, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v panicked: %v", s.cfg.Sampler, r)
		}
	}()
	p, err = s.cfg.Sampler.Propose(Request{
		Space: s.cfg.space, Step: step, Seed: s.cfg.Seed, Maximize: s.cfg.maximize,
		Trials: slices.Clone(s.history), Running: running,
	})
	if err != nil {
		return p, err
	}
	if p.Epochs < 0 {
		return p, fmt.Errorf("%v proposed %d epochs, want 0 or more", s.cfg.Sampler, p.Epochs)
	}
	p.Params = maps.Clone(p.Params)
	return p, nil
}

// trialEnd tells the callbacks that are TrialEnders of t.
func (s *search) trialEnd(ctx context.Context, t Trial) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("automl: search %q: a TrialEnd callback panicked: %v", s.cfg.Study, r)
		}
	}()
	var stop error
	for _, cb := range s.cfg.Callbacks {
		te, ok := cb.(TrialEnder)
		if !ok {
			continue
		}
		if err := te.TrialEnd(ctx, cloneTrial(t)); errors.Is(err, flow.ErrStop) {
			stop = err
		} else if err != nil {
			return fmt.Errorf("automl: search %q: TrialEnd of trial %d: %w", s.cfg.Study, t.Step, err)
		}
	}
	return stop
}

// insertTrial inserts t into trials, kept in step order.
func insertTrial(trials []Trial, t Trial) []Trial {
	i, _ := slices.BinarySearchFunc(trials, t.Step, func(a Trial, step int) int { return a.Step - step })
	return slices.Insert(trials, i, t)
}

// best returns the best trial that is Done, of the highest rung that has
// one; the zero Trial where none is.
func best(trials []Trial, maximize bool) Trial {
	var b Trial
	found := false
	for _, t := range trials {
		if t.Status != Done || math.IsNaN(t.Score) {
			continue
		}
		if !found || t.Rung > b.Rung || (t.Rung == b.Rung && better(t.Score, b.Score, maximize)) {
			b, found = t, true
		}
	}
	return b
}

// refit fits a copy of the pipeline with t's hyperparameters on the whole
// of train, for t's epochs.
func (s *search) refit(ctx context.Context, t Trial, train flow.Source) (*flow.Pipeline, error) {
	p, err := s.configured(t.Params)
	if err != nil {
		return nil, err
	}
	rw, ok := train.(flow.Rewinder)
	if !ok || !rw.Replayable() {
		return nil, fmt.Errorf("the training source %T cannot be read again", train)
	}
	if err := rw.Rewind(); err != nil {
		return nil, err
	}
	src := train
	if t.Epochs > 1 {
		rep, err := minibatch.Repeat(train, t.Epochs)
		if err != nil {
			return nil, err
		}
		defer rep.Close()
		src = rep
	}
	if _, err := s.cfg.Runner.Fit(ctx, p, src); err != nil {
		return nil, err
	}
	return p, nil
}

// configured returns a copy of the pipeline with the hyperparameters v.
func (s *search) configured(v hparams.Values) (*flow.Pipeline, error) {
	p, err := copyPipeline(s.cfg.Pipeline)
	if err != nil {
		return nil, err
	}
	if err := hparams.Set(p, v); err != nil {
		return nil, err
	}
	return p, nil
}

func copyPipeline(p *flow.Pipeline) (*flow.Pipeline, error) {
	c, err := flow.Copy(p)
	if err != nil {
		return nil, err
	}
	cp, ok := c.(*flow.Pipeline)
	if !ok {
		return nil, fmt.Errorf("automl: flow.Copy of a pipeline returned %T", c)
	}
	if err := sharedTunable(p, cp); err != nil {
		return nil, err
	}
	return cp, nil
}

// sharedTunable refuses a copy that holds a step of the original with
// hyperparameters: flow.Copy shares a leaf that is no flow.Copier (it has
// no fitted state), but hparams.Set of a trial would then change the
// configured pipeline and the other trials' copies.
func sharedTunable(orig, cp *flow.Pipeline) error {
	leaves := map[flow.Step]bool{}
	walk := func(root flow.Step, fn func(v flow.Visit)) error {
		return flow.Walk(root, func(v flow.Visit) error {
			if _, composite := v.Node.Step.(flow.Composite); composite {
				return nil
			}
			if _, tunable := v.Node.Step.(hparams.Tunable); !tunable {
				return nil
			}
			if rv := reflect.ValueOf(v.Node.Step); rv.Kind() == reflect.Pointer {
				fn(v)
			}
			return nil
		})
	}
	if err := walk(orig, func(v flow.Visit) { leaves[v.Node.Step] = true }); err != nil {
		return err
	}
	var shared error
	err := walk(cp, func(v flow.Visit) {
		if leaves[v.Node.Step] && shared == nil {
			shared = fmt.Errorf("automl: step %q (%T) has hyperparameters but is no flow.Copier, so flow.Copy shares it: every trial would set them on the one step; implement Copy", v.Path, v.Node.Step)
		}
	})
	if err != nil {
		return err
	}
	return shared
}
