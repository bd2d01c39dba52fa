package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
)

// classify is a step that reads the class probabilities "proba" of X and
// adds their argmax as the int64 column "label"; Y passes through. It
// fails on batch failAt (when it is not negative).
type classify struct{ failAt int64 }

var errStep = errors.New("classify failed on purpose")

func (s classify) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if in.Seq == s.failAt {
		return flow.Batch{}, errStep
	}
	idx := in.X.Schema().FieldIndices("proba")
	if len(idx) != 1 {
		return flow.Batch{}, fmt.Errorf("classify: no column proba")
	}
	proba := in.X.Column(idx[0])
	vals, rows, width, err := minibatch.Float32View(proba)
	if err != nil {
		return flow.Batch{}, err
	}
	b := array.NewInt64Builder(flow.Allocator(ctx))
	defer b.Release()
	for i := range rows {
		best := 0
		for k := range width {
			if vals[i*width+k] > vals[i*width+best] {
				best = k
			}
		}
		b.Append(int64(best))
	}
	label := b.NewArray()
	defer label.Release()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "proba", Type: proba.DataType()},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	out := flow.Batch{X: array.NewRecordBatch(schema, []arrow.Array{proba, label}, int64(rows)), Y: in.Y}
	if in.Y != nil {
		in.Y.Retain()
	}
	return out, nil
}

// refSource returns a source of the reference classification data in
// batches of 5, 7, 1, 0 and 10 rows: X holds "proba" (float32 class
// probabilities), Y holds "class" (int64), or no Y when noY is set.
func refSource(t *testing.T, mem memory.Allocator, noY bool) *minibatch.Memory {
	t.Helper()
	proba, class := f32Lists(refProbs()...)(mem), int64s(refClasses...)(mem)
	defer proba.Release()
	defer class.Release()
	xs := arrow.NewSchema([]arrow.Field{{Name: "proba", Type: proba.DataType()}}, nil)
	ys := arrow.NewSchema([]arrow.Field{{Name: "class", Type: class.DataType()}}, nil)
	var x, y []arrow.RecordBatch
	ps, cs := batches(proba), batches(class)
	for i := range ps {
		x = append(x, array.NewRecordBatch(xs, []arrow.Array{ps[i]}, int64(ps[i].Len())))
		y = append(y, array.NewRecordBatch(ys, []arrow.Array{cs[i]}, int64(cs[i].Len())))
		ps[i].Release()
		cs[i].Release()
	}
	defer func() {
		for i := range x {
			x[i].Release()
			y[i].Release()
		}
	}()
	srcY := y
	if noY {
		srcY = nil
	}
	src, err := minibatch.FromRecords(x, srcY)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

func classifier(t *testing.T, failAt int64) *flow.Pipeline {
	t.Helper()
	p, err := flow.NewPipeline([]flow.Node{flow.Named("classify", classify{failAt: failAt}, flow.Replicas(2))})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var engines = []flow.Engine{flow.Sequential, flow.Streaming}

// TestScore scores a pipeline's output with both engines, twice with the
// same metrics (Score resets them), against scikit-learn's values.
func TestScore(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			mem := checkedMem(t)
			ctx := testCtx(t)
			r := flow.Runner{Engine: e, Allocator: mem}
			acc, f1 := metrics.Accuracy(), metrics.MacroF1()
			for round := range 2 {
				src := refSource(t, mem, false)
				got, err := metrics.Score(ctx, r, classifier(t, -1), src, "label", "class", acc, f1)
				if err != nil {
					t.Fatalf("round %d: Score: %v", round, err)
				}
				want := map[string]float64{"accuracy": 0.30434782608695654, "macro_f1": 0.2939291101055807}
				if len(got) != len(want) || !near(got["accuracy"], want["accuracy"]) || !near(got["macro_f1"], want["macro_f1"]) {
					t.Errorf("round %d: got %v; want %v (scikit-learn)", round, got, want)
				}
				if acc.Rows() != int64(len(refClasses)) {
					t.Errorf("round %d: accuracy over %d rows; want %d", round, acc.Rows(), len(refClasses))
				}
			}
			got, err := metrics.Score(ctx, r, classifier(t, -1), refSource(t, mem, false), "proba", "class", metrics.LogLoss())
			if want := 3.0430108434535468; err != nil || !near(got["log_loss"], want) {
				t.Errorf("log_loss: got %v, %v; want %v (scikit-learn, float32 probabilities)", got, err, want)
			}
		})
	}
}

// TestScoreErrors checks that every way a Score can fail is an error that
// says where, and leaves nothing running or allocated.
func TestScoreErrors(t *testing.T) {
	cases := []struct {
		name        string
		failAt      int64
		noY         bool
		pred, truth string
		ms          func() []metrics.Metric
		want        []string
		is          error
	}{
		{name: "missing prediction column", failAt: -1, pred: "labels", truth: "class",
			want: []string{`batch 0: no X column "labels" (X has columns "proba", "label")`}},
		{name: "missing truth column", failAt: -1, pred: "label", truth: "y",
			want: []string{`batch 0: no Y column "y" (Y has columns "class")`}},
		{name: "no Y", failAt: -1, noY: true, pred: "label", truth: "class",
			want: []string{`batch 0 has no Y, want the truth column "class" in Y`}},
		{name: "a column a metric cannot read", failAt: -1, pred: "label", truth: "class",
			ms:   func() []metrics.Metric { return []metrics.Metric{metrics.Accuracy(), metrics.LogLoss()} },
			want: []string{`metrics: batch 0, prediction X column "label", truth Y column "class": metrics: log_loss: prediction has type int64`}},
		{name: "a step fails", failAt: 2, pred: "label", truth: "class", is: errStep,
			want: []string{"metrics: score: ", `step "classify"`, "classify failed on purpose"}},
		{name: "no metrics", failAt: -1, pred: "label", truth: "class",
			ms: func() []metrics.Metric { return nil }, want: []string{"no metrics"}},
		{name: "two metrics of one name", failAt: -1, pred: "label", truth: "class",
			ms:   func() []metrics.Metric { return []metrics.Metric{metrics.MSE(), metrics.Accuracy(), metrics.MSE()} },
			want: []string{`metrics 0 and 2 are both named "mse"`}},
		{name: "a nil metric", failAt: -1, pred: "label", truth: "class",
			ms: func() []metrics.Metric { return []metrics.Metric{metrics.Accuracy(), nil} }, want: []string{"metric 1 is nil"}},
	}
	for _, e := range engines {
		for _, tc := range cases {
			t.Run(e.String()+"/"+tc.name, func(t *testing.T) {
				defer goleak.VerifyNone(t)
				mem := checkedMem(t)
				ms := []metrics.Metric{metrics.Accuracy()}
				if tc.ms != nil {
					ms = tc.ms()
				}
				got, err := metrics.Score(testCtx(t), flow.Runner{Engine: e, Allocator: mem}, classifier(t, tc.failAt),
					refSource(t, mem, tc.noY), tc.pred, tc.truth, ms...)
				if err == nil {
					t.Fatalf("got %v, no error; want an error saying %q", got, tc.want)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("got error %q; want it to contain %q", err, w)
					}
				}
				t.Logf("error: %v", err)
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("got error %v; want one wrapping %v", err, tc.is)
				}
			})
		}
	}
}

// emptySource has no batches.
type emptySource struct{}

func (emptySource) Next(ctx context.Context) (flow.Batch, error) { return flow.Batch{}, io.EOF }

func TestScoreEmpty(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			got, err := metrics.Score(testCtx(t), flow.Runner{Engine: e}, classifier(t, -1), emptySource{}, "label", "class", metrics.Accuracy())
			if !errors.Is(err, metrics.ErrEmpty) || got != nil {
				t.Errorf("got %v, %v; want nil, an error wrapping ErrEmpty", got, err)
			}
		})
	}
}

// TestScoreStream scores a FitTransform's output and checks that
// ScoreStream closes the stream also when it refuses its metrics.
func TestScoreStream(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			mem := checkedMem(t)
			ctx := testCtx(t)
			r := flow.Runner{Engine: e, Allocator: mem}
			s, err := r.FitTransform(ctx, classifier(t, -1), refSource(t, mem, false))
			if err != nil {
				t.Fatal(err)
			}
			got, err := metrics.ScoreStream(ctx, s, "label", "class", metrics.Accuracy())
			if want := 0.30434782608695654; err != nil || !near(got["accuracy"], want) {
				t.Errorf("got %v, %v; want accuracy %v", got, err, want)
			}

			s, err = r.Transform(ctx, classifier(t, -1), refSource(t, mem, false))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := metrics.ScoreStream(ctx, s, "label", "class"); err == nil || !strings.Contains(err.Error(), "no metrics") {
				t.Errorf("ScoreStream with no metrics: got %v; want an error saying so", err)
			}
			if _, err := s.Next(ctx); !errors.Is(err, flow.ErrClosed) {
				t.Errorf("Next after a refused ScoreStream: got %v; want ErrClosed (the stream closed)", err)
			}
		})
	}
}

// TestUpdateBatch checks the package-level Update on a batch whose columns
// are named twice.
func TestUpdateBatch(t *testing.T) {
	mem := checkedMem(t)
	a, b := int64s(1, 2)(mem), int64s(1, 3)(mem)
	defer a.Release()
	defer b.Release()
	f := arrow.Field{Name: "p", Type: arrow.PrimitiveTypes.Int64}
	x := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{f, f}, nil), []arrow.Array{a, b}, 2)
	y := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "y", Type: arrow.PrimitiveTypes.Int64}}, nil), []arrow.Array{b}, 2)
	batch := flow.Batch{Seq: 4, X: x, Y: y}
	defer batch.Release()
	acc := metrics.Accuracy()
	if err := metrics.Update(batch, "p", "y", acc); err == nil || !strings.Contains(err.Error(), `batch 4: X column "p" appears 2 times`) {
		t.Errorf("got %v; want an error naming the duplicated column", err)
	}
	yOnly := flow.Batch{Seq: 5, Y: y}
	if err := metrics.Update(yOnly, "p", "y", acc); err == nil || !strings.Contains(err.Error(), `batch 5 has no X`) {
		t.Errorf("got %v; want an error saying the batch has no X", err)
	}
	if err := metrics.Update(flow.Batch{X: y, Y: y}, "y", "y", acc); err != nil || acc.Value() != 1 {
		t.Errorf("got %v, accuracy %v; want nil, 1", err, acc.Value())
	}
}

// TestScoreRunError checks that a run that cannot start is Score's error.
func TestScoreRunError(t *testing.T) {
	defer goleak.VerifyNone(t)
	_, err := metrics.Score(testCtx(t), flow.Runner{}, classifier(t, -1), nil, "label", "class", metrics.Accuracy())
	if err == nil || !strings.Contains(err.Error(), "metrics: score: penstock: run: nil source") {
		t.Errorf("got %v; want the runner's error, wrapped", err)
	}
}
