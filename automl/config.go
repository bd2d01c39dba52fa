package automl

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist/checkpoint"
)

// Config configures a search. Pipeline, Splitter, Metric, Prediction and
// Truth are required; every other field has a default that works.
type Config struct {
	// Study names the search in its Repository: a search started again
	// with the same Study resumes it. Default "search".
	Study string
	// Pipeline is the pipeline to tune; it is never changed (each fit
	// works on a flow.Copy).
	Pipeline *flow.Pipeline
	// Space is the search space, keyed as hparams.Set reads it. nil means
	// hparams.Gather(Pipeline), the steps' own spaces.
	Space hparams.Space
	// Override narrows Space (hparams.Space.Override): fixed values,
	// smaller ranges.
	Override hparams.Space
	// Splitter splits the training data into folds (Holdout, KFold,
	// WalkForward). Required.
	Splitter Splitter
	// Sampler proposes the trials. Default Random{}.
	Sampler Sampler
	// Seed seeds the sampler (every step's draws); part of each trial's
	// identity.
	Seed uint64
	// Metric makes the metric a trial is scored with, one per score
	// (metrics.Accuracy, metrics.MSE, …). Required. Its HigherIsBetter
	// says which way the search goes.
	Metric func() metrics.Metric
	// Prediction and Truth are the columns that the metric compares: of
	// the pipeline's output X and of its Y (see metrics.Score). Required.
	Prediction, Truth string
	// Trials is the number of trials of the study, those a Repository
	// already holds and those that other searches of the study run at
	// once in this process included; 0 means no limit (then Timeout, or a
	// finite Sampler such as Grid, ends the search).
	Trials int
	// Timeout stops starting trials after this long (those running
	// finish); 0 means no limit.
	Timeout time.Duration
	// Epochs is the number of epochs of its training split that each fit
	// reads (minibatch.Repeat), where the Sampler does not say. Default 1.
	Epochs int
	// Parallel is the number of trials run at once. Default 1.
	Parallel int
	// StopOnError ends the search at the first failed trial, with its
	// error; by default a failed trial is recorded and the search goes on.
	StopOnError bool
	// Refit fits the best trial's pipeline again on the whole training
	// data, returned in Result.Pipeline.
	Refit bool
	// Runner runs every fit and score; its OnEpoch, if set, is called
	// before the Callbacks. The zero value is the sequential runner. A nil
	// Runner.Allocator means one minibatch.Pool for the whole search: the
	// steps' per-batch outputs are reused instead of collected, so that
	// parallel trials do not wait for the garbage collector.
	Runner flow.Runner
	// Callbacks take part in every fit (see Callback).
	Callbacks []Callback
	// Repository records the trials. Default a new MemoryRepository.
	Repository Repository
	// Progress, if set, hears of the search: a progress bar where it is a
	// terminal, a line per trial otherwise, and the table of trials at
	// the end.
	Progress io.Writer
	// CSV, if set, is the path of a CSV file of the trials written at the
	// end (atomically).
	CSV string
	// Cache, if set, caches the fit of the pipeline's prefix — its
	// top-level nodes before the one named CacheBefore — and its outputs
	// (package persist/checkpoint): each fit of a trial is
	// checkpoint.Split(Cache, trial's pipeline, CacheBefore).Fit, so that
	// trials whose prefix has the same hyperparameters, on the same split,
	// restore the fitted prefix and read its cached outputs instead of
	// running it; each validation run transforms through the checkpoint
	// (its Transform), so that the prefix's outputs on a validation side
	// are cached too. Every step of the prefix must be registered in the
	// Cache's persist registry. Cache cannot be combined with Callbacks or
	// Runner.OnEpoch (Search returns a configuration error): a fit through
	// the checkpoint has no consistent cut at which the whole pipeline can
	// be seen or scored (after a hit the prefix is restored only when the
	// suffix's fit ends). Refit fits uncached.
	Cache *checkpoint.Cache
	// CacheBefore names the top-level node of Pipeline before which the
	// checkpoint goes (not the first). Required with Cache, and only with
	// it.
	CacheBefore string
}

// finite is a Sampler that ends on its own (Grid, SuccessiveHalving).
type finite interface{ Finite() bool }

// resolved is a checked Config with its defaults.
type resolved struct {
	Config
	space    hparams.Space
	maximize bool
	metric   string
	search   string
}

func (c Config) resolve() (*resolved, error) {
	var errs []error
	if c.Runner.Allocator == nil {
		c.Runner.Allocator = minibatch.NewPool()
	}
	if c.Pipeline == nil {
		errs = append(errs, errors.New("no Pipeline"))
	}
	if c.Splitter == nil {
		errs = append(errs, errors.New("no Splitter (Holdout, KFold or WalkForward)"))
	}
	if c.Metric == nil {
		errs = append(errs, errors.New("no Metric (a constructor such as metrics.Accuracy)"))
	}
	if c.Prediction == "" || c.Truth == "" {
		errs = append(errs, fmt.Errorf("columns Prediction %q and Truth %q: want the columns that the metric compares", c.Prediction, c.Truth))
	}
	if c.Trials < 0 || c.Timeout < 0 || c.Epochs < 0 || c.Parallel < 0 {
		errs = append(errs, fmt.Errorf("fields Trials %d, Timeout %v, Epochs %d, Parallel %d: want none negative", c.Trials, c.Timeout, c.Epochs, c.Parallel))
	}
	errs = append(errs, c.checkCache()...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("automl: config: %w", errors.Join(errs...))
	}
	r := &resolved{Config: c}
	if r.Study == "" {
		r.Study = "search"
	}
	if r.Sampler == nil {
		r.Sampler = Random{}
	}
	if r.Epochs == 0 {
		r.Epochs = 1
	}
	if r.Parallel == 0 {
		r.Parallel = 1
	}
	if r.Repository == nil {
		r.Repository = NewMemoryRepository()
	}
	if f, ok := r.Sampler.(finite); r.Trials == 0 && r.Timeout == 0 && (!ok || !f.Finite()) {
		return nil, fmt.Errorf("automl: config: no budget: set Trials or Timeout (%v never runs out of proposals)", r.Sampler)
	}
	space := c.Space
	if space == nil {
		s, err := hparams.Gather(c.Pipeline)
		if err != nil {
			return nil, fmt.Errorf("automl: config: gather the pipeline's space: %w", err)
		}
		space = s
	}
	if c.Override != nil {
		s, err := space.Override(c.Override)
		if err != nil {
			return nil, fmt.Errorf("automl: config: %w", err)
		}
		space = s
	}
	if err := space.Check(); err != nil {
		return nil, fmt.Errorf("automl: config: %w", err)
	}
	if len(space) == 0 {
		return nil, errors.New("automl: config: the search space is empty: the pipeline's steps declare no space; give Config.Space")
	}
	r.space = space
	m := c.Metric()
	if m == nil {
		return nil, errors.New("automl: config: Metric returned nil")
	}
	r.maximize, r.metric = m.HigherIsBetter(), m.Name()
	r.search = searchID(r.Study, space, r.Sampler, r.Seed)
	return r, nil
}

// checkCache checks the Cache settings: CacheBefore with Cache, a node it
// can split before, and none of the epoch hooks that a fit through the
// checkpoint cannot serve.
func (c Config) checkCache() []error {
	if c.Cache == nil {
		if c.CacheBefore != "" {
			return []error{fmt.Errorf("CacheBefore %q without a Cache: want both or neither", c.CacheBefore)}
		}
		return nil
	}
	var errs []error
	if c.CacheBefore == "" {
		errs = append(errs, errors.New("a Cache without CacheBefore: want the name of the top-level node before which the checkpoint goes"))
	} else if c.Pipeline != nil {
		if _, err := checkpoint.Split(c.Cache, c.Pipeline, c.CacheBefore); err != nil {
			errs = append(errs, fmt.Errorf("CacheBefore: %w", err))
		}
	}
	if len(c.Callbacks) > 0 {
		errs = append(errs, fmt.Errorf("%d Callbacks with a Cache: epoch callbacks (early stopping, logging, checkpoints) are not supported on the cached path; remove the Cache or the Callbacks", len(c.Callbacks)))
	}
	if c.Runner.OnEpoch != nil {
		errs = append(errs, errors.New("Runner.OnEpoch with a Cache: epoch hooks are not supported on the cached path; remove the Cache or the hook"))
	}
	return errs
}
