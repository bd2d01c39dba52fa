package flow_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"go.uber.org/goleak"
)

// TestLearnedStateSurvivesTeardown: Setup and Teardown acquire and release
// one run's resource; what Fit learned stays. A second Fit continues, Reset
// starts over, and Reset refuses a tree with a step that cannot reset.
func TestLearnedStateSurvivesTeardown(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			// The runner's allocator is apart from the batches', so that it
			// holds exactly the resource while a run is set up.
			runMem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer runMem.AssertSize(t, 0)
			r.Allocator = runMem
			m := &mean{mem: mem}
			p := pipeline(t, []flow.Node{flow.Named("m", m)})
			fitOn := func(lo int) {
				t.Helper()
				src := numbers(t, mem, lo, 10, 5)
				defer src.Close()
				if _, err := r.Fit(ctx, p, src); err != nil {
					t.Fatal(err)
				}
			}
			fitOn(0)
			if m.buf != nil || runMem.CurrentAlloc() != 0 {
				t.Fatalf("after the fit: resource %v, %d bytes held; want it released", m.buf, runMem.CurrentAlloc())
			}
			if got := m.state().mean(); got != 4.5 {
				t.Fatalf("fitted mean %v; want 4.5", got)
			}

			// The next run sets the resource up again and uses the model.
			// Its 200 batches cannot all wait in the streaming engine's
			// queues, so the run is still going when first checked.
			src := numbers(t, mem, 100, 200, 1)
			defer src.Close()
			s, err := r.Transform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			if runMem.CurrentAlloc() == 0 {
				t.Errorf("a running transform holds nothing from the runner's allocator; want the resource that Setup took from flow.Allocator(ctx)")
			}
			got := collect(ctx, t, s, "x")
			for i, v := range got.cols["x"] {
				if want := float64(100+i) - 4.5; v != want {
					t.Fatalf("transform row %d: got %v; want %v (the model of the last run)", i, v, want)
				}
			}
			if runMem.CurrentAlloc() != 0 {
				t.Errorf("after the transform the runner's allocator holds %d bytes; want 0", runMem.CurrentAlloc())
			}

			fitOn(10) // partial fit: continues
			if want := (state{20, 190, 2470}); m.state() != want {
				t.Fatalf("after a second fit: %+v; want %+v (0…19)", m.state(), want)
			}
			if err := flow.Reset(p); err != nil {
				t.Fatal(err)
			}
			fitOn(50) // starts over
			if want := (state{10, 545, 29785}); m.state() != want {
				t.Fatalf("after Reset and a fit: %+v; want %+v (50…59 only)", m.state(), want)
			}
			counts(t, "m", &m.life, 4, 6, 200)

			// A tree with a fittable step that cannot reset: an error
			// naming it, and nothing reset.
			bare := &bareSum{sum: 7}
			q := pipeline(t, []flow.Node{flow.Named("m", m), flow.Named("deep", newTrainOnly(flow.Named("bare", bare)))})
			before := m.state()
			err = flow.Reset(q)
			if err == nil || !strings.Contains(err.Error(), `"deep/bare"`) || !strings.Contains(err.Error(), "flow.Resetter") {
				t.Errorf("Reset with a step that cannot reset: got %v; want an error naming deep/bare and flow.Resetter", err)
			}
			if m.state() != before || bare.sum != 7 {
				t.Errorf("a refused Reset changed state: m %+v (was %+v), bare %v (was 7)", m.state(), before, bare.sum)
			}
		})
	}
}

// tree4 is a fitted tree to copy: a stateless leaf shared by pointer, a
// union of a choice (one branch unchosen, with state of its own) and a
// train-only metastep.
type tree4 struct {
	p       *flow.Pipeline
	pre     *tally
	a, b, c *mean
}

func newTree4(t *testing.T, mem memory.Allocator) *tree4 {
	t.Helper()
	tr := &tree4{pre: &tally{}, a: &mean{mem: mem}, b: &mean{mem: mem, st: state{3, 6, 14}}, c: &mean{mem: mem}}
	m := &choose{branches: []flow.Node{flow.Named("a", tr.a), flow.Named("b", tr.b)}, pick: "a"}
	u, err := flow.NewUnion(flow.Named("m", m), flow.Named("t", newTrainOnly(flow.Named("c", tr.c))))
	if err != nil {
		t.Fatal(err)
	}
	tr.p = pipeline(t, []flow.Node{flow.Named("pre", tr.pre), flow.Named("u", u)})
	return tr
}

// means returns the mean steps of s by path.
func means(t *testing.T, s flow.Step) map[string]*mean {
	t.Helper()
	out := map[string]*mean{}
	if err := flow.Walk(s, func(v flow.Visit) error {
		if m, ok := v.Node.Step.(*mean); ok {
			out[v.Path.String()] = m
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCopy(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			fit := func(p *flow.Pipeline, lo int) {
				t.Helper()
				src := numbers(t, mem, lo, 20, 5)
				defer src.Close()
				if _, err := r.Fit(ctx, p, src); err != nil {
					t.Fatal(err)
				}
			}
			tr := newTree4(t, mem)
			fit(tr.p, 0)
			cs, err := flow.Copy(tr.p)
			if err != nil {
				t.Fatal(err)
			}
			cp, ok := cs.(*flow.Pipeline)
			if !ok || cp == tr.p {
				t.Fatalf("Copy returned %T %p; want a new *flow.Pipeline", cs, cs)
			}
			// Same shape, every stateful node new, stateless leaves shared.
			orig, copied := stepsOf(t, tr.p), stepsOf(t, cp)
			if len(orig) != len(copied) {
				t.Fatalf("copy has %d nodes; want %d", len(copied), len(orig))
			}
			for i := range orig {
				_, stateless := orig[i].(*tally)
				switch {
				case !sameType(orig[i], copied[i]):
					t.Errorf("node %d: copy is a %T; want a %T", i, copied[i], orig[i])
				case stateless && copied[i] != orig[i]:
					t.Errorf("node %d (%T): a stateless leaf was copied; want it shared", i, orig[i])
				case !stateless && copied[i] == orig[i]:
					t.Errorf("node %d (%T): shared with the original; want a copy", i, orig[i])
				}
			}
			om, cm := means(t, tr.p), means(t, cp)
			for _, path := range []string{"u/m/a", "u/m/b", "u/t/c"} {
				if om[path].state() != cm[path].state() {
					t.Errorf("%s: copy has %+v; want the original's %+v", path, cm[path].state(), om[path].state())
				}
			}
			if cm["u/m/b"].state() != (state{3, 6, 14}) {
				t.Errorf("the unchosen branch was not copied with its state: %+v", cm["u/m/b"].state())
			}

			// Fitting the copy leaves the original alone, and back.
			before := tr.a.state()
			fit(cp, 100)
			if tr.a.state() != before || tr.c.state() != before {
				t.Errorf("fitting the copy changed the original: a %+v, c %+v; want %+v", tr.a.state(), tr.c.state(), before)
			}
			if cm["u/m/a"].state().n != 40 || cm["u/t/c"].state().n != 40 {
				t.Errorf("the copy fitted on %v and %v rows; want 40", cm["u/m/a"].state().n, cm["u/t/c"].state().n)
			}
			copied40 := cm["u/m/a"].state()
			fit(tr.p, 200)
			if cm["u/m/a"].state() != copied40 {
				t.Errorf("fitting the original changed the copy: %+v; want %+v", cm["u/m/a"].state(), copied40)
			}
			if tr.pre.transforms.Load() != 12 {
				t.Errorf("the shared stateless leaf ran %d times; want 12 (three fits of 4 batches)", tr.pre.transforms.Load())
			}
		})
	}

	// A stateful leaf that cannot copy itself: an error naming its path.
	for _, leaf := range []flow.Step{&bareSum{}, &resource{}} {
		m := &choose{branches: []flow.Node{flow.Named("a", &tally{}), flow.Named("b", leaf)}, pick: "a"} // even unchosen
		u, err := flow.NewUnion(flow.Named("m", m))
		if err != nil {
			t.Fatal(err)
		}
		p := pipeline(t, []flow.Node{flow.Named("u", u)})
		_, err = flow.Copy(p)
		if err == nil || !strings.Contains(err.Error(), `"u/m/b"`) || !strings.Contains(err.Error(), "flow.Copier") {
			t.Errorf("Copy with a %T: got %v; want an error naming u/m/b and flow.Copier", leaf, err)
		}
	}
}

// TestRefitWithReplicas: a fitted step fitted again with replicas ends as
// if fitted again sequentially: old state once, every new batch once.
func TestRefitWithReplicas(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	defer goleak.VerifyNone(t)
	for _, shape := range []string{"step", "sub-pipeline", "metastep", "joiner"} {
		t.Run(shape, func(t *testing.T) {
			// build returns the pipeline that fits m, with replicas.
			build := func(m *mean, replicas int) *flow.Pipeline {
				var node flow.Node
				switch shape {
				case "step":
					node = flow.Named("m", m, flow.Replicas(replicas))
				case "sub-pipeline":
					sub := pipeline(t, []flow.Node{flow.Named("x2", scale{mem, 2}), flow.Named("m", m)})
					node = flow.Named("sub", sub, flow.Replicas(replicas))
				case "metastep":
					node = flow.Named("train", newTrainOnly(flow.Named("m", m)), flow.Replicas(replicas))
				case "joiner": // fitted in the first of two passes
					node = flow.Named("m", m, flow.Replicas(replicas), flow.Barrier(barrier.Joiner))
				}
				return pipeline(t, []flow.Node{node, flow.Named("after", &mean{mem: mem})})
			}
			fit := func(r flow.Runner, m *mean, lo, n int) {
				t.Helper()
				src := numbers(t, mem, lo, n, 7)
				defer src.Close()
				if _, err := r.Fit(ctx, build(m, 2), src); err != nil {
					t.Fatal(err)
				}
			}
			seq := flow.Runner{Engine: flow.Sequential, Allocator: mem}
			str := flow.Runner{Engine: flow.Streaming, Allocator: mem}
			want, got := &mean{mem: mem}, &mean{mem: mem}
			fit(seq, want, 0, 50)
			fit(seq, want, 50, 100)
			fit(seq, got, 0, 50) // fitted before…
			fit(str, got, 50, 100)
			if got.state() != want.state() {
				t.Errorf("fitted again with 2 replicas: %+v; sequentially: %+v", got.state(), want.state())
			}
			if n := len(got.madeReplicas()); n != 2 {
				t.Errorf("made %d replicas; want 2 (one pass fits m)", n)
			}
			fit(str, got, 150, 30) // and a third time, again replicated
			fit(seq, want, 150, 30)
			if got.state() != want.state() || want.state().n != 180 {
				t.Errorf("fitted a third time: %+v; sequentially: %+v (want 180 rows)", got.state(), want.state())
			}
		})
	}
}

// gate is a stateless step that holds every batch until open is closed.
type gate struct {
	entered chan struct{}
	open    chan struct{}
}

func (g gate) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.open:
	case <-ctx.Done():
		return flow.Batch{}, context.Cause(ctx)
	}
	in.Retain()
	return in, nil
}

// TestOneRunAtATime: a run that could change a step refuses to share it
// with a run still going, naming the step, and the step is free again once
// that run ends.
func TestOneRunAtATime(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, first := range runners(mem) {
		for _, second := range runners(mem) {
			t.Run(fmt.Sprintf("%v/%v", first.Engine, second.Engine), func(t *testing.T) {
				defer goleak.VerifyNone(t)
				m := &mean{mem: mem} // sets up: every run holds it alone
				bare := &bareSum{}   // learns, no setup: transforms share it
				p := pipeline(t, []flow.Node{flow.Named("m", m), flow.Named("bare", bare)})
				outer := pipeline(t, []flow.Node{flow.Named("outer", pipeline(t, []flow.Node{flow.Named("again", m)}))})
				onlyBare := pipeline(t, []flow.Node{flow.Named("b", bare)})
				src := numbers(t, mem, 0, 20, 5)
				defer src.Close()
				// The first run is a transform that nobody reads: it holds its
				// steps until closed, as its stream of 200 batches cannot
				// end before it is read (a streaming run whose whole output
				// fits in its queues ends, and frees its steps, by itself).
				long := numbers(t, mem, 0, 200, 1)
				defer long.Close()
				s, err := first.Transform(ctx, p, long)
				if err != nil {
					t.Fatal(err)
				}
				inUse := func(what, path string, err error) {
					t.Helper()
					if !errors.Is(err, flow.ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("%q", path)) {
						t.Errorf("%s while a transform runs: got %v; want flow.ErrInUse naming %q", what, err, path)
					}
				}
				_, err = second.Fit(ctx, p, src)
				inUse("Fit", "m", err)
				if s3, err := second.Transform(ctx, p, src); err == nil {
					s3.Close()
					t.Error("a second transform of a step that sets up: got no error; want flow.ErrInUse")
				} else {
					inUse("Transform", "m", err)
				}
				_, err = second.Fit(ctx, outer, src)
				inUse("Fit of another pipeline holding m", "outer/again", err)
				_, err = second.Fit(ctx, onlyBare, src)
				inUse("Fit of a step that a transform reads", "b", err)
				// Reading a fitted step that needs no setup is shared.
				src2 := numbers(t, mem, 0, 5, 5)
				defer src2.Close()
				s2, err := second.Transform(ctx, onlyBare, src2)
				if err != nil {
					t.Errorf("a second transform of a step that only reads: %v", err)
				} else if err := s2.Close(); err != nil {
					t.Error(err)
				}
				if m.setups.Load() != 1 {
					t.Errorf("m was set up %d times; want once (refused runs set nothing up)", m.setups.Load())
				}
				// What the error advises: a copy runs beside the original.
				cp, err := flow.Copy(pipeline(t, []flow.Node{flow.Named("m", m)}))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := second.Fit(ctx, cp.(*flow.Pipeline), again(t, src2)); err != nil {
					t.Errorf("fit of a copy while the original runs: %v", err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				// Free again: a fit now works, also of the other pipeline.
				if _, err := second.Fit(ctx, p, again(t, src)); err != nil {
					t.Fatalf("fit after the transform closed: %v", err)
				}
				if _, err := second.Fit(ctx, outer, again(t, src)); err != nil {
					t.Fatalf("fit of the other pipeline: %v", err)
				}
				if m.state().n != 40 {
					t.Errorf("m fitted on %v rows; want 40", m.state().n)
				}
				// A run that failed frees its steps too.
				bad := pipeline(t, []flow.Node{flow.Named("m", m), flow.Named("boom", panicky{})})
				if s, err := first.Transform(ctx, bad, again(t, src)); err != nil {
					t.Fatal(err)
				} else if _, err := flow.Collect(ctx, s); err == nil {
					t.Fatal("a run through a panicking step succeeded")
				}
				if _, err := second.Fit(ctx, p, again(t, src)); err != nil {
					t.Fatalf("fit after a failed run: %v", err)
				}
			})
		}
	}
}

// TestStatelessRunsAtOnce: steps that neither set up nor learn can serve
// two runs at the same time, in both engines, read from two goroutines.
func TestStatelessRunsAtOnce(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	defer goleak.VerifyNone(t)
	g := gate{entered: make(chan struct{}, 1), open: make(chan struct{})}
	count := &tally{}
	bare := &bareSum{sum: 3} // fitted: transforms only read it
	p := pipeline(t, []flow.Node{
		flow.Named("x3", scale{mem, 3}, flow.Replicas(2)),
		flow.Named("gate", g),
		flow.Named("count", count),
		flow.Named("bare", bare),
	})
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i, r := range append(runners(mem), runners(mem)...) {
		src := numbers(t, mem, 10*i, 50, 5)
		defer src.Close()
		s, err := r.Transform(ctx, p, src)
		if err != nil {
			t.Fatalf("run %d (%v): %v", i, r.Engine, err)
		}
		wg.Go(func() {
			bs, err := flow.Collect(ctx, s)
			if err != nil {
				errs[i] = err
				return
			}
			for j, b := range bs {
				for k, v := range column(b.X, "x") {
					if want := 3 * float64(10*i+5*j+k); v != want && errs[i] == nil {
						errs[i] = fmt.Errorf("batch %d row %d: got %v; want %v", j, k, v, want)
					}
				}
				b.Release()
			}
		})
	}
	<-g.entered // every run is open before any batch passes the gate
	close(g.open)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("run %d: %v", i, err)
		}
	}
	if n := count.transforms.Load(); n != 40 {
		t.Errorf("count saw %d batches; want 40 (4 runs × 10)", n)
	}
}

// TestSharedStepInReplicatedSubPipeline: a replicated sub-pipeline's
// replicas share what does not fit (here a step with a resource); the run
// sets it up once, like every step value.
func TestSharedStepInReplicatedSubPipeline(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			res := &resource{}
			m := &mean{mem: mem}
			sub := pipeline(t, []flow.Node{flow.Named("res", res), flow.Named("m", m)})
			p := pipeline(t, []flow.Node{flow.Named("sub", sub, flow.Replicas(3)), flow.Named("after", &tally{})})
			src := numbers(t, mem, 0, 30, 3)
			defer src.Close()
			if _, err := r.Fit(ctx, p, src); err != nil {
				t.Fatal(err)
			}
			counts(t, "sub/res after a fit", &res.life, 1, 0, 10)
			if m.state().n != 30 {
				t.Errorf("sub/m fitted on %v rows; want 30", m.state().n)
			}
			got := transform(ctx, t, r, p, again(t, src), "x")
			if len(got.cols["x"]) != 30 {
				t.Errorf("transform gave %d rows; want 30", len(got.cols["x"]))
			}
			counts(t, "sub/res after a transform", &res.life, 2, 0, 20)
		})
	}
}

// TestPipelineAsStep uses a pipeline directly as a step, without a runner.
func TestPipelineAsStep(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := flow.WithAllocator(deadline(t), mem)
	m := &mean{mem: mem}
	post := &tally{}
	p := pipeline(t, []flow.Node{flow.Named("x2", scale{mem, 2}), flow.Named("m", m), flow.Named("post", post)})
	src := numbers(t, mem, 0, 10, 5)
	defer src.Close()
	if err := flow.Setup(ctx, p); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		b, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Fit(ctx, b)
		b.Release()
		if err != nil {
			t.Fatalf("Pipeline.Fit: got %v (%T); want nil", err, err)
		}
	}
	if want := (state{10, 90, 1140}); m.state() != want || post.transforms.Load() != 0 {
		t.Errorf("after two fits: %+v, post ran %d times; want %+v and post not run", m.state(), post.transforms.Load(), want)
	}
	// FitTransform and Transform, and an error with its path.
	b, err := again(t, src).Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	out, err := p.FitTransform(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := column(out.X, "x"); got[4] != 8-float64(110)/15 {
		t.Errorf("FitTransform row 4: got %v; want %v", got[4], 8-float64(110)/15)
	}
	out.Release()
	if err := flow.Teardown(ctx, p); err != nil {
		t.Fatal(err)
	}
	err = p.Fit(ctx, b) // torn down: m refuses
	var se *flow.StepError
	if !errors.As(err, &se) || se.Path.String() != "m" || se.Op != "fit" {
		t.Errorf("Fit after teardown: got %v; want a StepError for the fit of m", err)
	}
	counts(t, "m", &m.life, 1, 4, 1)
}

// TestLastFittableStageReplicated: a fit whose last fittable stage is a
// replicated sub-pipeline, in both engines and both fit modes.
func TestLastFittableStageReplicated(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			m := &mean{mem: mem}
			post := &tally{}
			sub := pipeline(t, []flow.Node{flow.Named("x2", scale{mem, 2}), flow.Named("m", m)})
			p := pipeline(t, []flow.Node{flow.Named("pre", scale{mem, 1}), flow.Named("sub", sub, flow.Replicas(2)), flow.Named("post", post)})
			src := numbers(t, mem, 0, 40, 4)
			defer src.Close()
			if _, err := r.Fit(ctx, p, src); err != nil {
				t.Fatalf("Fit: %v", err)
			}
			if want := (state{40, 1560, 82160}); m.state() != want || post.transforms.Load() != 0 {
				t.Errorf("after Fit: %+v, post ran %d times; want %+v, post not run", m.state(), post.transforms.Load(), want)
			}
			s, err := r.FitTransform(ctx, p, again(t, src))
			if err != nil {
				t.Fatal(err)
			}
			if got := collect(ctx, t, s, "x"); len(got.cols["x"]) != 40 {
				t.Errorf("FitTransform gave %d rows; want 40", len(got.cols["x"]))
			}
			if m.state().n != 80 || post.transforms.Load() != 10 {
				t.Errorf("after FitTransform: %+v, post ran %d times; want 80 rows fitted and post run 10 times", m.state(), post.transforms.Load())
			}
		})
	}
}

// TestPanicError: a panic in a step arrives as a *PanicError whose Error is
// one line and whose %+v carries the stack.
func TestPanicError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			p := pipeline(t, []flow.Node{flow.Named("x2", scale{mem, 2}), flow.Named("boom", panicky{})})
			src := numbers(t, mem, 0, 20, 5)
			defer src.Close()
			s, err := r.Transform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			_, err = flow.Collect(ctx, s)
			var pe *flow.PanicError
			var se *flow.StepError
			if !errors.As(err, &pe) || !errors.As(err, &se) || se.Path.String() != "boom" {
				t.Fatalf("got %v; want a *flow.PanicError inside a *flow.StepError for step boom", err)
			}
			if got := pe.Error(); got != "panic: the model fell over" {
				t.Errorf("PanicError.Error() = %q; want %q", got, "panic: the model fell over")
			}
			for _, line := range []string{err.Error(), pe.Error(), fmt.Sprintf("%v", pe), fmt.Sprintf("%s", pe)} {
				if strings.Contains(line, "\n") {
					t.Errorf("%q: want one line", line)
				}
			}
			full := fmt.Sprintf("%+v", pe)
			if !strings.HasPrefix(full, "panic: the model fell over\n") || !strings.Contains(full, "goroutine ") || !strings.Contains(full, "panicky.Transform") {
				t.Errorf("%%+v = %q; want the message, then the stack through panicky.Transform", full)
			}
		})
	}
}

// multiPanic panics with an error whose message has two lines.
type multiPanic struct{}

func (multiPanic) Transform(context.Context, flow.Batch) (flow.Batch, error) {
	panic(errors.New("line one\nline two"))
}

// TestPanicErrorOneLineAlways tries the two forms a caller meets: a panic
// whose message has a newline, and %+v of the run's error (a *StepError
// around the *PanicError), which is what a caller prints.
func TestPanicErrorOneLineAlways(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	src := numbers(t, mem, 0, 5, 5)
	defer src.Close()
	s, err := flow.Runner{Allocator: mem}.Transform(ctx, pipeline(t, []flow.Node{flow.Named("boom", multiPanic{})}), src)
	if err != nil {
		t.Fatal(err)
	}
	_, err = flow.Collect(ctx, s)
	var pe *flow.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v; want a *flow.PanicError", err)
	}
	if strings.Contains(pe.Error(), "\n") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Error() = %q; want one line", err.Error())
	}
	if full := fmt.Sprintf("%+v", err); !strings.Contains(full, "multiPanic.Transform") {
		t.Errorf("%%+v of the run's error = %q; want the stack through multiPanic.Transform", full)
	}
}

// TestCopyKeepsSharing: one step value at two places of a tree (tied
// weights: a union whose two branches share an encoder) stays one value in
// the copy, so the copy behaves as the original: one setup per run, and
// fitted from both places.
func TestCopyKeepsSharing(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	tied := &mean{mem: mem}
	wrap := newTrainOnly(flow.Named("enc", tied)) // a composite at two places too
	u, err := flow.NewUnion(flow.Named("left", tied), flow.Named("right", wrap), flow.Named("again", wrap))
	if err != nil {
		t.Fatal(err)
	}
	p := pipeline(t, []flow.Node{flow.Named("u", u)})
	cs, err := flow.Copy(p)
	if err != nil {
		t.Fatal(err)
	}
	cm := means(t, cs)
	if cm["u/left"] != cm["u/right/enc"] || cm["u/left"] != cm["u/again/enc"] {
		t.Fatalf("the copy holds several values where the original holds one (%p, %p, %p)", cm["u/left"], cm["u/right/enc"], cm["u/again/enc"])
	}
	if cm["u/left"] == tied {
		t.Fatal("the copy shares the tied step with the original")
	}
	cu := cs.(*flow.Pipeline).Step("u").(*flow.Union).Branches()
	if cu[1].Step != cu[2].Step || cu[1].Step == flow.Step(wrap) {
		t.Fatalf("the composite at u/right and u/again: copied to %p and %p (original %p); want one new value", cu[1].Step, cu[2].Step, wrap)
	}
	// Fitted by the sequential engine: the streaming engine would
	// call Fit on the tied value from three stages at once.
	r := flow.Runner{Engine: flow.Sequential, Allocator: mem}
	for _, s := range []flow.Step{p, cs} {
		src := numbers(t, mem, 0, 10, 5)
		if _, err := r.Fit(ctx, s.(*flow.Pipeline), src); err != nil {
			t.Fatal(err)
		}
		src.Close()
	}
	if tied.state() != cm["u/left"].state() || tied.state().n != 30 {
		t.Errorf("original learned %+v, copy %+v; want the same, 30 rows (10 from each place)", tied.state(), cm["u/left"].state())
	}
	cw := cu[1].Step.(*trainOnly)
	if tied.setups.Load() != 1 || cm["u/left"].setups.Load() != 1 || wrap.setups.Load() != 1 || cw.setups.Load() != 1 {
		t.Errorf("set up: original %d and %d times, copy %d and %d; want once each", tied.setups.Load(), wrap.setups.Load(), cm["u/left"].setups.Load(), cw.setups.Load())
	}
}

// exclusiveFit counts Fit calls that overlap another Fit on the same
// value, which Fitter promises never happen.
type exclusiveFit struct {
	in, overlaps atomic.Int64
}

func (e *exclusiveFit) Fit(ctx context.Context, _ flow.Batch) error {
	if e.in.Add(1) > 1 {
		e.overlaps.Add(1)
	}
	defer e.in.Add(-1)
	select { // long enough for another stage to come in
	case <-time.After(100 * time.Microsecond):
	case <-ctx.Done():
	}
	return nil
}

func (e *exclusiveFit) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

// TestOneValueAtTwoStagesFits: one fittable value at two stages (tied
// weights) must either be refused by the streaming engine or never be
// fitted from both stages at once.
func TestOneValueAtTwoStagesFits(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	defer goleak.VerifyNone(t)
	for _, shape := range []string{"union", "chain"} {
		t.Run(shape, func(t *testing.T) {
			e := &exclusiveFit{}
			var p *flow.Pipeline
			if shape == "union" {
				u, err := flow.NewUnion(flow.Named("a", e), flow.Named("b", e))
				if err != nil {
					t.Fatal(err)
				}
				p = pipeline(t, []flow.Node{flow.Named("u", u)})
			} else {
				p = pipeline(t, []flow.Node{flow.Named("a", e), flow.Named("mid", scale{mem, 1}), flow.Named("b", e)})
			}
			src := numbers(t, mem, 0, 400, 2)
			defer src.Close()
			_, err := (flow.Runner{Engine: flow.Streaming, Allocator: mem}).Fit(ctx, p, src)
			switch {
			case err != nil && !strings.Contains(err.Error(), `"a"`) && !strings.Contains(err.Error(), `"u/a"`):
				t.Errorf("refused with %v; want the error to name the step", err)
			case err == nil && e.overlaps.Load() > 0:
				t.Errorf("Fit overlapped itself %d times on one value", e.overlaps.Load())
			}
		})
	}
}

var (
	errNoDevice = errors.New("no device left")
	errRelease  = errors.New("release failed")
)

// TestSetupFailure: a step that fails to set up stops the run before any
// batch; what was set up before it is torn down, what comes after it is
// never set up, the error names the step, and its steps are free again.
func TestSetupFailure(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	type tree struct {
		p             *flow.Pipeline
		first, bad, z *resource
		wrap          *trainOnly
	}
	build := func() tree {
		tr := tree{first: &resource{}, bad: &resource{failSetup: errNoDevice}, z: &resource{}}
		tr.wrap = newTrainOnly(flow.Named("bad", tr.bad))
		u, err := flow.NewUnion(flow.Named("m", tr.wrap), flow.Named("id", &tally{}))
		if err != nil {
			t.Fatal(err)
		}
		tr.p = pipeline(t, []flow.Node{flow.Named("first", tr.first), flow.Named("u", u), flow.Named("z", tr.z)})
		return tr
	}
	check := func(t *testing.T, tr tree, err error) {
		t.Helper()
		var se *flow.StepError
		if !errors.Is(err, errNoDevice) || !errors.As(err, &se) || se.Path.String() != "u/m/bad" || se.Op != "setup" {
			t.Fatalf("got %v; want the setup error of u/m/bad", err)
		}
		counts(t, "first", &tr.first.life, 1, 0, 0)
		if tr.wrap.setups.Load() != 1 || tr.wrap.teardowns.Load() != 1 {
			t.Errorf("u/m (set up before its child): %v; want set up and torn down once", &tr.wrap.life)
		}
		if tr.bad.setups.Load() != 1 || tr.bad.teardowns.Load() != 0 {
			t.Errorf("u/m/bad: %v; want one failed setup and no teardown", &tr.bad.life)
		}
		counts(t, "z (after the failure)", &tr.z.life, 0, 0, 0)
	}
	for _, r := range runners(mem) {
		for _, fit := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/fit=%v", r.Engine, fit), func(t *testing.T) {
				defer goleak.VerifyNone(t)
				tr := build()
				src := numbers(t, mem, 0, 10, 5)
				defer src.Close()
				var err error
				if fit {
					_, err = r.Fit(ctx, tr.p, src)
				} else {
					var s *flow.Stream
					if s, err = r.Transform(ctx, tr.p, src); err == nil {
						s.Close()
					}
				}
				check(t, tr, err)
				// The steps are free again: with the device back, a run works.
				tr.bad.failSetup = nil
				if got := transform(ctx, t, r, tr.p, src, "id__x"); len(got.cols["id__x"]) != 10 {
					t.Errorf("after the device came back: %d rows; want 10", len(got.cols["id__x"]))
				}
			})
		}
	}
	t.Run("flow.Setup", func(t *testing.T) {
		tr := build()
		check(t, tr, flow.Setup(ctx, tr.p))
	})
}

// TestTeardownError: a teardown error is the run's error after a run that
// went well, and does not hide the first error of one that failed.
func TestTeardownError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			res := &resource{failTeardown: errRelease}
			src := numbers(t, mem, 0, 20, 5)
			defer src.Close()
			_, err := r.Fit(ctx, pipeline(t, []flow.Node{flow.Named("res", res), flow.Named("m", &mean{mem: mem})}), src)
			var se *flow.StepError
			if !errors.Is(err, errRelease) || !errors.As(err, &se) || se.Path.String() != "res" || se.Op != "teardown" {
				t.Errorf("a run that went well: got %v; want the teardown error of res", err)
			}
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("res", res), flow.Named("bad", failing{scale{mem, 1}, 2, false})}), again(t, src))
			if err != nil {
				t.Fatal(err)
			}
			_, err = flow.Collect(ctx, s)
			if !errors.Is(err, errBoom) || !errors.As(err, &se) || se.Path.String() != "bad" {
				t.Errorf("a run that failed: got %v; want the failure of bad first", err)
			}
			counts(t, "res", &res.life, 2, 0, res.transforms.Load())
		})
	}
}

// TestSetUpWhenTransformReturns: both engines set every step up inside
// Transform, before the first Next, and tear it down at Close.
func TestSetUpWhenTransformReturns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			res := &resource{}
			// An endless source: the streaming run, which starts at once,
			// cannot end (and tear down) before the check.
			src := &gen{mem: mem, n: -1, rows: 5}
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("res", res)}), src)
			if err != nil {
				t.Fatal(err)
			}
			if !res.up.Load() || res.setups.Load() != 1 {
				t.Errorf("after Transform returned: set up %v (%d setups); want set up once", res.up.Load(), res.setups.Load())
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if res.up.Load() || res.teardowns.Load() != 1 {
				t.Errorf("after Close: set up %v (%d teardowns); want torn down once", res.up.Load(), res.teardowns.Load())
			}
		})
	}
}
