package flow_test

// The second pass of the adversarial audit of flow's doc comments:
// combinations of composites, options and hooks that the first pass
// (audit_test.go) did not put together.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
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

// checkedMem returns a checked allocator for a test that must leave
// nothing behind: when the test and its subtests end (after the deferred
// calls, and after the cancellation of a deadline context made later),
// goleak finds no goroutine left and the allocator holds no byte.
func checkedMem(t *testing.T) *memory.CheckedAllocator {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	t.Cleanup(func() { goleak.VerifyNone(t) })
	return mem
}

// FitEpochs on a composite's node (a sub-pipeline, a feature union, a
// metastep) limits the fit of everything below it, as on a leaf: both
// engines honour it (FitEpochs' doc), as a pipeline used directly as a
// step does (Node.Fits).
func TestAuditCompositeFitEpochs(t *testing.T) {
	mem := checkedMem(t)
	ctx := flow.WithAllocator(deadline(t), mem)
	kinds := []string{"pipeline", "union", "metastep", "replicated-pipeline"}
	build := func(kind string, limit int) (*flow.Pipeline, *waitFit) {
		leaf := &waitFit{}
		var c flow.Step
		var opts []flow.Option
		switch kind {
		case "pipeline":
			c = pipeline(t, []flow.Node{flow.Named("keep", passThrough{}), flow.Named("leaf", leaf)})
		case "replicated-pipeline":
			c = pipeline(t, []flow.Node{flow.Named("keep", passThrough{}), flow.Named("leaf", leaf)})
			opts = append(opts, flow.Replicas(2))
		case "union":
			u, err := flow.NewUnion(flow.Named("leaf", leaf), flow.Named("plain", passThrough{}))
			if err != nil {
				t.Fatal(err)
			}
			c = u
		case "metastep":
			c = newTrainOnly(flow.Named("leaf", leaf))
		}
		opts = append(opts, flow.FitEpochs(limit))
		return pipeline(t, []flow.Node{flow.Named("c", c, opts...), flow.Named("after", &waitFit{})}), leaf
	}
	for _, limit := range []int{0, 1} {
		want := limit * 3
		for _, kind := range kinds {
			for _, r := range runners(mem) {
				t.Run(fmt.Sprintf("%s/FitEpochs(%d)/%v", kind, limit, r.Engine), func(t *testing.T) {
					p, leaf := build(kind, limit)
					if _, err := r.Fit(ctx, p, &gen{mem: mem, n: 9, rows: 2, epoch: 3}); err != nil {
						t.Fatal(err)
					}
					if leaf.fits != want {
						t.Errorf("the leaf fitted %d batches; want %d (FitEpochs(%d) on its composite)", leaf.fits, want, limit)
					}
				})
			}
			t.Run(fmt.Sprintf("%s/FitEpochs(%d)/direct", kind, limit), func(t *testing.T) {
				p, leaf := build(kind, limit)
				src := &gen{mem: mem, n: 9, rows: 2, epoch: 3}
				for {
					b, err := src.Next(ctx)
					if errors.Is(err, io.EOF) {
						break
					}
					err = p.Fit(ctx, b)
					b.Release()
					if err != nil {
						t.Fatal(err)
					}
				}
				if leaf.fits != want {
					t.Errorf("the leaf fitted %d batches; want %d (FitEpochs(%d) on its composite)", leaf.fits, want, limit)
				}
			})
		}
	}
}

// At every cut and epoch end, the steps hold exactly what the batches read
// before it taught them, where the replicas sit inside a feature union's
// branch, in a replicated sub-pipeline that holds a union, or in a
// replicated metastep that wraps a union wrapping a pipeline with an
// out-of-order barrier (replicas below the metastep are refused, see
// Replicas): every replica merged, none counted twice, in both
// engines; the final state counts every batch once.
func TestAuditCutsWithReplicasInUnions(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	shapes := map[string]func(m *mean) *flow.Pipeline{
		"branch": func(m *mean) *flow.Pipeline {
			u, err := flow.NewUnion(flow.Named("m", m, flow.Replicas(3)), flow.Named("id", passThrough{}))
			if err != nil {
				t.Fatal(err)
			}
			return pipeline(t, []flow.Node{flow.Named("pre", passThrough{}, flow.Replicas(2), flow.Barrier(barrier.OutOfOrder)), flow.Named("u", u)})
		},
		"replicated-sub": func(m *mean) *flow.Pipeline {
			u, err := flow.NewUnion(flow.Named("m", m), flow.Named("id", passThrough{}))
			if err != nil {
				t.Fatal(err)
			}
			sub := pipeline(t, []flow.Node{flow.Named("u", u), flow.Named("keep", passThrough{})})
			return pipeline(t, []flow.Node{flow.Named("sub", sub, flow.Replicas(3)), flow.Named("tail", passThrough{})})
		},
		"metastep": func(m *mean) *flow.Pipeline {
			inner := pipeline(t, []flow.Node{flow.Named("m", m, flow.Barrier(barrier.OutOfOrder))})
			u, err := flow.NewUnion(flow.Named("in", inner), flow.Named("id", passThrough{}))
			if err != nil {
				t.Fatal(err)
			}
			return pipeline(t, []flow.Node{flow.Named("train", newTrainOnly(flow.Named("u", u)), flow.Replicas(2))})
		},
	}
	for name, build := range shapes {
		for _, r := range runners(mem) {
			t.Run(fmt.Sprintf("%s/%v", name, r.Engine), func(t *testing.T) {
				m := &mean{mem: mem}
				p := build(m)
				var bad []string
				check := func(what string, read int64) {
					if got := m.state().n; got != float64(read) {
						bad = append(bad, fmt.Sprintf("%s after %d batches: the step holds %v rows", what, read, got))
					}
				}
				var epochRead int64
				r.OnCut = func(_ context.Context, c flow.Cut) error { check("cut", c.Batches); return nil }
				r.OnEpoch = func(_ context.Context, e flow.EpochEnd) error {
					epochRead += e.Batches
					check(fmt.Sprintf("end of epoch %d", e.Epoch), epochRead)
					return nil
				}
				src := &gen{mem: mem, n: 40, rows: 1, epoch: 7, cutEvery: 3}
				if _, err := r.Fit(ctx, p, src); err != nil {
					t.Fatal(err)
				}
				if got := m.state(); got.n != 40 || got.sum != 780 {
					t.Errorf("the fit learned %+v; want 40 rows summing to 780", got)
				}
				for _, b := range bad {
					t.Error(b)
				}
			})
		}
	}
}

// A zero Pipeline or Union (no steps, no branches), which NewPipeline and
// NewUnion would refuse, is refused wherever it sits in a tree (NewPipeline
// returns an error for an empty pipeline), and by the runners as the
// pipeline to run; used directly as a step, a zero Union is an error, not
// a panic.
func TestAuditZeroComposites(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	noPanic := func(t *testing.T, what string, fn func() error) error {
		t.Helper()
		var err error
		func() {
			defer func() {
				if v := recover(); v != nil {
					err = fmt.Errorf("panic: %v", v)
					t.Errorf("%s panicked: %v", what, v)
				}
			}()
			err = fn()
		}()
		return err
	}
	for i, nodes := range [][]flow.Node{
		{flow.Named("sub", &flow.Pipeline{})},
		{flow.Named("a", passThrough{}), flow.Named("sub", &flow.Pipeline{})},
		{flow.Named("a", passThrough{}), flow.Named("u", new(flow.Union))},
		{flow.Named("train", newTrainOnly(flow.Named("sub", &flow.Pipeline{})))},
	} {
		err := noPanic(t, fmt.Sprint("NewPipeline ", i), func() error { _, err := flow.NewPipeline(nodes); return err })
		if err == nil || !strings.Contains(err.Error(), "no ") || !strings.Contains(err.Error(), `"`+nodes[len(nodes)-1].Name) {
			t.Errorf("tree %d: got %v; want an error naming the empty composite", i, err)
		}
	}
	if _, err := flow.NewUnion(flow.Named("b", &flow.Pipeline{})); err == nil {
		t.Error("NewUnion with a zero pipeline as a branch: no error")
	}
	for _, r := range runners(mem) {
		for _, k := range auditKinds {
			err := noPanic(t, fmt.Sprintf("%v %v", r.Engine, k), func() error {
				return k.run(ctx, r, &flow.Pipeline{}, &gen{mem: mem, n: 3, rows: 1})
			})
			if err == nil || !strings.Contains(err.Error(), "no steps") {
				t.Errorf("%v %v of a zero pipeline: got %v; want an error", r.Engine, k, err)
			}
		}
	}
	b := flow.Batch{X: makeRecord(mem, 0, 2)}
	defer b.Release()
	for _, op := range []string{"Transform", "FitTransform"} {
		err := noPanic(t, "zero Union "+op, func() error {
			var out flow.Batch
			var err error
			if op == "Transform" {
				out, err = new(flow.Union).Transform(ctx, b)
			} else {
				out, err = new(flow.Union).FitTransform(ctx, b)
			}
			out.Release()
			return err
		})
		if err == nil {
			t.Errorf("zero Union's %s: no error", op)
		}
	}
}

// seen fits nothing of its own: each Fit records how many rows m had
// learned by then.
type seen struct {
	m  *mean
	at []float64
}

func (s *seen) Fit(context.Context, flow.Batch) error { s.at = append(s.at, s.m.state().n); return nil }

func (s *seen) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

// A Joiner on a sub-pipeline's node holds whatever barrier the
// sub-pipeline's last step sets for itself: the steps after the
// sub-pipeline are fitted only once the steps in it have fitted on the
// whole stream, in both engines, as a pipeline used directly finds (its Fit
// refuses: a Joiner takes a Runner).
func TestAuditJoinerOnSubPipelineNode(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	for _, inner := range []barrier.Kind{barrier.InOrder, barrier.OutOfOrder} {
		for _, r := range runners(mem) {
			t.Run(fmt.Sprintf("%v/%v", inner, r.Engine), func(t *testing.T) {
				r.SpillDir = t.TempDir()
				m := &mean{mem: mem}
				sub := pipeline(t, []flow.Node{flow.Named("pre", passThrough{}), flow.Named("m", m, flow.Barrier(inner))})
				after := &seen{m: m}
				p := pipeline(t, []flow.Node{flow.Named("sub", sub, flow.Barrier(barrier.Joiner)), flow.Named("after", after)})
				st, err := r.Fit(ctx, p, &gen{mem: mem, n: 6, rows: 2})
				if err != nil {
					t.Fatal(err)
				}
				if len(st.Passes) != 2 || len(after.at) != 6 || slices.ContainsFunc(after.at, func(n float64) bool { return n != 12 }) {
					t.Errorf("%d passes; the step after the Joiner saw the step before it at %v rows; want 2 passes and 12 rows at each of its 6 fits", len(st.Passes), after.at)
				}
			})
		}
	}
}

// Next's ctx bounds its wait in the streaming engine also once the run is
// cancelled and waits for a step that ignores ctx: Next returns ctx's
// cause when ctx is done ("the streaming engine stops waiting as soon as
// ctx is done"), and the run's error once the step has returned.
func TestAuditNextWaitAfterCancel(t *testing.T) {
	mem := checkedMem(t)
	r := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	cause := errors.New("audit: shutting down")
	runCtx, cancel := context.WithCancelCause(deadline(t))
	defer cancel(nil)
	h := deafHold{once: new(sync.Once), entered: make(chan struct{}), release: make(chan struct{})}
	s, err := r.Transform(runCtx, pipeline(t, []flow.Node{flow.Named("deaf", h)}), &gen{mem: mem, n: -1, rows: 1})
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			close(h.release)
		}
		s.Close()
	}()
	<-h.entered
	cancel(cause)
	impatient := errors.New("audit: the caller stopped waiting")
	wctx, wcancel := context.WithCancelCause(deadline(t))
	time.AfterFunc(20*time.Millisecond, func() { wcancel(impatient) })
	within(t, "Next with a ctx that ends, while the cancelled run waits for a step", 5*time.Second, func() {
		if _, err = s.Next(wctx); !errors.Is(err, impatient) {
			t.Errorf("got %v; want the cause of Next's ctx", err)
		}
	})
	close(h.release)
	released = true
	if _, err := s.Next(deadline(t)); !errors.Is(err, cause) {
		t.Errorf("after the step returned: got %v; want the run's cause", err)
	}
}

// A Joiner on a feature union's node: the union's branches (one of them
// replicated) are fitted on the whole stream, spilled or read again, before
// the step after the union sees a batch; the fit-transform's output is
// what the fully fitted steps make of it, in both engines.
func TestAuditJoinerAfterUnion(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	for _, spilled := range []bool{false, true} {
		for _, r := range runners(mem) {
			t.Run(fmt.Sprintf("%v/spilled=%v", r.Engine, spilled), func(t *testing.T) {
				r.SpillDir = t.TempDir()
				m, c := &mean{mem: mem}, &mean{mem: mem}
				u, err := flow.NewUnion(flow.Named("m", m, flow.Replicas(3)), flow.Named("c", pipeline(t, []flow.Node{flow.Named("c", c)})), flow.Named("id", passThrough{}))
				if err != nil {
					t.Fatal(err)
				}
				after := &seen{m: m}
				p := pipeline(t, []flow.Node{flow.Named("u", u, flow.Barrier(barrier.Joiner)), flow.Named("after", after)})
				rw := numbers(t, mem, 0, 30, 3)
				defer rw.Close()
				var src flow.Source = rw
				if spilled {
					src = once{rw}
				}
				s, err := r.FitTransform(ctx, p, src)
				if err != nil {
					t.Fatal(err)
				}
				out := collect(ctx, t, s, "m__x", "c__x", "id__x")
				if m.state().n != 30 || c.state().n != 30 {
					t.Errorf("the branches fitted on %v and %v rows; want 30 each", m.state().n, c.state().n)
				}
				if len(after.at) != 10 || slices.ContainsFunc(after.at, func(n float64) bool { return n != 30 }) {
					t.Errorf("the step after the union saw it at %v rows; want 30 at each of its 10 fits", after.at)
				}
				for i, v := range out.cols["m__x"] {
					if v != float64(i)-14.5 || out.cols["c__x"][i] != v || out.cols["id__x"][i] != float64(i) {
						t.Fatalf("row %d: m %v, c %v, id %v; want %v, %v, %v", i, v, out.cols["c__x"][i], out.cols["id__x"][i], float64(i)-14.5, float64(i)-14.5, i)
					}
				}
				if left, _ := os.ReadDir(r.SpillDir); len(left) != 0 {
					t.Errorf("spill left %d files behind", len(left))
				}
			})
		}
	}
}

// A replicated stage past its FitEpochs transforms as a stage that does
// not fit: with its step, which holds what the replicas learned in the
// epochs that it fitted, in a fit-transform's output, with or without an
// OnEpoch hook, as the sequential engine does; and so does a step with
// FitEpochs inside a replicated sub-pipeline.
func TestAuditReplicasPastFitEpochs(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	shapes := map[string]func(m *mean) flow.Node{
		"stage": func(m *mean) flow.Node { return flow.Named("m", m, flow.Replicas(3), flow.FitEpochs(1)) },
		"sub-pipeline": func(m *mean) flow.Node {
			return flow.Named("sub", pipeline(t, []flow.Node{flow.Named("m", m, flow.FitEpochs(1)), flow.Named("fit", &waitFit{})}), flow.Replicas(3))
		},
	}
	for name, node := range shapes {
		for _, hook := range []bool{false, true} {
			for _, r := range runners(mem) {
				t.Run(fmt.Sprintf("%s/%v/hook=%v", name, r.Engine, hook), func(t *testing.T) {
					if hook {
						r.OnEpoch = func(context.Context, flow.EpochEnd) error { return nil }
					}
					m := &mean{mem: mem}
					p := pipeline(t, []flow.Node{node(m), flow.Named("after", &waitFit{})})
					src, done := epochs(t, mem, 3) // x = 0 … 99 three times, in batches of 10
					defer done()
					s, err := r.FitTransform(ctx, p, src)
					if err != nil {
						t.Fatal(err)
					}
					out := collect(ctx, t, s, "x")
					if m.state().n != 100 {
						t.Errorf("the step fitted on %v rows; want 100 (the first epoch)", m.state().n)
					}
					for i, v := range out.cols["x"][100:] {
						if want := float64(i%100) - 49.5; v != want {
							t.Fatalf("row %d (past the first epoch): %v; want %v, centred by the mean of the first epoch", 100+i, v, want)
						}
					}
				})
			}
		}
	}
}

// moody is a choice whose tree methods (Children, Active, FitsChild,
// FitPathDiffers) panic from their panicAt-th call on (0: never), counting
// their calls: a composite of another package with a bug.
type moody struct {
	choose
	calls, panicAt atomic.Int64
}

var _ flow.FitPather = (*moody)(nil)

func (m *moody) call() {
	if n := m.calls.Add(1); m.panicAt.Load() > 0 && n >= m.panicAt.Load() {
		panic(fmt.Sprintf("moody: call %d", n))
	}
}

func (m *moody) Children() []flow.Node      { m.call(); return m.choose.Children() }
func (m *moody) Active(name string) bool    { m.call(); return m.choose.Active(name) }
func (m *moody) FitPathDiffers() bool       { m.call(); return false }
func (m *moody) FitsChild(name string) bool { m.call(); return true }

// A panic in a composite's tree methods, wherever a run calls them (its
// start, the streaming engine's replicas, merges and cuts), is the run's
// error, a *PanicError: the program goes on, nothing leaks, in both engines.
func TestAuditPanicInTreeMethods(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	build := func() (*flow.Pipeline, *moody) {
		m := &moody{choose: choose{branches: []flow.Node{flow.Named("a", &mean{mem: mem}), flow.Named("b", &tally{})}, pick: "a"}}
		return pipeline(t, []flow.Node{flow.Named("pre", passThrough{}), flow.Named("m", m, flow.Replicas(2))}), m
	}
	for _, r := range runners(mem) {
		for _, k := range []auditKind{kindFit, kindTransform} {
			t.Run(fmt.Sprintf("%v/%v", r.Engine, k), func(t *testing.T) {
				r.OnEpoch = func(context.Context, flow.EpochEnd) error { return nil } // a cut, and new replicas, at every epoch
				run := func(at int64) (int64, error) {
					p, m := build()
					base := m.calls.Load() // NewPipeline's
					if at > 0 {
						m.panicAt.Store(base + at)
					}
					var err error
					func() {
						defer func() {
							if v := recover(); v != nil {
								err = fmt.Errorf("the run panicked: %v", v)
							}
						}()
						err = k.run(ctx, r, p, &gen{mem: mem, n: 6, rows: 2, epoch: 2})
					}()
					return m.calls.Load() - base, err
				}
				calls, err := run(0)
				if err != nil {
					t.Fatal(err)
				}
				for at := int64(1); at <= calls; at++ {
					_, err := run(at)
					var pe *flow.PanicError
					if !errors.As(err, &pe) || !strings.Contains(err.Error(), "moody") {
						t.Errorf("a panic at call %d of %d: got %v; want the run's error, a *PanicError", at, calls, err)
					}
				}
			})
		}
	}
}

// A run whose ctx the caller cancels with a cause, then closed early: Close
// returns an error wrapping the cause in both engines, whether or not a
// Next has seen the cancellation (the streaming engine's goroutines see it
// at once); closed before the cancellation, or read to its end, it
// returns nil.
func TestAuditCloseAfterCallerCancel(t *testing.T) {
	mem := checkedMem(t)
	for _, r := range runners(mem) {
		for _, when := range []string{"cancel, Close", "cancel, Next, Close", "Close, cancel", "end, cancel, Close"} {
			t.Run(fmt.Sprintf("%v/%s", r.Engine, when), func(t *testing.T) {
				cause := errors.New("audit: the operator cancelled")
				ctx, cancel := context.WithCancelCause(deadline(t))
				defer cancel(nil)
				n := int64(-1)
				if strings.HasPrefix(when, "end") {
					n = 3
				}
				life := &lifeStep{waiter: waiter{ctxCauseMode, 0}}
				s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("life", life, flow.Replicas(2))}), &gen{mem: mem, n: n, rows: 1})
				if err != nil {
					t.Fatal(err)
				}
				b, err := s.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				b.Release()
				var cerr error
				switch when {
				case "cancel, Close":
					cancel(cause)
					cerr = s.Close()
				case "cancel, Next, Close":
					cancel(cause)
					for err == nil {
						b, err = s.Next(context.WithoutCancel(ctx))
						b.Release()
					}
					if !errors.Is(err, cause) {
						t.Errorf("Next after the cancellation: %v; want the cause", err)
					}
					cerr = s.Close()
				case "Close, cancel":
					cerr = s.Close()
					cancel(cause)
				case "end, cancel, Close":
					for err == nil {
						b, err = s.Next(ctx)
						b.Release()
					}
					if !errors.Is(err, io.EOF) {
						t.Fatalf("reading to the end: %v", err)
					}
					cancel(cause)
					cerr = s.Close()
				}
				if wantCause := strings.HasPrefix(when, "cancel"); wantCause != errors.Is(cerr, cause) || (!wantCause && cerr != nil) {
					t.Errorf("Close returned %v; want the cause: %v", cerr, wantCause)
				}
				if life.setups.Load() != 1 || life.teardowns.Load() != 1 {
					t.Errorf("%d setups, %d teardowns; want 1 and 1", life.setups.Load(), life.teardowns.Load())
				}
			})
		}
	}
}

// col0Mean learns the count, sum and sum of squares of the first column of
// X (a float64 column, whatever its name: a union's output renames it)
// and subtracts the mean from it. It is a Merger; its state is exact for
// small integers in any order.
type col0Mean struct {
	mem memory.Allocator
	mu  sync.Mutex
	st  state
}

func (c *col0Mean) values(in flow.Batch) []float64 {
	return in.X.Column(0).(*array.Float64).Float64Values()
}

func (c *col0Mean) Fit(_ context.Context, in flow.Batch) error {
	var s state
	for _, v := range c.values(in) {
		s = s.add(state{1, v, v * v})
	}
	c.mu.Lock()
	c.st = c.st.add(s)
	c.mu.Unlock()
	return nil
}

func (c *col0Mean) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	c.mu.Lock()
	mu := c.st.mean()
	c.mu.Unlock()
	bld := array.NewFloat64Builder(c.mem)
	defer bld.Release()
	for _, v := range c.values(in) {
		bld.Append(v - mu)
	}
	col := bld.NewArray()
	defer col.Release()
	cols := append([]arrow.Array{col}, in.X.Columns()[1:]...)
	return in.WithX(array.NewRecordBatch(in.X.Schema(), cols, in.X.NumRows())), nil
}

func (c *col0Mean) Replica() flow.Step { return &col0Mean{mem: c.mem} }

func (c *col0Mean) Merge(reps []flow.Step) error {
	for _, r := range reps {
		c.st = c.st.add(r.(*col0Mean).st)
	}
	return nil
}

// randomTree builds a random pipeline of sub-pipelines, unions,
// metasteps, learning and stateless steps, with replicas, out-of-order
// barriers, FitEpochs and Joiners where NewPipeline allows them; the same
// seed builds the same tree. A replica fits on its share of the stream and transforms with
// what it learned from it, and a learner after an out-of-order barrier
// fits in another order, so that a learner after either learns from other
// values than in the sequential engine: where replicas may hold a learner
// and barriers may be out of order (one of two seeds), the tree has one
// learner only.
func randomTree(t *testing.T, mem memory.Allocator, seed uint64) *flow.Pipeline {
	rng := rand.New(rand.NewPCG(seed, 7))
	oneLearner := seed%2 == 1
	learners := 0
	// below is true under a step that runs its children itself (a
	// metastep, a replicated sub-pipeline), where NewPipeline refuses
	// Replicas; the same rng calls are made either way.
	var node func(name string, depth int, top, inUnion, below bool) (flow.Node, bool)
	nodes := func(depth int, top, below bool) ([]flow.Node, bool) {
		var out []flow.Node
		learns := false
		for i := range 1 + rng.IntN(3) {
			n, l := node(fmt.Sprint("s", i), depth, top, false, below)
			out, learns = append(out, n), learns || l
		}
		return out, learns
	}
	node = func(name string, depth int, top, inUnion, below bool) (flow.Node, bool) {
		var opts []flow.Option
		if rng.IntN(4) == 0 {
			opts = append(opts, flow.FitEpochs(rng.IntN(3)))
		}
		replicas := func(learns bool) {
			if rng.IntN(2) == 0 && (oneLearner || !learns) {
				if n := 1 + rng.IntN(3); !below {
					opts = append(opts, flow.Replicas(n))
				}
			}
		}
		if !inUnion {
			switch rng.IntN(6) {
			case 0:
				if oneLearner {
					opts = append(opts, flow.Barrier(barrier.OutOfOrder))
				}
			case 1:
				if top {
					opts = append(opts, flow.Barrier(barrier.Joiner))
				}
			}
		}
		k := rng.IntN(5)
		if depth >= 3 {
			k %= 2
		}
		if k == 1 && oneLearner && learners > 0 {
			k = 0
		}
		switch k {
		case 0:
			replicas(false)
			return flow.Named(name, passThrough{}, opts...), false
		case 1:
			learners++
			replicas(true)
			return flow.Named(name, &col0Mean{mem: mem}, opts...), true
		case 2:
			rep := rng.IntN(3) == 0
			children, learns := nodes(depth+1, top && !rep, below || rep)
			if rep && (oneLearner || !learns) {
				if n := 2 + rng.IntN(2); !below {
					opts = append(opts, flow.Replicas(n))
				}
			}
			p, err := flow.NewPipeline(children)
			if err != nil {
				t.Fatal(err)
			}
			return flow.Named(name, p, opts...), learns
		}
		if k == 4 {
			child, learns := node("c", depth+1, false, true, true) // no barrier, no replicas: the wrapper runs it batch by batch
			replicas(learns)
			return flow.Named(name, &wrap{child: child}, opts...), learns
		}
		var branches []flow.Node
		learns := false
		for i := range 2 + rng.IntN(2) {
			b, l := node(fmt.Sprint("b", i), depth+1, false, true, below)
			branches, learns = append(branches, b), learns || l
		}
		u, err := flow.NewUnion(branches...)
		if err != nil {
			t.Fatal(err)
		}
		return flow.Named(name, u, opts...), learns
	}
	children, _ := nodes(0, true, false)
	p, err := flow.NewPipeline(children)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// wrap is a metastep that runs its child as a composite of another
// package should: it fits the child where the child's node fits
// (Node.Fits), else transforms, and names the child in its errors.
type wrap struct{ child flow.Node }

func (w *wrap) Children() []flow.Node { return []flow.Node{w.child} }

func (w *wrap) WithChildren(children []flow.Node) (flow.Composite, error) {
	return &wrap{child: children[0]}, nil
}

func (w *wrap) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	out, err := w.child.Step.Transform(ctx, in)
	return out, childError(w.child, "transform", in, err)
}

func (w *wrap) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if w.child.Fits(in.Epoch) {
		out, err := fitOn(ctx, w.child.Step, in)
		return out, childError(w.child, "fit-transform", in, err)
	}
	return w.Transform(ctx, in)
}

// childError names the child n in err, as the Composite doc asks: a
// *StepError whose path starts with n's name.
func childError(n flow.Node, op string, in flow.Batch, err error) error {
	if err == nil {
		return nil
	}
	if se, ok := err.(*flow.StepError); ok {
		cp := *se
		cp.Path = append(flow.Path{n.Name}, se.Path...)
		return &cp
	}
	return &flow.StepError{Path: flow.Path{n.Name}, Type: fmt.Sprintf("%T", n.Step), Op: op, Seq: in.Seq, HasSeq: true, Err: err}
}

// pathsOf returns the paths of the nodes of p whose step is a T, in walk
// order.
func pathsOf[T flow.Step](p flow.Step) []flow.Path {
	var out []flow.Path
	_ = flow.Walk(p, func(v flow.Visit) error {
		if _, ok := v.Node.Step.(T); ok {
			out = append(out, v.Path)
		}
		return nil
	})
	return out
}

// learned returns the states of the col0Means of p, in walk order.
func learned(p flow.Step) []state {
	var out []state
	_ = flow.Walk(p, func(v flow.Visit) error {
		if c, ok := v.Node.Step.(*col0Mean); ok {
			out = append(out, c.st)
		}
		return nil
	})
	return out
}

// Random trees of sub-pipelines, unions, metasteps, replicas,
// out-of-order barriers, FitEpochs and Joiners, run with hooks and cuts
// or without, some stopped early, some whose source's epochs begin at 1:
// both engines learn the same states in a Fit and a FitTransform (sums,
// exact in any order), fit-transform alike where no replica learns and no
// barrier is out of order, and transform alike after it ("both give
// identical results for deterministic steps"); they count every stage
// alike, and each run's passes add up to it.
func TestAuditEnginesAgreeOnRandomTrees(t *testing.T) {
	mem := checkedMem(t)
	for seed := range uint64(150) {
		ctx := deadline(t) // for each seed: the 150 take 15 s under -race on two slow cores
		var states [][]state
		var outs, fitOuts []map[int64]string
		var counted []string
		cuts := int64(0)
		if seed%3 == 0 {
			cuts = 5 // the source asks for a cut before every fifth batch
		}
		shift := 0
		if seed%7 == 3 {
			shift = 1 // the epochs begin at 1
		}
		for _, r := range runners(mem) {
			r.SpillDir = t.TempDir()
			if seed%4 >= 2 { // hooks: a cut, and new replicas, at every epoch and every ErrCut
				r.OnEpoch = func(context.Context, flow.EpochEnd) error { return nil }
				r.OnCut = func(context.Context, flow.Cut) error { return nil }
			}
			if seed%5 == 4 { // early stopping: the first pass ends after its second epoch
				r.OnEpoch = func(_ context.Context, e flow.EpochEnd) error {
					if e.Pass == 0 && e.Epoch == 1 {
						return flow.ErrStop
					}
					return nil
				}
			}
			p := randomTree(t, mem, seed)
			fitStats, err := r.Fit(ctx, p, once{shifted{&gen{mem: mem, n: 24, rows: 3, epoch: 8, cutEvery: cuts}, shift}})
			if err != nil {
				t.Fatalf("seed %d: %v: fit: %v", seed, r.Engine, err)
			}
			s, err := r.FitTransform(ctx, p, shifted{&gen{mem: mem, n: 24, rows: 3, epoch: 8, cutEvery: cuts}, shift})
			if err != nil {
				t.Fatalf("seed %d: %v: fit-transform: %v", seed, r.Engine, err)
			}
			fitOut := map[int64]string{}
			if err := s.Each(ctx, func(b flow.Batch) error { fitOut[b.Seq] = fmt.Sprint(b.X); return nil }); err != nil {
				t.Fatalf("seed %d: %v: fit-transform: %v", seed, r.Engine, err)
			}
			if seed%2 == 0 { // no replicated learner, no out-of-order barrier: the fit-transform's output is deterministic too
				fitOuts = append(fitOuts, fitOut)
			}
			states = append(states, learned(p))
			for _, st := range []flow.Stats{fitStats, s.Stats()} {
				checkBounded(t, st)
				checkPassSums(t, fmt.Sprintf("seed %d: %v", seed, r.Engine), st)
				counted = append(counted, countsOf(st))
			}
			s, err = r.Transform(ctx, p, &gen{mem: mem, n: 24, rows: 3, epoch: 8})
			if err != nil {
				t.Fatal(err)
			}
			bs, err := flow.Collect(ctx, s)
			if err != nil {
				t.Fatalf("seed %d: %v: transform: %v", seed, r.Engine, err)
			}
			out := map[int64]string{} // by Seq: an out-of-order barrier may reorder the batches
			for _, b := range bs {
				out[b.Seq] = fmt.Sprint(b.X)
				b.Release()
			}
			outs = append(outs, out)
		}
		if fmt.Sprint(states[0]) != fmt.Sprint(states[1]) {
			t.Errorf("seed %d: the engines learned differently:\nsequential %v\nstreaming  %v\ntree %s", seed, states[0], states[1], treeString(randomTree(t, mem, seed)))
		}
		if counted[0] != counted[2] || counted[1] != counted[3] {
			t.Errorf("seed %d: the engines count differently:\nsequential %v\nstreaming  %v\ntree %s", seed, counted[:2], counted[2:], treeString(randomTree(t, mem, seed)))
		}
		if len(fitOuts) == 2 && fmt.Sprint(fitOuts[0]) != fmt.Sprint(fitOuts[1]) {
			t.Errorf("seed %d: the engines fit-transform differently:\nsequential %v\nstreaming  %v\ntree %s", seed, fitOuts[0], fitOuts[1], treeString(randomTree(t, mem, seed)))
		}
		if fmt.Sprint(outs[0]) != fmt.Sprint(outs[1]) {
			t.Errorf("seed %d: the engines transform differently:\nsequential %v\nstreaming  %v\ntree %s", seed, outs[0], outs[1], treeString(randomTree(t, mem, seed)))
		}
	}
}

// treeString prints a tree's paths, steps and settings, one node a line.
func treeString(p flow.Step) string {
	var b strings.Builder
	_ = flow.Walk(p, func(v flow.Visit) error {
		st, _ := v.Node.Settings()
		fmt.Fprintf(&b, "\n  %s %T %+v", v.Path, v.Node.Step, st)
		return nil
	})
	return b.String()
}

// FitEpochs belongs to one stage, like Replicas and Barrier: as a default
// of NewPipeline, which no stage inherits, it is refused, where it was
// accepted and did nothing (a pipeline meant to fit on one epoch fitted
// on every one).
func TestAuditFitEpochsDefaultRefused(t *testing.T) {
	for _, opt := range []flow.Option{flow.FitEpochs(0), flow.FitEpochs(1), flow.Replicas(2), flow.Barrier(barrier.InOrder)} {
		_, err := flow.NewPipeline([]flow.Node{flow.Named("m", &col0Mean{})}, opt)
		if err == nil || !strings.Contains(err.Error(), "belong to one stage") {
			t.Errorf("a default that belongs to one stage: got %v; want a refusal", err)
		}
	}
	if _, err := flow.NewPipeline([]flow.Node{flow.Named("m", &col0Mean{})}, flow.QueueCapacity(2), flow.Replicas(0)); err != nil {
		t.Errorf("QueueCapacity and Replicas(0) as defaults: %v", err)
	}
}

// checkPassSums fails t where the passes' counts of a stage do not add up
// to the run's, or its Passes is not the number of passes that ran it.
func checkPassSums(t *testing.T, what string, st flow.Stats) {
	t.Helper()
	type sum struct {
		passes                                 int
		batchesIn, rowsIn, batchesOut, rowsOut int64
	}
	sums := map[string]sum{}
	for _, ps := range st.Passes {
		for _, s := range ps.Stages {
			c := sums[s.Name()]
			c.passes++
			c.batchesIn += s.BatchesIn
			c.rowsIn += s.RowsIn
			c.batchesOut += s.BatchesOut
			c.rowsOut += s.RowsOut
			sums[s.Name()] = c
		}
	}
	for _, s := range st.Stages {
		want := sum{s.Passes, s.BatchesIn, s.RowsIn, s.BatchesOut, s.RowsOut}
		if s.Source {
			want.passes = len(st.Passes)
		}
		if got := sums[s.Name()]; got != want {
			t.Errorf("%s: stage %s: the passes add up to %+v; the run says %+v", what, s.Name(), got, want)
		}
	}
}

// countsOf prints the batches and rows in and out of every stage of st,
// in the run and in each pass.
func countsOf(st flow.Stats) string {
	all := [][]flow.StageStats{st.Stages}
	for _, ps := range st.Passes {
		all = append(all, ps.Stages)
	}
	var b strings.Builder
	for i, stages := range all {
		fmt.Fprintf(&b, "[%d]", i)
		for _, s := range stages {
			fmt.Fprintf(&b, " %s:%d:%d→%d:%d", s.Name(), s.BatchesIn, s.RowsIn, s.BatchesOut, s.RowsOut)
		}
	}
	return b.String()
}

// failAt passes batches through and fails on the batch whose Seq is at.
type failAt struct{ at int64 }

var errFailAt = errors.New("audit: this batch is bad")

func (f failAt) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	if in.Seq == f.at {
		return flow.Batch{}, errFailAt
	}
	in.Retain()
	return in, nil
}

// A step that fails somewhere in a random tree (put in place with
// MutateNode): both engines fail with the same *StepError, naming the
// step's path, its operation and the batch, and release everything.
func TestAuditEnginesFailAlikeOnRandomTrees(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	for seed := range uint64(100) {
		stateless := pathsOf[passThrough](randomTree(t, mem, seed))
		if len(stateless) == 0 {
			continue
		}
		rng := rand.New(rand.NewPCG(seed, 11))
		at := stateless[rng.IntN(len(stateless))]
		bad := int64(rng.IntN(24))
		for _, k := range []auditKind{kindFit, kindTransform, kindJoiner} {
			var got []string
			for _, r := range runners(mem) {
				r.SpillDir = t.TempDir()
				q, err := flow.MutateNode(randomTree(t, mem, seed), at, func(n flow.Node) (flow.Node, error) { return n.WithStep(failAt{bad}), nil })
				if err != nil {
					t.Fatal(err)
				}
				err = k.run(ctx, r, q.(*flow.Pipeline), &gen{mem: mem, n: 24, rows: 3, epoch: 8})
				var se *flow.StepError
				switch {
				case err == nil:
					got = append(got, "no error")
				case errors.As(err, &se) && errors.Is(err, errFailAt):
					got = append(got, fmt.Sprintf("%s %s %d %v", se.Path, se.Op, se.Seq, se.HasSeq))
				default:
					got = append(got, "other: "+err.Error())
				}
				if left, _ := os.ReadDir(r.SpillDir); len(left) != 0 {
					t.Errorf("seed %d: %v: spill left %d files behind", seed, r.Engine, len(left))
				}
			}
			if got[0] != got[1] || strings.HasPrefix(got[0], "other") || (got[0] != "no error" && !strings.HasPrefix(got[0], at.String()+" ")) {
				t.Errorf("seed %d, %v, failing %q at batch %d: sequential %q, streaming %q; want the same StepError of that step\ntree %s", seed, k, at, bad, got[0], got[1], treeString(randomTree(t, mem, seed)))
			}
		}
	}
}

// A random tree's run cancelled with a cause before a random batch, or
// closed there: the cancelled run's error wraps the cause (unless a fit
// ended before it), the closed
// stream's Close returns nil and its Next ErrClosed, in both engines, for
// every kind of run, and nothing leaks.
func TestAuditCancelAndCloseOnRandomTrees(t *testing.T) {
	mem := checkedMem(t)
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 13))
		at := int64(rng.IntN(30))
		for _, r := range runners(mem) {
			for _, k := range auditKinds {
				r.SpillDir = t.TempDir()
				if seed%2 == 1 {
					r.OnEpoch = func(context.Context, flow.EpochEnd) error { return nil }
				}
				cause := fmt.Errorf("audit: cancelled before batch %d", at)
				ctx, cancel := context.WithCancelCause(deadline(t))
				src := &gen{mem: mem, n: -1, rows: 2, epoch: 8, before: func(i int64) {
					if i == at {
						cancel(cause)
					}
				}}
				err := k.run(ctx, r, randomTree(t, mem, seed), src)
				cancel(nil)
				if err == nil && k == kindFit && src.reads.Load() <= at {
					// The fit ended before: nothing to fit, or FitEpochs.
				} else if !errors.Is(err, cause) {
					t.Errorf("seed %d: %v %v: cancelled: got %v; want the cause", seed, r.Engine, k, err)
				}
				if k == kindFit {
					continue
				}
				// Closed after at batches read, from another goroutine.
				ctx = deadline(t)
				var s *flow.Stream
				ready, closed := make(chan struct{}), make(chan error, 1)
				src = &gen{mem: mem, n: -1, rows: 2, epoch: 8, before: func(i int64) {
					if i == at {
						go func() { <-ready; closed <- s.Close() }()
					}
				}}
				if k == kindTransform {
					s, err = r.Transform(ctx, randomTree(t, mem, seed), src)
				} else {
					s, err = r.FitTransform(ctx, randomTree(t, mem, seed), src)
				}
				if err != nil {
					t.Fatal(err)
				}
				close(ready)
				for err == nil {
					var b flow.Batch
					b, err = s.Next(ctx)
					b.Release()
				}
				if cerr := <-closed; cerr != nil || !errors.Is(err, flow.ErrClosed) {
					t.Errorf("seed %d: %v %v: closed: Next %v, Close %v; want ErrClosed and nil", seed, r.Engine, k, err, cerr)
				}
			}
		}
	}
}

func (c *col0Mean) Copy() flow.Step { return &col0Mean{mem: c.mem, st: c.st} }

func (c *col0Mean) Reset() { c.st = state{} }

// A copy of a random fitted tree, made while a transform run of it goes
// on, is independent of it and runs as it does: fitting the copy leaves the original alone, fitting the original
// the same way then gives it the copy's states (the copy kept every option
// and every shape), and resetting the copy forgets only the copy's.
func TestAuditCopyRandomTrees(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	for seed := range uint64(60) {
		for _, r := range runners(mem) {
			r.SpillDir = t.TempDir()
			fit := func(p *flow.Pipeline) {
				if _, err := r.Fit(ctx, p, &gen{mem: mem, n: 24, rows: 3, epoch: 8}); err != nil {
					t.Fatalf("seed %d: %v: %v", seed, r.Engine, err)
				}
			}
			p := randomTree(t, mem, seed)
			fit(p)
			// Copied while a transform run of the original goes on, which
			// changes nothing in it.
			s, err := r.Transform(ctx, p, &gen{mem: mem, n: 24, rows: 3, epoch: 8})
			if err != nil {
				t.Fatal(err)
			}
			c, err := flow.Copy(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Each(ctx, func(flow.Batch) error { return nil }); err != nil {
				t.Fatal(err)
			}
			cp := c.(*flow.Pipeline)
			before := fmt.Sprint(learned(p))
			if got := fmt.Sprint(learned(cp)); got != before {
				t.Fatalf("seed %d: the copy holds %s; want the original's %s", seed, got, before)
			}
			fit(cp)
			if got := fmt.Sprint(learned(p)); got != before {
				t.Errorf("seed %d: %v: fitting the copy changed the original: %s; was %s", seed, r.Engine, got, before)
			}
			fit(p)
			if a, b := fmt.Sprint(learned(p)), fmt.Sprint(learned(cp)); a != b {
				t.Errorf("seed %d: %v: fitted alike, the original holds %s, the copy %s\ntree %s", seed, r.Engine, a, b, treeString(p))
			}
			fitted := fmt.Sprint(learned(p))
			if err := flow.Reset(cp); err != nil {
				t.Fatal(err)
			}
			for _, st := range learned(cp) {
				if st != (state{}) {
					t.Errorf("seed %d: a reset copy holds %v", seed, st)
				}
			}
			if got := fmt.Sprint(learned(p)); got != fitted {
				t.Errorf("seed %d: resetting the copy changed the original: %s; was %s", seed, got, fitted)
			}
		}
	}
}

// Close while a step that ignores ctx runs: Close waits for the step to
// return (Stream's doc), then returns nil with the steps torn down and
// every batch released, in both engines.
func TestAuditCloseWaitsForDeafStep(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			h := deafHold{once: new(sync.Once), entered: make(chan struct{}), release: make(chan struct{})}
			life := &lifeStep{}
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("life", life), flow.Named("deaf", h)}), &gen{mem: mem, n: -1, rows: 2})
			if err != nil {
				t.Fatal(err)
			}
			next := make(chan error, 1)
			go func() { // the sequential engine runs the step inside Next
				b, err := s.Next(ctx)
				b.Release()
				next <- err
			}()
			<-h.entered
			closed := make(chan error, 1)
			go func() { closed <- s.Close() }()
			select {
			case err := <-closed:
				close(h.release)
				t.Fatalf("Close returned %v while the step still ran", err)
			case <-time.After(50 * time.Millisecond):
			}
			if life.teardowns.Load() != 0 {
				t.Errorf("torn down while a step ran")
			}
			close(h.release)
			within(t, "Close after the step returned", 5*time.Second, func() {
				if err := <-closed; err != nil {
					t.Errorf("Close: %v; want nil", err)
				}
			})
			<-next
			if life.teardowns.Load() != 1 {
				t.Errorf("%d teardowns after Close; want 1", life.teardowns.Load())
			}
		})
	}
}

// A spill that cannot be written (SpillDir does not exist) fails the run
// at its first batch with an error that says so, in both engines, for a
// Fit and a FitTransform through a Joiner, and nothing is left behind.
func TestAuditSpillDirMissing(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, k := range []auditKind{kindFit, kindJoiner} {
			t.Run(fmt.Sprintf("%v/%v", r.Engine, k), func(t *testing.T) {
				r.SpillDir = t.TempDir() + "/missing"
				life := &lifeStep{}
				p := pipeline(t, []flow.Node{
					flow.Named("life", life),
					flow.Named("first", &waitFit{}, flow.Barrier(barrier.Joiner)),
					flow.Named("after", &waitFit{}),
				})
				err := k.run(ctx, r, p, &gen{mem: mem, n: 10, rows: 2})
				if err == nil || !strings.Contains(err.Error(), "spill") || !strings.Contains(err.Error(), "missing") {
					t.Errorf("got %v; want the spill's error naming its directory", err)
				}
				if life.setups.Load() != 1 || life.teardowns.Load() != 1 {
					t.Errorf("%d setups, %d teardowns; want 1 and 1", life.setups.Load(), life.teardowns.Load())
				}
			})
		}
	}
}

// A learner of a random tree frozen in place (MutateNode with
// FitEpochs(0)) learns nothing in a Fit or a FitTransform, wherever it
// sits (a replicated sub-pipeline, a union's branch, a metastep), and both
// engines learn the rest alike.
func TestAuditFreezeInRandomTrees(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	for seed := range uint64(100) {
		learners := pathsOf[*col0Mean](randomTree(t, mem, seed))
		if len(learners) == 0 {
			continue
		}
		at := learners[rand.New(rand.NewPCG(seed, 17)).IntN(len(learners))]
		var states []string
		for _, r := range runners(mem) {
			r.SpillDir = t.TempDir()
			q, err := flow.MutateNode(randomTree(t, mem, seed), at, func(n flow.Node) (flow.Node, error) { return n.WithOptions(flow.FitEpochs(0)), nil })
			if err != nil {
				t.Fatal(err)
			}
			p := q.(*flow.Pipeline)
			if _, err := r.Fit(ctx, p, once{&gen{mem: mem, n: 24, rows: 3, epoch: 8}}); err != nil {
				t.Fatalf("seed %d: %v: %v", seed, r.Engine, err)
			}
			s, err := r.FitTransform(ctx, p, &gen{mem: mem, n: 24, rows: 3, epoch: 8})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Each(ctx, func(flow.Batch) error { return nil }); err != nil {
				t.Fatalf("seed %d: %v: %v", seed, r.Engine, err)
			}
			_ = flow.Walk(p, func(v flow.Visit) error {
				if c, ok := v.Node.Step.(*col0Mean); ok && v.Path.Equal(at) && c.st != (state{}) {
					t.Errorf("seed %d: %v: the frozen %q learned %v\ntree %s", seed, r.Engine, at, c.st, treeString(p))
				}
				return nil
			})
			states = append(states, fmt.Sprint(learned(p)))
		}
		if states[0] != states[1] {
			t.Errorf("seed %d: frozen %q: the engines learned %s and %s", seed, at, states[0], states[1])
		}
	}
}

// shifted adds by to the Epoch of every batch of its source.
type shifted struct {
	flow.Source
	by int
}

func (s shifted) Next(ctx context.Context) (flow.Batch, error) {
	b, err := s.Source.Next(ctx)
	b.Epoch += s.by
	return b, err
}

// A pass whose first batch is already past the FitEpochs of a step inside
// a replicated sub-pipeline (a source whose epochs do not start at 0):
// the step, fitted before, transforms with its state, as in the
// sequential engine, not with a replica that learned nothing.
func TestAuditReplicasPastFitEpochsFromTheStart(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			m := &mean{mem: mem}
			sub := pipeline(t, []flow.Node{flow.Named("m", m, flow.FitEpochs(1)), flow.Named("fit", &waitFit{})})
			p := pipeline(t, []flow.Node{flow.Named("sub", sub, flow.Replicas(3)), flow.Named("after", &waitFit{})})
			src, done := epochs(t, mem, 1) // x = 0 … 99, in batches of 10
			defer done()
			if _, err := r.Fit(ctx, p, src); err != nil {
				t.Fatal(err)
			}
			s, err := r.FitTransform(ctx, p, shifted{again(t, src), 2})
			if err != nil {
				t.Fatal(err)
			}
			out := collect(ctx, t, s, "x")
			if m.state().n != 100 {
				t.Errorf("the step fitted on %v rows; want 100 (the first run's epoch 0 only)", m.state().n)
			}
			for i, v := range out.cols["x"] {
				if want := float64(i) - 49.5; v != want {
					t.Fatalf("row %d: %v; want %v, centred by the fitted mean", i, v, want)
				}
			}
		})
	}
}
