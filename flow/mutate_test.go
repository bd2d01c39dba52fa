package flow_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"go.uber.org/goleak"
)

// pretrained is a Mutator: a mean step that, after pre-training, becomes
// a scale by its learned mean (it knows what it becomes).
type pretrained struct {
	*mean
	mutations int
}

var _ flow.Mutator = (*pretrained)(nil)

func (p *pretrained) Mutate() (flow.Step, error) {
	p.mutations++
	return scale{p.mem, p.state().mean()}, nil
}

// TestMutateInPlace fits a tree, mutates a step two levels down into
// what it knows it becomes, and runs the new tree: the rest of the tree
// is shared (still fitted), node options are kept, the old tree is
// unchanged.
func TestMutateInPlace(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			pre := &pretrained{mean: &mean{mem: mem}}
			center := &mean{mem: mem}
			inner := pipeline(t, []flow.Node{flow.Named("model", pre, flow.FitEpochs(1))})
			p := pipeline(t, []flow.Node{flow.Named("center", center, flow.FitEpochs(0)), flow.Named("inner", inner)})
			src := numbers(t, mem, 0, 10, 5) // mean 4.5
			defer src.Close()
			if _, err := r.Fit(ctx, p, src); err != nil {
				t.Fatal(err)
			}
			if center.fits.Load() != 0 || pre.state().n != 10 {
				t.Fatalf("after the fit: centre fitted %d times (frozen: want 0), model saw %v rows (want 10)", center.fits.Load(), pre.state().n)
			}
			got, err := flow.Mutate(p, flow.Path{"inner", "model"}, flow.Become)
			if err != nil {
				t.Fatal(err)
			}
			q := got.(*flow.Pipeline)
			if q == p || pre.mutations != 1 {
				t.Fatalf("Mutate returned the old pipeline or called Mutate %d times", pre.mutations)
			}
			if _, ok := p.Step("inner").(*flow.Pipeline).Step("model").(*pretrained); !ok {
				t.Error("the old tree changed")
			}
			if q.Step("center") != center {
				t.Error("the sibling was not shared")
			}
			nodes := q.Step("inner").(*flow.Pipeline).Nodes()
			if _, ok := nodes[0].Step.(scale); !ok {
				t.Fatalf("inner/model is %T; want the scale it became", nodes[0].Step)
			}
			// The centre's FitEpochs(0) was kept: a fit of q still does not fit it.
			if _, err := r.Fit(ctx, q, again(t, src)); err != nil {
				t.Fatal(err)
			}
			if center.fits.Load() != 0 {
				t.Errorf("a frozen node was fitted %d times after the mutation", center.fits.Load())
			}
			out := transform(ctx, t, r, q, again(t, src), "x")
			for i, v := range out.cols["x"] {
				if want := 4.5 * float64(i); v != want { // centre learned nothing: mean 0
					t.Fatalf("row %d: got %v; want %v", i, v, want)
				}
			}
		})
	}
}

// TestMutateNodeFreezes freezes a fitted step in place after a phase:
// the next fit does not call its Fit.
func TestMutateNodeFreezes(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	defer goleak.VerifyNone(t)
	a, b := &mean{mem: mem}, &mean{mem: mem}
	p := pipeline(t, []flow.Node{flow.Named("a", a), flow.Named("b", b)})
	src := numbers(t, mem, 0, 20, 5)
	defer src.Close()
	r := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	if _, err := r.Fit(ctx, p, src); err != nil {
		t.Fatal(err)
	}
	got, err := flow.MutateNode(p, flow.Path{"a"}, func(n flow.Node) (flow.Node, error) {
		return n.WithOptions(flow.FitEpochs(0)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	q := got.(*flow.Pipeline)
	if q.Nodes()[0].Fits(0) || !q.Nodes()[1].Fits(0) || !p.Nodes()[0].Fits(0) {
		t.Fatalf("Fits: frozen a %v, b %v, old a %v; want false, true, true", q.Nodes()[0].Fits(0), q.Nodes()[1].Fits(0), p.Nodes()[0].Fits(0))
	}
	if _, err := r.Fit(ctx, q, again(t, src)); err != nil {
		t.Fatal(err)
	}
	if a.fits.Load() != 4 || b.fits.Load() != 8 {
		t.Errorf("fits: a %d, b %d; want 4 (frozen after the first fit) and 8", a.fits.Load(), b.fits.Load())
	}
}

func TestNodeFits(t *testing.T) {
	for _, tc := range []struct {
		n     flow.Node
		epoch int
		want  bool
	}{
		{flow.Named("m", &mean{}), 5, true},
		{flow.Named("m", &mean{}, flow.FitEpochs(2)), 1, true},
		{flow.Named("m", &mean{}, flow.FitEpochs(2)), 2, false},
		{flow.Named("m", &mean{}).WithOptions(flow.FitEpochs(0)), 0, false},
		{flow.Named("m", &mean{}, flow.FitEpochs(0)).WithOptions(flow.FitEpochs(3)), 2, true}, // the later wins
		{flow.Named("t", &tally{}), 0, false},                                                 // learns nothing
		{flow.Named("w", newTrainOnly(flow.Named("t", &tally{}))), 0, false},                  // nothing fittable below
		{flow.Named("w", newTrainOnly(flow.Named("m", &mean{}))), 0, true},
	} {
		if got := tc.n.Fits(tc.epoch); got != tc.want {
			t.Errorf("%s (%T) Fits(%d) = %v; want %v", tc.n.Name, tc.n.Step, tc.epoch, got, tc.want)
		}
	}
}

func TestMutateRoot(t *testing.T) {
	pre := &pretrained{mean: &mean{}}
	got, err := flow.MutateNode(pre, nil, func(n flow.Node) (flow.Node, error) {
		s, err := flow.Become(n.Step)
		return n.WithStep(s).WithOptions(flow.FitEpochs(0)), err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.(scale); !ok {
		t.Errorf("mutated root is %T; want scale", got)
	}
}

func TestMutateErrors(t *testing.T) {
	boom := errors.New("boom")
	inner := pipeline(t, []flow.Node{flow.Named("m", &mean{}), flow.Named("t", &tally{})})
	p := pipeline(t, []flow.Node{flow.Named("inner", inner), flow.Named("w", newTrainOnly(flow.Named("c", &mean{})))})
	for _, tc := range []struct {
		name string
		path flow.Path
		fn   func(flow.Node) (flow.Node, error)
		want []string
	}{
		{"no such child", flow.Path{"inner", "nope"}, nil, []string{`mutate "inner/nope"`, `no child "nope"`, `"m", "t"`}},
		{"through a leaf", flow.Path{"inner", "m", "x"}, nil, []string{`step "inner/m"`, "not a composite"}},
		{"fn fails", flow.Path{"inner", "m"}, func(flow.Node) (flow.Node, error) { return flow.Node{}, boom }, []string{`mutate "inner/m"`, "boom"}},
		{"fn panics", flow.Path{"inner", "m"}, func(flow.Node) (flow.Node, error) { panic("oops") }, []string{`mutate "inner/m"`, "panic: oops"}},
		{"renamed", flow.Path{"inner", "m"}, func(n flow.Node) (flow.Node, error) { return flow.Named("z", n.Step), nil }, []string{`called "z"`, "keeps the node's name"}},
		{"nil step", flow.Path{"inner", "m"}, func(n flow.Node) (flow.Node, error) { return n.WithStep((*mean)(nil)), nil }, []string{"nil"}},
		{"bad option", flow.Path{"inner", "m"}, func(n flow.Node) (flow.Node, error) { return n.WithOptions(flow.FitEpochs(-1)), nil }, []string{"FitEpochs(-1)"}},
		{"bad name below", flow.Path{"w"}, func(n flow.Node) (flow.Node, error) {
			return n.WithStep(newTrainOnly(flow.Named("a__b", &mean{}))), nil
		}, []string{`"w"`, "reserved"}},
		{"a joiner in a metastep", flow.Path{"w"}, func(n flow.Node) (flow.Node, error) {
			return n.WithStep(newTrainOnly(flow.Named("c", &mean{}, flow.Barrier(barrier.Joiner)))), nil
		}, []string{"Joiner"}},
		{"not a mutator", flow.Path{"inner", "t"}, func(n flow.Node) (flow.Node, error) {
			s, err := flow.Become(n.Step)
			return n.WithStep(s), err
		}, []string{"flow.Mutator", "*flow_test.tally"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fn := tc.fn
			if fn == nil {
				fn = func(n flow.Node) (flow.Node, error) { return n, nil }
			}
			got, err := flow.MutateNode(p, tc.path, fn)
			if err == nil {
				t.Fatalf("got %T and no error; want an error containing %q", got, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %v; want it to contain %q", err, w)
				}
			}
		})
	}
	if _, err := flow.Mutate(p, flow.Path{"inner"}, nil); err == nil {
		t.Error("nil function: no error")
	}
	if _, err := flow.Mutate(nil, nil, flow.Become); err == nil {
		t.Error("nil root: no error")
	}
}

// ExampleMutate turns a step of a pipeline into another one, in place.
func ExampleMutate() {
	p, err := flow.NewPipeline([]flow.Node{flow.Named("model", scale{nil, 2}, flow.FitEpochs(1))})
	if err != nil {
		panic(err)
	}
	q, err := flow.Mutate(p, flow.Path{"model"}, func(old flow.Step) (flow.Step, error) {
		return scale{nil, 3 * old.(scale).f}, nil
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Step("model").(scale).f, q.(*flow.Pipeline).Step("model").(scale).f)
	// Output: 2 6
}
