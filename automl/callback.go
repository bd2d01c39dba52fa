package automl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

// Fit is one fit of a trial: the trial's pipeline fitted on the train side
// of one split.
type Fit struct {
	Study  string
	Step   int // the trial's step
	Params hparams.Values
	Split  int // the split, from 0
	Splits int
	Epochs int // epochs the fit reads at most
}

// Callback takes part in every fit of a search, through the runner's
// end-of-epoch hook (flow.Runner.OnEpoch). Begin is called before each fit
// (trials run at once, so from several goroutines) and returns the
// function to call at the end of each of the fit's epochs, or nil: what a
// callback keeps for one fit (a best score, a count of epochs) lives in
// the function that Begin returns.
//
// A Callback may also implement TrialEnder.
type Callback interface {
	Begin(f Fit) EpochFunc
}

// EpochFunc is called at the end of each epoch of one fit's last pass (the
// pass that fits the model; earlier passes fit the steps before a Joiner),
// from one goroutine at a time, at the runner's consistent cut (see
// flow.Runner.OnEpoch). Returning flow.ErrStop stops the fit there (early
// stopping): the trial goes on to its score. Any other error fails the
// trial.
type EpochFunc func(ctx context.Context, e *EpochEnd) error

// TrialEnder is a Callback that hears of every trial recorded by the
// search, from the search's coordinating goroutine, one at a time.
// Returning flow.ErrStop ends the search: no trial starts after it, those
// running finish. Any other error ends the search with that error.
type TrialEnder interface {
	TrialEnd(ctx context.Context, t Trial) error
}

// CallbackFunc is a Callback that calls the same function at every epoch
// end of every fit; it keeps nothing per fit.
type CallbackFunc func(ctx context.Context, e *EpochEnd) error

// Begin returns f.
func (f CallbackFunc) Begin(Fit) EpochFunc { return EpochFunc(f) }

// EpochEnd is the end of an epoch of a fit, as a Callback sees it.
type EpochEnd struct {
	Fit      Fit
	Epoch    int  // the epoch that ended, from 0
	Last     bool // the fit's last pass ends here
	Maximize bool // the metric's HigherIsBetter
	Metric   string
	// Pipeline is the pipeline being fitted. The fit holds it (a run of
	// it would fail with flow.ErrInUse); read it only, or use Snapshot.
	Pipeline *flow.Pipeline
	Flow     flow.EpochEnd // the runner's view: pass, batches, statistics

	fit      *fitRun
	snap     *flow.Pipeline
	snapErr  error
	scored   bool
	score    float64
	scoreErr error
}

// Snapshot returns a copy of the pipeline as fitted so far (flow.Copy),
// made once per epoch end and shared by its callbacks: they must not fit
// it. It is what Score runs and what a checkpoint saves. Copying at the
// cut needs steps whose Copy may be called while they are set up (CPU
// steps; a step holding a device may refuse).
func (e *EpochEnd) Snapshot() (*flow.Pipeline, error) {
	if e.snap == nil && e.snapErr == nil {
		e.snap, e.snapErr = copyPipeline(e.Pipeline)
	}
	return e.snap, e.snapErr
}

// Score returns the search's metric on the fit's validation split, of the
// pipeline as fitted so far (Snapshot's), computed once per epoch end
// whatever the number of callbacks that ask.
func (e *EpochEnd) Score(ctx context.Context) (float64, error) {
	if !e.scored {
		e.scored = true
		snap, err := e.Snapshot()
		if err != nil {
			e.scoreErr = err
		} else {
			e.score, e.scoreErr = e.fit.validate(ctx, snap)
		}
	}
	return e.score, e.scoreErr
}

// LogEpochs returns a callback that writes one line per epoch of every
// fit to w: the trial, the split, the epoch and the validation score.
// Lines of trials running at once do not interleave.
func LogEpochs(w io.Writer) Callback {
	l := &epochLog{w: w}
	return l
}

type epochLog struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *epochLog) Begin(f Fit) EpochFunc {
	return func(ctx context.Context, e *EpochEnd) error {
		s, err := e.Score(ctx)
		if err != nil {
			return err
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		_, err = fmt.Fprintf(l.w, "trial %d split %d/%d epoch %d: %s %.6g\n", f.Step, f.Split+1, f.Splits, e.Epoch, e.Metric, s)
		return err
	}
}

// EarlyStopping returns a callback that stops a fit after patience epochs
// (at least 1) in a row without a validation score better than the best
// so far by more than minDelta (≥ 0); a NaN score is worse than any
// number, as in the search's ranking.
func EarlyStopping(patience int, minDelta float64) Callback {
	return earlyStopping{patience: patience, minDelta: minDelta}
}

type earlyStopping struct {
	patience int
	minDelta float64
}

func (es earlyStopping) Begin(Fit) EpochFunc {
	best, seen, waited := 0.0, false, 0
	return func(ctx context.Context, e *EpochEnd) error {
		if es.patience < 1 || es.minDelta < 0 {
			return fmt.Errorf("automl: early stopping: patience %d and min delta %v, want patience ≥ 1 and min delta ≥ 0", es.patience, es.minDelta)
		}
		s, err := e.Score(ctx)
		if err != nil {
			return err
		}
		// Better as the search orders scores: a number is better than NaN
		// (a fit that diverged first), NaN better than nothing.
		improved := !seen || (!math.IsNaN(s) && (math.IsNaN(best) ||
			(e.Maximize && s > best+es.minDelta) || (!e.Maximize && s < best-es.minDelta)))
		if improved {
			best, seen, waited = s, true, 0
			return nil
		}
		waited++
		if waited >= es.patience {
			return flow.ErrStop
		}
		return nil
	}
}

// Saver saves a pipeline to a path: what a checkpoint calls. Package
// persist's saver satisfies it.
type Saver interface {
	Save(ctx context.Context, path string, p *flow.Pipeline) error
}

// Checkpoint is a callback that saves the best model of the search: at
// every epoch end whose validation score is the best of the whole search
// so far, it saves the fit's Snapshot to its path through its Saver. Saves
// are serialized, so the file at the path is always the best model saved.
type Checkpoint struct {
	saver Saver
	path  string

	mu    sync.Mutex
	saved bool
	best  float64
	fit   Fit
	epoch int
	count int
}

// BestCheckpoint returns a Checkpoint that saves through s to path.
func BestCheckpoint(s Saver, path string) *Checkpoint {
	return &Checkpoint{saver: s, path: path}
}

// Begin returns the function that scores each epoch end and saves it when
// it is the best so far.
func (c *Checkpoint) Begin(Fit) EpochFunc {
	return func(ctx context.Context, e *EpochEnd) error {
		if c.saver == nil {
			return errors.New("automl: best checkpoint: no Saver")
		}
		s, err := e.Score(ctx)
		if err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.saved && !better(s, c.best, e.Maximize) {
			return nil
		}
		snap, err := e.Snapshot()
		if err != nil {
			return err
		}
		if err := c.saver.Save(ctx, c.path, snap); err != nil {
			return fmt.Errorf("automl: best checkpoint of trial %d split %d epoch %d to %s: %w", e.Fit.Step, e.Fit.Split, e.Epoch, c.path, err)
		}
		c.saved, c.best, c.fit, c.epoch = true, s, e.Fit, e.Epoch
		c.count++
		return nil
	}
}

// Best returns the score of the model saved last, the fit and the epoch
// it comes from, and the number of saves; false when nothing was saved.
func (c *Checkpoint) Best() (score float64, f Fit, epoch, saves int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.best, c.fit, c.epoch, c.count, c.saved
}
