package steps_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

var preDigitsPath = filepath.Join("..", "examples", "data", "digits.csv.gz")

// preDigitsResult is what a fit on the digits gives.
type preDigitsResult struct {
	accuracy float64
	coef     [][]float64
	fit      time.Duration
}

// preDigits fits pack → StandardScaler → LogisticRegression on a
// stratified 80% of the digits, in shuffled batches of 32 for 10 epochs,
// with the given engine, and scores it on the other 20%.
func preDigits(ctx context.Context, t *testing.T, mem memory.Allocator, engine flow.Engine) preDigitsResult {
	t.Helper()
	pixels := make([]string, 64)
	for i := range pixels {
		pixels[i] = fmt.Sprint("px", i)
	}
	alloc := minibatch.WithAllocator(mem)
	src, err := minibatch.OpenCSV(preDigitsPath, alloc, minibatch.WithHeader(false),
		minibatch.WithColumnNames(append(pixels, "digit")...), minibatch.WithLabels("digit"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	train, test, err := minibatch.Holdout(ctx, src, 0.2, minibatch.WithSeed(1), alloc)
	if err != nil {
		t.Fatal(err)
	}
	batches, err := minibatch.NewRebatcher(train, 32, minibatch.Keep, alloc)
	if err != nil {
		t.Fatal(err)
	}
	defer batches.Close()
	shuffled, err := minibatch.Shuffle(batches, 2048, minibatch.WithSeed(1), alloc)
	if err != nil {
		t.Fatal(err)
	}
	defer shuffled.Close()
	stream, err := minibatch.Repeat(shuffled, 10)
	if err != nil {
		t.Fatal(err)
	}
	scale, err := steps.NewStandardScaler()
	if err != nil {
		t.Fatal(err)
	}
	model, err := steps.NewLogisticRegression("digit", 10, steps.LearningRate(0.05), steps.Momentum(0.9), steps.L2(1e-4), steps.Seed(7))
	if err != nil {
		t.Fatal(err)
	}
	p := prePipeline(t,
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: pixels}),
		flow.Named("scale", scale, flow.FitEpochs(1), flow.Barrier(barrier.Joiner)),
		flow.Named("logreg", model),
	)
	runner := flow.Runner{Engine: engine, Allocator: mem}
	start := time.Now()
	if _, err := runner.Fit(ctx, p, stream); err != nil {
		t.Fatal(err)
	}
	fit := time.Since(start)
	scores, err := metrics.Score(ctx, runner, p, test, steps.ClassColumn, "digit", metrics.Accuracy())
	if err != nil {
		t.Fatal(err)
	}
	res := preDigitsResult{accuracy: scores["accuracy"], fit: fit}
	for k := range 10 {
		res.coef = append(res.coef, model.Coef(k))
	}
	if model.Steps() != 10*45 { // 1437 training rows: 45 batches of 32 (the last of 29) per epoch
		t.Errorf("%s: %d SGD steps; want 450", engine, model.Steps())
	}
	return res
}

func TestLogisticRegressionDigits(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := preMem(t)
	ctx := preContext(t)
	var results []preDigitsResult
	for _, e := range preEngines {
		r := preDigits(ctx, t, mem, e)
		t.Logf("%s: test accuracy %.4f, fit in %v", e, r.accuracy, r.fit.Round(time.Millisecond))
		if r.accuracy < 0.95 {
			t.Errorf("%s: test accuracy %.4f; want at least 0.95", e, r.accuracy)
		}
		results = append(results, r)
	}
	if results[0].accuracy != results[1].accuracy {
		t.Errorf("accuracy: sequential %v, streaming %v; want identical", results[0].accuracy, results[1].accuracy)
	}
	for k := range results[0].coef {
		if !slices.Equal(results[0].coef[k], results[1].coef[k]) {
			t.Fatalf("class %d: the engines learned different weights", k)
		}
	}
}

func TestLinearRegressionRecoversCoefficients(t *testing.T) {
	defer goleak.VerifyNone(t)
	want, bias := []float64{2, -3, 0.5}, 1.0
	rows := make([][]float32, 2000)
	target := make([]float32, len(rows))
	noise := preRows(len(rows), 4, 9)
	for r := range rows {
		rows[r] = []float32{noise[r][0] / 3, noise[r][1] / 6, (noise[r][2] - 13) / 9} // roughly within [-1, 1]
		y := bias + float64(noise[r][3]-23)/12*0.01                                   // small noise
		for j, w := range want {
			y += w * float64(rows[r][j])
		}
		target[r] = float32(y)
	}
	var coefs [][]float64
	for _, e := range preEngines {
		t.Run(e.String(), func(t *testing.T) {
			mem := preMem(t)
			ctx := preContext(t)
			src := preSource(t, mem, rows, 50, func(lo, hi int) arrow.RecordBatch { return preFloat32s(mem, "y", target[lo:hi]) })
			epochs, err := minibatch.Repeat(src, 20)
			if err != nil {
				t.Fatal(err)
			}
			m, err := steps.NewLinearRegression("y", steps.LearningRate(0.1), steps.Momentum(0.5), steps.Seed(3))
			if err != nil {
				t.Fatal(err)
			}
			p := prePipeline(t, flow.Named("lr", m))
			r := flow.Runner{Engine: e, Allocator: mem}
			if _, err := r.Fit(ctx, p, epochs); err != nil {
				t.Fatal(err)
			}
			preAllClose(t, "coef", m.Coef(), want, 0.01)
			if got := m.Intercept(); math.Abs(got-bias) > 0.01 {
				t.Errorf("intercept: got %v; want %v", got, bias)
			}
			if err := src.Rewind(); err != nil {
				t.Fatal(err)
			}
			scores, err := metrics.Score(ctx, r, p, src, steps.PredColumn, "y", metrics.R2())
			if err != nil {
				t.Fatal(err)
			}
			if scores["r2"] < 0.999 {
				t.Errorf("R²: got %v; want at least 0.999", scores["r2"])
			}
			coefs = append(coefs, append(m.Coef(), m.Intercept()))
		})
	}
	if len(coefs) == 2 && !slices.Equal(coefs[0], coefs[1]) {
		t.Errorf("the engines learned different weights: %v and %v", coefs[0], coefs[1])
	}
}

func TestLinearModelsRefuseReplicas(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := preMem(t)
	ctx := preContext(t)
	m, _ := steps.NewLogisticRegression("y", 2)
	p := prePipeline(t, flow.Named("logreg", m, flow.Replicas(2)))
	src := preSource(t, mem, [][]float32{{1}, {2}}, 1, func(lo, hi int) arrow.RecordBatch { return preInt64s(mem, "y", []int64{0, 1}[lo:hi]) })
	_, err := flow.Runner{Engine: flow.Streaming, Allocator: mem}.Fit(ctx, p, src)
	if err == nil || !strings.Contains(err.Error(), "does not implement flow.Merger") {
		t.Errorf("replicated fit: got %v; want a refusal naming flow.Merger", err)
	}
}

func TestLogisticRegressionOutputs(t *testing.T) {
	mem := preMem(t)
	ctx := flow.WithAllocator(preContext(t), mem)
	b := flow.Batch{X: preTensor(mem, "x", [][]float32{{-2}, {-1}, {1}, {2}}), Y: preInt64s(mem, "y", []int64{0, 0, 1, 1})}
	defer b.Release()
	m, err := steps.NewLogisticRegression("y", 2, steps.LearningRate(1), steps.Probabilities(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Transform(ctx, b); err == nil || !strings.Contains(err.Error(), "not fitted") {
		t.Errorf("transform before fit: got %v", err)
	}
	c := m.Copy().(*steps.LogisticRegression)
	for range 50 {
		if err := m.Fit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if c.Steps() != 0 {
		t.Errorf("fitting the original changed its copy: %d steps", c.Steps())
	}
	out, err := m.Transform(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if got := out.X.Schema().String(); !strings.Contains(got, "class: type=int64") || !strings.Contains(got, "proba: type=fixed_size_list<item: float32, nullable>[2]") {
		t.Errorf("output schema: %s", got)
	}
	if got := fmt.Sprint(out.X.Column(0)); got != "[0 0 1 1]" {
		t.Errorf("classes: got %s; want [0 0 1 1]", got)
	}
	proba, err := minibatch.Features(out, steps.ProbaColumn)
	if err != nil {
		t.Fatal(err)
	}
	for r := range proba.Rows {
		if p := proba.Row(r); math.Abs(float64(p[0]+p[1])-1) > 1e-6 || (r >= 2) != (p[1] > 0.5) {
			t.Errorf("row %d: probabilities %v", r, p)
		}
	}
	// The same seed and batches, the same model; Reset starts over.
	again := m.Copy().(*steps.LogisticRegression)
	again.Reset()
	for range 50 {
		if err := again.Fit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(again.Coef(1), m.Coef(1)) || again.Intercept(1) != m.Intercept(1) {
		t.Errorf("refit after Reset: %v %v; want %v %v", again.Coef(1), again.Intercept(1), m.Coef(1), m.Intercept(1))
	}

	bad := flow.Batch{X: preTensor(mem, "x", [][]float32{{1}}), Y: preInt64s(mem, "y", []int64{2})}
	defer bad.Release()
	want := `steps.LogisticRegression: fit: minibatch: labels: column "y" of Y, row 0, holds 2; want 0 to 1 (classes is 2)`
	if err := m.Fit(ctx, bad); err == nil || err.Error() != want {
		t.Errorf("label out of range: got %v; want %q", err, want)
	}
	wide := flow.Batch{X: preTensor(mem, "x", [][]float32{{1, 2}}), Y: preInt64s(mem, "y", []int64{1})}
	defer wide.Release()
	if err := m.Fit(ctx, wide); err == nil || !strings.Contains(err.Error(), "has width 2, want 1") {
		t.Errorf("another width: got %v", err)
	}
	hot, _ := steps.NewLinearRegression("y", steps.LearningRate(10))
	huge := flow.Batch{X: preTensor(mem, "x", [][]float32{{1e30}}), Y: preFloat32s(mem, "y", []float32{1})}
	defer huge.Release()
	var err2 error
	for range 20 {
		if err2 = hot.Fit(ctx, huge); err2 != nil {
			break
		}
	}
	if err2 == nil || !strings.Contains(err2.Error(), "no longer finite") {
		t.Errorf("divergence: got %v", err2)
	}
	if _, err := steps.NewLinearRegression("y", steps.Probabilities(true)); err == nil {
		t.Error("a regressor with Probabilities: got no error")
	}
	if _, err := steps.NewLogisticRegression("y", 1); err == nil {
		t.Error("one class: got no error")
	}
}

// TestParamsOnPipeline sets the hyperparameters of a pipeline of every
// tunable step of this file family through hparams.Set.
func TestParamsOnPipeline(t *testing.T) {
	scale, _ := steps.NewStandardScaler()
	mm, _ := steps.NewMinMaxScaler()
	imp, _ := steps.NewImputer(steps.ImputeMean)
	hot, _ := steps.NewOneHot("y")
	lin, _ := steps.NewLinearRegression("y")
	log, _ := steps.NewLogisticRegression("y", 3)
	p := prePipeline(t, flow.Named("impute", imp), flow.Named("scale", scale), flow.Named("mm", mm),
		flow.Named("onehot", hot), flow.Named("lin", lin), flow.Named("log", log))
	space, err := hparams.Gather(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := space.Check(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // every sample of the default space is accepted
		v, err := space.Sample(hparams.NewRand(uint64(i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := hparams.Set(p, v); err != nil {
			t.Fatalf("Set(sample %d = %v): %v", i, v, err)
		}
	}
	good := hparams.Values{"log__learning_rate": 0.3, "log__momentum": 0.9, "log__penalty": "none", "log__probabilities": true, "lin__seed": 42}
	if err := hparams.Set(p, good); err != nil {
		t.Fatal(err)
	}
	got, _ := hparams.Get(p)
	for k, v := range good {
		if got[k] != v {
			t.Errorf("Get %s: got %v; want %v", k, got[k], v)
		}
	}
	for _, bad := range []hparams.Values{
		{"log__learning_rate": 100.0},
		{"log__learning_rate": 0.0},
		{"log__momentum": 1.5},
		{"lin__alpha": -1.0},
		{"lin__penalty": "l1"},
		{"scale__with_mean": 3},
		{"onehot__classes": 1 << 20},
		{"impute__strategy": "median"},
		{"log__no_such": 1},
	} {
		err := hparams.Set(p, bad)
		if err == nil {
			t.Errorf("Set(%v): got no error", bad)
			continue
		}
		if !errors.Is(err, hparams.ErrInvalidValue) && !errors.Is(err, hparams.ErrUnknownKey) {
			t.Errorf("Set(%v): %v does not wrap ErrInvalidValue or ErrUnknownKey", bad, err)
		}
	}
	if after, _ := hparams.Get(p); after.String() != got.String() {
		t.Errorf("refused Sets changed the pipeline: %v; want %v", after, got)
	}
	// Constructor options are checked against the same space.
	if _, err := steps.NewLogisticRegression("y", 3, steps.LearningRate(50)); err == nil || !strings.Contains(err.Error(), `"learning_rate" is 50, outside LogUniform`) {
		t.Errorf("a learning rate outside the space: got %v", err)
	}
	if _, err := steps.NewLinearRegression("y", steps.L2(-1)); err == nil {
		t.Error("a negative L2: got no error")
	}
}
