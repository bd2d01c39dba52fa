package hparams_test

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

func mustTree(t *testing.T) *flow.Pipeline {
	t.Helper()
	p, err := tree()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustGet(t *testing.T, root flow.Step) hparams.Values {
	t.Helper()
	v, err := hparams.Get(root)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return v
}

func TestGetKeysAndValues(t *testing.T) {
	got := mustGet(t, mustTree(t))
	want := hparams.Values{
		"features__scale__with_mean":      true,
		"features__scale__factor":         1.0,
		"features__pick__choice":          "pca",
		"features__pick__pca__components": 2,
		"mlp__hidden":                     64,
		"mlp__lr":                         1e-3,
		"mlp__act":                        "relu",
		"mlp__solver":                     "adam",
		// mlp__momentum applies only to the sgd solver.
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %v; want %v", got, want)
	}
}

func TestGatherIsConditionalOnTheSwitch(t *testing.T) {
	space, err := hparams.Gather(mustTree(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"features__pick__choice",
		"features__pick__pca__components",
		"features__pick__poly__poly__degree",
		"features__pick__poly__scale__factor",
		"features__pick__poly__scale__with_mean",
		"features__scale__factor",
		"features__scale__with_mean",
		"mlp__act",
		"mlp__hidden",
		"mlp__lr",
		"mlp__momentum",
		"mlp__solver",
	}
	if got := space.Keys(); !slices.Equal(got, want) {
		t.Fatalf("keys = %q; want %q", got, want)
	}
	for key, cond := range map[string]string{
		"features__pick__pca__components":    `When(IntRange(1, 3), "features__pick__choice", "pca")`,
		"features__pick__poly__poly__degree": `When(Choice(2, 3), "features__pick__choice", "poly")`,
		"mlp__momentum":                      `When(Uniform(0, 0.99), "mlp__solver", "sgd")`,
		"mlp__lr":                            `LogUniform(1e-05, 1)`,
	} {
		if got := space[key].String(); got != cond {
			t.Errorf("space[%q] = %s; want %s", key, got, cond)
		}
	}
}

// The required round trip: a sample of a pipeline's space, through a
// choice inside a feature union inside a pipeline, Set and read back by
// Get, is the sample exactly; and it reaches both branches.
func TestSampleSetGetRoundTrip(t *testing.T) {
	seen := map[string]int{}
	for seed := range uint64(200) {
		root := mustTree(t)
		space, err := hparams.Gather(root)
		if err != nil {
			t.Fatal(err)
		}
		sample, err := space.Sample(hparams.NewRand(seed))
		if err != nil {
			t.Fatal(err)
		}
		if err := hparams.Set(root, sample); err != nil {
			t.Fatalf("seed %d: Set(%v): %v", seed, sample, err)
		}
		got := mustGet(t, root)
		if !reflect.DeepEqual(got, sample) {
			t.Fatalf("seed %d: Get after Set = %v; want the sample %v", seed, got, sample)
		}
		choice := sample["features__pick__choice"].(string)
		seen[choice]++
		_, pca := sample["features__pick__pca__components"]
		_, poly := sample["features__pick__poly__poly__degree"]
		if pca != (choice == "pca") || poly != (choice == "poly") {
			t.Errorf("seed %d: choice %q, yet pca keys %t and poly keys %t", seed, choice, pca, poly)
		}
		_, momentum := sample["mlp__momentum"]
		if momentum != (sample["mlp__solver"] == "sgd") {
			t.Errorf("seed %d: solver %v, momentum sampled %t", seed, sample["mlp__solver"], momentum)
		}
	}
	if seen["pca"] < 60 || seen["poly"] < 60 {
		t.Errorf("choices over 200 samples: %v; want both near 100", seen)
	}
}

func TestSampleIsReproducible(t *testing.T) {
	space, err := hparams.Gather(mustTree(t))
	if err != nil {
		t.Fatal(err)
	}
	draw := func(seed uint64) []hparams.Values {
		r := hparams.NewRand(seed)
		var out []hparams.Values
		for range 20 {
			v, err := space.Sample(r)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		return out
	}
	a, b := draw(42), draw(42)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two draws of seed 42 differ:\n%v\n%v", a, b)
	}
	if c := draw(43); reflect.DeepEqual(a, c) {
		t.Errorf("seeds 42 and 43 gave the same 20 samples")
	}
}

func TestSetUnknownKeyListsValidKeys(t *testing.T) {
	root := mustTree(t)
	before := mustGet(t, root)
	err := hparams.Set(root, hparams.Values{"mlp__hiden": 32, "mlp__lr": 0.1})
	if !errors.Is(err, hparams.ErrUnknownKey) {
		t.Fatalf("Set = %v; want ErrUnknownKey", err)
	}
	msg := err.Error()
	for _, want := range []string{`hparams: set: unknown key "mlp__hiden"; valid keys: `, `"mlp__hidden"`, `"features__pick__poly__poly__degree"`, `"mlp__momentum"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if after := mustGet(t, root); !reflect.DeepEqual(after, before) {
		t.Errorf("a failed Set changed the tree: %v; want %v", after, before)
	}
}

func TestSetInvalidValue(t *testing.T) {
	for _, c := range []struct {
		key   string
		value any
		want  string
	}{
		{"mlp__lr", 7, `hparams: "mlp__lr": 7 is outside LogUniform(1e-05, 1)`},
		{"mlp__hidden", 2.5, `hparams: "mlp__hidden": 2.5 is not a whole number, want an int (IntRange(16, 256))`},
		{"mlp__hidden", 1000, `hparams: "mlp__hidden": 1000 is outside IntRange(16, 256)`},
		{"mlp__act", 3, `hparams: "mlp__act": 3 is an int, want a string (Choice("relu", "tanh"))`},
		{"features__pick__choice", "svm", `hparams: "features__pick__choice": "svm" is outside Choice("pca", "poly")`},
		{"features__scale__with_mean", "yes", `hparams: "features__scale__with_mean": "yes" is a string, want a bool (Boolean(0.5))`},
	} {
		root := mustTree(t)
		before := mustGet(t, root)
		// A valid key alongside: all or nothing.
		err := hparams.Set(root, hparams.Values{c.key: c.value, "features__scale__factor": 1.5})
		if !errors.Is(err, hparams.ErrInvalidValue) || err.Error() != c.want {
			t.Errorf("Set %s = %v: got %v; want %s (ErrInvalidValue)", c.key, c.value, err, c.want)
		}
		if after := mustGet(t, root); !reflect.DeepEqual(after, before) {
			t.Errorf("Set %s = %v failed, yet changed the tree: %v; want %v", c.key, c.value, after, before)
		}
	}
}

func TestSetNamesEveryBadKey(t *testing.T) {
	err := hparams.Set(mustTree(t), hparams.Values{"nope": 1, "mlp__lr": 7, "mlp__hidden": "x"})
	if !errors.Is(err, hparams.ErrUnknownKey) || !errors.Is(err, hparams.ErrInvalidValue) {
		t.Fatalf("Set = %v; want both kinds", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"nope"`) || !strings.Contains(lines[1], `"mlp__hidden"`) || !strings.Contains(lines[2], `"mlp__lr"`) {
		t.Errorf("error lines = %q; want the unknown key, then mlp__hidden, then mlp__lr", lines)
	}
}

func TestSetConvertsNumbers(t *testing.T) {
	root := mustTree(t)
	err := hparams.Set(root, hparams.Values{
		"mlp__hidden":             128.0,    // a whole float for an int
		"mlp__lr":                 1,        // an int for a float
		"features__scale__factor": int32(2), // another Go integer
	})
	if err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, root)
	for k, want := range map[string]any{"mlp__hidden": 128, "mlp__lr": 1.0, "features__scale__factor": 2.0} {
		if got[k] != want {
			t.Errorf("%s = %v (%T); want %v (%T)", k, got[k], got[k], want, want)
		}
	}
}

func TestSetInactiveBranchAndSwitchTogether(t *testing.T) {
	root := mustTree(t)
	// The poly branch is inactive; setting its keys and the choice at once
	// configures it.
	v := hparams.Values{"features__pick__choice": "poly", "features__pick__poly__poly__degree": 3}
	if err := hparams.Set(root, v); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, root)
	if got["features__pick__poly__poly__degree"] != 3 || got["features__pick__choice"] != "poly" {
		t.Errorf("Get = %v; want poly with degree 3", got)
	}
	if _, ok := got["features__pick__pca__components"]; ok {
		t.Errorf("Get = %v reads the inactive pca branch", got)
	}
}

// A step's SetParams may refuse a combination that only it can check;
// the steps set before it are restored.
func TestSetRollsBackWhenAStepRefuses(t *testing.T) {
	w := &window{lo: 1, hi: 5}
	m := newMLP()
	root, err := flow.NewPipeline([]flow.Node{flow.Named("mlp", m), flow.Named("window", w)})
	if err != nil {
		t.Fatal(err)
	}
	before := mustGet(t, root)
	err = hparams.Set(root, hparams.Values{"mlp__hidden": 200, "mlp__act": "tanh", "window__lo": 8})
	if err == nil || !strings.Contains(err.Error(), `hparams: set: step "window" (*hparams_test.window): window: lo 8 > hi 5`) {
		t.Fatalf("Set = %v; want the window's refusal, naming the step", err)
	}
	if after := mustGet(t, root); !reflect.DeepEqual(after, before) {
		t.Errorf("after a refused Set: %v; want %v", after, before)
	}
	if m.hidden != 64 || m.act != "relu" {
		t.Errorf("mlp = %d %s; want restored 64 relu", m.hidden, m.act)
	}
}

func TestFixedChooserLeavesItsBranchOut(t *testing.T) {
	root, err := flow.NewPipeline([]flow.Node{flow.Named("c", &fixedChoice{pick: "a", branches: []flow.Node{
		flow.Named("a", &intLeaf{name: "x", value: 1, dist: hparams.IntRange(1, 3)}),
		flow.Named("b", &intLeaf{name: "y", value: 1, dist: hparams.IntRange(1, 3)}),
	}})})
	if err != nil {
		t.Fatal(err)
	}
	space, err := hparams.Gather(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := space.Keys(); !slices.Equal(got, []string{"c__a__x"}) {
		t.Errorf("Gather keys = %q; want only the active branch's", got)
	}
	if got := mustGet(t, root); !reflect.DeepEqual(got, hparams.Values{"c__a__x": 1}) {
		t.Errorf("Get = %v", got)
	}
	// Set may still reach it.
	if err := hparams.Set(root, hparams.Values{"c__b__y": 3}); err != nil {
		t.Errorf("Set of the inactive branch: %v", err)
	}
}

func grid(t *testing.T, s hparams.Space) []hparams.Values {
	t.Helper()
	seq, err := s.Grid()
	if err != nil {
		t.Fatal(err)
	}
	return slices.Collect(seq)
}

func leaf(name string, d hparams.Distribution) *intLeaf {
	vs, _ := d.Values()
	return &intLeaf{name: name, value: vs[0].(int), dist: d}
}

func TestGridCountsOnlyActiveCombinations(t *testing.T) {
	ab := func() flow.Step {
		return newChoose("a",
			flow.Named("a", leaf("a", hparams.IntRange(1, 3))),
			flow.Named("b", leaf("b", hparams.Choice(10, 20))))
	}
	nested := newChoose("x",
		flow.Named("x", ab()),
		flow.Named("y", leaf("c", hparams.IntRange(1, 4))))
	opt := &optional{child: flow.Named("inner", leaf("n", hparams.IntRange(1, 4)))}
	for _, c := range []struct {
		name string
		root flow.Step
		want int
	}{
		{"choice of 3 and 2", ab(), 5},
		{"choice in a choice", nested, 5 + 4},
		{"optional of 4", opt, 1 + 4},
		{"choice beside a leaf of 2", pipeline(t, flow.Named("pick", ab()), flow.Named("k", leaf("k", hparams.Choice(1, 2)))), 5 * 2},
		{"two choices side by side", union(t, flow.Named("p", ab()), flow.Named("q", ab())), 5 * 5},
	} {
		space, err := hparams.Gather(c.root)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		all := grid(t, space)
		if len(all) != c.want {
			t.Errorf("%s: %d combinations; want %d: %v", c.name, len(all), c.want, all)
		}
		seen := map[string]bool{}
		for _, v := range all {
			if seen[v.String()] {
				t.Errorf("%s: %v twice", c.name, v)
			}
			seen[v.String()] = true
			// Every combination configures the tree, and is what it reads.
			if err := hparams.Set(c.root, v); err != nil {
				t.Fatalf("%s: Set(%v): %v", c.name, v, err)
			}
			if got := mustGet(t, c.root); !reflect.DeepEqual(got, v) {
				t.Errorf("%s: Get after Set = %v; want %v", c.name, got, v)
			}
		}
	}
}

func pipeline(t *testing.T, nodes ...flow.Node) *flow.Pipeline {
	t.Helper()
	p, err := flow.NewPipeline(nodes)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func union(t *testing.T, nodes ...flow.Node) *flow.Union {
	t.Helper()
	u, err := flow.NewUnion(nodes...)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestGridStopsEarly(t *testing.T) {
	seq, err := hparams.Space{"a": hparams.IntRange(1, 100), "b": hparams.IntRange(1, 100)}.Grid()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range seq {
		n++
		if n == 7 {
			break
		}
	}
	if n != 7 {
		t.Errorf("yielded %d; want 7", n)
	}
}

func TestGridOfAnInfiniteSpace(t *testing.T) {
	root := mustTree(t)
	space, err := hparams.Gather(root)
	if err != nil {
		t.Fatal(err)
	}
	_, err = space.Grid()
	if !errors.Is(err, hparams.ErrNotFinite) {
		t.Fatalf("Grid = %v; want ErrNotFinite", err)
	}
	for _, key := range []string{`"mlp__lr" (LogUniform(1e-05, 1))`, `"features__scale__factor"`, `"mlp__momentum"`} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
	// Narrowed to finite values, it has a grid of active combinations.
	narrow, err := space.Override(hparams.Space{
		"mlp__lr":                             hparams.Choice(1e-3, 1e-2),
		"mlp__hidden":                         hparams.Choice(32, 64),
		"mlp__momentum":                       hparams.Quantized(hparams.Uniform(0, 0.99), 0.45), // 0, 0.45, 0.9
		"features__scale__factor":             hparams.Fixed(1),
		"features__pick__poly__scale__factor": hparams.Fixed(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	// scale: 2 (with_mean); pick: pca 3 + poly 2 (degree) × 2 (with_mean)
	// = 7; mlp: 2 lr × 2 hidden × 2 act × (adam 1 + sgd 3) = 32.
	all := grid(t, narrow)
	if got, want := len(all), 2*7*32; got != want {
		t.Errorf("%d combinations; want %d", got, want)
	}
	// Fixed(1) for a float parameter gives the float 1; every combination
	// round-trips.
	for _, v := range all {
		if f := v["features__scale__factor"]; f != 1.0 {
			t.Fatalf("factor = %v (%T); want the float 1", f, f)
		}
		if err := hparams.Set(root, v); err != nil {
			t.Fatalf("Set(%v): %v", v, err)
		}
		if got := mustGet(t, root); !reflect.DeepEqual(got, v) {
			t.Fatalf("Get after Set = %v; want %v", got, v)
		}
	}
}

func TestOverride(t *testing.T) {
	root := mustTree(t)
	space, err := hparams.Gather(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("unknown key", func(t *testing.T) {
		_, err := space.Override(hparams.Space{"mlp__rate": hparams.Uniform(0, 1)})
		if !errors.Is(err, hparams.ErrUnknownKey) || !strings.Contains(err.Error(), `unknown key "mlp__rate"; valid keys: "features__pick__choice", `) {
			t.Errorf("Override = %v; want ErrUnknownKey listing the valid keys", err)
		}
	})
	t.Run("wider", func(t *testing.T) {
		for key, d := range map[string]hparams.Distribution{
			"mlp__lr":                hparams.LogUniform(1e-5, 10),
			"mlp__hidden":            hparams.Choice(8, 16),
			"features__pick__choice": hparams.Choice("pca", "svm"),
			"mlp__act":               hparams.Uniform(0, 1),
		} {
			_, err := space.Override(hparams.Space{key: d})
			if !errors.Is(err, hparams.ErrInvalidValue) || !strings.Contains(err.Error(), "is not within") {
				t.Errorf("Override %s with %v = %v; want not within", key, d, err)
			}
		}
	})
	t.Run("narrower", func(t *testing.T) {
		narrow, err := space.Override(hparams.Space{
			"features__pick__choice": hparams.Fixed("poly"),
			"mlp__lr":                hparams.LogUniform(1e-3, 1e-1),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := narrow["features__pick__poly__poly__degree"].String(); got != `When(Choice(2, 3), "features__pick__choice", "poly")` {
			t.Errorf("the branch's condition changed: %s", got)
		}
		if got := space["mlp__lr"].String(); got != "LogUniform(1e-05, 1)" {
			t.Errorf("Override changed its receiver: %s", got)
		}
		r := hparams.NewRand(1)
		for range 50 {
			v, err := narrow.Sample(r)
			if err != nil {
				t.Fatal(err)
			}
			if v["features__pick__choice"] != "poly" || v["mlp__lr"].(float64) < 1e-3 || v["mlp__lr"].(float64) > 1e-1 {
				t.Fatalf("sample %v is outside the narrowed space", v)
			}
			if err := hparams.Set(root, v); err != nil {
				t.Fatalf("Set(%v): %v", v, err)
			}
		}
	})
}

func TestSwitchThatContradictsItself(t *testing.T) {
	l := &liar{chooseOneOf: *newChoose("a", flow.Named("a", &scaler{}), flow.Named("b", &scaler{}))}
	for name, f := range map[string]func() error{
		"Get":    func() error { _, err := hparams.Get(l); return err },
		"Gather": func() error { _, err := hparams.Gather(l); return err },
		"Set":    func() error { return hparams.Set(l, hparams.Values{"choice": "b"}) },
	} {
		err := f()
		if err == nil || !strings.Contains(err.Error(), `Active("a") is false, but ActiveWhen("a")`) {
			t.Errorf("%s = %v; want the contradiction", name, err)
		}
	}
}

// badParams is a Tunable whose parameters are malformed.
type badParams struct {
	passThrough
	p hparams.Values
}

func (b *badParams) Params() hparams.Values         { return maps.Clone(b.p) }
func (b *badParams) SetParams(hparams.Values) error { return nil }

// spaceOnly has a Space but no Params.
type spaceOnly struct{ passThrough }

func (spaceOnly) Space() hparams.Space { return hparams.Space{"x": hparams.Uniform(0, 1)} }

// spacer is a Tunable with a given Space.
type spacer struct {
	badParams
	s hparams.Space
}

func (s *spacer) Space() hparams.Space { return s.s }

func TestMalformedSteps(t *testing.T) {
	for _, c := range []struct {
		name string
		step flow.Step
		want string
	}{
		{"name with __", &badParams{p: hparams.Values{"a__b": 1}}, `parameter "a__b": "__" and "/" are reserved for paths`},
		{"name edged with _", &badParams{p: hparams.Values{"_a": 1}}, `parameter "_a": a name may not begin or end with "_"`},
		{"unsupported type", &badParams{p: hparams.Values{"a": []int{1}}}, `parameter "a": [1] is a []int, want a float64, int, bool or string`},
		{"space without params", spaceOnly{}, `has a Space but no Params`},
		{"space of another type", &spacer{badParams: badParams{p: hparams.Values{"a": 1.5}}, s: hparams.Space{"a": hparams.Choice(1, 2)}}, `parameter "a" is a float, but its Space's Choice(1, 2) gives ints`},
		{"space beyond params", &spacer{badParams: badParams{p: hparams.Values{"a": 1}}, s: hparams.Space{"b": hparams.IntRange(0, 1)}}, `its Space has "b", which its Params lack`},
	} {
		root := pipeline(t, flow.Named("s", c.step))
		_, err := hparams.Get(root)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `step "s"`) {
			t.Errorf("%s: Get = %v; want %q naming the step", c.name, err, c.want)
		}
	}
	// An invalid distribution in a step's space: Gather names the key.
	root := pipeline(t, flow.Named("s", &spacer{badParams: badParams{p: hparams.Values{"a": 1.0}}, s: hparams.Space{"a": hparams.Uniform(2, 1)}}))
	_, err := hparams.Gather(root)
	if err == nil || err.Error() != `hparams: "s__a": Uniform(2, 1): want finite bounds, the lower below the upper` {
		t.Errorf("Gather = %v", err)
	}
}

func TestValuesNested(t *testing.T) {
	v := hparams.Values{"a__b__c": 1, "a__b__d": "x", "a__e": true, "f": 2.5}
	n, err := v.Nested()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": map[string]any{"b": map[string]any{"c": 1, "d": "x"}, "e": true}, "f": 2.5}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("Nested = %v; want %v", n, want)
	}
	back, err := hparams.FromNested(n)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, v) {
		t.Errorf("FromNested(Nested(v)) = %v; want %v", back, v)
	}
	for _, bad := range []hparams.Values{{"a": 1, "a__b": 2}, {"a__b": 1, "a__b__c": 2}, {"a____b": 1}} {
		if _, err := bad.Nested(); err == nil {
			t.Errorf("Nested(%v) = nil error; want a conflict", bad)
		}
	}
	for _, bad := range []map[string]any{{"a__b": 1}, {"": 1}, {"a": map[string]any{}}} {
		if _, err := hparams.FromNested(bad); err == nil {
			t.Errorf("FromNested(%v) = nil error", bad)
		}
	}
	// The tree's own values, through the nested form, set the tree.
	root := mustTree(t)
	cur := mustGet(t, root)
	n, err = cur.Nested()
	if err != nil {
		t.Fatal(err)
	}
	if n["mlp"].(map[string]any)["hidden"] != 64 {
		t.Errorf("nested mlp = %v", n["mlp"])
	}
	flat, err := hparams.FromNested(n)
	if err != nil || !reflect.DeepEqual(flat, cur) {
		t.Errorf("FromNested = %v, %v; want %v", flat, err, cur)
	}
}
