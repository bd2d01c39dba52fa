package flow

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// seqRun is a run of the sequential engine: no goroutine of its own; every
// step runs inside Stream.Next, in the caller's goroutine.
//
// Close may come from another goroutine while Next runs. Next holds mu for
// as long as it runs; Close cancels the run and waits for mu, unless Next
// is blocked inside the source (a read that ignores ctx, such as a pipe
// that sends nothing): then no step is running, so Close tears the steps
// down at once and leaves the source to Next, which closes the run's spill
// when its read returns and is refused every step after it.
type seqRun struct {
	*runBase
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex // held by next
	started  bool       // the passes before the last have run
	input    *epochTracker
	finished bool
	err      error // first error, sticky
	// afterClose is the teardown (or spill) error of a run that its Close
	// ended early: Close's error, while Next reports the close.
	afterClose error

	inSource atomic.Bool // next is inside the source's Next
	clock    int64       // now() at the end of the last read, for the steps' timing
	closed   atomic.Bool // Close has been called

	begin   time.Time
	elapsed atomic.Int64
	rec     runStats
}

func startSequential(ctx context.Context, base *runBase) *Stream {
	runCtx, cancel := context.WithCancelCause(ctx)
	r := &seqRun{runBase: base, ctx: runCtx, cancel: cancel, begin: time.Now()}
	return newStream(base, r.next, r.close, r.stats)
}

func (r *seqRun) next(ctx context.Context) (Batch, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return Batch{}, r.errOrEOF()
	}
	if err := context.Cause(r.ctx); err != nil {
		return Batch{}, r.fail(err)
	}
	if ctx.Err() != nil {
		return Batch{}, context.Cause(ctx) // the caller's wait, not the run
	}
	if !r.started {
		r.started = true
		if len(r.passes) == 0 { // a fit with nothing to fit
			return Batch{}, r.finish()
		}
		// Every pass but a transform path's last runs to the end here.
		for i, ps := range r.passes {
			if ps.last {
				break
			}
			if err := r.startPass(i); err != nil {
				return Batch{}, r.fail(err)
			}
			if err := r.drain(ps); err != nil {
				return Batch{}, r.fail(err)
			}
		}
		last := r.passes[len(r.passes)-1]
		if !last.last {
			return Batch{}, r.finish()
		}
		if err := r.startPass(len(r.passes) - 1); err != nil {
			return Batch{}, r.fail(err)
		}
	}
	last := r.passes[len(r.passes)-1]
	for {
		b, err := r.nextInput()
		if atEnd(err) {
			return Batch{}, r.finish()
		}
		if err != nil {
			return Batch{}, r.fail(err)
		}
		out, emitted, err := seqProcess(r.ctx, last.stages, last.ops, b, &r.clock)
		if err != nil {
			return Batch{}, r.fail(err)
		}
		if r.closed.Load() {
			out.Release()
			return Batch{}, r.fail(r.errClosed)
		}
		if emitted {
			return out, nil
		}
	}
}

// startPass rewinds the source for pass i (the first needs nothing).
func (r *seqRun) startPass(i int) error {
	r.input = newTracker(i, r.passes[i])
	r.rec.beginPass(r.pl, r.passes[i])
	if i == 0 {
		return nil
	}
	return r.src.rewind()
}

// next reads the pass's next input batch: io.EOF at the end of the
// source, or where the pass stops early (FitEpochs, or ErrStop from the
// OnEpoch hook). It calls the hook at the end of every epoch.
func (r *seqRun) nextInput() (Batch, error) {
	t := r.input
	if t.done {
		return Batch{}, io.EOF
	}
	b, err := r.read()
	for errors.Is(err, ErrCut) {
		// Sequential: every batch read before has been through every stage.
		if err := r.cutHook(r.ctx, Cut{Pass: t.pass, Batches: t.read}, r.stats); err != nil {
			if errors.Is(err, ErrStop) {
				t.reported = true
				return Batch{}, r.endInput(true)
			}
			return Batch{}, err
		}
		b, err = r.read()
	}
	if atEnd(err) {
		return Batch{}, r.endInput(false)
	}
	if err != nil {
		return Batch{}, err
	}
	if t.stops(b) {
		b.Release()
		return Batch{}, r.endInput(true)
	}
	if t.boundary(b) {
		if err := r.epochEnd(r.ctx, t.end(false), r.stats); err != nil {
			b.Release()
			if errors.Is(err, ErrStop) {
				t.reported = true
				return Batch{}, r.endInput(true)
			}
			return Batch{}, err
		}
		r.clock = now() // the hook's time is not the first step's
	}
	t.take(b)
	return b, nil
}

// endInput ends the pass's input: a pass that spills the source for later
// passes still reads it to its end (early only says so), then the hook
// hears of the end of the pass. It returns io.EOF, or the error that ended
// the input.
func (r *seqRun) endInput(early bool) error {
	t := r.input
	t.done = true
	for early && r.src.spilling() {
		b, err := r.read()
		if atEnd(err) {
			break
		}
		if errors.Is(err, ErrCut) { // the pass has ended: no cut to make
			continue
		}
		if err != nil {
			return err
		}
		b.Release()
	}
	if t.seen {
		e := t.end(true)
		if t.reported { // the hook has seen this epoch end: only the pass ends
			e.Batches = 0
		}
		if err := r.epochEnd(r.ctx, e, r.stats); err != nil && !errors.Is(err, ErrStop) {
			return err
		}
	}
	return io.EOF
}

// read reads the next batch of the current pass; see seqRun for why it
// marks the time spent inside the source.
func (r *seqRun) read() (Batch, error) {
	r.inSource.Store(true)
	// A Close that came while a step ran waits for mu: it must not also
	// wait for a read that ignores ctx. Close sets closed before it looks
	// at inSource, so either it sees us in the source or we see it here.
	if r.closed.Load() {
		r.inSource.Store(false)
		return Batch{}, r.errClosed
	}
	t := now()
	b, err := r.src.Next(r.ctx)
	r.clock = now()
	r.inSource.Store(false)
	if r.closed.Load() {
		b.Release()
		return Batch{}, r.errClosed
	}
	r.rec.src.busy.Add(r.clock - t)
	if r.ctx.Err() != nil {
		// The run was cancelled: stop here whatever the source returned,
		// as the streaming feeder does, or a source and steps that ignore
		// ctx (a batch, or ErrCut, at every read) would keep it going.
		b.Release()
		return Batch{}, context.Cause(r.ctx)
	}
	if err == nil {
		r.rec.src.out(b)
	}
	return b, runError(r.ctx, err)
}

// drain runs one whole pass whose output nobody sees.
func (r *seqRun) drain(ps pass) error {
	for {
		b, err := r.nextInput()
		if atEnd(err) {
			return nil
		}
		if err != nil {
			return err
		}
		out, _, err := seqProcess(r.ctx, ps.stages, ps.ops, b, &r.clock)
		if err != nil {
			return err
		}
		out.Release()
	}
}

// seqProcess runs b (owned) through stages. It returns the output, owned
// by the caller, and whether there is one (a fit-only last stage emits
// nothing). clock holds now() at the start and is moved on by every stage:
// one clock read per stage.
func seqProcess(ctx context.Context, stages []*stage, ops []op, b Batch, clock *int64) (Batch, bool, error) {
	cur := b
	for i, st := range stages {
		o := st.opFor(ops[i], cur.Epoch)
		if o == opSkip {
			cur.Release()
			return Batch{}, false, nil
		}
		st.c.in(cur)
		start := *clock
		var out Batch
		var err error
		if st.isUnion() {
			out, err = seqUnion(ctx, st, o, cur, clock)
		} else {
			out, err = apply(ctx, st.step, o, cur)
			err = stepError(st.path, st.step, o.String(), &cur, runError(ctx, err))
		}
		*clock = now()
		st.c.busy.Add(*clock - start)
		if err != nil {
			cur.Release()
			return Batch{}, false, err
		}
		if o == opFit {
			cur.Release()
			return Batch{}, false, nil
		}
		out.Seq, out.Epoch = cur.Seq, cur.Epoch
		cur.Release()
		st.c.out(out)
		cur = out
	}
	return cur, true, nil
}

func seqUnion(ctx context.Context, st *stage, o op, in Batch, clock *int64) (Batch, error) {
	outs := make([]Batch, 0, len(st.branches))
	defer func() {
		for _, b := range outs {
			b.Release()
		}
	}()
	for _, br := range st.branches {
		in.Retain()
		out, _, err := seqProcess(ctx, br.stages, branchOps(br, o), in, clock)
		if err != nil {
			return Batch{}, err
		}
		outs = append(outs, out)
	}
	out, err := joinBranches(st.names, outs)
	return out, stepError(st.path, st.step, o.String(), &in, err)
}

func (r *seqRun) errOrEOF() error {
	if r.err != nil {
		return r.err
	}
	return io.EOF
}

// finish ends a successful run: teardown, and the spill is removed.
func (r *seqRun) finish() error {
	r.end()
	return r.errOrEOF()
}

func (r *seqRun) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	r.end()
	return r.err
}

// end ends the run; r.mu is held.
func (r *seqRun) end() {
	if r.finished {
		return
	}
	r.finished = true
	after := errors.Join(r.endSteps(r.ctx), r.closeSource())
	switch {
	case r.err == nil:
		r.err = after
	case r.quiet(r.err):
		r.afterClose = after
	}
	r.letGo()
	r.cancel(r.errClosed)
	r.rec.endPass()
	r.stopClock()
}

// stopClock fixes the run's elapsed time, once: where Close has ended the
// run while Next waits in a read that ignores ctx, the run's totals are
// those at Close, not at the read's return.
func (r *seqRun) stopClock() {
	r.elapsed.CompareAndSwap(0, max(int64(time.Since(r.begin)), 1))
}

func (r *seqRun) close() error {
	r.closed.Store(true)
	r.cancel(r.errClosed)
	// A run whose ctx the caller cancelled before Close has failed with
	// the cause, whether or not a Next has seen it yet, as in the
	// streaming engine, whose goroutines see it at once.
	cancelled := context.Cause(r.ctx)
	if errors.Is(cancelled, r.errClosed) {
		cancelled = nil
	}
	if r.inSource.Load() {
		// Next is blocked in the source and runs no step: tear down now.
		r.rec.endPass()
		r.stopClock()
		return errors.Join(cancelled, r.endSteps(r.ctx), r.closeSource())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.finished && r.err == nil {
		// A Next that was waiting for mu sees the stream closed (or the
		// caller's cause), not its end (io.EOF) nor a teardown error: the
		// run did not reach it.
		r.err = r.errClosed
		if cancelled != nil {
			r.err = cancelled
		}
	}
	r.end()
	if r.quiet(r.err) {
		return r.afterClose
	}
	return r.err
}

// stats reports Replicas 1 for every stage: this engine runs each in one
// goroutine, whatever its Replicas option.
func (r *seqRun) stats() Stats {
	return r.rec.stats(r.pl, r.begin, time.Duration(r.elapsed.Load()), true)
}
