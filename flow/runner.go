package flow

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/internal/ctxerr"
)

// Engine selects how a Runner executes a pipeline.
type Engine uint8

const (
	// Sequential runs every step in the caller's goroutine, one batch at a
	// time: the lowest overhead, and the reference for the streaming engine.
	Sequential Engine = iota
	// Streaming runs every step as a stage of one or more goroutines linked
	// by bounded queues, with the barriers of package barrier between them.
	Streaming
)

func (e Engine) String() string {
	if e == Streaming {
		return "streaming"
	}
	return "sequential"
}

// Runner runs pipelines over sources. The zero value is a sequential runner
// that uses memory.DefaultAllocator and os.TempDir. A Runner holds no state
// between runs and may be used for many runs at once. A step value belongs
// to one run at a time: a run that would fit, set up or tear down a step
// that another run holds, or read one that another run fits, is refused
// with an error wrapping ErrInUse, and so is a fit of a step that another
// run reads; transform runs that only read fitted, stateless-for-the-run
// steps may share them. Copy a pipeline to run it twice at once.
//
// For deterministic steps the two engines give identical results: the
// streaming engine's default in-order barriers keep sequence order. The
// exceptions are what the options ask for: an out-of-order barrier
// upstream of a step that learns changes the order it learns in, and the
// replicas of a stage that learns fit on shares of the stream and
// transform with their own states in a fit-transform (see Replicas), which
// the steps after them see.
type Runner struct {
	Engine Engine
	// Allocator allocates what the runner itself builds: batches read back
	// from a spill. nil means memory.DefaultAllocator.
	Allocator memory.Allocator
	// SpillDir is where a Joiner's fit spills a source that cannot rewind.
	// "" means os.TempDir().
	SpillDir string
	// OnEpoch, if set, is called at the end of every epoch of every pass
	// (the runner sees the boundaries in Batch.Epoch) and at the end of
	// every pass, from one goroutine at a time; see EpochEnd. It runs at a
	// consistent cut: every batch of the epoch has been through every
	// stage of the pass, replicas have been merged into their steps, and
	// nothing of the next epoch has started, so it may read the steps'
	// state (evaluate a model, save a checkpoint). Returning ErrStop ends
	// the pass early (the fit of its steps stops there; later passes still
	// run); any other error fails the run. It runs inside the run, so it
	// must not call the run's Stream.Close, which would wait for it; Stats
	// it may call.
	OnEpoch func(ctx context.Context, e EpochEnd) error
	// OnCut, if set, is called where the source asks for a cut: its Next
	// returned ErrCut. It runs at the same consistent cut as OnEpoch (every
	// batch that the source returned before has been through every stage
	// of the pass, replicas are merged into their steps, nothing read after
	// has started), from one goroutine at a time, so it may read or save
	// the steps' state while the source, which decided where to cut, saves
	// its position. The run then reads on. Returning ErrStop ends the pass
	// (an endless fit that drains); any other error fails the run. Like
	// OnEpoch, it must not call the run's Stream.Close. Without OnCut,
	// ErrCut from a source is ignored: the run reads on.
	OnCut func(ctx context.Context, c Cut) error
}

// ErrCut, returned by a source's Next with no batch, asks the runner for a
// consistent cut before the next batch (see Runner.OnCut): the way an
// endless fit — a daemon that trains on what arrives — checkpoints its
// model exactly at a position of its sources. A source that blocks until
// data arrives returns ErrCut from the wait when a checkpoint is due.
var ErrCut = errors.New("penstock: cut")

// Cut describes a consistent cut to Runner.OnCut.
type Cut struct {
	Pass    int   // the pass, from 0
	Batches int64 // batches that the pass has read before the cut
	Stats   Stats // the run's statistics so far
}

// EpochEnd describes the end of an epoch, or of a pass, to Runner.OnEpoch.
type EpochEnd struct {
	Pass      int   // the pass, from 0
	Passes    int   // the run's number of passes
	Epoch     int   // the epoch that ended (Batch.Epoch)
	Batches   int64 // batches of the epoch that the pass read
	EndOfPass bool  // the pass ends here too
	Stats     Stats // the run's statistics so far
}

// ErrStop, returned by Runner.OnEpoch, ends the current pass early
// without failing the run: early stopping.
var ErrStop = errors.New("penstock: stop the pass")

type mode uint8

const (
	modeFit mode = iota
	modeTransform
	modeFitTransform
)

// Fit fits p on the whole of src and returns the run's statistics. Fittable
// steps are fitted batch by batch (partial fit); with a Joiner, the steps
// before it are fitted on the whole stream before the steps after it see
// any batch (see package barrier). The steps after the last fittable step
// do not run.
func (r Runner) Fit(ctx context.Context, p *Pipeline, src Source) (Stats, error) {
	s, err := r.start(ctx, p, modeFit, src)
	if err != nil {
		return Stats{}, err
	}
	err = s.Each(ctx, func(Batch) error { return nil }) // a fit yields no batches
	return s.Stats(), err
}

// Transform runs src through p's Transform path and returns the output
// stream, which the caller reads to io.EOF or closes early; either way it
// must call Close. Every step is set up before Transform returns (a setup
// error is Transform's, and nothing is left set up); the streaming engine
// starts reading the source at once, the sequential engine at each Next.
// A step that another run may change is refused with an error wrapping
// ErrInUse.
func (r Runner) Transform(ctx context.Context, p *Pipeline, src Source) (*Stream, error) {
	return r.start(ctx, p, modeTransform, src)
}

// FitTransform fits p on src as Fit does and returns the output of the last
// pass, as Transform does: each batch transformed by the steps as fitted so
// far (or, after a Joiner, by fully fitted steps).
func (r Runner) FitTransform(ctx context.Context, p *Pipeline, src Source) (*Stream, error) {
	return r.start(ctx, p, modeFitTransform, src)
}

func (r Runner) start(ctx context.Context, p *Pipeline, m mode, src Source) (*Stream, error) {
	if p == nil {
		return nil, errors.New("penstock: run: nil pipeline")
	}
	if src == nil {
		return nil, errors.New("penstock: run: nil source")
	}
	// The walks of the tree run its composites' methods (Children, Active,
	// FitsChild): a panic in one is the run's error.
	inRun := func(pe *PanicError) error { return fmt.Errorf("penstock: run: walking the step tree: %w", pe) }
	var pl *plan
	var passes []pass
	var release func()
	err := guardWalk(func() error {
		var err error
		if pl, err = buildPlan(p); err != nil {
			return err
		}
		passes = pl.passes(m)
		if r.Engine == Streaming && m != modeTransform {
			if err := checkReplicaFit(passes); err != nil {
				return err
			}
			if err := checkSharedFit(pl); err != nil {
				return err
			}
		}
		release, err = claimTree(p, m != modeTransform)
		return err
	}, inRun)
	if err != nil {
		return nil, err
	}
	alloc := r.Allocator
	if alloc == nil {
		alloc = memory.DefaultAllocator
	}
	ctx = WithAllocator(ctx, alloc)
	base := &runBase{pl: pl, passes: passes, release: release, srcDone: make(chan struct{}), onEpoch: r.OnEpoch, onCut: r.OnCut, errClosed: newClosedError()}
	if err := guardWalk(func() error { return base.log.setup(ctx, p, nil) }, inRun); err != nil {
		err = errors.Join(err, base.log.teardown(ctx))
		release()
		return nil, err
	}
	base.src = newReplay(src, len(passes), alloc, r.SpillDir, base.errClosed)
	if r.Engine == Streaming {
		return startStreaming(ctx, base), nil
	}
	return startSequential(ctx, base), nil
}

// runBase is what both engines share in a run: the plan, its passes, the
// source, and the steps set up and claimed at its start.
type runBase struct {
	pl      *plan
	passes  []pass
	src     *replay
	log     setupLog
	release func()

	stepsOnce sync.Once
	stepsErr  error
	srcOnce   sync.Once
	srcErr    error
	srcDone   chan struct{} // closed by letGo
	doneOnce  sync.Once

	onEpoch func(context.Context, EpochEnd) error
	onCut   func(context.Context, Cut) error

	// errClosed is the run's own ErrClosed (see closedError): the cause
	// with which the run's end and Close cancel it, and what a read after
	// the end returns.
	errClosed error
}

// quiet reports whether err is only the sign of a run that ended normally
// or that its own Close ended early.
func (b *runBase) quiet(err error) bool {
	return err == nil || atEnd(err) || errors.Is(err, b.errClosed)
}

// epochEnd calls the OnEpoch hook, if any, guarding against its panics.
func (b *runBase) epochEnd(ctx context.Context, e EpochEnd, stats func() Stats) error {
	if b.onEpoch == nil {
		return nil
	}
	e.Passes = len(b.passes)
	e.Stats = stats()
	err := runError(ctx, guard(func() error { return b.onEpoch(ctx, e) }))
	if err != nil && !errors.Is(err, ErrStop) {
		return fmt.Errorf("penstock: OnEpoch after epoch %d of pass %d: %w", e.Epoch, e.Pass, err)
	}
	return err
}

// cutHook calls the OnCut hook, if any, guarding against its panics.
func (b *runBase) cutHook(ctx context.Context, c Cut, stats func() Stats) error {
	if b.onCut == nil {
		return nil
	}
	c.Stats = stats()
	err := runError(ctx, guard(func() error { return b.onCut(ctx, c) }))
	if err != nil && !errors.Is(err, ErrStop) {
		return fmt.Errorf("penstock: OnCut after %d batches of pass %d: %w", c.Batches, c.Pass, err)
	}
	return err
}

// epochTracker follows the epochs of one pass's input and decides, batch
// by batch, where the pass's input ends.
type epochTracker struct {
	pass     int
	stopAt   int
	seen     bool
	epoch    int
	batches  int64
	read     int64 // batches of the pass read so far
	done     bool  // the input has ended
	reported bool  // the hook has seen the last epoch
}

func newTracker(i int, ps pass) *epochTracker { return &epochTracker{pass: i, stopAt: ps.stopAt} }

// boundary reports whether b starts a new epoch after at least one batch.
func (t *epochTracker) boundary(b Batch) bool { return t.seen && b.Epoch != t.epoch }

// stops reports whether b is past every epoch that the pass fits.
func (t *epochTracker) stops(b Batch) bool { return t.stopAt >= 0 && b.Epoch >= t.stopAt }

// take records b as part of the pass.
func (t *epochTracker) take(b Batch) {
	if !t.seen || b.Epoch != t.epoch {
		t.seen, t.epoch, t.batches = true, b.Epoch, 0
	}
	t.batches++
	t.read++
}

func (t *epochTracker) end(endOfPass bool) EpochEnd {
	return EpochEnd{Pass: t.pass, Epoch: t.epoch, Batches: t.batches, EndOfPass: endOfPass}
}

// endSteps tears down what the run set up and releases the steps for other
// runs, once; later calls return the first call's error.
func (b *runBase) endSteps(ctx context.Context) error {
	b.stepsOnce.Do(func() {
		b.stepsErr = b.log.teardown(ctx)
		b.release()
	})
	return b.stepsErr
}

// closeSource removes the run's spill, if any, once. The source itself is
// the caller's.
func (b *runBase) closeSource() error {
	b.srcOnce.Do(func() { b.srcErr = b.src.close() })
	return b.srcErr
}

// letGo marks the source as no longer used by the run (see Stream.Done):
// called by the last goroutine of the run that could touch it.
func (b *runBase) letGo() { b.doneOnce.Do(func() { close(b.srcDone) }) }

// runError keeps the cause of the run's cancellation: a step or a source
// that reports a cancellation with ctx.Err() gets the cause joined to it,
// so that errors.Is(err, cause) holds however the cancellation was
// reported.
func runError(ctx context.Context, err error) error { return ctxerr.With(ctx, err) }

// checkReplicaFit refuses a run that would fit a replicated stage whose
// replicas' states cannot be merged.
func checkReplicaFit(passes []pass) error {
	var err error
	for _, ps := range passes {
		for i, st := range ps.stages {
			if ps.ops[i] == opTransform {
				continue
			}
			check := func(s *stage) {
				if err == nil && s.replicas > 1 && s.fits() {
					if e := CanMerge(s.step); e != nil {
						err = fmt.Errorf("penstock: step %q: cannot fit %d replicas: %w", s.path, s.replicas, e)
					}
				}
			}
			check(st)
			for _, b := range st.branches {
				b.each(check)
			}
		}
	}
	return err
}

// checkSharedFit refuses a streaming fit in which one fittable step value
// sits in two stages: two goroutines would call its Fit at once, which the
// Fitter contract rules out.
func checkSharedFit(pl *plan) error {
	at := map[any]Path{}
	var err error
	pl.each(func(st *stage) {
		if err != nil || st.isUnion() || !st.fits() {
			return
		}
		seen := map[any]bool{} // one stage may hold a value twice: one goroutine
		err = fittableLeaves(st.step, func(v Visit) error {
			key, ok := identity(v.Node.Step)
			if !ok || seen[key] {
				return nil
			}
			seen[key] = true
			path := join(st.path, v.Path)
			if other, dup := at[key]; dup {
				return fmt.Errorf("penstock: step %q and step %q are one %T value: the streaming engine would fit it from two stages at once; give each place its own value (flow.Copy) or fit with the sequential engine", other, path, v.Node.Step)
			}
			at[key] = path
			return nil
		})
	})
	return err
}

// branchOps returns what each stage of a feature union's branch does when
// the union does o.
func branchOps(br *plan, o op) []op {
	ops := make([]op, len(br.stages))
	if o == opTransform {
		return ops
	}
	for i, s := range br.stages {
		if s.fits() {
			ops[i] = opFitTransform
		}
	}
	return ops
}
