package flow_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"go.uber.org/goleak"
)

// counts checks one step value's lifecycle counters.
func counts(t *testing.T, what string, l *life, setups, fits, transforms int64) {
	t.Helper()
	if l.setups.Load() != setups || l.teardowns.Load() != setups || l.fits.Load() != fits || l.transforms.Load() != transforms {
		t.Errorf("%s: %v; want setups %d, teardowns %d, fits %d, transforms %d", what, l, setups, setups, fits, transforms)
	}
}

// runningMean is what a mean step fitted batch by batch on x = 0, 1, …
// (batches of size rows) subtracts from row i on the fit path: the mean of
// every row up to the end of i's batch.
func runningMean(i, size int) float64 {
	n := (i/size + 1) * size
	return float64(n-1) / 2
}

// TestTrainOnlyMetastep runs a metastep defined outside package flow: on
// the fit path it fits its child and returns the child's output, on the
// transform path it passes batches through. Both engines must give the
// same results, set the child up once per run, and never run the child on
// the transform path.
func TestTrainOnlyMetastep(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	type result struct {
		fitOut, transformOut []float64
		st                   state
	}
	var results []result
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			c := &mean{mem: mem}
			to := newTrainOnly(flow.Named("center", c))
			p := pipeline(t, []flow.Node{flow.Named("x2", scale{mem, 2}), flow.Named("train", to)})
			src := numbers(t, mem, 0, 40, 10)
			defer src.Close()

			s, err := r.FitTransform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			fit := collect(ctx, t, s, "x")
			if len(fit.cols["x"]) != 40 {
				t.Fatalf("fit-transform gave %d rows; want 40", len(fit.cols["x"]))
			}
			for i, v := range fit.cols["x"] {
				// x2 doubles, so the running mean doubles too.
				if want := 2*float64(i) - 2*runningMean(i, 10); v != want {
					t.Fatalf("fit-transform row %d: got %v; want %v (the child's output)", i, v, want)
				}
			}
			counts(t, "child after fit-transform", &c.life, 1, 4, 4)
			counts(t, "trainOnly after fit-transform", &to.life, 1, 4, 0)

			tr := transform(ctx, t, r, p, again(t, src), "x")
			for i, v := range tr.cols["x"] {
				if want := 2 * float64(i); v != want {
					t.Fatalf("transform row %d: got %v; want %v (passed through, not centred)", i, v, want)
				}
			}
			counts(t, "child after transform", &c.life, 2, 4, 4)
			counts(t, "trainOnly after transform", &to.life, 2, 4, 4)

			if _, err := r.Fit(ctx, p, again(t, src)); err != nil {
				t.Fatal(err)
			}
			counts(t, "child after fit", &c.life, 3, 8, 8)
			if want := (state{80, 2 * 2 * 780, 2 * 4 * 20540}); c.state() != want {
				t.Errorf("child learned %+v; want %+v (two fits of 2×(0…39))", c.state(), want)
			}
			results = append(results, result{fit.cols["x"], tr.cols["x"], c.state()})
		})
	}
	if len(results) == 2 && (!slices.Equal(results[0].fitOut, results[1].fitOut) ||
		!slices.Equal(results[0].transformOut, results[1].transformOut) || results[0].st != results[1].st) {
		t.Errorf("engines differ: sequential %+v; streaming %+v", results[0], results[1])
	}
}

// TestTrainOnlyReplicas fits replicas of the metastep: the runner replaces
// its fittable child by replicas (Merger.Replica) and merges them back.
func TestTrainOnlyReplicas(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	defer goleak.VerifyNone(t)
	src := numbers(t, mem, 0, 100, 5)
	defer src.Close()

	fit := func(r flow.Runner, c *mean, replicas int) *trainOnly {
		t.Helper()
		to := newTrainOnly(flow.Named("center", c))
		p := pipeline(t, []flow.Node{flow.Named("x2", scale{mem, 2}), flow.Named("train", to, flow.Replicas(replicas))})
		if _, err := r.Fit(ctx, p, again(t, src)); err != nil {
			t.Fatal(err)
		}
		return to
	}
	ref := &mean{mem: mem}
	fit(flow.Runner{Engine: flow.Sequential, Allocator: mem}, ref, 2)
	fit(flow.Runner{Engine: flow.Sequential, Allocator: mem}, ref, 2)

	c := &mean{mem: mem}
	streaming := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	to := fit(streaming, c, 2)
	reps := c.madeReplicas()
	if len(reps) != 2 {
		t.Fatalf("made %d replicas; want 2", len(reps))
	}
	var fits int64
	for i, rep := range reps {
		if rep.setups.Load() != 1 || rep.teardowns.Load() != 1 {
			t.Errorf("replica %d: %v; want set up and torn down once", i, &rep.life)
		}
		fits += rep.fits.Load()
	}
	if fits != 20 || c.fits.Load() != 0 {
		t.Errorf("replicas fitted %d batches, the step itself %d; want 20 and 0", fits, c.fits.Load())
	}
	counts(t, "child", &c.life, 1, 0, 0)
	counts(t, "trainOnly", &to.life, 1, 0, 0)
	// A second fit continues from the merged state.
	fit(streaming, c, 2)
	if c.state() != ref.state() {
		t.Errorf("two replicated fits learned %+v; two sequential fits %+v", c.state(), ref.state())
	}
	if want := (state{200, 2 * 2 * 4950, 2 * 4 * 328350}); ref.state() != want {
		t.Errorf("sequential fits learned %+v; want %+v", ref.state(), want)
	}

	// A child that cannot merge: the replicated fit is refused up front.
	sum := &bareSum{}
	p := pipeline(t, []flow.Node{flow.Named("train", newTrainOnly(flow.Named("sum", sum)), flow.Replicas(2))})
	_, err := streaming.Fit(ctx, p, again(t, src))
	if err == nil || !strings.Contains(err.Error(), `"train"`) || !strings.Contains(err.Error(), `"sum"`) || !strings.Contains(err.Error(), "flow.Merger") {
		t.Errorf("replicated metastep with a child that cannot merge: got %v; want a refusal naming train, sum and flow.Merger", err)
	}
	if sum.sum != 0 {
		t.Errorf("the refused fit fitted the child: sum %v", sum.sum)
	}
}

// TestJoinerInsideMetastep: a metastep runs its children batch by batch, so
// a Joiner anywhere below it cannot be honoured; NewPipeline, NewUnion and
// WithChildren must find it, however deep.
func TestJoinerInsideMetastep(t *testing.T) {
	joiner := func() flow.Node { return flow.Named("c", &mean{}, flow.Barrier(barrier.Joiner)) }
	inner := pipeline(t, []flow.Node{joiner(), flow.Named("d", &tally{})}) // a Joiner in a pipeline is fine
	for _, tc := range []struct {
		name  string
		build func() error
	}{
		{"child", func() error {
			_, err := flow.NewPipeline([]flow.Node{flow.Named("train", newTrainOnly(joiner()))})
			return err
		}},
		{"in a pipeline below", func() error {
			_, err := flow.NewPipeline([]flow.Node{flow.Named("train", newTrainOnly(flow.Named("inner", inner)))})
			return err
		}},
		{"below a choice", func() error {
			ch := &choose{branches: []flow.Node{flow.Named("a", &tally{}), flow.Named("b", newTrainOnly(joiner()))}, pick: "a"}
			_, err := flow.NewPipeline([]flow.Node{flow.Named("x", &tally{}), flow.Named("train", ch)})
			return err
		}},
		{"in a sub-pipeline", func() error {
			sub, err := flow.NewPipeline([]flow.Node{flow.Named("train", newTrainOnly(joiner()))})
			if err != nil {
				return err
			}
			_, err = flow.NewPipeline([]flow.Node{flow.Named("sub", sub)})
			return err
		}},
		{"in a union branch", func() error {
			_, err := flow.NewUnion(flow.Named("train", newTrainOnly(joiner())))
			return err
		}},
		{"through WithChildren", func() error {
			p := pipeline(t, []flow.Node{flow.Named("train", newTrainOnly(flow.Named("c", &mean{})))})
			_, err := p.WithChildren([]flow.Node{flow.Named("train", newTrainOnly(joiner()))})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.build(); err == nil || !strings.Contains(err.Error(), "Joiner") {
				t.Fatalf("got %v; want an error about the Joiner", err)
			}
		})
	}
}

// TestThreeLevelRun runs the tree pipeline → union → metastep → step in
// both engines: every active step value is set up and torn down exactly
// once per run (one value at two places included), the unchosen branch of
// the choice is neither set up, nor fitted, nor run, and both engines
// agree.
func TestThreeLevelRun(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	cols := []string{"m__x", "t__x", "r__x", "m__id"}
	var outs [][]output
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			tr := newTree3(t, mem)
			src := numbers(t, mem, 0, 40, 10)
			defer src.Close()

			s, err := r.FitTransform(ctx, tr.p, src)
			if err != nil {
				t.Fatal(err)
			}
			fit := collect(ctx, t, s, cols...)
			for i := range 40 {
				x, m, tt, rr := float64(i), fit.cols["m__x"][i], fit.cols["t__x"][i], fit.cols["r__x"][i]
				if want := x - runningMean(i, 10); m != want || tt != want || rr != x || fit.cols["m__id"][i] != x {
					t.Fatalf("fit-transform row %d: m %v, t %v, r %v; want %v, %v, %v", i, m, tt, rr, want, want, x)
				}
			}
			check := func(when string, runs, fits, transforms int64) {
				t.Helper()
				counts(t, when+": u/m/a", &tr.a.life, runs, fits, fits+transforms)
				counts(t, when+": u/t/c", &tr.c.life, runs, fits, fits)
				counts(t, when+": u/m/b (not chosen)", &tr.b.life, 0, 0, 0)
				counts(t, when+": pre and u/r (one value)", &tr.res.life, runs, 0, 2*(fits+transforms))
				if got := tr.t.setups.Load(); got != runs || tr.t.teardowns.Load() != runs {
					t.Errorf("%s: u/t: %v; want %d setups and teardowns", when, &tr.t.life, runs)
				}
			}
			check("after fit-transform", 1, 4, 0)

			tf := transform(ctx, t, r, tr.p, again(t, src), cols...)
			for i := range 40 {
				x, m, tt := float64(i), tf.cols["m__x"][i], tf.cols["t__x"][i]
				if m != x-19.5 || tt != x {
					t.Fatalf("transform row %d: m %v, t %v; want %v (centred by the fitted mean) and %v (train-only: passed through)", i, m, tt, x-19.5, x)
				}
			}
			check("after transform", 2, 4, 4)

			if _, err := r.Fit(ctx, tr.p, again(t, src)); err != nil {
				t.Fatal(err)
			}
			check("after fit", 3, 8, 4)
			if tr.post.transforms.Load() != 8 {
				t.Errorf("post ran %d times; want 8 (not in the fit, whose last fittable step is the union)", tr.post.transforms.Load())
			}
			if tr.a.state() != tr.c.state() || tr.a.state().n != 80 || tr.b.state() != (state{}) {
				t.Errorf("learned a %+v, c %+v, b %+v; want a = c fitted on 80 rows, b nothing", tr.a.state(), tr.c.state(), tr.b.state())
			}
			outs = append(outs, []output{fit, tf})
		})
	}
	if len(outs) == 2 {
		for i := range outs[0] {
			for _, c := range cols {
				if !slices.Equal(outs[0][i].cols[c], outs[1][i].cols[c]) || !slices.Equal(outs[0][i].seqs, outs[1][i].seqs) {
					t.Errorf("run %d column %s: sequential %v; streaming %v", i, c, outs[0][i].cols[c], outs[1][i].cols[c])
				}
			}
		}
	}
}

// TestThreeLevelReplicatedBranch replicates the metastep inside the union
// for a streaming fit: the unchosen branch stays out, the chosen one is
// replicated and merged.
func TestThreeLevelReplicatedBranch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	defer goleak.VerifyNone(t)
	a, b := &mean{mem: mem}, &bareSum{} // b cannot merge, but is not chosen
	m := &choose{branches: []flow.Node{flow.Named("a", a), flow.Named("b", b)}, pick: "a"}
	u, err := flow.NewUnion(flow.Named("m", m, flow.Replicas(3)), flow.Named("id", &tally{}))
	if err != nil {
		t.Fatal(err)
	}
	p := pipeline(t, []flow.Node{flow.Named("u", u)})
	src := numbers(t, mem, 0, 60, 4)
	defer src.Close()
	if _, err := (flow.Runner{Engine: flow.Streaming, Allocator: mem}).Fit(ctx, p, src); err != nil {
		t.Fatal(err)
	}
	if got, want := a.state(), (state{60, 1770, 70210}); got != want {
		t.Errorf("merged state %+v; want %+v", got, want)
	}
	if n := len(a.madeReplicas()); n != 3 {
		t.Errorf("made %d replicas of u/m/a; want 3", n)
	}
	if b.sum != 0 {
		t.Errorf("the unchosen branch was fitted: sum %v", b.sum)
	}
	counts(t, "u/m/a", &a.life, 1, 0, 0)
}
