package automl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"time"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist/checkpoint"
)

// trial runs the trial of step: fits and scores its hyperparameters on
// every fold. It recovers a panic of the code it calls (steps' SetParams,
// the metric, callbacks; flow's runner already turns panics of steps into
// errors) into the trial's error.
func (s *search) trial(ctx context.Context, step int, p Proposal) (o outcome) {
	c := s.cfg
	epochs := p.Epochs
	if epochs == 0 {
		epochs = c.Epochs
	}
	t := Trial{
		Study: c.Study, Search: c.search, ID: trialID(p.Params, epochs, step, c.Seed),
		Step: step, Rung: p.Rung, Params: p.Params, Epochs: epochs, Started: time.Now(),
	}
	defer func() {
		if r := recover(); r != nil {
			o.err = fmt.Errorf("automl: trial %d: panic: %v\n%s", step, r, debug.Stack())
		}
		t.Duration = time.Since(t.Started)
		if o.err != nil {
			t.Status, t.Error, t.Score, t.Spread = Failed, o.err.Error(), math.NaN(), math.NaN()
		} else {
			t.Status = Done
			t.Score, t.Spread = meanSpread(t.Scores)
		}
		o.t = t
	}()
	for i := range s.folds {
		score, ran, err := s.fitFold(ctx, t, i, epochs)
		if ran >= 0 {
			t.EpochsRun = append(t.EpochsRun, ran)
		}
		if err != nil {
			return outcome{err: fmt.Errorf("split %d/%d: %w", i+1, len(s.folds), err)}
		}
		t.Scores = append(t.Scores, score)
	}
	return outcome{}
}

// fitFold fits a configured copy of the pipeline on the train side of
// fold i for epochs epochs, with the callbacks, and returns its score on
// the validation side and the epochs its last pass ran (-1 where the fit
// did not start).
func (s *search) fitFold(ctx context.Context, t Trial, i, epochs int) (float64, int, error) {
	c := s.cfg
	p, err := s.configured(t.Params)
	if err != nil {
		return 0, -1, err
	}
	f := &fitRun{
		search: s, fold: s.folds[i], p: p,
		info: Fit{Study: c.Study, Step: t.Step, Params: t.Params, Split: i, Splits: len(s.folds), Epochs: epochs},
	}
	if c.Cache != nil {
		return f.cached(ctx, epochs)
	}
	for _, cb := range c.Callbacks {
		if fn := cb.Begin(f.info); fn != nil {
			f.funcs = append(f.funcs, fn)
		}
	}
	src, closeSrc, err := f.trainSource(epochs)
	if err != nil {
		return 0, -1, err
	}
	defer closeSrc()
	r := c.Runner
	user := r.OnEpoch
	r.OnEpoch = func(ctx context.Context, e flow.EpochEnd) error {
		if user != nil {
			if err := user(ctx, e); err != nil {
				return err
			}
		}
		return f.epochEnd(ctx, e)
	}
	if _, err := r.Fit(ctx, p, src); err != nil {
		return 0, f.epochs, err
	}
	if f.final != nil {
		return *f.final, f.epochs, nil
	}
	score, err := f.validate(ctx, p)
	return score, f.epochs, err
}

// trainSource returns the fold's train side, repeated for epochs, and
// the function that closes it.
func (f *fitRun) trainSource(epochs int) (flow.Source, func(), error) {
	train, err := f.fold.train.source()
	if err != nil {
		return nil, nil, err
	}
	if epochs <= 1 {
		return train, func() { train.Close() }, nil
	}
	rep, err := minibatch.Repeat(train, epochs)
	if err != nil {
		train.Close()
		return nil, nil, err
	}
	return rep, func() { rep.Close(); train.Close() }, nil
}

// cached is fitFold through the checkpoint cache: the fit is
// checkpoint.Split(Cache, p, CacheBefore).Fit, and the score transforms
// the validation side through the checkpoint's Transform, with the
// prefix as the fit left it (restored from the cache after a hit). No
// epoch hook runs (the configuration refuses them), so the fit reads
// every epoch and returns epochs as the epochs it ran.
func (f *fitRun) cached(ctx context.Context, epochs int) (float64, int, error) {
	c := f.search.cfg
	cp, err := checkpoint.Split(c.Cache, f.p, c.CacheBefore)
	if err != nil {
		return 0, -1, err
	}
	src, closeSrc, err := f.trainSource(epochs)
	if err != nil {
		return 0, -1, err
	}
	defer closeSrc()
	if _, err := cp.Fit(ctx, c.Runner, src); err != nil {
		return 0, epochs, err
	}
	val, err := f.fold.validation.source()
	if err != nil {
		return 0, epochs, err
	}
	defer val.Close()
	m := c.Metric()
	if m == nil {
		return 0, epochs, errors.New("automl: Metric returned nil")
	}
	out, err := cp.Transform(ctx, c.Runner, val)
	if err != nil {
		return 0, epochs, err
	}
	err = scoreOutputs(ctx, out, c.Prediction, c.Truth, m)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, epochs, err
	}
	score, err := metrics.Result(m)
	return score, epochs, err
}

// scoreOutputs updates m with every batch of out.
func scoreOutputs(ctx context.Context, out flow.Source, pred, truth string, m metrics.Metric) error {
	for {
		b, err := out.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		err = metrics.Update(b, pred, truth, m)
		b.Release()
		if err != nil {
			return err
		}
	}
}

// fitRun is one fit of a trial, as its callbacks see it.
type fitRun struct {
	search *search
	fold   fold
	p      *flow.Pipeline
	info   Fit
	funcs  []EpochFunc
	epochs int      // epochs of the last pass so far
	final  *float64 // the score at the cut where the fit ended, where a callback computed it
}

// epochEnd is the fit's flow.Runner.OnEpoch: it calls the callbacks at the
// end of each epoch of the last pass.
func (f *fitRun) epochEnd(ctx context.Context, fe flow.EpochEnd) error {
	if fe.Pass != fe.Passes-1 || fe.Batches == 0 {
		return nil // an earlier pass, or the end of a pass already reported
	}
	f.epochs++
	if len(f.funcs) == 0 {
		return nil
	}
	e := &EpochEnd{
		Fit: f.info, Epoch: fe.Epoch, Last: fe.EndOfPass, Maximize: f.search.cfg.maximize, Metric: f.search.cfg.metric,
		Pipeline: f.p, Flow: fe, fit: f,
	}
	var stop bool
	for _, fn := range f.funcs {
		err := fn(ctx, e)
		if errors.Is(err, flow.ErrStop) {
			stop = true
			continue
		}
		if err != nil {
			return fmt.Errorf("automl: callback at epoch %d: %w", fe.Epoch, err)
		}
	}
	if (stop || fe.EndOfPass) && e.scored && e.scoreErr == nil {
		score := e.score // nothing is fitted after this cut
		f.final = &score
	}
	if stop {
		return flow.ErrStop
	}
	return nil
}

// validate scores p on the fold's validation side with a new metric.
func (f *fitRun) validate(ctx context.Context, p *flow.Pipeline) (float64, error) {
	c := f.search.cfg
	val, err := f.fold.validation.source()
	if err != nil {
		return 0, err
	}
	defer val.Close()
	m := c.Metric()
	if m == nil {
		return 0, errors.New("automl: Metric returned nil")
	}
	r := c.Runner
	r.OnEpoch = nil
	scores, err := metrics.Score(ctx, r, p, val, c.Prediction, c.Truth, m)
	if err != nil {
		return 0, err
	}
	return scores[m.Name()], nil
}
