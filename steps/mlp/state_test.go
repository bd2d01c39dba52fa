package mlp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/persist/persisttest"
	"github.com/penstock-ml/penstock/steps"
	"github.com/penstock-ml/penstock/steps/mlp"
	"github.com/penstock-ml/penstock/steps/nn"
)

func pixelNames() []string {
	px := make([]string, 64)
	for i := range px {
		px[i] = fmt.Sprint("px", i)
	}
	return px
}

// digitsSplits opens the digits CSV and returns its train side in
// batches of 64, repeated epochs times, and its test side (rewindable).
// Everything is closed when the test ends.
func digitsSplits(ctx context.Context, t *testing.T, mem memory.Allocator, epochs int) (flow.Source, *minibatch.SplitSource) {
	t.Helper()
	alloc := minibatch.WithAllocator(mem)
	src, err := minibatch.OpenCSV(digitsPath, alloc, minibatch.WithHeader(false),
		minibatch.WithColumnNames(append(pixelNames(), "digit")...), minibatch.WithLabels("digit"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	train, test, err := minibatch.Holdout(ctx, src, 0.25, minibatch.WithSeed(0), alloc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { train.Close(); test.Close() })
	batches, err := minibatch.NewRebatcher(train, 64, minibatch.Keep, alloc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { batches.Close() })
	stream, err := minibatch.Repeat(batches, epochs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stream.Close() })
	return stream, test
}

// digitsMLP is pack → StandardScaler → Classifier (one hidden layer of
// 32, Adam, dropout 0.2, seed 3, with probabilities).
func digitsMLP(t *testing.T) (*flow.Pipeline, *mlp.Classifier) {
	t.Helper()
	scale, err := steps.NewStandardScaler()
	if err != nil {
		t.Fatal(err)
	}
	spec := nn.Default(nn.CrossEntropy)
	spec.Hidden, spec.Dropout, spec.Seed, spec.LearningRate = []int{32}, 0.2, 3, 0.003
	clf, err := mlp.NewClassifier(10, spec, mlp.Label("digit"), mlp.WithProba())
	if err != nil {
		t.Fatal(err)
	}
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: pixelNames()}),
		flow.Named("scale", scale, flow.FitEpochs(1)),
		flow.Named("mlp", clf),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, clf
}

// transformJSON transforms src (rewound first) with p and returns every
// output batch as JSON, X and Y: equal strings are equal outputs to the
// bit (a float32 prints as the shortest decimal that reads back to it).
func transformJSON(ctx context.Context, t *testing.T, r flow.Runner, p *flow.Pipeline, src *minibatch.SplitSource) []string {
	t.Helper()
	if err := src.Rewind(); err != nil {
		t.Fatal(err)
	}
	s, err := r.Transform(ctx, p, src)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for b, err := range s.All(ctx) {
		if err != nil {
			s.Close()
			t.Fatal(err)
		}
		out = append(out, recordJSON(t, b.X)+"|"+recordJSON(t, b.Y))
		b.Release()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

func recordJSON(t *testing.T, rec arrow.RecordBatch) string {
	t.Helper()
	if rec == nil {
		return "nil"
	}
	var s strings.Builder
	for i, col := range rec.Columns() {
		b, err := json.Marshal(col)
		if err != nil {
			t.Fatal(err)
		}
		s.WriteString(rec.Schema().Field(i).Name + "=" + string(b) + ";")
	}
	return s.String()
}

// classifierOf returns the Classifier node "mlp" of a loaded pipeline.
func classifierOf(t *testing.T, p *flow.Pipeline) *mlp.Classifier {
	t.Helper()
	for _, n := range p.Children() {
		if n.Name == "mlp" {
			c, ok := n.Step.(*mlp.Classifier)
			if !ok {
				t.Fatalf("node mlp is a %T; want *mlp.Classifier", n.Step)
			}
			return c
		}
	}
	t.Fatal("no node mlp")
	return nil
}

// TestSaveLoadDigits fits pack → StandardScaler → Classifier on the
// digits for 3 epochs, saves it to a directory, a file and bytes, and
// checks that each load transforms the test rows to the bit as the
// original does, in both engines, and goes on fitting exactly as the
// original: the same weights, steps and outputs after one more epoch
// (the optimizer's moments and the dropout generator were saved).
func TestSaveLoadDigits(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checked(t)
	ctx := deadline(t, 2*time.Minute)
	p, clf := digitsMLP(t)
	train, test := digitsSplits(ctx, t, mem, 3)
	seq := flow.Runner{Engine: flow.Sequential, Allocator: mem}
	if _, err := seq.Fit(ctx, p, train); err != nil {
		t.Fatal(err)
	}
	if got, want := clf.Steps(), int64(3*22); got != want {
		t.Fatalf("got %d optimizer steps; want %d (22 batches × 3 epochs)", got, want)
	}

	dir := t.TempDir()
	if err := persist.SaveDir(filepath.Join(dir, "model"), p); err != nil {
		t.Fatal(err)
	}
	if err := persist.SaveFile(filepath.Join(dir, "model.penstock"), p); err != nil {
		t.Fatal(err)
	}
	saved, err := persist.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	loads := map[string]func() (*persist.Model, error){
		"dir":   func() (*persist.Model, error) { return persist.LoadDir(filepath.Join(dir, "model")) },
		"file":  func() (*persist.Model, error) { return persist.LoadFile(filepath.Join(dir, "model.penstock")) },
		"bytes": func() (*persist.Model, error) { return persist.Unmarshal(saved) },
	}
	load := func(how string) (*flow.Pipeline, *mlp.Classifier) {
		t.Helper()
		m, err := loads[how]()
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		lp, err := m.Pipeline()
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		return lp, classifierOf(t, lp)
	}

	for _, engine := range []flow.Engine{flow.Sequential, flow.Streaming} {
		r := flow.Runner{Engine: engine, Allocator: mem}
		want := transformJSON(ctx, t, r, p, test)
		if len(want) == 0 || !strings.Contains(want[0], mlp.ProbaColumn+"=") {
			t.Fatalf("%s: the original's outputs %.80q; want batches with %q", engine, want, mlp.ProbaColumn)
		}
		// The reference: a copy of the original, fitted one more epoch.
		ref, err := flow.Copy(p)
		if err != nil {
			t.Fatal(err)
		}
		refP := ref.(*flow.Pipeline)
		more, _ := digitsSplits(ctx, t, mem, 1)
		if _, err := r.Fit(ctx, refP, more); err != nil {
			t.Fatal(err)
		}
		refClf := classifierOf(t, refP)
		wantMore := transformJSON(ctx, t, r, refP, test)
		if slices.Equal(wantMore, want) {
			t.Fatalf("%s: one more epoch changed no output", engine)
		}
		for _, how := range []string{"dir", "file", "bytes"} {
			lp, lc := load(how)
			if got := transformJSON(ctx, t, r, lp, test); !slices.Equal(got, want) {
				t.Errorf("%s, %s: the loaded pipeline's outputs differ from the original's", engine, how)
			}
			if got, want := lc.Steps(), clf.Steps(); got != want {
				t.Errorf("%s, %s: loaded with %d steps; want %d", engine, how, got, want)
			}
			more, _ := digitsSplits(ctx, t, mem, 1)
			if _, err := r.Fit(ctx, lp, more); err != nil {
				t.Fatal(err)
			}
			if !equalLayers(lc.Weights(), refClf.Weights()) {
				t.Errorf("%s, %s: after one more epoch the loaded model's weights differ from the original's", engine, how)
			}
			if got, want := lc.Steps(), refClf.Steps(); got != want {
				t.Errorf("%s, %s: %d steps after one more epoch; want %d", engine, how, got, want)
			}
			if got := transformJSON(ctx, t, r, lp, test); !slices.Equal(got, wantMore) {
				t.Errorf("%s, %s: after one more epoch the outputs differ from the original's", engine, how)
			}
		}
	}
}

// TestSaveLoadRegressor: a Regressor fitted with SGD (momentum) and
// dropout comes back from bytes with its weights and goes on fitting as
// the original does; its columns come back too.
func TestSaveLoadRegressor(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checked(t)
	ctx := deadline(t, 30*time.Second)
	r := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	spec := nn.Default(nn.MSE)
	spec.Hidden, spec.Optimizer, spec.Dropout, spec.LearningRate, spec.Seed = []int{8, 4}, nn.SGD, 0.25, 0.01, 5
	m, err := mlp.NewRegressor(spec)
	if err != nil {
		t.Fatal(err)
	}
	fitBlobs(t, ctx, r, pipeline(t, m), 2)
	b, err := persist.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := persist.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := loaded.Step.(*mlp.Regressor)
	if !ok {
		t.Fatalf("loaded a %T; want *mlp.Regressor", loaded.Step)
	}
	if !equalLayers(l.Weights(), m.Weights()) || l.Steps() != m.Steps() {
		t.Fatalf("loaded %d steps and other weights; want %d and the original's", l.Steps(), m.Steps())
	}
	if got, want := l.Spec().Params(), m.Spec().Params(); !slices.Equal(mapKV(got), mapKV(want)) {
		t.Errorf("loaded spec %v; want %v", got, want)
	}
	before := m.Weights()
	fitBlobs(t, ctx, r, pipeline(t, m), 1)
	fitBlobs(t, ctx, r, pipeline(t, l), 1)
	if equalLayers(m.Weights(), before) {
		t.Fatal("one more epoch did not change the weights")
	}
	if !equalLayers(l.Weights(), m.Weights()) {
		t.Error("after one more epoch the loaded regressor's weights differ from the original's")
	}
}

func mapKV(v map[string]any) []string {
	out := make([]string, 0, len(v))
	for k, x := range v {
		out = append(out, fmt.Sprintf("%s=%v", k, x))
	}
	slices.Sort(out)
	return out
}

// TestLoadRefusesOtherNetwork: a state that does not fit the saved
// network (here a manifest edited to say two hidden layers where the
// weights are of one) is refused with an error that names the step and
// the layer counts.
func TestLoadRefusesOtherNetwork(t *testing.T) {
	defer goleak.VerifyNone(t)
	r := flow.Runner{Engine: flow.Sequential, Allocator: checked(t)}
	ctx := deadline(t, 30*time.Second)
	m := newClassifier(t, smallSpec())
	fitBlobs(t, ctx, r, pipeline(t, m), 1)
	dir := filepath.Join(t.TempDir(), "model")
	if err := persist.SaveDir(dir, m); err != nil {
		t.Fatal(err)
	}
	if err := persisttest.ReplaceInManifest(dir, `"hidden":{"string":"16"}`, `"hidden":{"string":"16,16"}`); err != nil {
		t.Fatal(err)
	}
	_, err := persist.LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "mlp.Classifier") || !strings.Contains(err.Error(), `"layers" is 2, want 3`) {
		t.Fatalf("load of another network: error %v; want one naming mlp.Classifier and the layer counts", err)
	}
}
