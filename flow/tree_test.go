package flow_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
)

// tree3 is a three-level tree, pipeline → union → metastep → step:
//
//	pre               resource (the same value as u/r)
//	u                 union
//	u/m               choose, picks a
//	u/m/a, u/m/b      mean, mean (b is never chosen)
//	u/t               trainOnly
//	u/t/c             mean
//	u/r               resource (the same value as pre)
//	post              tally
type tree3 struct {
	p       *flow.Pipeline
	u       *flow.Union
	m       *choose
	a, b, c *mean
	t       *trainOnly
	res     *resource
	post    *tally
}

func newTree3(t *testing.T, mem memory.Allocator) *tree3 {
	t.Helper()
	tr := &tree3{a: &mean{mem: mem}, b: &mean{mem: mem}, c: &mean{mem: mem}, res: &resource{}, post: &tally{}}
	tr.m = &choose{branches: []flow.Node{flow.Named("a", tr.a), flow.Named("b", tr.b)}, pick: "a"}
	tr.t = newTrainOnly(flow.Named("c", tr.c))
	u, err := flow.NewUnion(flow.Named("m", tr.m), flow.Named("t", tr.t), flow.Named("r", tr.res))
	if err != nil {
		t.Fatal(err)
	}
	tr.u = u
	tr.p = pipeline(t, []flow.Node{flow.Named("pre", tr.res), flow.Named("u", u), flow.Named("post", tr.post)})
	return tr
}

func TestWalkThreeLevels(t *testing.T) {
	tr := newTree3(t, memory.DefaultAllocator)
	type seen struct {
		path, key string
		step      flow.Step
		parent    flow.Step
		active    bool
		depth     int
	}
	want := []seen{
		{"", "", tr.p, nil, true, 0},
		{"pre", "pre", tr.res, tr.p, true, 1},
		{"u", "u", tr.u, tr.p, true, 1},
		{"u/m", "u__m", tr.m, tr.u, true, 2},
		{"u/m/a", "u__m__a", tr.a, tr.m, true, 3},
		{"u/m/b", "u__m__b", tr.b, tr.m, false, 3},
		{"u/t", "u__t", tr.t, tr.u, true, 2},
		{"u/t/c", "u__t__c", tr.c, tr.t, true, 3},
		{"u/r", "u__r", tr.res, tr.u, true, 2},
		{"post", "post", tr.post, tr.p, true, 1},
	}
	var got []seen
	err := flow.Walk(tr.p, func(v flow.Visit) error {
		var parent flow.Step
		if v.Parent != nil {
			parent = v.Parent
		}
		got = append(got, seen{v.Path.String(), v.Path.Key(), v.Node.Step, parent, v.Active, v.Depth})
		if name := v.Node.Name; len(v.Path) > 0 && name != v.Path[len(v.Path)-1] {
			t.Errorf("node %q at path %q: want the path to end in the node's name", name, v.Path)
		}
		if got, back := v.Path.Key(), flow.ParseKey(v.Path.Key()); !back.Equal(v.Path) {
			t.Errorf("ParseKey(%q) = %q; want %q", got, back, v.Path)
		}
		if back := flow.ParsePath(v.Path.String()); !back.Equal(v.Path) {
			t.Errorf("ParsePath(%q) = %q; want %q", v.Path.String(), back, v.Path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("visited %d nodes; want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("visit %d: got %+v; want %+v", i, got[i], want[i])
		}
	}

	// SkipChildren skips one subtree; any other error stops the walk.
	var paths []string
	err = flow.Walk(tr.p, func(v flow.Visit) error {
		paths = append(paths, v.Path.String())
		if v.Path.String() == "u/m" {
			return flow.SkipChildren
		}
		return nil
	})
	if want := "|pre|u|u/m|u/t|u/t/c|u/r|post"; err != nil || strings.Join(paths, "|") != want {
		t.Errorf("SkipChildren at u/m: visited %q, err %v; want %q", strings.Join(paths, "|"), err, want)
	}
	stop := errors.New("stop")
	paths = nil
	err = flow.Walk(tr.p, func(v flow.Visit) error {
		paths = append(paths, v.Path.String())
		if v.Path.String() == "u/m/a" {
			return stop
		}
		return nil
	})
	if want := "|pre|u|u/m|u/m/a"; !errors.Is(err, stop) || strings.Join(paths, "|") != want {
		t.Errorf("error at u/m/a: visited %q, err %v; want %q and the callback's error", strings.Join(paths, "|"), err, want)
	}
}

func TestPathForms(t *testing.T) {
	for _, p := range []flow.Path{nil, {"a"}, {"features", "scale"}, {"a_b", "c", "with_mean"}} {
		if got := flow.ParseKey(p.Key()); !got.Equal(p) {
			t.Errorf("ParseKey(%q) = %q; want %q", p.Key(), got, p)
		}
		if got := flow.ParsePath(p.String()); !got.Equal(p) {
			t.Errorf("ParsePath(%q) = %q; want %q", p.String(), got, p)
		}
	}
	p := flow.Path{"features", "scale"}
	if p.String() != "features/scale" || p.Key() != "features__scale" {
		t.Errorf("got %q and %q; want features/scale and features__scale", p.String(), p.Key())
	}
	// Child never shares memory with its parent.
	base := make(flow.Path, 1, 4)
	base[0] = "a"
	x, y := base.Child("x"), base.Child("y")
	if x.String() != "a/x" || y.String() != "a/y" {
		t.Errorf("children of one path: %q and %q; want a/x and a/y", x, y)
	}
}

// TestNodeNames tries to make two nodes have the same key, or a key that
// ParseKey reads back as another path: the names that NewPipeline accepts
// must keep both forms unambiguous, and that holds for the children of a
// metastep of another package as much as for a pipeline's own nodes.
func TestNodeNames(t *testing.T) {
	s := &tally{}
	for _, name := range []string{"a_", "_b", "_", "a/b", "a__b", ""} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			// ["a_", "y"] and ["a", "_y"] would both have the key "a___y".
			if _, err := flow.NewPipeline([]flow.Node{flow.Named(name, newTrainOnly(flow.Named("y", s)))}); err == nil {
				p := flow.Path{name, "y"}
				t.Errorf("NewPipeline accepted %q; the key %q of %q parses back as %q", name, p.Key(), p, flow.ParseKey(p.Key()))
			}
			if _, err := flow.NewUnion(flow.Named(name, s)); err == nil {
				t.Errorf("NewUnion accepted a branch named %q", name)
			}
			// The same name as a metastep's child, which NewPipeline
			// reaches only through the walk.
			if _, err := flow.NewPipeline([]flow.Node{flow.Named("m", newTrainOnly(flow.Named(name, newTrainOnly(flow.Named("y", s)))))}); err == nil {
				t.Errorf("NewPipeline accepted a metastep child named %q", name)
			}
		})
	}
	// Two children of a metastep with one name would share a path.
	dup := &choose{branches: []flow.Node{flow.Named("a", s), flow.Named("a", &tally{})}, pick: "a"}
	if _, err := flow.NewPipeline([]flow.Node{flow.Named("m", dup)}); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("metastep with two children named a: got %v; want an error naming it", err)
	}
	// Nor may WithChildren bring such a child in.
	p := pipeline(t, []flow.Node{flow.Named("m", newTrainOnly(flow.Named("y", s)))})
	if _, err := p.WithChildren([]flow.Node{flow.Named("m", newTrainOnly(flow.Named("y_", s)))}); err == nil || !strings.Contains(err.Error(), `"y_"`) {
		t.Errorf("WithChildren with a child named y_ below m: got %v; want an error naming it", err)
	}
	// Names with single underscores inside are fine.
	if _, err := flow.NewPipeline([]flow.Node{flow.Named("with_mean", newTrainOnly(flow.Named("a_b", s)))}); err != nil {
		t.Errorf("names with inner underscores: %v", err)
	}
}

func TestTypedNilRefused(t *testing.T) {
	for _, s := range []flow.Step{(*mean)(nil), (*flow.Pipeline)(nil), (*flow.Union)(nil), (*trainOnly)(nil)} {
		name := fmt.Sprintf("%T", s)
		if _, err := flow.NewPipeline([]flow.Node{flow.Named("a", &tally{}), flow.Named("z", s)}); err == nil || !strings.Contains(err.Error(), `"z"`) {
			t.Errorf("NewPipeline with a %s: got %v; want an error naming step z", name, err)
		}
		if _, err := flow.NewUnion(flow.Named("a", &tally{}), flow.Named("z", s)); err == nil || !strings.Contains(err.Error(), `"z"`) {
			t.Errorf("NewUnion with a %s: got %v; want an error naming branch z", name, err)
		}
		// Below a metastep, and through WithChildren.
		if _, err := flow.NewPipeline([]flow.Node{flow.Named("m", newTrainOnly(flow.Named("z", s)))}); err == nil || !strings.Contains(err.Error(), "m/z") {
			t.Errorf("metastep child %s: got %v; want an error naming m/z", name, err)
		}
		p := pipeline(t, []flow.Node{flow.Named("a", &tally{})})
		if _, err := p.WithChildren([]flow.Node{flow.Named("a", s)}); err == nil {
			t.Errorf("Pipeline.WithChildren with a %s: got nil error", name)
		}
	}
}

func TestTreeContainingItself(t *testing.T) {
	ctx := deadline(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	h := &holder{child: flow.Named("leaf", &tally{})}
	p := pipeline(t, []flow.Node{flow.Named("h", h)})
	h.child = flow.Named("again", p) // p → h → p
	wantCycle := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "contains itself") {
			t.Errorf("%s: got %v; want an error saying the tree contains itself", what, err)
		}
	}
	wantCycle("Walk", flow.Walk(p, func(flow.Visit) error { return nil }))
	_, err := flow.NewPipeline([]flow.Node{flow.Named("h", h)})
	wantCycle("NewPipeline", err)
	_, err = p.WithChildren(p.Children())
	wantCycle("WithChildren", err)
	_, err = flow.Copy(p)
	wantCycle("Copy", err)
	// Setup and Teardown visit each step value once, so they end too (a
	// step met again is not walked again).
	if err := flow.Setup(ctx, p); err != nil && !strings.Contains(err.Error(), "contains itself") {
		t.Errorf("Setup: %v", err)
	}
	if err := flow.Teardown(ctx, p); err != nil && !strings.Contains(err.Error(), "contains itself") {
		t.Errorf("Teardown: %v", err)
	}
	wantCycle("Reset", flow.Reset(p))
	src := numbers(t, mem, 0, 10, 5)
	defer src.Close()
	for _, r := range runners(mem) {
		_, err := r.Fit(ctx, p, src)
		wantCycle(r.Engine.String()+" Fit", err)
		_, err = r.Transform(ctx, p, src)
		wantCycle(r.Engine.String()+" Transform", err)
	}

	// A pipeline put into itself through WithChildren of another pipeline.
	inner := pipeline(t, []flow.Node{flow.Named("h2", &holder{child: flow.Named("leaf", &tally{})})})
	h2 := inner.Step("h2").(*holder)
	outer, err := inner.WithChildren([]flow.Node{flow.Named("h2", h2)})
	if err != nil {
		t.Fatal(err)
	}
	h2.child = flow.Named("outer", outer) // outer → h2 → outer
	_, err = outer.WithChildren(outer.Children())
	wantCycle("WithChildren of a pipeline whose child holds it", err)
}

func TestMaxDepth(t *testing.T) {
	leaf := &tally{}
	depth := func(s flow.Step) (int, error) {
		max := 0
		err := flow.Walk(s, func(v flow.Visit) error {
			max = v.Depth
			return nil
		})
		return max, err
	}
	// nest{left: k} has k more nests below it and then the leaf: the leaf
	// is at depth k+1.
	if d, err := depth(nest{flow.MaxDepth - 1, leaf}); err != nil || d != flow.MaxDepth {
		t.Errorf("a tree of depth MaxDepth: walked to depth %d, err %v; want %d and no error", d, err, flow.MaxDepth)
	}
	_, err := depth(nest{flow.MaxDepth, leaf})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(flow.MaxDepth)) {
		t.Errorf("a tree of depth MaxDepth+1: got %v; want an error naming the bound", err)
	}
	if _, err := flow.NewPipeline([]flow.Node{flow.Named("deep", nest{flow.MaxDepth, leaf})}); err == nil {
		t.Error("NewPipeline accepted a tree deeper than MaxDepth")
	}
	_, err = depth(nest{100 * flow.MaxDepth, leaf})
	if err == nil {
		t.Error("a very deep tree: got no error")
	}
}

// stepsOf returns the steps that Walk visits, in order.
func stepsOf(t *testing.T, s flow.Step) []flow.Step {
	t.Helper()
	var out []flow.Step
	if err := flow.Walk(s, func(v flow.Visit) error { out = append(out, v.Node.Step); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameType(a, b flow.Step) bool { return reflect.TypeOf(a) == reflect.TypeOf(b) }
