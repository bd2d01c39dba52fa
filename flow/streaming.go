package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/queue"
)

// item is a batch in flight with its position in the pass, which the
// barriers order by. Positions are dense (0, 1, 2, …) whatever the source's
// Seq values are.
//
// It is padded to 64 bytes on 64-bit platforms, a cache line: a queue's
// buffer is then an array of whole lines, and handing an item from one
// core to another moves one line, not two (−15 ns per batch and stage on
// a two-core machine, in BenchmarkStageOverhead/noop/streaming).
type item struct {
	pos int64
	b   Batch
	_   [8]byte
}

func releaseItem(it item) { it.b.Release() }

// streamRun is a run of the streaming engine. Its driver goroutine, owned
// by the Stream (Close waits for it), runs the passes one after the other;
// each pass is a queue.Group of goroutines: a feeder that reads the source,
// the workers of every stage, the reorder and join goroutines of the
// barriers, and a sink where nobody reads the output.
type streamRun struct {
	*runBase
	ctx    context.Context
	cancel context.CancelCauseFunc

	out *queue.Queue[item] // what Stream.Next reads; closed by the driver
	sem chan struct{}      // the last pass's window, released by Next

	done chan struct{} // closed when the driver has returned
	err  error         // the run's result; read after done
	// afterClose is the teardown (or spill) error of a run that its Close
	// ended early: Close's error, while Next reports the close. Read
	// after done.
	afterClose error
	reachedEnd bool        // the run went through to its end; read after done
	closing    atomic.Bool // Close has been called
	begin      time.Time
	elapsed    atomic.Int64
	rec        runStats
}

func startStreaming(ctx context.Context, base *runBase) *Stream {
	runCtx, cancel := context.WithCancelCause(ctx)
	sr := &streamRun{
		runBase: base, ctx: runCtx, cancel: cancel,
		out:   queue.New[item](DefaultQueueCapacity, queue.Uncounted()),
		done:  make(chan struct{}),
		begin: time.Now(),
	}
	go sr.drive()
	return newStream(base, sr.next, sr.close, sr.stats)
}

func (sr *streamRun) drive() {
	defer close(sr.done)
	sr.err = sr.runAll()
	sr.rec.endPass()
	sr.elapsed.Store(int64(time.Since(sr.begin)))
	sr.out.Close()
	if sr.err != nil && !sr.reachedEnd {
		// A failed run stops its readers at once. One that went through
		// to its end and failed only in its teardown keeps its output:
		// Next hands out what is queued, then the teardown error.
		sr.cancel(sr.err)
	}
}

func (sr *streamRun) runAll() (err error) {
	abandoned := false
	defer func() {
		terr := sr.endSteps(sr.ctx)
		serr := sr.closeSource()
		if !abandoned { // else the abandoned feeder lets go when it returns
			sr.letGo()
		}
		switch {
		case err == nil:
			sr.reachedEnd = true
			err = errors.Join(terr, serr)
		case sr.quiet(err):
			// A run closed early did not fail: its teardown error is
			// Close's, as in the sequential engine; Next reports the
			// close.
			sr.afterClose = errors.Join(terr, serr)
		}
	}()
	for i, ps := range sr.passes {
		sr.rec.beginPass(sr.pl, ps)
		if i > 0 {
			if err := sr.src.rewind(); err != nil {
				return err
			}
		}
		if abandoned, err = sr.runPass(i, ps); err != nil {
			return err
		}
	}
	return nil
}

func (sr *streamRun) next(ctx context.Context) (Batch, error) {
	if sr.ctx.Err() != nil {
		return sr.ended(ctx)
	}
	it, err := sr.out.Get(ctx)
	switch {
	case err == nil:
		release(sr.sem)
		return it.b, nil
	case atEnd(err):
		return sr.ended(ctx)
	}
	return Batch{}, err // the caller's ctx; the run goes on
}

// ended waits for the driver of a run that has ended or been cancelled,
// and returns its result, unless ctx is done first: a cancelled run may
// wait for a step that ignores ctx, and Next's wait is the caller's.
func (sr *streamRun) ended(ctx context.Context) (Batch, error) {
	select {
	case <-sr.done:
		return Batch{}, sr.result()
	default:
	}
	select {
	case <-sr.done:
		return Batch{}, sr.result()
	case <-ctx.Done():
		return Batch{}, context.Cause(ctx)
	}
}

func (sr *streamRun) result() error {
	if sr.closing.Load() && (sr.err == nil || sr.reachedEnd) {
		// A Next racing Close: Close may have dropped batches that the
		// run produced, so this is not the end of the stream, nor is a
		// teardown error at its end Next's (it is Close's).
		return sr.errClosed
	}
	if sr.err != nil {
		return sr.err
	}
	return io.EOF
}

func (sr *streamRun) close() error {
	sr.closing.Store(true)
	sr.cancel(sr.errClosed)
	<-sr.done
	sr.out.Drain(releaseItem)
	if sr.quiet(sr.err) {
		return sr.afterClose
	}
	return sr.err
}

func (sr *streamRun) stats() Stats {
	return sr.rec.stats(sr.pl, sr.begin, time.Duration(sr.elapsed.Load()), false)
}

// passRun is one pass of a streaming run.
type passRun struct {
	run    *streamRun
	g      *queue.Group
	sem    chan struct{} // admission window; nil when nothing reorders
	queues []*queue.Queue[item]
	reps   map[*stage][]Step
	repLog setupLog // the replicas' new steps, set up for this pass
	// repEpoch is the epoch that the replicas were made for: the steps
	// below a stage that are past their FitEpochs there are shared, not
	// replicated (see replicate).
	repEpoch int

	feeder    atomic.Int32  // feederIdle, feederReading or feederAbandoned
	fed       chan struct{} // closed when the feeder has returned
	input     *epochTracker // the feeder's; read by runPass once fed is closed
	feedClock *busyClock    // the feeder's; stopped by runPass if it abandons the feeder

	// With an OnEpoch hook, batches that leave the pass are counted, so
	// that the feeder can wait for all those it fed (a consistent cut).
	// So they are where a replicated stage stops fitting (limits, its
	// FitEpochs): a cut there merges its replicas into its step, which
	// transforms the later epochs.
	counting  bool
	limits    []int
	final     *queue.Queue[item] // the run's output queue, in the last pass
	completed atomic.Int64
	waiting   atomic.Bool
	wake      chan struct{}
}

// feederGrace is how long a cancelled pass waits for its feeder to leave
// the source before it abandons the read.
const feederGrace = 20 * time.Millisecond

// The states of a pass's feeder. Only the feeder moves idle → reading →
// idle; only runPass moves reading → abandoned, and then the feeder, once
// its read returns, releases what it read and closes the run's source.
const (
	feederIdle int32 = iota
	feederReading
	feederAbandoned
)

// runPass runs one pass. It reports whether it abandoned the feeder inside
// a source read that ignores ctx; the feeder then closes the run's source
// when the read returns.
func (sr *streamRun) runPass(i int, ps pass) (abandoned bool, err error) {
	pr := &passRun{
		run: sr, reps: map[*stage][]Step{}, fed: make(chan struct{}),
		input:    newTracker(i, ps),
		counting: sr.onEpoch != nil || sr.onCut != nil,
		wake:     make(chan struct{}, 1),
	}
	if err := pr.makeReplicas(sr.ctx, ps.stages, ps.ops); err != nil {
		return false, errors.Join(err, pr.repLog.teardown(sr.ctx))
	}
	for st := range pr.reps {
		pr.limits = append(pr.limits, st.limits...)
	}
	pr.counting = pr.counting || len(pr.limits) > 0
	if needWindow(ps.stages) {
		pr.sem = make(chan struct{}, window(ps.stages)+DefaultQueueCapacity+2)
	}
	pr.g = queue.NewGroup(sr.ctx)
	in := pr.newQueue(ps.stages[0].capacity)
	pr.feedClock = sr.rec.clock(&sr.rec.src)
	feedErr := make(chan error, 1)
	go func() { // owned by runPass: waited for unless abandoned in a read
		defer close(pr.fed)
		feedErr <- pr.feed(pr.g.Context(), in)
	}()
	if ps.last {
		pr.final, sr.sem = sr.out, pr.sem
	}
	if out, _ := pr.chain(ps.stages, ps.ops, in, true, pr.final); out != nil && !ps.last {
		pr.g.Go(func(ctx context.Context) error { return pr.sink(ctx, out) })
	}
	err = pr.g.Wait()
	abandoned = pr.waitFeeder()
	if abandoned { // its busy time ends here: the pass goes no further
		pr.feedClock.pause(now())
	}
	pr.g.Stop()
	if !abandoned {
		if ferr := <-feedErr; ferr != nil && (err == nil || isCancel(err)) && !isCancel(ferr) {
			err = ferr
		} else if err == nil {
			err = ferr
		}
	}
	for _, q := range pr.queues {
		q.Drain(releaseItem)
	}
	if err == nil {
		err = pr.merge()
	}
	if t := pr.input; err == nil && t.seen {
		e := t.end(true)
		if t.reported {
			e.Batches = 0
		}
		if herr := sr.epochEnd(sr.ctx, e, sr.stats); !errors.Is(herr, ErrStop) {
			err = herr
		}
	}
	if terr := pr.repLog.teardown(sr.ctx); err == nil {
		err = terr
	}
	if err == nil && context.Cause(sr.ctx) != nil {
		err = context.Cause(sr.ctx)
	}
	return abandoned, err
}

// limitCrossed reports whether a replicated stage stops fitting between
// epochs from and to.
func (pr *passRun) limitCrossed(from, to int) bool {
	for _, l := range pr.limits {
		if from < l && l <= to {
			return true
		}
	}
	return false
}

// complete counts a batch that has left the pass.
func (pr *passRun) complete() {
	if !pr.counting {
		return
	}
	pr.completed.Add(1)
	if pr.waiting.Load() {
		select {
		case pr.wake <- struct{}{}:
		default:
		}
	}
}

// put puts it on q, counting it as complete if q is the run's output.
func (pr *passRun) put(ctx context.Context, q *queue.Queue[item], it item) error {
	if err := q.Put(ctx, it); err != nil {
		return err
	}
	if q == pr.final {
		pr.complete()
	}
	return nil
}

// cut waits until the fed batches have all left the pass, merges and
// renews the replicas (for batches of the given epoch), and calls hook.
func (pr *passRun) cut(ctx context.Context, fed int64, epoch int, hook func() error) error {
	pr.waiting.Store(true)
	for pr.completed.Load() < fed {
		select {
		case <-pr.wake:
		case <-ctx.Done():
			pr.waiting.Store(false)
			return context.Cause(ctx)
		}
	}
	pr.waiting.Store(false)
	if err := pr.renewReplicas(ctx, epoch); err != nil {
		return err
	}
	return hook()
}

// waitFeeder waits for the feeder, unless the pass is cancelled while the
// feeder is inside the source: then it abandons it and reports so. Every
// other wait of the feeder listens to the pass's context.
func (pr *passRun) waitFeeder() bool {
	ctx := pr.g.Context()
	select {
	case <-pr.fed:
		return false
	case <-ctx.Done(): // the pass failed, or the run was cancelled
	}
	// A source that honours ctx returns at once: give it the time to, so
	// that only a read that ignores ctx is abandoned.
	grace := time.NewTimer(feederGrace)
	defer grace.Stop()
	select {
	case <-pr.fed:
		return false
	case <-grace.C:
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if pr.feeder.CompareAndSwap(feederReading, feederAbandoned) {
			return true
		}
		select {
		case <-pr.fed:
			return false
		case <-tick.C:
		}
	}
}

func isCancel(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrClosed)
}

func (pr *passRun) newQueue(capacity int) *queue.Queue[item] {
	q := queue.New[item](capacity, queue.Uncounted())
	pr.queues = append(pr.queues, q)
	return q
}

// needWindow reports whether anything in stages can hold batches back to
// restore order: replicas, an out-of-order barrier, a feature union.
func needWindow(stages []*stage) bool {
	for _, s := range stages {
		if s.replicas > 1 || s.barrier == barrier.OutOfOrder || s.isUnion() {
			return true
		}
	}
	return false
}

// window bounds the batches in flight in a pass: every queue full, every
// replica busy, every hand-off occupied. It never limits a pass more than
// its queues already do, and it bounds every reorder buffer.
func window(stages []*stage) int {
	w := 0
	for _, s := range stages {
		w += s.capacity + 2*s.replicas + 2
		for _, b := range s.branches {
			w += window(b.stages) + DefaultQueueCapacity + 2
		}
	}
	return w
}

func acquire(ctx context.Context, sem chan struct{}) error {
	if sem == nil {
		return nil
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// tryAcquire takes a place in sem without waiting and reports whether it
// did (always, for a nil sem).
func tryAcquire(sem chan struct{}) bool {
	if sem == nil {
		return true
	}
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

func release(sem chan struct{}) {
	if sem == nil {
		return
	}
	select {
	case <-sem:
	default:
	}
}

// feed reads the source into in, numbering the batches. It is in's only
// producer and closes it at the end of the source. A failure cancels the
// pass's group.
func (pr *passRun) feed(ctx context.Context, in *queue.Queue[item]) (err error) {
	src, c, clk := pr.run.src, &pr.run.rec.src, pr.feedClock
	// No clock read for a batch where nothing waits: all the feeder's time
	// is the source's (busy) but its waits for the window or the queue, and
	// the cuts, which are timed on their own (wait-out).
	clk.start(now())
	defer func() {
		if pr.feeder.Load() != feederAbandoned { // else runPass stopped clk
			clk.pause(now())
		}
		if err != nil {
			pr.g.Cancel(err)
		}
	}()
	var waitStart int64
	wait := func() {
		waitStart = now()
		clk.pause(waitStart)
	}
	waited := func() {
		n := now()
		c.waitOut.Add(n - waitStart)
		clk.start(n)
	}
	t := pr.input
	for pos := int64(0); ; {
		if !tryAcquire(pr.sem) {
			wait()
			if err := acquire(ctx, pr.sem); err != nil {
				return err
			}
			waited()
		}
		pr.feeder.Store(feederReading)
		b, err := src.Next(ctx)
		if !pr.feeder.CompareAndSwap(feederReading, feederIdle) {
			b.Release() // abandoned: the run has ended without us
			pr.run.letGo()
			return context.Cause(ctx)
		}
		if ctx.Err() != nil {
			b.Release()
			return context.Cause(ctx)
		}
		if atEnd(err) {
			in.Close()
			return nil
		}
		if errors.Is(err, ErrCut) {
			release(pr.sem)
			if !pr.counting {
				continue
			}
			c := Cut{Pass: t.pass, Batches: t.read}
			wait()
			err := pr.cut(ctx, pos, pr.repEpoch, func() error { return pr.run.cutHook(ctx, c, pr.run.stats) })
			waited()
			if errors.Is(err, ErrStop) {
				t.reported = true
				return pr.endInput(ctx, in)
			}
			if err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return runError(ctx, err)
		}
		c.out(b) // what the source returned, whether the pass takes it or not
		if t.stops(b) {
			b.Release()
			release(pr.sem)
			return pr.endInput(ctx, in)
		}
		if !t.seen && pr.limitCrossed(pr.repEpoch, b.Epoch) {
			// The pass begins past a FitEpochs below a replicated stage
			// (its epochs do not start at 0): replicas for that epoch.
			// Nothing has been fed, so there is nothing to wait for.
			if err := pr.cut(ctx, pos, b.Epoch, func() error { return nil }); err != nil {
				b.Release()
				release(pr.sem)
				return err
			}
		}
		if pr.counting && t.boundary(b) && (pr.run.onEpoch != nil || pr.limitCrossed(t.epoch, b.Epoch)) {
			e := t.end(false)
			wait()
			err := pr.cut(ctx, pos, b.Epoch, func() error { return pr.run.epochEnd(ctx, e, pr.run.stats) })
			waited()
			if err != nil {
				b.Release()
				release(pr.sem)
				if errors.Is(err, ErrStop) {
					t.reported = true
					return pr.endInput(ctx, in)
				}
				return err
			}
		}
		t.take(b)
		next := item{pos: pos, b: b}
		if !in.TryPut(next) {
			wait()
			if err := in.Put(ctx, next); err != nil {
				b.Release()
				return err
			}
			waited()
		}
		pos++
	}
}

// endInput ends the pass's input early; a pass that spills the source for
// later passes still reads it to its end.
func (pr *passRun) endInput(ctx context.Context, in *queue.Queue[item]) error {
	in.Close()
	src := pr.run.src
	for src.spilling() {
		pr.feeder.Store(feederReading)
		b, err := src.Next(ctx)
		if !pr.feeder.CompareAndSwap(feederReading, feederIdle) {
			b.Release()
			pr.run.letGo()
			return context.Cause(ctx)
		}
		if err == nil {
			pr.run.rec.src.out(b)
		}
		b.Release()
		if atEnd(err) {
			return nil
		}
		if errors.Is(err, ErrCut) { // the pass has ended: no cut to make
			continue
		}
		if err != nil {
			return runError(ctx, err)
		}
	}
	return nil
}

// sink reads and releases the output of a pass that nobody sees.
func (pr *passRun) sink(ctx context.Context, q *queue.Queue[item]) error {
	for {
		it, err := q.Get(ctx)
		if atEnd(err) {
			return nil
		}
		if err != nil {
			return err
		}
		it.b.Release()
		release(pr.sem)
		pr.complete()
	}
}

// chain starts stages one after the other from in and returns the last
// stage's output queue (nil after a fit-only stage) and whether batches
// leave it in order. final, if not nil, is the last stage's output queue.
func (pr *passRun) chain(stages []*stage, ops []op, in *queue.Queue[item], ordered bool, final *queue.Queue[item]) (*queue.Queue[item], bool) {
	cur := in
	for i, st := range stages {
		var out *queue.Queue[item]
		switch {
		case ops[i] == opFit:
		case i < len(stages)-1:
			out = pr.newQueue(stages[i+1].capacity)
		case final != nil:
			out = final
		default:
			out = pr.newQueue(DefaultQueueCapacity)
		}
		ordered = pr.stage(st, ops[i], cur, out, ordered)
		cur = out
	}
	return cur, ordered
}

// stage starts the goroutines of one stage and reports whether its output
// is in order.
func (pr *passRun) stage(st *stage, o op, in, out *queue.Queue[item], inOrdered bool) bool {
	if st.isUnion() {
		pr.union(st, o, in, out, inOrdered)
		return true
	}
	n := st.replicas
	reps := pr.reps[st]
	reorder := o != opFit && st.barrier.Ordered() && (n > 1 || !inOrdered)
	target := out
	if reorder {
		target = pr.newQueue(n)
	}
	var done func()
	if target != nil {
		done = target.Close
	}
	pr.g.GoN(n, func(ctx context.Context, w int) error {
		return pr.work(ctx, st, o, reps, w, in, target)
	}, done)
	if reorder {
		pr.g.Go(func(ctx context.Context) error { return pr.reorder(ctx, target, out) })
	}
	return o != opFit && (st.barrier.Ordered() || (n == 1 && inOrdered))
}

// work is replica w of a stage: take a batch, run the step, pass the
// result on. out is nil for a fit-only stage. reps, if not nil, are the
// replicas that fit; a cut (see cut) may renew them between two batches,
// so the replica is looked up for every batch. Past the stage's FitEpochs
// the stage's step transforms: a cut where the stage stopped fitting
// has merged the replicas into it.
//
// It reads the clock only where a queue makes it wait, at the start and the
// end of the wait: all the rest of its time is busy (see busyClock), the
// steps and the hand-offs that do not wait.
func (pr *passRun) work(ctx context.Context, st *stage, po op, reps []Step, w int, in, out *queue.Queue[item]) (err error) {
	c := &st.c
	clk := pr.run.rec.clock(c)
	clk.start(now())
	// The steps' panics are recovered here, once for the worker's life,
	// not at each call (see invoke): a panic ends the worker with the
	// step's error, as an error returned would.
	var (
		running bool // inside a step, with it, s and o
		it      item
		s       Step
		o       op
	)
	defer func() {
		if running {
			if v := recover(); v != nil {
				err = stepError(st.path, s, o.String(), &it.b, runError(ctx, panicError(v)))
				it.b.Release()
			}
		}
		clk.pause(now())
	}()
	for {
		var ok bool
		it, ok, err = in.TryGet()
		if !ok {
			if err == nil {
				t := now()
				clk.pause(t)
				it, err = in.Get(ctx)
				if err == nil {
					t2 := now()
					c.waitIn.Add(t2 - t)
					clk.start(t2)
				}
			}
			if err != nil {
				if atEnd(err) {
					return nil
				}
				return err
			}
		}
		o = st.opFor(po, it.b.Epoch)
		if o == opSkip {
			it.b.Release()
			release(pr.sem)
			pr.complete()
			continue
		}
		s = st.step
		if reps != nil && o != opTransform { // past its FitEpochs, the stage transforms as one that does not fit
			s = reps[w]
		}
		c.in(it.b)
		running = true
		res, err := invoke(ctx, s, o, it.b)
		running = false
		res, err = check(o, res, err)
		if err != nil {
			err = stepError(st.path, s, o.String(), &it.b, runError(ctx, err))
			it.b.Release()
			return err
		}
		if out == nil {
			it.b.Release()
			release(pr.sem)
			pr.complete()
			continue
		}
		res.Seq, res.Epoch = it.b.Seq, it.b.Epoch
		it.b.Release()
		c.out(res)
		it.b = res // the item goes on with its position
		if !out.TryPut(it) {
			t := now()
			clk.pause(t)
			if err := out.Put(ctx, it); err != nil {
				res.Release()
				return err
			}
			t2 := now()
			c.waitOut.Add(t2 - t)
			clk.start(t2)
		}
		if out == pr.final {
			pr.complete()
		}
	}
}

// clockBase is the origin of now: a second before the package was loaded,
// so that now exceeds any goroutine's busy time (see busyClock).
var clockBase = time.Now().Add(-time.Second)

// now reads the monotonic clock alone (time.Now reads the wall clock too),
// in nanoseconds since clockBase.
func now() int64 { return int64(time.Since(clockBase)) }

// reorder restores position order between a stage's replicas (or an
// unordered input) and the stage's output queue, which it alone fills and
// closes.
func (pr *passRun) reorder(ctx context.Context, in, out *queue.Queue[item]) error {
	rb := barrier.NewReorder[item](0, cap(pr.sem))
	defer rb.Drain(releaseItem)
	for {
		it, err := in.Get(ctx)
		if atEnd(err) {
			if rb.Len() > 0 {
				return fmt.Errorf("penstock: internal: input ended with %d batches waiting for position %d", rb.Len(), rb.Next())
			}
			out.Close()
			return nil
		}
		if err != nil {
			return err
		}
		if err := rb.Push(it.pos, it); err != nil {
			it.b.Release()
			return fmt.Errorf("penstock: internal: %w", err)
		}
		for {
			v, ok := rb.Pop()
			if !ok {
				break
			}
			if err := pr.put(ctx, out, v); err != nil {
				v.b.Release()
				return err
			}
		}
	}
}

// union starts a feature union: a distributor that hands every batch to
// each branch, the branches' own stages, and a join that zips the
// branches' outputs (each in position order) back into one batch.
func (pr *passRun) union(st *stage, o op, in, out *queue.Queue[item], inOrdered bool) {
	ins := make([]*queue.Queue[item], len(st.branches))
	outs := make([]*queue.Queue[item], len(st.branches))
	for i, br := range st.branches {
		ins[i] = pr.newQueue(br.stages[0].capacity)
		bout, ordered := pr.chain(br.stages, branchOps(br, o), ins[i], inOrdered, nil)
		outs[i] = bout
		if !ordered {
			q := pr.newQueue(DefaultQueueCapacity)
			pr.g.Go(func(ctx context.Context) error { return pr.reorder(ctx, bout, q) })
			outs[i] = q
		}
	}
	pr.g.Go(func(ctx context.Context) error { return pr.distribute(ctx, st, in, ins) })
	pr.g.Go(func(ctx context.Context) error { return pr.zip(ctx, st, o, outs, out) })
}

func (pr *passRun) distribute(ctx context.Context, st *stage, in *queue.Queue[item], ins []*queue.Queue[item]) error {
	t0 := time.Now()
	for {
		it, err := in.Get(ctx)
		if atEnd(err) {
			for _, q := range ins {
				q.Close()
			}
			return nil
		}
		if err != nil {
			return err
		}
		st.c.waitIn.Add(int64(time.Since(t0)))
		st.c.in(it.b)
		for range len(ins) - 1 {
			it.b.Retain()
		}
		for i, q := range ins {
			if err := q.Put(ctx, it); err != nil {
				for range len(ins) - i {
					it.b.Release()
				}
				return err
			}
		}
		t0 = time.Now()
	}
}

func (pr *passRun) zip(ctx context.Context, st *stage, o op, outs []*queue.Queue[item], out *queue.Queue[item]) error {
	parts := make([]Batch, len(outs))
	for {
		var pos int64
		for i, q := range outs {
			it, err := q.Get(ctx)
			if err != nil {
				for _, p := range parts[:i] {
					p.Release()
				}
				if !atEnd(err) {
					return err
				}
				if i > 0 {
					return fmt.Errorf("penstock: internal: union %q: branch %q ended before branch %q", st.path, st.names[i].Name, st.names[0].Name)
				}
				for j, q := range outs[1:] {
					if it, err := q.Get(ctx); !atEnd(err) {
						it.b.Release()
						return fmt.Errorf("penstock: internal: union %q: branch %q goes on after branch %q ended (%v)", st.path, st.names[j+1].Name, st.names[0].Name, err)
					}
				}
				if out != nil {
					out.Close()
				}
				return nil
			}
			if i == 0 {
				pos = it.pos
			} else if it.pos != pos {
				it.b.Release()
				for _, p := range parts[:i] {
					p.Release()
				}
				return fmt.Errorf("penstock: internal: union %q: branch %q at position %d, branch %q at %d", st.path, st.names[i].Name, it.pos, st.names[0].Name, pos)
			}
			parts[i] = it.b
		}
		t1 := time.Now()
		joined, err := joinBranches(st.names, parts)
		first := parts[0]
		err = stepErrorIf(st, o, &first, err)
		for _, p := range parts {
			p.Release()
		}
		t2 := time.Now()
		st.c.busy.Add(int64(t2.Sub(t1)))
		if err != nil {
			return err
		}
		st.c.out(joined)
		if err := pr.put(ctx, out, item{pos: pos, b: joined}); err != nil {
			joined.Release()
			return err
		}
		st.c.waitOut.Add(int64(time.Since(t2)))
	}
}

func stepErrorIf(st *stage, o op, b *Batch, err error) error {
	if err == nil {
		return nil
	}
	return stepError(st.path, st.step, o.String(), b, err)
}

// makeReplicas makes and sets up the replicas of every replicated stage
// that this pass fits, branches included.
func (pr *passRun) makeReplicas(ctx context.Context, stages []*stage, ops []op) error {
	for i, st := range stages {
		if ops[i] == opTransform {
			continue
		}
		for _, br := range st.branches {
			if err := pr.makeReplicas(ctx, br.stages, branchOps(br, ops[i])); err != nil {
				return err
			}
		}
		if st.isUnion() || st.replicas < 2 || !st.fits() {
			continue
		}
		reps := make([]Step, st.replicas)
		for w := range reps {
			r, err := pr.newReplica(ctx, st)
			if err != nil {
				return err
			}
			reps[w] = r
		}
		pr.reps[st] = reps
	}
	return nil
}

// newReplica makes one replica of st's step and sets up its new steps.
func (pr *passRun) newReplica(ctx context.Context, st *stage) (Step, error) {
	var fresh []setUpStep
	var r Step
	err := guardStage(st.path, st.step, "replica", func() error {
		var err error
		r, err = replicate(st.step, pr.repEpoch, func(v Visit, s Step) { fresh = append(fresh, setUpStep{join(st.path, v.Path), s}) })
		return stepError(st.path, st.step, "replica", nil, err)
	})
	if err != nil {
		return nil, err
	}
	// Only the new steps: the replica shares the others, set up already.
	for _, f := range fresh {
		if err := pr.repLog.setupOne(ctx, f.path, f.step); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// renewReplicas, at a cut, merges what the replicas have learned into
// their steps and gives every replica a fresh replica, for batches of the
// given epoch, so that the replicas' next merge does not count this epoch
// again. The workers are idle: they look their replica up after their
// next batch, which the feeder puts after this returns.
func (pr *passRun) renewReplicas(ctx context.Context, epoch int) error {
	if len(pr.reps) == 0 {
		return nil
	}
	if err := pr.merge(); err != nil {
		return err
	}
	if err := pr.repLog.teardown(ctx); err != nil {
		return err
	}
	pr.repEpoch = epoch
	for st, reps := range pr.reps {
		for w := range reps {
			r, err := pr.newReplica(ctx, st)
			if err != nil {
				return err
			}
			reps[w] = r
		}
	}
	return nil
}

func (pr *passRun) merge() error {
	for st, reps := range pr.reps {
		err := guardStage(st.path, st.step, "merge", func() error {
			return stepError(st.path, st.step, "merge", nil, mergeReplicas(st.step, reps, pr.repEpoch))
		})
		if err != nil {
			return err
		}
	}
	return nil
}
