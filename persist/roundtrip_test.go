package persist_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

// TestRoundTripDigits fits pack → StandardScaler → LogisticRegression on
// the digits, saves it to a directory, a file and bytes, and checks that
// each loaded pipeline gives the same outputs, to the bit (classes and
// float32 probabilities), in both engines, with the same hyperparameters
// and node settings.
func TestRoundTripDigits(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checkedMem(t)
	ctx := testCtx(t)
	train, test := digits(ctx, t, mem)
	p := digitsPipeline(t)
	r := flow.Runner{Engine: flow.Sequential, Allocator: mem}
	if _, err := r.Fit(ctx, p, train); err != nil {
		t.Fatal(err)
	}
	want := outputs(ctx, t, r, p, test)
	if len(want) == 0 {
		t.Fatal("no test batches")
	}
	for how, m := range roundTrips(t, p, persist.WithAllocator(mem)) {
		q := must[*flow.Pipeline](t)(m.Pipeline())
		for _, e := range engines {
			got := outputs(ctx, t, flow.Runner{Engine: e, Allocator: mem}, q, test)
			if !slices.Equal(got, want) {
				t.Fatalf("%s, %s: the loaded pipeline's outputs differ from the saved one's", how, e)
			}
		}
		sameTree(t, how, p, q)
	}
}

// sameTree checks that two trees have the same shape, types, node
// settings and hyperparameters (of every step, active or not).
func sameTree(t *testing.T, how string, a, b flow.Step) {
	t.Helper()
	type node struct {
		path, typ string
		settings  flow.NodeSettings
		params    string
	}
	list := func(s flow.Step) []node {
		var out []node
		err := flow.Walk(s, func(v flow.Visit) error {
			n := node{path: v.Path.String(), typ: fmt.Sprintf("%T", v.Node.Step)}
			n.settings, _ = v.Node.Settings()
			if tu, ok := v.Node.Step.(hparams.Tunable); ok {
				n.params = tu.Params().String()
			}
			if p, ok := v.Node.Step.(*flow.Pipeline); ok {
				n.params = fmt.Sprint(p.Defaults())
			}
			out = append(out, n)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	na, nb := list(a), list(b)
	if !slices.Equal(na, nb) {
		t.Fatalf("%s: the loaded tree differs:\n got %+v\nwant %+v", how, nb, na)
	}
	ga := must[hparams.Values](t)(hparams.Get(a))
	gb := must[hparams.Values](t)(hparams.Get(b))
	if ga.String() != gb.String() {
		t.Fatalf("%s: hparams.Get: got %v; want %v", how, gb, ga)
	}
}

// TestRoundTripUnionChoose saves a fitted pipeline with a feature union, a
// ChooseOneOf (choice set to its second branch, the first fitted too),
// an Optional that is off, a TrainOnly noise, and replicated and frozen
// nodes, and checks the loaded ones.
func TestRoundTripUnionChoose(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checkedMem(t)
	ctx := testCtx(t)
	train, test := digits(ctx, t, mem)
	p := unionChoosePipeline(t)
	r := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	if _, err := r.Fit(ctx, p, train); err != nil {
		t.Fatal(err)
	}
	// Fit the branch that is not chosen too, so that its state is saved.
	if err := hparams.Set(p, hparams.Values{"model__choice": "std"}); err != nil {
		t.Fatal(err)
	}
	if rw, ok := train.(flow.Rewinder); ok {
		if err := rw.Rewind(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Fit(ctx, p, train); err != nil {
		t.Fatal(err)
	}
	if err := hparams.Set(p, hparams.Values{"model__choice": "mm"}); err != nil {
		t.Fatal(err)
	}
	want := outputs(ctx, t, r, p, test)
	hp := must[hparams.Values](t)(hparams.Get(p))
	if hp["model__choice"] != "mm" {
		t.Fatalf("choice %v; want mm", hp["model__choice"])
	}
	for how, m := range roundTrips(t, p, persist.WithAllocator(mem)) {
		q := must[*flow.Pipeline](t)(m.Pipeline())
		sameTree(t, how, p, q)
		for _, e := range engines {
			got := outputs(ctx, t, flow.Runner{Engine: e, Allocator: mem}, q, test)
			if !slices.Equal(got, want) {
				t.Fatalf("%s, %s: the loaded pipeline's outputs differ from the saved one's", how, e)
			}
		}
		// The branch that was not chosen kept its fitted state too.
		for _, tree := range []flow.Step{p, q} {
			if err := hparams.Set(tree, hparams.Values{"model__choice": "std"}); err != nil {
				t.Fatal(err)
			}
		}
		a, b := outputs(ctx, t, r, p, test), outputs(ctx, t, r, q, test)
		if !slices.Equal(a, b) {
			t.Fatalf("%s: the other branch's outputs differ after the load", how)
		}
		if err := hparams.Set(p, hparams.Values{"model__choice": "mm"}); err != nil {
			t.Fatal(err)
		}
	}
}

func unionChoosePipeline(t *testing.T) *flow.Pipeline {
	t.Helper()
	std := must[*steps.StandardScaler](t)(steps.NewStandardScaler())
	mm := must[*steps.MinMaxScaler](t)(steps.NewMinMaxScaler(steps.FeatureRange(0.1, 0.3)))
	union := must[*flow.Union](t)(flow.NewUnion(
		flow.Named("std", std, flow.Replicas(2)),
		flow.Named("mm", must[*flow.Pipeline](t)(flow.NewPipeline([]flow.Node{
			flow.Named("scale", mm),
			flow.Named("maybe", must[*steps.Optional](t)(steps.NewOptional(flow.Named("noise",
				must[*steps.GaussianNoise](t)(steps.NewGaussianNoise("x", 0.1, 3))), false))),
		}))),
	))
	noise := must[*steps.TrainOnly](t)(steps.NewTrainOnly(flow.Named("noise",
		must[*steps.GaussianNoise](t)(steps.NewGaussianNoise("std__x", 0.05, 11)))))
	model := func(col string, seed uint64) *steps.LogisticRegression {
		return must[*steps.LogisticRegression](t)(steps.NewLogisticRegression("digit", 10, steps.LinearColumn(col),
			steps.LearningRate(0.1), steps.Momentum(0.5), steps.Seed(seed), steps.Probabilities(true)))
	}
	choose := must[*steps.ChooseOneOf](t)(steps.NewChooseOneOf(
		flow.Named("std", model("std__x", 1)),
		flow.Named("mm", model("mm__x", 2)),
	))
	if err := choose.SetParams(hparams.Values{"choice": "mm"}); err != nil {
		t.Fatal(err)
	}
	return must[*flow.Pipeline](t)(flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: pixels()}),
		flow.Named("features", union, flow.QueueCapacity(2)),
		flow.Named("augment", noise),
		flow.Named("model", choose),
	}))
}

// TestNoiseResumes checks that the generator's state is saved: a loaded
// GaussianNoise draws what the saved one would have drawn next.
func TestNoiseResumes(t *testing.T) {
	mem := checkedMem(t)
	ctx := flow.WithAllocator(testCtx(t), mem)
	g := must[*steps.GaussianNoise](t)(steps.NewGaussianNoise("x", 1, 42))
	batch := func() flow.Batch {
		m := minibatch.NewMatrix(mem, 4, 3)
		defer m.Release()
		return flow.Batch{X: m.Record("x")}
	}
	draw := func(s flow.Step) string {
		in := batch()
		defer in.Release()
		out, err := s.(flow.FitTransformer).FitTransform(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Release()
		return recordJSON(t, out.X)
	}
	draw(g) // move the generator on
	b := must[[]byte](t)(persist.Marshal(g))
	m := must[*persist.Model](t)(persist.Unmarshal(b))
	want, got := draw(g), draw(m.Step)
	if got != want {
		t.Fatalf("the loaded noise draws %s; want %s", got, want)
	}
	if again := draw(must[*persist.Model](t)(persist.Unmarshal(b)).Step); again != want {
		t.Fatalf("a second load draws %s; want %s", again, want)
	}
}

// TestExtraBlobs checks that extra blobs come back, also empty ones.
func TestExtraBlobs(t *testing.T) {
	s := must[*steps.SelectColumns](t)(steps.NewSelectColumns("a", "b"))
	pos := []byte(`{"offset": 1234}`)
	for how, m := range roundTrips(t, s, persist.WithExtra("positions", pos), persist.WithExtra("empty", nil)) {
		if !bytes.Equal(m.Extra["positions"], pos) || m.Extra["empty"] == nil || len(m.Extra["empty"]) != 0 || len(m.Extra) != 2 {
			t.Errorf("%s: extra %q; want positions %q and an empty one", how, m.Extra, pos)
		}
		if got := m.Step.(*steps.SelectColumns).Columns(); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("%s: columns %v; want [a b]", how, got)
		}
		if _, err := m.Pipeline(); err == nil {
			t.Errorf("%s: Pipeline of a SelectColumns: no error", how)
		}
	}
}

var _ = context.Background
