package persist_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

var digitsPath = filepath.Join("..", "examples", "data", "digits.csv.gz")

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func checkedMem(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

var engines = []flow.Engine{flow.Sequential, flow.Streaming}

func pixels() []string {
	px := make([]string, 64)
	for i := range px {
		px[i] = fmt.Sprint("px", i)
	}
	return px
}

// digits returns the train and test splits of the digits (80/20,
// stratified by nothing but a seed), in batches of 32.
func digits(ctx context.Context, t *testing.T, mem memory.Allocator) (train flow.Source, test *minibatch.SplitSource) {
	t.Helper()
	alloc := minibatch.WithAllocator(mem)
	src := must[*minibatch.CSVSource](t)(minibatch.OpenCSV(digitsPath, alloc, minibatch.WithHeader(false),
		minibatch.WithColumnNames(append(pixels(), "digit")...), minibatch.WithLabels("digit")))
	t.Cleanup(func() { src.Close() })
	tr, te, err := minibatch.Holdout(ctx, src, 0.2, minibatch.WithSeed(1), alloc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(); te.Close() })
	batches := must[*minibatch.Rebatcher](t)(minibatch.NewRebatcher(tr, 32, minibatch.Keep, alloc))
	t.Cleanup(func() { batches.Close() })
	stream := must[*minibatch.Repeater](t)(minibatch.Repeat(batches, 3))
	return stream, te
}

// digitsPipeline is pack → StandardScaler → LogisticRegression, with a
// Joiner after the scaler (fitted on the first epoch).
func digitsPipeline(t *testing.T) *flow.Pipeline {
	t.Helper()
	scale := must[*steps.StandardScaler](t)(steps.NewStandardScaler())
	model := must[*steps.LogisticRegression](t)(steps.NewLogisticRegression("digit", 10, steps.LearningRate(0.05),
		steps.Momentum(0.9), steps.L2(1e-4), steps.Seed(7), steps.Probabilities(true)))
	return must[*flow.Pipeline](t)(flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: pixels()}),
		flow.Named("scale", scale, flow.FitEpochs(1), flow.Barrier(barrier.Joiner)),
		flow.Named("logreg", model, flow.QueueCapacity(3)),
	}, flow.QueueCapacity(5)))
}

// outputs transforms src with p and returns every output batch as JSON
// (X and Y): equal outputs are equal strings, to the bit (float32 values
// print as the shortest decimal that reads back to the same bits).
func outputs(ctx context.Context, t *testing.T, r flow.Runner, p *flow.Pipeline, src flow.Source) []string {
	t.Helper()
	if rw, ok := src.(flow.Rewinder); ok && rw.Replayable() {
		if err := rw.Rewind(); err != nil {
			t.Fatal(err)
		}
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
	var s string
	for i, col := range rec.Columns() {
		b, err := json.Marshal(col)
		if err != nil {
			t.Fatal(err)
		}
		s += rec.Schema().Field(i).Name + "=" + string(b) + ";"
	}
	return s
}

// roundTrips saves p three ways and returns what each load gives, by
// name ("dir", "file", "bytes").
func roundTrips(t *testing.T, p flow.Step, opts ...persist.Option) map[string]*persist.Model {
	t.Helper()
	dir := t.TempDir()
	out := map[string]*persist.Model{}
	if err := persist.SaveDir(filepath.Join(dir, "model"), p, opts...); err != nil {
		t.Fatal(err)
	}
	out["dir"] = must[*persist.Model](t)(persist.LoadDir(filepath.Join(dir, "model"), opts...))
	if err := persist.SaveFile(filepath.Join(dir, "model.pnst"), p, opts...); err != nil {
		t.Fatal(err)
	}
	out["file"] = must[*persist.Model](t)(persist.LoadFile(filepath.Join(dir, "model.pnst"), opts...))
	b := must[[]byte](t)(persist.Marshal(p, opts...))
	out["bytes"] = must[*persist.Model](t)(persist.Unmarshal(b, opts...))
	return out
}
