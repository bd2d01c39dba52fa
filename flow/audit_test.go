package flow_test

// An adversarial audit of the promises of flow's doc comments: calls from
// several goroutines at once, Close at any moment, cancellation with a
// cause however a step, source or hook reports it, panics at every place
// where user code runs, and hostile step outputs, in both engines.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"go.uber.org/goleak"
)

// ctxMode is how a test step, source or hook treats a cancelled context.
type ctxMode int

const (
	ctxErrMode     ctxMode = iota // returns ctx.Err()
	ctxCauseMode                  // returns context.Cause(ctx)
	ctxWrappedMode                // returns fmt.Errorf("…: %w", ctx.Err())
	ctxIgnoreMode                 // never looks at ctx
)

var ctxModes = []ctxMode{ctxErrMode, ctxCauseMode, ctxWrappedMode, ctxIgnoreMode}

func (m ctxMode) String() string {
	return [...]string{"ctx.Err", "Cause", "wrapped", "ignores"}[m]
}

// wait waits d, or until ctx is done, and reports the cancellation as m
// says; a step that ignores ctx sleeps d whatever happens.
func (m ctxMode) wait(ctx context.Context, d time.Duration) error {
	if m == ctxIgnoreMode {
		time.Sleep(d)
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
	}
	switch m {
	case ctxErrMode:
		return ctx.Err()
	case ctxCauseMode:
		return context.Cause(ctx)
	}
	return fmt.Errorf("audit: waiting: %w", ctx.Err())
}

// gen is a source of n batches (endless where n < 0) of rows rows, x and
// id as numbers makes them, epochs batches per epoch (0: one epoch), each
// read taking d and treating ctx as mode says.
type gen struct {
	mem    memory.Allocator
	n      int64
	rows   int
	epoch  int64
	d      time.Duration
	mode   ctxMode
	reads  atomic.Int64
	before func(i int64) // called before batch i is made, if set
	// cutEvery, if above 0, asks for a cut (ErrCut) before every batch
	// whose index it divides.
	cutEvery int64
	cut      bool
	// stop, if not nil, ends the stream (io.EOF) once closed: the test's
	// way out of a run that never ends.
	stop chan struct{}
}

func (g *gen) Next(ctx context.Context) (flow.Batch, error) {
	i := g.reads.Load()
	if g.n >= 0 && i >= g.n {
		return flow.Batch{}, io.EOF
	}
	if g.stop != nil {
		select {
		case <-g.stop:
			return flow.Batch{}, io.EOF
		default:
		}
	}
	if g.cutEvery > 0 && i%g.cutEvery == 0 && !g.cut {
		g.cut = true
		return flow.Batch{}, flow.ErrCut
	}
	g.cut = false
	if g.mode != ctxIgnoreMode && ctx.Err() != nil {
		return flow.Batch{}, g.mode.wait(ctx, time.Hour)
	}
	if g.d > 0 {
		if err := g.mode.wait(ctx, g.d); err != nil {
			return flow.Batch{}, err
		}
	}
	if g.before != nil {
		g.before(i)
	}
	g.reads.Add(1)
	b := flow.Batch{Seq: i, X: makeRecord(g.mem, int(i)*g.rows, g.rows)}
	if g.epoch > 0 {
		b.Epoch = int(i / g.epoch)
	}
	return b, nil
}

// makeRecord makes x (float64) and id (int64) = lo … lo+n-1.
func makeRecord(mem memory.Allocator, lo, n int) arrow.RecordBatch {
	xb := array.NewFloat64Builder(mem)
	defer xb.Release()
	ib := array.NewInt64Builder(mem)
	defer ib.Release()
	for i := range n {
		xb.Append(float64(lo + i))
		ib.Append(int64(lo + i))
	}
	x, id := xb.NewArray(), ib.NewArray()
	defer x.Release()
	defer id.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64}, {Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	return array.NewRecordBatch(schema, []arrow.Array{x, id}, int64(n))
}

// waiter passes its input on after waiting d per batch, treating ctx as
// mode says; as a fitter (waitFit) it waits in Fit too, and learns
// nothing.
type waiter struct {
	mode ctxMode
	d    time.Duration
}

func (w waiter) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if err := w.mode.wait(ctx, w.d); err != nil {
		return flow.Batch{}, err
	}
	in.Retain()
	return in, nil
}

type waitFit struct {
	waiter
	mu   sync.Mutex
	fits int
}

var _ flow.Merger = (*waitFit)(nil)

func (w *waitFit) Fit(ctx context.Context, _ flow.Batch) error {
	if err := w.mode.wait(ctx, w.d); err != nil {
		return err
	}
	w.mu.Lock()
	w.fits++
	w.mu.Unlock()
	return nil
}

func (w *waitFit) Replica() flow.Step { return &waitFit{waiter: w.waiter} }

func (w *waitFit) Merge(reps []flow.Step) error {
	for _, r := range reps {
		w.fits += r.(*waitFit).fits
	}
	return nil
}

// lifeStep counts its setups and teardowns (concurrent-safe).
type lifeStep struct {
	waiter
	setups, teardowns atomic.Int64
}

func (l *lifeStep) Setup(context.Context) error    { l.setups.Add(1); return nil }
func (l *lifeStep) Teardown(context.Context) error { l.teardowns.Add(1); return nil }

// deafHold blocks in its first Transform, after closing entered, until
// release is closed, whatever ctx says; then it passes its input on.
type deafHold struct {
	once             *sync.Once
	entered, release chan struct{}
}

func (h deafHold) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	h.once.Do(func() {
		close(h.entered)
		<-h.release
	})
	in.Retain()
	return in, nil
}

// within fails t unless fn returns within d.
func within(t *testing.T, what string, d time.Duration, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// Close returns promptly, in both engines, when it comes while a step of a
// Joiner's first pass runs and the source's next read then ignores ctx and
// blocks: the sequential engine must not wait for that read (it would never
// return).
func TestAuditCloseBeforeDeafRead(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			ctx := deadline(t)
			unblock := make(chan struct{})
			src := &gen{mem: mem, n: -1, rows: 4, mode: ctxIgnoreMode, before: func(i int64) {
				if i == 1 {
					<-unblock // a read that ignores ctx
				}
			}}
			entered, release := make(chan struct{}), make(chan struct{})
			step := deafHold{new(sync.Once), entered, release}
			r.SpillDir = t.TempDir()
			p := pipeline(t, []flow.Node{
				flow.Named("hold", step),
				flow.Named("fit", &waitFit{waiter: waiter{mode: ctxIgnoreMode}}, flow.Barrier(barrier.Joiner)),
				flow.Named("after", passThrough{}),
			})
			s, err := r.FitTransform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			nextErr := make(chan error, 1)
			go func() {
				for {
					b, err := s.Next(ctx)
					if err != nil {
						nextErr <- err
						return
					}
					b.Release()
				}
			}()
			<-entered
			closed := make(chan error, 1)
			go func() { closed <- s.Close() }()
			time.Sleep(20 * time.Millisecond) // Close now waits, if it does
			close(release)
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close: %v", err)
				}
			case <-time.After(3 * time.Second):
				close(unblock)
				<-closed
				t.Fatal("Close waited for a source read that ignores ctx")
			}
			close(unblock)
			if err := <-nextErr; !errors.Is(err, flow.ErrClosed) {
				t.Errorf("Next racing Close: got %v; want ErrClosed", err)
			}
			select {
			case <-s.Done():
			case <-ctx.Done():
				t.Fatal("the run never let go of its source")
			}
		})
	}
}

// auditKind is what a run does: the pipelines and calls of the
// cancellation and Close tests.
type auditKind int

const (
	kindFit auditKind = iota
	kindTransform
	kindJoiner // FitTransform through a Joiner: two passes, a spill
)

func (k auditKind) String() string { return [...]string{"fit", "transform", "joiner"}[k] }

var auditKinds = []auditKind{kindFit, kindTransform, kindJoiner}

// auditPipeline is a pipeline for k whose steps wait d per batch and treat
// ctx as mode says.
func auditPipeline(t *testing.T, k auditKind, mode ctxMode, d time.Duration) *flow.Pipeline {
	t.Helper()
	w := waiter{mode, d}
	switch k {
	case kindFit:
		return pipeline(t, []flow.Node{
			flow.Named("a", w, flow.Replicas(2)),
			flow.Named("fit", &waitFit{waiter: w}, flow.Replicas(2)),
		})
	case kindTransform:
		u, err := flow.NewUnion(flow.Named("left", w, flow.Replicas(2)), flow.Named("right", pipeline(t, []flow.Node{flow.Named("r", w)})))
		if err != nil {
			t.Fatal(err)
		}
		return pipeline(t, []flow.Node{
			flow.Named("a", w, flow.Replicas(2)),
			flow.Named("b", w, flow.Barrier(barrier.OutOfOrder)),
			flow.Named("u", u),
			flow.Named("c", w),
		})
	}
	return pipeline(t, []flow.Node{
		flow.Named("a", w),
		flow.Named("fit", &waitFit{waiter: w}, flow.Barrier(barrier.Joiner), flow.Replicas(2)),
		flow.Named("after", &waitFit{waiter: w}),
	})
}

// run runs p as k says and returns the run's error: Fit's, or the first
// error of reading the stream to its end.
func (k auditKind) run(ctx context.Context, r flow.Runner, p *flow.Pipeline, src flow.Source) error {
	if k == kindFit {
		_, err := r.Fit(ctx, p, src)
		return err
	}
	var s *flow.Stream
	var err error
	if k == kindTransform {
		s, err = r.Transform(ctx, p, src)
	} else {
		s, err = r.FitTransform(ctx, p, src)
	}
	if err != nil {
		return err
	}
	// The run's ctx alone is cancelled: Next's is the caller's wait.
	return s.Each(context.WithoutCancel(ctx), func(flow.Batch) error { return nil })
}

// A run cancelled with a cause returns an error wrapping the cause,
// however its source, steps and hooks report the cancellation: with
// ctx.Err(), with the cause, wrapped, or not at all (they ignore ctx and
// the runner must notice). The cancellation comes at a random moment,
// before the run starts included, in both engines.
func TestAuditCancelCause(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	type where struct{ src, step, hook ctxMode }
	var cases []where
	for _, m := range ctxModes {
		cases = append(cases, where{m, ctxIgnoreMode, ctxIgnoreMode}, where{ctxIgnoreMode, m, ctxIgnoreMode})
		if m != ctxIgnoreMode {
			cases = append(cases, where{ctxIgnoreMode, ctxIgnoreMode, m})
		}
	}
	for _, r := range runners(mem) {
		for _, k := range auditKinds {
			for _, c := range cases {
				t.Run(fmt.Sprintf("%v/%v/source=%v/steps=%v/hooks=%v", r.Engine, k, c.src, c.step, c.hook), func(t *testing.T) {
					cause := fmt.Errorf("audit: operator pulled the plug (%v)", c)
					ctx, cancel := context.WithCancelCause(deadline(t))
					defer cancel(nil)
					const d = 100 * time.Microsecond
					src := &gen{mem: mem, n: -1, rows: 4, epoch: 5, cutEvery: 7, d: d, mode: c.src, stop: make(chan struct{})}
					r.SpillDir = t.TempDir()
					hook := func(ctx context.Context) error { return c.hook.wait(ctx, d) }
					r.OnEpoch = func(ctx context.Context, _ flow.EpochEnd) error { return hook(ctx) }
					r.OnCut = func(ctx context.Context, _ flow.Cut) error { return hook(ctx) }
					p := auditPipeline(t, k, c.step, d)
					if at := rand.IntN(4) - 1; at < 0 {
						cancel(cause)
					} else {
						time.AfterFunc(time.Duration(at)*time.Millisecond, func() { cancel(cause) })
					}
					var err error
					ended := make(chan struct{})
					go func() { defer close(ended); err = k.run(ctx, r, p, src) }()
					select {
					case <-ended:
					case <-time.After(5 * time.Second):
						close(src.stop)
						<-ended
						t.Fatalf("the run went on for 5 s after its cancellation; then it returned %v", err)
					}
					if !errors.Is(err, cause) {
						t.Fatalf("got %v; want an error wrapping the cause", err)
					}
					if left, _ := os.ReadDir(r.SpillDir); len(left) != 0 {
						t.Errorf("spill left %d files behind", len(left))
					}
				})
			}
		}
	}
}

// setupCancel is a step whose Setup cancels the run's context with a cause
// and then reports it as mode says (or not at all).
type setupCancel struct {
	passThrough
	cancel func()
	mode   ctxMode
}

func (s setupCancel) Setup(ctx context.Context) error {
	s.cancel()
	return s.mode.wait(ctx, time.Millisecond)
}

// A cancellation with a cause during Setup is the error of Transform (or
// of the run right after), wrapping the cause, however Setup reports it.
func TestAuditSetupCancelCause(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	for _, r := range runners(mem) {
		for _, m := range ctxModes {
			t.Run(fmt.Sprintf("%v/%v", r.Engine, m), func(t *testing.T) {
				cause := errors.New("audit: shutting down")
				ctx, cancel := context.WithCancelCause(deadline(t))
				defer cancel(nil)
				life := &lifeStep{}
				p := pipeline(t, []flow.Node{
					flow.Named("life", life),
					flow.Named("setup", setupCancel{cancel: func() { cancel(cause) }, mode: m}),
				})
				src := &gen{mem: mem, n: -1, rows: 2}
				err := kindTransform.run(ctx, r, p, src)
				if !errors.Is(err, cause) {
					t.Fatalf("got %v; want an error wrapping the cause", err)
				}
				if life.setups.Load() != 1 || life.teardowns.Load() != 1 {
					t.Errorf("the other step: %d setups, %d teardowns; want 1 and 1", life.setups.Load(), life.teardowns.Load())
				}
			})
		}
	}
}

// Close, Next and Stats from several goroutines at once, Close at a
// random moment (before the first Next, during a Joiner's first pass,
// inside a hook's wait, while steps run) of a run over an endless source:
// Next returns batches, then an error wrapping ErrClosed, never io.EOF
// (the stream has no end) nor any other error; concurrent Closes all
// return nil; the steps are torn down once; Stats stay within their
// elapsed times; the spill is removed; nothing leaks.
func TestAuditCloseRace(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	for _, r := range runners(mem) {
		for _, k := range []auditKind{kindTransform, kindJoiner} {
			for _, hooks := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/%v/hooks=%v", r.Engine, k, hooks), func(t *testing.T) {
					for range 10 {
						auditCloseRace(t, r, k, hooks)
						if t.Failed() {
							return
						}
					}
				})
			}
		}
	}
}

func auditCloseRace(t *testing.T, r flow.Runner, k auditKind, hooks bool) {
	t.Helper()
	ctx := deadline(t)
	mem := r.Allocator
	r.SpillDir = t.TempDir()
	if hooks {
		r.OnEpoch = func(ctx context.Context, _ flow.EpochEnd) error { return ctxCauseMode.wait(ctx, 200*time.Microsecond) }
		r.OnCut = func(ctx context.Context, _ flow.Cut) error { return ctxErrMode.wait(ctx, 200*time.Microsecond) }
	}
	life := &lifeStep{waiter: waiter{ctxCauseMode, 50 * time.Microsecond}}
	p := pipeline(t, []flow.Node{flow.Named("life", life), flow.Named("rest", auditPipeline(t, k, ctxErrMode, 50*time.Microsecond))})
	src := &gen{mem: mem, n: -1, rows: 3, epoch: 4, cutEvery: 5}
	var s *flow.Stream
	var err error
	if k == kindTransform {
		s, err = r.Transform(ctx, p, src)
	} else {
		s, err = r.FitTransform(ctx, p, src)
	}
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	nextErr := make(chan error, 1)
	wg.Add(2)
	go func() { // the reader
		defer wg.Done()
		for {
			b, err := s.Next(ctx)
			if err != nil {
				nextErr <- err
				return
			}
			b.Release()
		}
	}()
	go func() { // a dashboard
		defer wg.Done()
		for {
			checkBounded(t, s.Stats())
			select {
			case <-stop:
				return
			default:
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	if d := rand.IntN(5); d > 0 {
		time.Sleep(time.Duration(d) * time.Millisecond)
	}
	closeErrs := make(chan error, 3)
	for range 3 {
		go func() { closeErrs <- s.Close() }()
	}
	within(t, "Close", 5*time.Second, func() {
		for range 3 {
			if err := <-closeErrs; err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	close(stop)
	wg.Wait()
	if err := <-nextErr; !errors.Is(err, flow.ErrClosed) {
		t.Errorf("Next racing Close: got %v; want an error wrapping ErrClosed", err)
	}
	if _, err := s.Next(ctx); !errors.Is(err, flow.ErrClosed) {
		t.Errorf("Next after Close: got %v; want ErrClosed", err)
	}
	if got := life.teardowns.Load(); got != 1 || life.setups.Load() != 1 {
		t.Errorf("%d setups and %d teardowns; want 1 and 1", life.setups.Load(), got)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done is not closed after Close, with a source that honours ctx")
	}
	checkBounded(t, s.Stats())
	if left, _ := os.ReadDir(r.SpillDir); len(left) != 0 {
		t.Errorf("spill left %d files behind", len(left))
	}
}

// badTeardown fails its Teardown.
type badTeardown struct {
	passThrough
	err       error
	teardowns atomic.Int64
}

func (b *badTeardown) Teardown(context.Context) error { b.teardowns.Add(1); return b.err }

// Close returns a teardown error, in both engines, also when it ends the
// run early (before the first Next, or after some batches): closing early
// is not an error, but a failed teardown is.
func TestAuditCloseReturnsTeardownError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	errRelease := errors.New("audit: the device would not let go")
	for _, r := range runners(mem) {
		for _, read := range []int{0, 2} {
			t.Run(fmt.Sprintf("%v/read=%d", r.Engine, read), func(t *testing.T) {
				bad := &badTeardown{err: errRelease}
				s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("bad", bad)}), &gen{mem: mem, n: -1, rows: 2})
				if err != nil {
					t.Fatal(err)
				}
				for range read {
					b, err := s.Next(ctx)
					if err != nil {
						t.Fatal(err)
					}
					b.Release()
				}
				err = s.Close()
				var se *flow.StepError
				if !errors.Is(err, errRelease) || !errors.As(err, &se) || se.Path.String() != "bad" || se.Op != "teardown" {
					t.Errorf("Close: got %v; want the teardown error of step \"bad\"", err)
				}
				if again := s.Close(); !errors.Is(again, errRelease) {
					t.Errorf("second Close: got %v; want the same error", again)
				}
				if n := bad.teardowns.Load(); n != 1 {
					t.Errorf("%d teardowns; want 1", n)
				}
			})
		}
	}
}

// boomStep panics in the operation called at, and passes its input on
// elsewhere. It is a fitter, a fit-transformer, a merger, a copier, and it
// sets up and tears down.
type boomStep struct{ at string }

var (
	_ flow.Fitter         = (*boomStep)(nil)
	_ flow.FitTransformer = (*boomStep)(nil)
	_ flow.Merger         = (*boomStep)(nil)
	_ flow.Copier         = (*boomStep)(nil)
	_ flow.Setupper       = (*boomStep)(nil)
	_ flow.Teardowner     = (*boomStep)(nil)
)

func (b *boomStep) boom(op string) {
	if b.at == op {
		panic("audit: boom in " + op)
	}
}

func (b *boomStep) Setup(context.Context) error    { b.boom("setup"); return nil }
func (b *boomStep) Teardown(context.Context) error { b.boom("teardown"); return nil }
func (b *boomStep) Fit(context.Context, flow.Batch) error {
	b.boom("fit")
	return nil
}

func (b *boomStep) FitTransform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	b.boom("fit-transform")
	in.Retain()
	return in, nil
}

func (b *boomStep) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	b.boom("transform")
	in.Retain()
	return in, nil
}

func (b *boomStep) Replica() flow.Step {
	b.boom("replica")
	return &boomStep{at: b.at}
}

func (b *boomStep) Merge([]flow.Step) error { b.boom("merge"); return nil }
func (b *boomStep) Copy() flow.Step         { b.boom("copy"); return &boomStep{at: b.at} }

// panicSource panics in its second Next.
type panicSource struct {
	flow.Source
	reads int
}

func (p *panicSource) Next(ctx context.Context) (flow.Batch, error) {
	if p.reads++; p.reads == 2 {
		panic("audit: boom in the source")
	}
	return p.Source.Next(ctx)
}

// A panic wherever user code runs — Setup, Teardown, Fit, FitTransform,
// Transform, Replica, Merge, Copy, the hooks, the source — is an error
// carrying a *PanicError with the stack, never a crash, in both engines;
// the other steps are torn down once, and nothing leaks.
func TestAuditPanics(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, tc := range []struct {
			at       string
			kind     auditKind
			replicas int
			streamed bool // where only the streaming engine calls it
		}{
			{"setup", kindTransform, 1, false},
			{"teardown", kindFit, 1, false},
			{"teardown", kindTransform, 1, false},
			{"fit", kindFit, 1, false},
			{"fit-transform", kindFit, 1, false}, // with a fittable step after it
			{"transform", kindTransform, 1, false},
			{"transform", kindTransform, 3, false},
			{"replica", kindFit, 2, true},
			{"merge", kindFit, 2, true},
			{"OnEpoch", kindFit, 1, false},
			{"OnCut", kindTransform, 1, false},
			{"source", kindTransform, 1, false},
			{"source", kindFit, 2, false},
			{"source", kindJoiner, 1, false},
		} {
			if tc.streamed && r.Engine != flow.Streaming {
				continue
			}
			t.Run(fmt.Sprintf("%v/%s/%v/replicas=%d", r.Engine, tc.at, tc.kind, tc.replicas), func(t *testing.T) {
				r.SpillDir = t.TempDir()
				life := &lifeStep{}
				boom := &boomStep{at: tc.at}
				nodes := []flow.Node{flow.Named("life", life), flow.Named("boom", boom, flow.Replicas(tc.replicas))}
				if tc.kind == kindJoiner {
					nodes[1] = flow.Named("boom", boom, flow.Barrier(barrier.Joiner))
				}
				if tc.kind == kindJoiner || tc.at == "fit-transform" {
					nodes = append(nodes, flow.Named("after", &waitFit{}))
				}
				p := pipeline(t, nodes)
				var src flow.Source = &gen{mem: mem, n: 20, rows: 2, epoch: 5, cutEvery: 3}
				switch tc.at {
				case "OnEpoch":
					r.OnEpoch = func(context.Context, flow.EpochEnd) error { panic("audit: boom in OnEpoch") }
				case "OnCut":
					r.OnCut = func(context.Context, flow.Cut) error { panic("audit: boom in OnCut") }
				case "source":
					src = &panicSource{Source: src}
				}
				var err error
				within(t, "the run", 10*time.Second, func() { err = tc.kind.run(ctx, r, p, src) })
				var pe *flow.PanicError
				if !errors.As(err, &pe) || !strings.Contains(fmt.Sprint(pe.Value), "boom in") || len(pe.Stack) == 0 {
					t.Fatalf("got %v; want an error carrying the *PanicError of the %s, with its stack", err, tc.at)
				}
				if tc.at != "OnEpoch" && tc.at != "OnCut" && tc.at != "source" && !strings.Contains(err.Error(), `step "boom"`) {
					t.Errorf("error %q does not name step \"boom\"", err)
				}
				if s, d := life.setups.Load(), life.teardowns.Load(); s != 1 || d != 1 {
					t.Errorf("the other step: %d setups and %d teardowns; want 1 and 1", s, d)
				}
			})
		}
	}
	if _, err := flow.Copy(pipeline(t, []flow.Node{flow.Named("boom", &boomStep{at: "copy"})})); err == nil || !strings.Contains(err.Error(), "boom in copy") {
		t.Errorf("Copy of a step whose Copy panics: got %v; want the panic as an error", err)
	}
}

// Close from another goroutine while an OnEpoch or OnCut hook runs: the
// hook sees its ctx cancelled, Close waits for it and returns nil, and the
// hook may call Stats meanwhile; in both engines, in the first pass of a
// Joiner and in the last.
func TestAuditCloseDuringHook(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	for _, r := range runners(mem) {
		for _, hook := range []string{"OnEpoch", "OnCut"} {
			for _, pass := range []int{0, 1} {
				if hook == "OnCut" && pass == 1 {
					continue // the second pass reads the spill, which asks for no cut
				}
				t.Run(fmt.Sprintf("%v/%s/pass=%d", r.Engine, hook, pass), func(t *testing.T) {
					ctx := deadline(t)
					r.SpillDir = t.TempDir()
					var stream atomic.Pointer[flow.Stream]
					entered := make(chan struct{})
					var once sync.Once
					var hookErr error
					fn := func(hctx context.Context, p int) error {
						if p != pass {
							return nil
						}
						if s := stream.Load(); s != nil {
							checkBounded(t, s.Stats())
						}
						first := false
						once.Do(func() { first = true; close(entered) })
						if !first {
							return nil
						}
						<-hctx.Done()
						hookErr = hctx.Err()
						return hookErr
					}
					switch hook {
					case "OnEpoch":
						r.OnEpoch = func(hctx context.Context, e flow.EpochEnd) error { return fn(hctx, e.Pass) }
					case "OnCut":
						r.OnCut = func(hctx context.Context, c flow.Cut) error { return fn(hctx, c.Pass) }
					}
					life := &lifeStep{}
					p := pipeline(t, []flow.Node{
						flow.Named("life", life),
						flow.Named("fit", &waitFit{}, flow.Barrier(barrier.Joiner)),
						flow.Named("after", &waitFit{}),
					})
					s, err := r.FitTransform(ctx, p, &gen{mem: mem, n: 40, rows: 2, epoch: 5, cutEvery: 3})
					if err != nil {
						t.Fatal(err)
					}
					stream.Store(s)
					go func() { // the reader, which the hook holds up
						for {
							b, err := s.Next(ctx)
							if err != nil {
								return
							}
							b.Release()
						}
					}()
					select {
					case <-entered:
					case <-ctx.Done():
						t.Fatal("the hook never ran")
					}
					within(t, "Close during a hook", 5*time.Second, func() {
						if err := s.Close(); err != nil {
							t.Errorf("Close: %v", err)
						}
					})
					if !errors.Is(hookErr, context.Canceled) {
						t.Errorf("the hook's ctx: %v; want it cancelled by Close", hookErr)
					}
					if life.teardowns.Load() != 1 {
						t.Errorf("%d teardowns; want 1", life.teardowns.Load())
					}
				})
			}
		}
	}
}

// hostile returns what a careless step might.
type hostile struct{ what string }

func (h hostile) out(in flow.Batch) (flow.Batch, error) {
	switch h.what {
	case "nil X and Y":
		return flow.Batch{}, nil
	case "rows":
		in.X.Retain()
		return flow.Batch{X: in.X, Y: in.X.NewSlice(0, in.X.NumRows()-1)}, nil
	case "batch and error":
		in.Retain()
		return in, errors.New("audit: half done")
	}
	in.Retain()
	return in, nil
}

func (h hostile) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) { return h.out(in) }

// hostileFit is hostile on the fit path too.
type hostileFit struct{ hostile }

func (h hostileFit) FitTransform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	return h.out(in)
}

// A step's malformed output is an error of that step, on the transform
// and fit-transform paths, inside a sub-pipeline, a union branch and a
// replicated stage, in both engines, and what it returned is released.
func TestAuditHostileOutputs(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, what := range []string{"nil X and Y", "rows", "batch and error"} {
			for _, shape := range []string{"plain", "replicated", "nested", "union"} {
				for _, k := range []auditKind{kindTransform, kindFit} {
					t.Run(fmt.Sprintf("%v/%s/%s/%v", r.Engine, what, shape, k), func(t *testing.T) {
						h := flow.Step(hostileFit{hostile{what}})
						node := flow.Named("h", h)
						path := "h"
						switch shape {
						case "replicated": // on the transform path: a fit would need a Merger
							node = flow.Named("h", hostile{what}, flow.Replicas(3))
						case "nested":
							node = flow.Named("sub", pipeline(t, []flow.Node{flow.Named("one", passThrough{}), flow.Named("h", h)}))
							path = "sub/h"
						case "union":
							u, err := flow.NewUnion(flow.Named("ok", passThrough{}), flow.Named("h", h))
							if err != nil {
								t.Fatal(err)
							}
							node, path = flow.Named("u", u), "u/h"
						}
						p := pipeline(t, []flow.Node{node, flow.Named("fit", &waitFit{})})
						err := k.run(ctx, r, p, &gen{mem: mem, n: 30, rows: 4})
						var se *flow.StepError
						if !errors.As(err, &se) || se.Path.String() != path {
							t.Fatalf("got %v; want the StepError of step %q", err, path)
						}
						want := map[string][]string{
							"nil X and Y":     {"empty batch"},
							"rows":            {"4 rows", "3 rows"},
							"batch and error": {"half done"},
						}[what]
						for _, w := range want {
							if !strings.Contains(err.Error(), w) {
								t.Errorf("error %q does not say %q", err, w)
							}
						}
					})
				}
			}
		}
	}
}

// The refusal to fit replicas of a step that cannot merge names the step
// once, by its path, and says what is missing; a nested one by its path
// below the stage.
func TestAuditCanMergeMessage(t *testing.T) {
	ctx := deadline(t)
	r := flow.Runner{Engine: flow.Streaming}
	for _, tc := range []struct {
		step flow.Step
		want string
	}{
		{&sumFit{}, `penstock: step "sum": cannot fit 2 replicas: *flow_test.sumFit does not implement flow.Merger`},
		{pipeline(t, []flow.Node{flow.Named("inner", &sumFit{})}), `penstock: step "sum": cannot fit 2 replicas: step "inner" (*flow_test.sumFit) does not implement flow.Merger`},
	} {
		_, err := r.Fit(ctx, pipeline(t, []flow.Node{flow.Named("sum", tc.step, flow.Replicas(2))}), &gen{mem: memory.DefaultAllocator, n: 1, rows: 1})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), `step ""`) {
			t.Errorf("got %v; want %q…", err, tc.want)
		}
	}
}

// Close before the first Next: nothing is read by the sequential engine,
// the steps are torn down once, Next returns ErrClosed, Done is closed,
// Stats stay bounded; in both engines, for every kind of run.
func TestAuditCloseBeforeFirstNext(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, k := range []auditKind{kindTransform, kindJoiner} {
			t.Run(fmt.Sprintf("%v/%v", r.Engine, k), func(t *testing.T) {
				r.SpillDir = t.TempDir()
				life := &lifeStep{}
				p := pipeline(t, []flow.Node{flow.Named("life", life), flow.Named("rest", auditPipeline(t, k, ctxCauseMode, 0))})
				src := &gen{mem: mem, n: -1, rows: 2}
				var s *flow.Stream
				var err error
				if k == kindTransform {
					s, err = r.Transform(ctx, p, src)
				} else {
					s, err = r.FitTransform(ctx, p, src)
				}
				if err != nil {
					t.Fatal(err)
				}
				if life.setups.Load() != 1 {
					t.Errorf("%d setups before the first Next; want 1", life.setups.Load())
				}
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				if life.teardowns.Load() != 1 {
					t.Errorf("%d teardowns after Close; want 1", life.teardowns.Load())
				}
				if r.Engine == flow.Sequential && src.reads.Load() != 0 {
					t.Errorf("the sequential engine read %d batches without a Next; want 0", src.reads.Load())
				}
				if _, err := s.Next(ctx); !errors.Is(err, flow.ErrClosed) {
					t.Errorf("Next after Close: got %v; want ErrClosed", err)
				}
				select {
				case <-s.Done():
				default:
					t.Error("Done is not closed after Close")
				}
				checkBounded(t, s.Stats())
				for b, err := range s.All(ctx) {
					b.Release()
					if !errors.Is(err, flow.ErrClosed) {
						t.Errorf("All after Close: got %v; want ErrClosed", err)
					}
				}
			})
		}
	}
}

// A stream that is dropped without a single Next is closed by the garbage
// collector too: its steps are torn down and released for other runs.
func TestAuditDroppedUnreadStream(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			life := &lifeStep{}
			p := pipeline(t, []flow.Node{flow.Named("life", life)})
			func() {
				if _, err := r.Transform(ctx, p, &gen{mem: mem, n: -1, rows: 2}); err != nil {
					t.Fatal(err)
				}
			}()
			for life.teardowns.Load() == 0 {
				if ctx.Err() != nil {
					t.Fatal("a dropped stream that was never read is never closed")
				}
				runtime.GC()
				time.Sleep(5 * time.Millisecond)
			}
			if life.setups.Load() != 1 {
				t.Errorf("%d setups; want 1", life.setups.Load())
			}
			s, err := r.Transform(ctx, p, &gen{mem: mem, n: 3, rows: 2})
			if err != nil {
				t.Fatalf("a run after the dropped one: %v", err)
			}
			if err := s.Each(ctx, func(flow.Batch) error { return nil }); err != nil {
				t.Fatal(err)
			}
		})
	}
	goleak.VerifyNone(t)
	mem.AssertSize(t, 0)
}

// All closes the stream when the loop body panics.
func TestAuditAllClosesOnPanic(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			life := &lifeStep{}
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("life", life, flow.Replicas(2))}), &gen{mem: mem, n: -1, rows: 2})
			if err != nil {
				t.Fatal(err)
			}
			func() {
				defer func() {
					if v := recover(); v != "audit: loop body" {
						t.Errorf("recovered %v; want the loop body's panic", v)
					}
				}()
				n := 0
				for b, err := range s.All(ctx) {
					if err != nil {
						t.Fatal(err)
					}
					b.Release()
					if n++; n == 3 {
						panic("audit: loop body")
					}
				}
			}()
			if life.teardowns.Load() != 1 {
				t.Errorf("%d teardowns after a panic in the loop; want 1 (All closes)", life.teardowns.Load())
			}
			if _, err := s.Next(ctx); !errors.Is(err, flow.ErrClosed) {
				t.Errorf("Next after the loop: got %v; want ErrClosed", err)
			}
		})
	}
}

// FitEpochs before a Joiner: the first pass reads the epochs that its
// steps fit, and the first batch after them, not the whole stream; with
// FitEpochs(0) on every step before the Joiner there is no first pass at
// all. Counted as reads of a replayable source, in both engines.
func TestAuditFitEpochsJoinerReads(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, tc := range []struct {
			limits    []int // FitEpochs of the steps before the Joiner; -1 for none
			wantReads int   // of 10 epochs of 10 batches
			wantFits  []int // batches fitted by each step before the Joiner
		}{
			{[]int{2}, 21 + 100, []int{20}},
			{[]int{0}, 100, []int{0}},
			{[]int{0, 3}, 31 + 100, []int{0, 30}},
			{[]int{1, 3}, 31 + 100, []int{10, 30}},
			{[]int{0, 0}, 100, []int{0, 0}},
			{[]int{2, -1}, 100 + 100, []int{20, 100}},
		} {
			t.Run(fmt.Sprintf("%v/%v", r.Engine, tc.limits), func(t *testing.T) {
				src, done := epochs(t, mem, 10)
				defer done()
				var nodes []flow.Node
				var fits []*waitFit
				for i, n := range tc.limits {
					f := &waitFit{}
					fits = append(fits, f)
					var opts []flow.Option
					if n >= 0 {
						opts = append(opts, flow.FitEpochs(n))
					}
					if i == len(tc.limits)-1 {
						opts = append(opts, flow.Barrier(barrier.Joiner))
					}
					nodes = append(nodes, flow.Named(fmt.Sprintf("f%d", i), f, opts...))
				}
				after := &waitFit{}
				nodes = append(nodes, flow.Named("after", after))
				if _, err := r.Fit(ctx, pipeline(t, nodes), src); err != nil {
					t.Fatal(err)
				}
				if src.reads != tc.wantReads {
					t.Errorf("the source was read %d times; want %d", src.reads, tc.wantReads)
				}
				for i, f := range fits {
					if f.fits != tc.wantFits[i] {
						t.Errorf("step f%d fitted %d batches; want %d", i, f.fits, tc.wantFits[i])
					}
				}
				if after.fits != 100 {
					t.Errorf("the step after the Joiner fitted %d batches; want 100", after.fits)
				}
			})
		}
	}
}

// slowHook sleeps in an OnEpoch hook.
const slowHook = 30 * time.Millisecond

// The time an OnEpoch hook takes is no step's busy time: in the
// sequential engine it used to count as the first step's, which then
// looked like the bottleneck.
func TestAuditHookTimeIsNotBusy(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			src, done := epochs(t, mem, 4)
			defer done()
			r.OnEpoch = func(context.Context, flow.EpochEnd) error { time.Sleep(slowHook); return nil }
			st, err := r.Fit(ctx, pipeline(t, []flow.Node{flow.Named("first", scale{mem, 1}), flow.Named("fit", &waitFit{})}), src)
			if err != nil {
				t.Fatal(err)
			}
			if st.Elapsed < 3*slowHook {
				t.Fatalf("the run took %v; want at least the hooks' %v", st.Elapsed, 3*slowHook)
			}
			for _, s := range st.Stages {
				if s.Busy >= slowHook {
					t.Errorf("stage %s: busy %v; want less than one hook's %v (the hooks are nobody's busy time)\n%v", s.Name(), s.Busy, slowHook, st)
				}
			}
		})
	}
}

// A Next whose own ctx is done returns that ctx's cause and leaves the run
// going: the next Next, with a live ctx, returns the next batch, and no
// batch is lost; in both engines.
func TestAuditNextOwnContext(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("slow", waiter{ctxCauseMode, time.Millisecond})}), &gen{mem: mem, n: 20, rows: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			impatient := errors.New("audit: the caller stopped waiting")
			var seqs []int64
			for i := 0; ; i++ {
				nctx := ctx
				if i%3 == 1 {
					c, cancel := context.WithCancelCause(ctx)
					cancel(impatient)
					nctx = c
				}
				b, err := s.Next(nctx)
				if nctx != ctx {
					if err == nil {
						seqs = append(seqs, b.Seq) // a batch ready at once may come
						b.Release()
					} else if errors.Is(err, io.EOF) {
						break // and so may the end
					} else if !errors.Is(err, impatient) {
						t.Fatalf("Next with a done ctx: got %v; want its cause", err)
					}
					continue
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				seqs = append(seqs, b.Seq)
				b.Release()
			}
			if len(seqs) != 20 {
				t.Fatalf("got batches %v; want all 20", seqs)
			}
			for i, q := range seqs {
				if q != int64(i) {
					t.Fatalf("got batches %v; want 0 … 19 in order", seqs)
				}
			}
		})
	}
}

// slowTeardown sleeps in Teardown and counts.
type slowTeardown struct {
	passThrough
	teardowns atomic.Int64
}

func (s *slowTeardown) Teardown(context.Context) error {
	time.Sleep(20 * time.Millisecond)
	s.teardowns.Add(1)
	return nil
}

// Close while the run tears down at its end, and Closes from several
// goroutines at once: one teardown, Close returns nil, Next keeps io.EOF
// or ErrClosed.
func TestAuditCloseDuringTeardown(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			td := &slowTeardown{}
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("td", td)}), &gen{mem: mem, n: 3, rows: 1})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
					if err := s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				}()
			}
			for {
				b, err := s.Next(ctx)
				if err != nil {
					if !errors.Is(err, io.EOF) && !errors.Is(err, flow.ErrClosed) {
						t.Errorf("Next: got %v; want io.EOF or ErrClosed", err)
					}
					break
				}
				b.Release()
			}
			wg.Wait()
			if n := td.teardowns.Load(); n != 1 {
				t.Errorf("%d teardowns; want 1", n)
			}
		})
	}
}

// resourceFit is a mergeable fitter whose replicas each set up and tear
// down, counted together.
type resourceFit struct {
	waitFit
	up, setups, teardowns *atomic.Int64
}

func newResourceFit(mode ctxMode, d time.Duration) *resourceFit {
	return &resourceFit{waitFit: waitFit{waiter: waiter{mode, d}}, up: new(atomic.Int64), setups: new(atomic.Int64), teardowns: new(atomic.Int64)}
}

func (r *resourceFit) Setup(context.Context) error    { r.up.Add(1); r.setups.Add(1); return nil }
func (r *resourceFit) Teardown(context.Context) error { r.up.Add(-1); r.teardowns.Add(1); return nil }
func (r *resourceFit) Replica() flow.Step {
	return &resourceFit{waitFit: waitFit{waiter: r.waiter}, up: r.up, setups: r.setups, teardowns: r.teardowns}
}

func (r *resourceFit) Merge(reps []flow.Step) error {
	for _, s := range reps {
		r.fits += s.(*resourceFit).fits
	}
	return nil
}

// Replicas of a fitting stage that set up are all torn down, whatever
// ends the run: its end, a cancellation, Close, an error, at random
// moments, with epochs renewing the replicas at every cut.
func TestAuditReplicasTornDown(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	r := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	r.OnEpoch = func(context.Context, flow.EpochEnd) error { return nil }
	for _, end := range []string{"end", "cancel", "close", "error"} {
		t.Run(end, func(t *testing.T) {
			for range 10 {
				ctx, cancel := context.WithCancelCause(deadline(t))
				rf := newResourceFit(ctxErrMode, 100*time.Microsecond)
				nodes := []flow.Node{flow.Named("rf", rf, flow.Replicas(3))}
				if end == "error" {
					nodes = append(nodes, flow.Named("bad", failing{scale{mem, 1}, int64(rand.IntN(30)), false}))
				}
				nodes = append(nodes, flow.Named("after", &waitFit{}))
				r.SpillDir = t.TempDir()
				p := pipeline(t, nodes)
				s, err := r.FitTransform(ctx, p, &gen{mem: mem, n: 40, rows: 2, epoch: 4})
				if err != nil {
					t.Fatal(err)
				}
				at := time.Duration(rand.IntN(3000)) * time.Microsecond
				switch end {
				case "cancel":
					time.AfterFunc(at, func() { cancel(errors.New("audit: cancelled")) })
				case "close":
					time.AfterFunc(at, func() { s.Close() })
				}
				err = s.Each(context.WithoutCancel(ctx), func(flow.Batch) error { return nil })
				s.Close()
				cancel(nil)
				if end == "end" && err != nil {
					t.Fatal(err)
				}
				if end == "error" && !errors.Is(err, errBoom) {
					t.Fatalf("got %v; want boom", err)
				}
				if up := rf.up.Load(); up != 0 || rf.setups.Load() < 1 {
					t.Fatalf("%d setups, %d teardowns (%d still up); want every one torn down", rf.setups.Load(), rf.teardowns.Load(), up)
				}
			}
		})
	}
}

// cutForever asks for a cut at every read and never returns a batch,
// whatever ctx says.
type cutForever struct{ reads atomic.Int64 }

func (c *cutForever) Next(context.Context) (flow.Batch, error) {
	c.reads.Add(1)
	return flow.Batch{}, flow.ErrCut
}

// A source that only ever asks for cuts, and ignores ctx, does not keep a
// cancelled run going, with or without an OnCut hook (which ignores ctx
// too).
func TestAuditCancelDuringEndlessCuts(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	for _, r := range runners(mem) {
		for _, hook := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/hook=%v", r.Engine, hook), func(t *testing.T) {
				cause := errors.New("audit: enough cuts")
				ctx, cancel := context.WithCancelCause(deadline(t))
				defer cancel(nil)
				if hook {
					r.OnCut = func(context.Context, flow.Cut) error { return nil }
				}
				src := &cutForever{}
				time.AfterFunc(2*time.Millisecond, func() { cancel(cause) })
				var err error
				within(t, "the cancelled run", 5*time.Second, func() {
					_, err = r.Fit(ctx, pipeline(t, []flow.Node{flow.Named("fit", &waitFit{})}), src)
				})
				if !errors.Is(err, cause) {
					t.Errorf("got %v; want the cause", err)
				}
			})
		}
	}
}

// malformed wraps gen and spoils batch at: its schema changes, it loses
// its X, or it gains a Y.
type malformed struct {
	*gen
	at   int64
	what string
}

func (m *malformed) Next(ctx context.Context) (flow.Batch, error) {
	b, err := m.gen.Next(ctx)
	if err != nil || b.Seq != m.at {
		return b, err
	}
	switch m.what {
	case "schema":
		x := b.X.NewSlice(0, b.X.NumRows()) // same rows, one column fewer
		b.X.Release()
		cols := []arrow.Array{x.Column(0)}
		b.X = array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64}}, nil), cols, x.NumRows())
		x.Release()
	case "no X":
		b.X.Release()
		b.X = nil
	case "Y":
		b.X.Retain()
		b.Y = b.X
	}
	return b, nil
}

// A Joiner fit over a source that cannot rewind spills it; a batch that
// the spill cannot hold (another schema, no X, a Y where the first had
// none) fails the run with an error that says which batch and why, and
// leaves no file and no buffer behind, in both engines.
func TestAuditSpillRefusesMalformedBatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, tc := range []struct{ what, want string }{
			{"schema", "schema"},
			{"no X", "batch 5 has no x"},
			{"Y", "batch 5 has Y=true"},
		} {
			t.Run(fmt.Sprintf("%v/%s", r.Engine, tc.what), func(t *testing.T) {
				r.SpillDir = t.TempDir()
				p := pipeline(t, []flow.Node{
					flow.Named("fit", &waitFit{}, flow.Barrier(barrier.Joiner)),
					flow.Named("after", &waitFit{}),
				})
				_, err := r.Fit(ctx, p, &malformed{&gen{mem: mem, n: 20, rows: 3}, 5, tc.what})
				if err == nil || !strings.Contains(err.Error(), "spill") || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v; want a spill error saying %q", err, tc.want)
				}
				if left, _ := os.ReadDir(r.SpillDir); len(left) != 0 {
					t.Errorf("spill left %d files behind", len(left))
				}
			})
		}
	}
}

// A Fit of a pipeline with nothing to fit runs nothing and reads nothing,
// and still sets its steps up and tears them down, in both engines.
func TestAuditFitWithNothingToFit(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			life := &lifeStep{}
			frozen := &waitFit{}
			src := &gen{mem: mem, n: 10, rows: 1}
			st, err := r.Fit(ctx, pipeline(t, []flow.Node{flow.Named("life", life), flow.Named("frozen", frozen, flow.FitEpochs(0))}), src)
			if err != nil {
				t.Fatal(err)
			}
			// The steps after the last fittable one do not run.
			fit, after := &waitFit{}, &tally{}
			if _, err := r.Fit(ctx, pipeline(t, []flow.Node{flow.Named("fit", fit, flow.Replicas(2)), flow.Named("after", after, flow.Replicas(2))}), &gen{mem: mem, n: 10, rows: 1}); err != nil {
				t.Fatal(err)
			}
			if fit.fits != 10 || after.transforms.Load() != 0 {
				t.Errorf("fitted %d batches, ran the step after %d times; want 10 and 0", fit.fits, after.transforms.Load())
			}
			if src.reads.Load() != 0 || frozen.fits != 0 || len(st.Passes) != 0 {
				t.Errorf("read %d batches, fitted %d, %d passes; want 0, 0, 0", src.reads.Load(), frozen.fits, len(st.Passes))
			}
			if life.setups.Load() != 1 || life.teardowns.Load() != 1 {
				t.Errorf("%d setups, %d teardowns; want 1 and 1", life.setups.Load(), life.teardowns.Load())
			}
		})
	}
}

// Copy at a consistent cut of a fit (in OnEpoch), with replicas: the copy
// holds the state fitted so far, replicas merged, and stays as it was
// while the fit goes on; several runs of one Runner go on at once, each on
// its own copy of the pipeline.
func TestAuditCopyAtCutAndRunsAtOnce(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			base := pipeline(t, []flow.Node{flow.Named("slow", waiter{ctxCauseMode, 20 * time.Microsecond}, flow.Replicas(2)), flow.Named("m", &mean{mem: mem}, flow.Replicas(3))})
			var wg sync.WaitGroup
			for run := range 3 {
				s, err := flow.Copy(base)
				if err != nil {
					t.Fatal(err)
				}
				p := s.(*flow.Pipeline)
				wg.Add(1)
				go func() {
					defer wg.Done()
					var copies []flow.Step
					var want []float64
					rr := r
					rr.OnEpoch = func(_ context.Context, e flow.EpochEnd) error {
						c, err := flow.Copy(p)
						if err != nil {
							return err
						}
						copies = append(copies, c)
						want = append(want, float64(10*(e.Epoch+1)))
						return nil
					}
					src := &gen{mem: mem, n: 30, rows: 1, epoch: 10, d: time.Duration(run) * 10 * time.Microsecond}
					if _, err := rr.Fit(ctx, p, src); err != nil {
						t.Error(err)
						return
					}
					if got := p.Step("m").(*mean).state().n; got != 30 {
						t.Errorf("run %d: the fitted step saw %v rows; want 30", run, got)
					}
					if len(copies) < 3 {
						t.Errorf("run %d: %d copies; want one per epoch, 3", run, len(copies))
						return
					}
					for i, c := range copies[:3] {
						if got := c.(*flow.Pipeline).Step("m").(*mean).state().n; got != want[i] {
							t.Errorf("run %d: the copy made after epoch %d holds %v rows; want %v", run, i, got, want[i])
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// slowSetupFit is a resourceFit whose Setup takes d, treating ctx as mode
// says: the streaming engine sets its replicas up at the start of the pass
// that fits them, after FitTransform has returned.
type slowSetupFit struct {
	*resourceFit
	mode ctxMode
	d    time.Duration
}

func (s slowSetupFit) Setup(ctx context.Context) error {
	if err := s.mode.wait(ctx, s.d); err != nil {
		return err
	}
	return s.resourceFit.Setup(ctx)
}

func (s slowSetupFit) Replica() flow.Step {
	return slowSetupFit{s.resourceFit.Replica().(*resourceFit), s.mode, s.d}
}

func (s slowSetupFit) Merge(reps []flow.Step) error {
	for _, r := range reps {
		s.fits += r.(slowSetupFit).fits
	}
	return nil
}

// Close while the streaming engine sets up the replicas of a pass (the
// first, or the one after a Joiner), at random moments: Close returns nil,
// every replica that was set up is torn down.
func TestAuditCloseDuringReplicaSetup(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	r := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	for _, m := range ctxModes {
		t.Run(m.String(), func(t *testing.T) {
			for range 10 {
				ctx := deadline(t)
				r.SpillDir = t.TempDir()
				first := slowSetupFit{newResourceFit(ctxErrMode, 0), m, time.Millisecond}
				second := slowSetupFit{newResourceFit(ctxErrMode, 0), m, time.Millisecond}
				p := pipeline(t, []flow.Node{
					flow.Named("first", first, flow.Replicas(3), flow.Barrier(barrier.Joiner)),
					flow.Named("second", second, flow.Replicas(3)),
				})
				s, err := r.FitTransform(ctx, p, &gen{mem: mem, n: 5, rows: 1})
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Duration(rand.IntN(12)) * time.Millisecond)
				within(t, "Close", 5*time.Second, func() {
					if err := s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
				for name, f := range map[string]slowSetupFit{"first": first, "second": second} {
					if up := f.up.Load(); up != 0 {
						t.Fatalf("%s: %d setups, %d teardowns; want every one torn down", name, f.setups.Load(), f.teardowns.Load())
					}
				}
			}
		})
	}
}

// badRewind is a replayable source whose Rewind fails.
type badRewind struct{ flow.Rewinder }

func (badRewind) Rewind() error { return errors.New("audit: tape stuck") }

// A failed Rewind fails the run with the source's error, and the run
// tears down and releases everything, in both engines.
func TestAuditRewindFailure(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			src := numbers(t, mem, 0, 50, 10)
			defer src.Close()
			life := &lifeStep{}
			p := pipeline(t, []flow.Node{
				flow.Named("life", life),
				flow.Named("fit", &waitFit{}, flow.Barrier(barrier.Joiner)),
				flow.Named("after", &waitFit{}),
			})
			_, err := r.Fit(ctx, p, badRewind{src})
			if err == nil || !strings.Contains(err.Error(), "rewind") || !strings.Contains(err.Error(), "tape stuck") {
				t.Fatalf("got %v; want the rewind error", err)
			}
			if life.teardowns.Load() != 1 {
				t.Errorf("%d teardowns; want 1", life.teardowns.Load())
			}
		})
	}
}

// The batches in flight are bounded by the queues, whatever the length of
// the stream, when the reader is slower than the pipeline: the source is
// never more than a window ahead of the reader.
func TestAuditBoundedInFlight(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, replicas := range []int{1, 3} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			r := flow.Runner{Engine: flow.Streaming, Allocator: mem}
			opts := []flow.Option{flow.Replicas(replicas), flow.QueueCapacity(2)}
			p := pipeline(t, []flow.Node{
				flow.Named("a", passThrough{}, opts...),
				flow.Named("b", passThrough{}, append(opts, flow.Barrier(barrier.OutOfOrder))...),
				flow.Named("c", passThrough{}, opts...),
			})
			src := &gen{mem: mem, n: 1500, rows: 1}
			s, err := r.Transform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			// Three stages: each its queue (2), its replicas and hand-offs;
			// then the output queue (8) and the reorder buffers.
			bound := int64(3*(2+2*replicas+2) + 2*flow.DefaultQueueCapacity + 4)
			var read, most int64
			for b, err := range s.All(ctx) {
				if err != nil {
					t.Fatal(err)
				}
				b.Release()
				read++
				most = max(most, src.reads.Load()-read)
				if read%50 == 0 {
					time.Sleep(time.Millisecond) // a slow reader: the pipeline fills up
				}
			}
			if read != 1500 {
				t.Fatalf("read %d batches; want 1500", read)
			}
			if most > bound {
				t.Errorf("the source ran %d batches ahead of the reader; want at most %d", most, bound)
			}
		})
	}
}

// A node's settings round-trip through Options and NamedWith, an
// impossible option is Settings' error, and a pipeline's defaults read
// back.
func TestAuditNodeSettingsRoundTrip(t *testing.T) {
	s := passThrough{}
	for _, opts := range [][]flow.Option{
		nil,
		{flow.Replicas(0)},
		{flow.Replicas(4), flow.QueueCapacity(0)},
		{flow.QueueCapacity(3), flow.Barrier(barrier.Joiner), flow.FitEpochs(0)},
		{flow.Barrier(barrier.OutOfOrder), flow.FitEpochs(2), flow.Replicas(1), flow.Replicas(2)}, // the later wins
		{nil, flow.FitEpochs(1)}, // a nil option is skipped
	} {
		got, err := flow.Named("n", s, opts...).Settings()
		if err != nil {
			t.Fatalf("%d options: %v", len(opts), err)
		}
		again, err := flow.NamedWith("n", s, got).Settings()
		if err != nil || again != got {
			t.Errorf("settings %+v read back as %+v (%v)", got, again, err)
		}
	}
	want := flow.NodeSettings{Replicas: 2, QueueCapacity: 3, HasQueueCapacity: true, Barrier: barrier.OutOfOrder, HasBarrier: true, FitEpochs: 2, HasFitEpochs: true}
	if got, _ := flow.Named("n", s, flow.Replicas(2), flow.QueueCapacity(3), flow.Barrier(barrier.OutOfOrder), flow.FitEpochs(2)).Settings(); got != want {
		t.Errorf("settings %+v; want %+v", got, want)
	}
	for _, bad := range []flow.Option{flow.Replicas(-1), flow.QueueCapacity(-1), flow.FitEpochs(-3), flow.Barrier(barrier.Kind(77))} {
		if _, err := flow.Named("n", s, bad).Settings(); err == nil {
			t.Errorf("an impossible option: no error from Settings")
		}
	}
	p := pipeline(t, []flow.Node{flow.Named("n", s)}, flow.QueueCapacity(5))
	if d := p.Defaults(); !d.HasQueueCapacity || d.QueueCapacity != 5 || d.Replicas != 0 || d.HasBarrier || d.HasFitEpochs {
		t.Errorf("pipeline defaults %+v; want QueueCapacity 5 alone", d)
	}
}

// allocSeen checks that every call it gets carries the run's allocator.
type allocSeen struct {
	want memory.Allocator
	mu   sync.Mutex
	bad  []string
}

func (a *allocSeen) check(ctx context.Context, op string) {
	if flow.Allocator(ctx) != a.want {
		a.mu.Lock()
		a.bad = append(a.bad, op)
		a.mu.Unlock()
	}
}

func (a *allocSeen) Setup(ctx context.Context) error    { a.check(ctx, "setup"); return nil }
func (a *allocSeen) Teardown(ctx context.Context) error { a.check(ctx, "teardown"); return nil }
func (a *allocSeen) Fit(ctx context.Context, _ flow.Batch) error {
	a.check(ctx, "fit")
	return nil
}

func (a *allocSeen) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	a.check(ctx, "transform")
	in.Retain()
	return in, nil
}

func (a *allocSeen) Replica() flow.Step           { return &allocSeen{want: a.want} }
func (a *allocSeen) Merge(reps []flow.Step) error { return nil }

// Every call into a step, and the hooks, carry the Runner's allocator in
// ctx (flow.Allocator), in both engines, replicas and the passes of a
// Joiner included.
func TestAuditAllocatorInContext(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			r.SpillDir = t.TempDir()
			hooks := &allocSeen{want: mem}
			r.OnEpoch = func(ctx context.Context, _ flow.EpochEnd) error { hooks.check(ctx, "OnEpoch"); return nil }
			r.OnCut = func(ctx context.Context, _ flow.Cut) error { hooks.check(ctx, "OnCut"); return nil }
			a, b := &allocSeen{want: mem}, &allocSeen{want: mem}
			p := pipeline(t, []flow.Node{flow.Named("a", a, flow.Replicas(2), flow.Barrier(barrier.Joiner)), flow.Named("b", b)})
			s, err := r.FitTransform(ctx, p, &gen{mem: mem, n: 12, rows: 1, epoch: 4, cutEvery: 5})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Each(ctx, func(flow.Batch) error { return nil }); err != nil {
				t.Fatal(err)
			}
			for name, x := range map[string]*allocSeen{"a": a, "b": b, "hooks": hooks} {
				if len(x.bad) > 0 {
					t.Errorf("%s: without the run's allocator in %v", name, x.bad)
				}
			}
		})
	}
}

// A union branch frozen with FitEpochs(0), or past its FitEpochs, is not
// fitted: by the runners, and by a pipeline or a union used directly as a
// step (Node.Fits: a composite that runs its children asks it).
func TestAuditUnionBranchFitEpochs(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := flow.WithAllocator(deadline(t), mem)
	build := func() (*flow.Pipeline, *flow.Union, *waitFit, *waitFit) {
		frozen, once := &waitFit{}, &waitFit{}
		u, err := flow.NewUnion(flow.Named("frozen", frozen, flow.FitEpochs(0)), flow.Named("once", once, flow.FitEpochs(1)), flow.Named("plain", passThrough{}))
		if err != nil {
			t.Fatal(err)
		}
		return pipeline(t, []flow.Node{flow.Named("u", u), flow.Named("after", &waitFit{})}), u, frozen, once
	}
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			p, _, frozen, once := build()
			if _, err := r.Fit(ctx, p, &gen{mem: mem, n: 9, rows: 2, epoch: 3}); err != nil {
				t.Fatal(err)
			}
			if frozen.fits != 0 || once.fits != 3 {
				t.Errorf("fitted %d and %d batches; want 0 (frozen) and 3 (the first epoch)", frozen.fits, once.fits)
			}
		})
	}
	for _, direct := range []string{"pipeline", "union"} {
		t.Run("direct/"+direct, func(t *testing.T) {
			p, u, frozen, once := build()
			src := &gen{mem: mem, n: 9, rows: 2, epoch: 3}
			for {
				b, err := src.Next(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if direct == "pipeline" {
					err = p.Fit(ctx, b)
				} else {
					var out flow.Batch
					out, err = u.FitTransform(ctx, b)
					out.Release()
				}
				b.Release()
				if err != nil {
					t.Fatal(err)
				}
			}
			if frozen.fits != 0 || once.fits != 3 {
				t.Errorf("fitted %d and %d batches; want 0 (frozen) and 3 (the first epoch), as the runners do", frozen.fits, once.fits)
			}
		})
	}
}

// Reading a stream to its end, or to its error, ends the run before Close:
// the steps are torn down and free for the next run; Close then returns
// the run's error (nil at io.EOF) and changes nothing.
func TestAuditEndOfStreamEndsRun(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, failAt := range []int64{-1, 2} {
			t.Run(fmt.Sprintf("%v/failAt=%d", r.Engine, failAt), func(t *testing.T) {
				life := &lifeStep{}
				p := pipeline(t, []flow.Node{flow.Named("life", life), flow.Named("f", failing{scale{mem, 1}, failAt, false})})
				s, err := r.Transform(ctx, p, &gen{mem: mem, n: 5, rows: 1})
				if err != nil {
					t.Fatal(err)
				}
				var last error
				for {
					b, err := s.Next(ctx)
					if err != nil {
						last = err
						break
					}
					b.Release()
				}
				if life.teardowns.Load() != 1 {
					t.Errorf("%d teardowns at the end of the stream (%v), before Close; want 1", life.teardowns.Load(), last)
				}
				if _, err := s.Next(ctx); !errors.Is(err, last) {
					t.Errorf("Next after the end: got %v; want %v again", err, last)
				}
				s2, err := r.Transform(ctx, p, &gen{mem: mem, n: 1, rows: 1})
				if err != nil {
					t.Fatalf("a run after the end of the first, before its Close: %v", err)
				}
				s2.Close()
				err = s.Close()
				if failAt < 0 && (err != nil || !errors.Is(last, io.EOF)) {
					t.Errorf("end %v, Close %v; want io.EOF and nil", last, err)
				}
				if failAt >= 0 && (!errors.Is(err, errBoom) || !errors.Is(last, errBoom)) {
					t.Errorf("end %v, Close %v; want boom from both", last, err)
				}
				if life.teardowns.Load() != 2 {
					t.Errorf("%d teardowns after both Closes; want 2 (one a run)", life.teardowns.Load())
				}
			})
		}
	}
}

// The source's entry in Stats counts what it returned, in both engines
// alike: with FitEpochs ending a pass early, the batch that ends it and,
// for a spilled source, the rest read only to spill it.
func TestAuditSourceStatsCountEveryRead(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, spilled := range []bool{false, true} {
		var got []int64
		for _, r := range runners(mem) {
			r.SpillDir = t.TempDir()
			src, done := epochs(t, mem, 5) // 50 batches
			var in flow.Source = src
			if spilled {
				in = once{src}
			}
			p := pipeline(t, []flow.Node{
				flow.Named("first", &waitFit{}, flow.FitEpochs(2), flow.Barrier(barrier.Joiner)),
				flow.Named("after", &waitFit{}),
			})
			st, err := r.Fit(ctx, p, in)
			done()
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Passes) != 2 {
				t.Fatalf("%v: %d passes; want 2", r.Engine, len(st.Passes))
			}
			first := st.Passes[0].Stages[0].BatchesOut
			want := int64(21) // two epochs, and the batch that starts the third
			if spilled {
				want = 50
			}
			if first != want || int(first) != src.reads-50 && !spilled {
				t.Errorf("%v, spilled=%v: the first pass's source sent out %d batches (%d read); want %d", r.Engine, spilled, first, src.reads-50, want)
			}
			got = append(got, first, st.Stages[0].BatchesOut)
		}
		if got[0] != got[2] || got[1] != got[3] {
			t.Errorf("spilled=%v: the engines count the source differently: sequential %v, streaming %v", spilled, got[:2], got[2:])
		}
	}
}

// The two engines count alike: every stage's batches and rows in and out,
// and its passes, in the run and in each pass, for pipelines with unions,
// replicas, FitEpochs (a fit-only stage past its epochs skips), Joiners
// and steps after the last fittable one.
func TestAuditEnginesCountAlike(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	type row struct {
		name                                   string
		passes                                 int
		batchesIn, rowsIn, batchesOut, rowsOut int64
	}
	rows := func(stages []flow.StageStats) []row {
		var out []row
		for _, s := range stages {
			out = append(out, row{s.Name(), s.Passes, s.BatchesIn, s.RowsIn, s.BatchesOut, s.RowsOut})
		}
		return out
	}
	shapes := map[string]func() *flow.Pipeline{
		"union": func() *flow.Pipeline {
			u, err := flow.NewUnion(flow.Named("l", &waitFit{}, flow.Replicas(2), flow.FitEpochs(1)), flow.Named("r", pipeline(t, []flow.Node{flow.Named("keep", passThrough{}), flow.Named("fit", &waitFit{})})))
			if err != nil {
				t.Fatal(err)
			}
			return pipeline(t, []flow.Node{flow.Named("a", passThrough{}, flow.Replicas(2)), flow.Named("u", u), flow.Named("drop", dropRowPlus{}), flow.Named("fit", &waitFit{}, flow.FitEpochs(2)), flow.Named("tail", passThrough{})})
		},
		"joiner": func() *flow.Pipeline {
			return pipeline(t, []flow.Node{
				flow.Named("a", &waitFit{}, flow.FitEpochs(1), flow.Barrier(barrier.Joiner)),
				flow.Named("b", dropRowPlus{}, flow.Replicas(3), flow.Barrier(barrier.OutOfOrder)),
				flow.Named("c", &waitFit{}, flow.Barrier(barrier.Joiner)),
				flow.Named("d", &waitFit{}, flow.FitEpochs(1)),
				flow.Named("tail", passThrough{}),
			})
		},
	}
	for name, build := range shapes {
		for _, k := range []auditKind{kindFit, kindTransform, kindJoiner} {
			t.Run(fmt.Sprintf("%s/%v", name, k), func(t *testing.T) {
				var got [][][]row
				for _, r := range runners(mem) {
					r.SpillDir = t.TempDir()
					p := build()
					src := &gen{mem: mem, n: 12, rows: 3, epoch: 4}
					var st flow.Stats
					var err error
					switch k {
					case kindFit:
						st, err = r.Fit(ctx, p, src)
					default:
						var s *flow.Stream
						if k == kindTransform {
							s, err = r.Transform(ctx, p, src)
						} else {
							s, err = r.FitTransform(ctx, p, src)
						}
						if err == nil {
							err = s.Each(ctx, func(flow.Batch) error { return nil })
							st = s.Stats()
						}
					}
					if err != nil {
						t.Fatal(err)
					}
					all := [][]row{rows(st.Stages)}
					for _, ps := range st.Passes {
						all = append(all, rows(ps.Stages))
					}
					got = append(got, all)
				}
				if fmt.Sprint(got[0]) != fmt.Sprint(got[1]) {
					t.Errorf("the engines count differently:\nsequential %+v\nstreaming  %+v", got[0], got[1])
				}
			})
		}
	}
}

// dropRowPlus drops the last row of X and keeps the rest (Y included).
type dropRowPlus struct{}

func (dropRowPlus) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	return flow.Batch{X: in.X.NewSlice(0, in.X.NumRows()-1)}, nil
}

// ErrStop from OnEpoch (or OnCut) in the first pass of a Joiner fit ends
// that pass only: the later pass still runs over the whole stream, read
// again or from the spill, in both engines.
func TestAuditErrStopFirstPassOnly(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, hook := range []string{"OnEpoch", "OnCut"} {
			for _, spilled := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/%s/spilled=%v", r.Engine, hook, spilled), func(t *testing.T) {
					r.SpillDir = t.TempDir()
					var passes []int
					switch hook {
					case "OnEpoch":
						r.OnEpoch = func(_ context.Context, e flow.EpochEnd) error {
							passes = append(passes, e.Pass)
							if e.Pass == 0 && e.Epoch == 1 {
								return flow.ErrStop
							}
							return nil
						}
					case "OnCut":
						r.OnCut = func(_ context.Context, c flow.Cut) error {
							passes = append(passes, c.Pass)
							if c.Pass == 0 && c.Batches == 20 {
								return flow.ErrStop
							}
							return nil
						}
					}
					first, after := &waitFit{}, &waitFit{}
					p := pipeline(t, []flow.Node{
						flow.Named("first", first, flow.Replicas(2), flow.Barrier(barrier.Joiner)),
						flow.Named("after", after, flow.Replicas(2)),
					})
					var src flow.Source
					if hook == "OnCut" { // asks for a cut before every tenth batch
						g := &gen{mem: mem, n: 50, rows: 1, epoch: 10, cutEvery: 10}
						src = g
						if !spilled {
							t.Skip("the cutting source cannot rewind")
						}
					} else {
						rw, done := epochs(t, mem, 5)
						defer done()
						src = rw
						if spilled {
							src = once{rw}
						}
					}
					if _, err := r.Fit(ctx, p, src); err != nil {
						t.Fatal(err)
					}
					if first.fits != 20 || after.fits != 50 {
						t.Errorf("fitted %d and %d batches; want 20 (two epochs, then ErrStop) and 50 (the whole stream)", first.fits, after.fits)
					}
					if len(passes) == 0 || passes[len(passes)-1] != 1 && hook == "OnEpoch" {
						t.Errorf("the hook saw passes %v; want the second pass too", passes)
					}
				})
			}
		}
	}
}

// A pass that FitEpochs ends early still reads a source that it must
// spill to its end; a cancellation then stops that read too, with the
// cause, when the source ignores ctx, in both engines.
func TestAuditCancelDuringSpillDrain(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			cause := errors.New("audit: no more spilling")
			ctx, cancel := context.WithCancelCause(deadline(t))
			defer cancel(nil)
			r.SpillDir = t.TempDir()
			src := &gen{mem: mem, n: -1, rows: 1, epoch: 3, cutEvery: 4, mode: ctxIgnoreMode, stop: make(chan struct{})}
			src.before = func(i int64) {
				if i == 20 {
					cancel(cause) // well into the drain: the pass stopped at batch 3
				}
			}
			p := pipeline(t, []flow.Node{
				flow.Named("first", &waitFit{}, flow.FitEpochs(1), flow.Barrier(barrier.Joiner)),
				flow.Named("after", &waitFit{}),
			})
			var err error
			ended := make(chan struct{})
			go func() { defer close(ended); _, err = r.Fit(ctx, p, src) }()
			select {
			case <-ended:
			case <-time.After(5 * time.Second):
				close(src.stop)
				<-ended
				t.Fatalf("the spill drain went on for 5 s after the cancellation; then %v", err)
			}
			if !errors.Is(err, cause) {
				t.Errorf("got %v; want the cause", err)
			}
			if left, _ := os.ReadDir(r.SpillDir); len(left) != 0 {
				t.Errorf("spill left %d files behind", len(left))
			}
		})
	}
}

// Rendezvous queues (QueueCapacity(0)) everywhere, with replicas,
// out-of-order barriers, a union, Joiners and hooks at every epoch and
// cut: every kind of run completes, in order, in both engines.
func TestAuditRendezvousQueues(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	for _, r := range runners(mem) {
		for _, k := range auditKinds {
			for _, hooks := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/%v/hooks=%v", r.Engine, k, hooks), func(t *testing.T) {
					ctx := deadline(t)
					r.SpillDir = t.TempDir()
					if hooks {
						r.OnEpoch = func(context.Context, flow.EpochEnd) error { return nil }
						r.OnCut = func(context.Context, flow.Cut) error { return nil }
					}
					inner := auditPipeline(t, k, ctxCauseMode, 20*time.Microsecond)
					p := pipeline(t, []flow.Node{flow.Named("in", inner)}, flow.QueueCapacity(0))
					src := &gen{mem: mem, n: 60, rows: 2, epoch: 7, cutEvery: 5}
					if k == kindFit {
						if _, err := r.Fit(ctx, p, src); err != nil {
							t.Fatal(err)
						}
						return
					}
					var s *flow.Stream
					var err error
					if k == kindTransform {
						s, err = r.Transform(ctx, p, src)
					} else {
						s, err = r.FitTransform(ctx, p, src)
					}
					if err != nil {
						t.Fatal(err)
					}
					var seqs []int64
					if err := s.Each(ctx, func(b flow.Batch) error { seqs = append(seqs, b.Seq); return nil }); err != nil {
						t.Fatal(err)
					}
					if len(seqs) != 60 {
						t.Fatalf("%d batches; want 60", len(seqs))
					}
					for i, q := range seqs {
						if q != int64(i) {
							t.Fatalf("batch %d has Seq %d; want the source's order", i, q)
						}
					}
				})
			}
		}
	}
}

// Batches of no rows pass through every kind of run (unions, replicas,
// the spill of a Joiner) like any other, in both engines.
func TestAuditEmptyBatches(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	for _, r := range runners(mem) {
		for _, k := range auditKinds {
			t.Run(fmt.Sprintf("%v/%v", r.Engine, k), func(t *testing.T) {
				ctx := deadline(t)
				r.SpillDir = t.TempDir()
				p := auditPipeline(t, k, ctxCauseMode, 0)
				if err := k.run(ctx, r, p, &gen{mem: mem, n: 10, rows: 0}); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
