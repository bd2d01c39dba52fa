package steps_test

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

// preMoments returns the mean and population variance of each column of
// rows, by two passes in float64.
func preMoments(rows [][]float32) (mean, variance []float64) {
	w := len(rows[0])
	mean, variance = make([]float64, w), make([]float64, w)
	for _, r := range rows {
		for j, v := range r {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(len(rows))
	}
	for _, r := range rows {
		for j, v := range r {
			d := float64(v) - mean[j]
			variance[j] += d * d
		}
	}
	for j := range variance {
		variance[j] /= float64(len(rows))
	}
	return mean, variance
}

func TestStandardScalerFitsAndStandardizes(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, e := range preEngines {
		t.Run(e.String(), func(t *testing.T) {
			mem := preMem(t)
			ctx := preContext(t)
			rows := preRows(103, 4, 1)
			for r := range rows {
				rows[r][3] = 7 // a constant feature
			}
			s, err := steps.NewStandardScaler()
			if err != nil {
				t.Fatal(err)
			}
			p := prePipeline(t, flow.Named("scale", s))
			runner := flow.Runner{Engine: e, Allocator: mem}
			if _, err := runner.Fit(ctx, p, preSource(t, mem, rows, 10, nil)); err != nil {
				t.Fatal(err)
			}
			mean, variance := preMoments(rows)
			if s.Count() != 103 {
				t.Errorf("count: got %d; want 103", s.Count())
			}
			preAllClose(t, "mean", s.Mean(), mean, 1e-12)
			preAllClose(t, "variance", s.Variance(), variance, 1e-12)
			if got := s.Scale()[3]; got != 1 {
				t.Errorf("scale of the constant feature: got %v; want 1", got)
			}
			z := preCollect(t, ctx, runner, p, preSource(t, mem, rows, 10, nil), "x")
			if len(z) != len(rows) {
				t.Fatalf("got %d rows; want %d", len(z), len(rows))
			}
			for r := range rows {
				for j := range 3 {
					want := (float64(rows[r][j]) - mean[j]) / math.Sqrt(variance[j])
					if !preClose(float64(z[r][j]), want, 1e-6) {
						t.Fatalf("row %d, feature %d: got %v; want %v", r, j, z[r][j], want)
					}
				}
				if z[r][3] != 0 {
					t.Fatalf("row %d: constant feature got %v; want 0 (centred, scaled by 1)", r, z[r][3])
				}
			}
		})
	}
}

// TestStandardScalerReplicas fits a scaler with two replicas (streaming),
// merged, and sequentially, first from scratch and then again on more
// data: both must agree to 1e-6.
func TestStandardScalerReplicas(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := preMem(t)
	ctx := preContext(t)
	first, second := preRows(1000, 5, 2), preRows(777, 5, 3)
	for r := range second { // the second fit shifts the data
		for j := range second[r] {
			second[r][j] = second[r][j]*2 + 100
		}
	}
	seq, _ := steps.NewStandardScaler()
	par, _ := steps.NewStandardScaler()
	seqP := prePipeline(t, flow.Named("scale", seq))
	parP := prePipeline(t, flow.Named("scale", par, flow.Replicas(2)))
	seqR := flow.Runner{Engine: flow.Sequential, Allocator: mem}
	parR := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	for i, data := range [][][]float32{first, second} {
		if _, err := seqR.Fit(ctx, seqP, preSource(t, mem, data, 7, nil)); err != nil {
			t.Fatal(err)
		}
		stats, err := parR.Fit(ctx, parP, preSource(t, mem, data, 7, nil))
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range stats.Stages {
			if st.Path.String() == "scale" && st.Replicas != 2 {
				t.Fatalf("fit %d: the stage ran %d replicas; want 2", i, st.Replicas)
			}
		}
		if par.Count() != seq.Count() {
			t.Fatalf("fit %d: count: replicated %d, sequential %d", i, par.Count(), seq.Count())
		}
		preAllClose(t, "mean", par.Mean(), seq.Mean(), 1e-6)
		preAllClose(t, "variance", par.Variance(), seq.Variance(), 1e-6)
	}
	mean, variance := preMoments(append(append([][]float32(nil), first...), second...))
	preAllClose(t, "mean of both fits", par.Mean(), mean, 1e-9)
	preAllClose(t, "variance of both fits", par.Variance(), variance, 1e-9)
}

func TestStandardScalerOptions(t *testing.T) {
	mem := preMem(t)
	ctx := flow.WithAllocator(preContext(t), mem)
	rows := [][]float32{{1, 10}, {3, 30}}
	x := preTensor(mem, "pixels", rows)
	y := preInt64s(mem, "label", []int64{0, 1})
	b := flow.Batch{X: x, Y: y}
	defer b.Release()
	for _, tc := range []struct {
		name string
		opts []steps.ScaleOption
		want [][]float32
	}{
		{"both", nil, [][]float32{{-1, -1}, {1, 1}}},
		{"no mean", []steps.ScaleOption{steps.WithMean(false)}, [][]float32{{1, 1}, {3, 3}}},
		{"no std", []steps.ScaleOption{steps.WithStd(false)}, [][]float32{{-1, -10}, {1, 10}}},
		{"neither", []steps.ScaleOption{steps.WithMean(false), steps.WithStd(false)}, rows},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]steps.ScaleOption{steps.ScaleColumn("pixels"), steps.ScaleOutput("z")}, tc.opts...)
			s, err := steps.NewStandardScaler(opts...)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Fit(ctx, b); err != nil {
				t.Fatal(err)
			}
			out, err := s.Transform(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			if out.Y != b.Y {
				t.Error("Y was not passed through")
			}
			z, err := minibatch.Features(out, "z")
			if err != nil {
				t.Fatal(err)
			}
			for r := range tc.want {
				for j := range tc.want[r] {
					if got := z.Row(r)[j]; !preClose(float64(got), float64(tc.want[r][j]), 1e-6) {
						t.Errorf("row %d, feature %d: got %v; want %v", r, j, got, tc.want[r][j])
					}
				}
			}
		})
	}
}

func TestScalerErrors(t *testing.T) {
	mem := preMem(t)
	ctx := flow.WithAllocator(preContext(t), mem)
	if _, err := steps.NewStandardScaler(steps.FeatureRange(0, 1)); err == nil || !strings.Contains(err.Error(), "FeatureRange applies to a MinMaxScaler only") {
		t.Errorf("StandardScaler with FeatureRange: got %v", err)
	}
	if _, err := steps.NewMinMaxScaler(steps.WithMean(false)); err == nil || !strings.Contains(err.Error(), "WithMean applies to a StandardScaler only") {
		t.Errorf("MinMaxScaler with WithMean: got %v", err)
	}
	if _, err := steps.NewMinMaxScaler(steps.FeatureRange(1, 1)); err == nil || !strings.Contains(err.Error(), "want lo < hi") {
		t.Errorf("empty feature range: got %v", err)
	}
	if _, err := steps.NewMinMaxScaler(steps.FeatureRange(0, 1e9)); err == nil || !strings.Contains(err.Error(), `"feature_span"`) {
		t.Errorf("feature range outside the space: got %v", err)
	}
	if _, err := steps.NewStandardScaler(steps.ScaleColumn("")); err == nil || !strings.Contains(err.Error(), "empty column name") {
		t.Errorf("empty column: got %v", err)
	}

	b3 := flow.Batch{X: preTensor(mem, "x", [][]float32{{1, 2, 3}})}
	defer b3.Release()
	b4 := flow.Batch{X: preTensor(mem, "x", [][]float32{{1, 2, 3, 4}})}
	defer b4.Release()
	s, _ := steps.NewStandardScaler()
	if _, err := s.Transform(ctx, b3); err == nil || !strings.Contains(err.Error(), "steps.StandardScaler: transform: not fitted") {
		t.Errorf("transform before fit: got %v", err)
	}
	if err := s.Fit(ctx, b3); err != nil {
		t.Fatal(err)
	}
	want := `steps.StandardScaler: fit: column "x" of X has width 4, want 3`
	if err := s.Fit(ctx, b4); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("fit on another width: got %v; want %q", err, want)
	}
	if _, err := s.Transform(ctx, b4); err == nil || !strings.Contains(err.Error(), "has width 4, want 3") {
		t.Errorf("transform of another width: got %v", err)
	}
	other, _ := steps.NewStandardScaler(steps.ScaleColumn("pixels"))
	if err := other.Fit(ctx, b3); err == nil || !strings.Contains(err.Error(), `"pixels"`) {
		t.Errorf("missing column: got %v; want it named", err)
	}
	mm, _ := steps.NewMinMaxScaler()
	if err := s.Merge([]flow.Step{mm}); err == nil || !strings.Contains(err.Error(), "*steps.MinMaxScaler") {
		t.Errorf("merge of a MinMaxScaler: got %v", err)
	}
	if err := mm.Fit(ctx, b4); err != nil {
		t.Fatal(err)
	}
	mm3 := mm.Replica()
	if err := mm3.(flow.Fitter).Fit(ctx, b3); err != nil {
		t.Fatal(err)
	}
	before := mm.Max()
	if err := mm.Merge([]flow.Step{mm3}); err == nil || !strings.Contains(err.Error(), "width 3, want 4") {
		t.Errorf("merge of another width: got %v", err)
	}
	preAllClose(t, "max after a failed merge", mm.Max(), before, 0)
}

func TestMinMaxScaler(t *testing.T) {
	defer goleak.VerifyNone(t)
	rows := preRows(200, 3, 4)
	rows[5][2] = float32(math.NaN()) // ignored by the fit
	for r := range rows {
		rows[r][1] = -2 // constant
	}
	lo, hi := []float64{math.Inf(1), -2, math.Inf(1)}, []float64{math.Inf(-1), -2, math.Inf(-1)}
	for _, r := range rows {
		for _, j := range []int{0, 2} {
			if v := float64(r[j]); !math.IsNaN(v) {
				lo[j], hi[j] = math.Min(lo[j], v), math.Max(hi[j], v)
			}
		}
	}
	for _, tc := range []struct {
		engine   flow.Engine
		replicas int
	}{{flow.Sequential, 1}, {flow.Streaming, 1}, {flow.Streaming, 3}} {
		t.Run(tc.engine.String(), func(t *testing.T) {
			mem := preMem(t)
			ctx := preContext(t)
			s, err := steps.NewMinMaxScaler(steps.FeatureRange(-1, 1))
			if err != nil {
				t.Fatal(err)
			}
			p := prePipeline(t, flow.Named("scale", s, flow.Replicas(tc.replicas)))
			runner := flow.Runner{Engine: tc.engine, Allocator: mem}
			if _, err := runner.Fit(ctx, p, preSource(t, mem, rows, 9, nil)); err != nil {
				t.Fatal(err)
			}
			preAllClose(t, "min", s.Min(), lo, 0)
			preAllClose(t, "max", s.Max(), hi, 0)
			z := preCollect(t, ctx, runner, p, preSource(t, mem, rows, 9, nil), "x")
			for r := range rows {
				want0 := (float64(rows[r][0])-lo[0])*2/(hi[0]-lo[0]) - 1
				if !preClose(float64(z[r][0]), want0, 1e-6) || z[r][1] != -1 {
					t.Fatalf("row %d: got %v; want [%v -1 …]", r, z[r], want0)
				}
				if z[r][0] < -1 || z[r][0] > 1 {
					t.Fatalf("row %d: %v is outside the feature range", r, z[r][0])
				}
			}
			if !math.IsNaN(float64(z[5][2])) {
				t.Errorf("NaN input: got %v; want NaN", z[5][2])
			}
		})
	}
}

func TestScalerCopyResetParams(t *testing.T) {
	mem := preMem(t)
	ctx := flow.WithAllocator(preContext(t), mem)
	b := flow.Batch{X: preTensor(mem, "x", [][]float32{{1}, {3}})}
	defer b.Release()
	more := flow.Batch{X: preTensor(mem, "x", [][]float32{{100}})}
	defer more.Release()
	s, _ := steps.NewStandardScaler()
	if err := s.Fit(ctx, b); err != nil {
		t.Fatal(err)
	}
	c := s.Copy().(*steps.StandardScaler)
	if err := c.Fit(ctx, more); err != nil {
		t.Fatal(err)
	}
	if s.Count() != 2 || c.Count() != 3 {
		t.Errorf("after fitting the copy: counts %d and %d; want 2 and 3", s.Count(), c.Count())
	}
	s.Reset()
	if s.Count() != 0 || s.Mean() != nil {
		t.Errorf("after Reset: count %d, mean %v; want 0, nil", s.Count(), s.Mean())
	}

	mm, _ := steps.NewMinMaxScaler()
	p := prePipeline(t, flow.Named("std", s), flow.Named("mm", mm))
	if err := hparams.Set(p, hparams.Values{"std__with_mean": false, "mm__feature_min": -1.0}); err != nil {
		t.Fatal(err)
	}
	got, err := hparams.Get(p)
	if err != nil {
		t.Fatal(err)
	}
	want := hparams.Values{"std__with_mean": false, "std__with_std": true, "mm__feature_min": -1.0, "mm__feature_span": 1.0}
	if got.String() != want.String() {
		t.Errorf("Get: got %v; want %v", got, want)
	}
	for _, bad := range []hparams.Values{
		{"mm__feature_span": 0.0},  // an empty range: outside the space
		{"mm__feature_min": 2e6},   // outside the space
		{"std__with_std": "maybe"}, // not a bool
	} {
		if err := hparams.Set(p, bad); err == nil {
			t.Errorf("Set(%v): got no error", bad)
		}
	}
	if got2, _ := hparams.Get(p); got2.String() != want.String() {
		t.Errorf("after refused Sets: got %v; want %v unchanged", got2, want)
	}
	space, err := hparams.Gather(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := hparams.Set(p, got); err != nil {
		t.Errorf("Set(Get()): %v", err)
	}
	if len(space) != 4 {
		t.Errorf("Gather: got %v; want 4 keys", space)
	}
}

// TestTransformConcurrently runs the Transform of fitted steps from
// several goroutines at once, as replicas on the transform path do (run
// with -race).
func TestTransformConcurrently(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := preMem(t)
	ctx := flow.WithAllocator(preContext(t), mem)
	rows := preRows(64, 3, 5)
	labels := make([]int64, len(rows))
	for i := range labels {
		labels[i] = int64(i % 3)
	}
	b := flow.Batch{X: preTensor(mem, "x", rows), Y: preInt64s(mem, "y", labels)}
	defer b.Release()
	scale, _ := steps.NewStandardScaler()
	mm, _ := steps.NewMinMaxScaler()
	hot, _ := steps.NewOneHot("y")
	enc, _ := steps.NewLabelEncoder("y")
	log, _ := steps.NewLogisticRegression("y", 3, steps.Probabilities(true))
	lin, _ := steps.NewLinearRegression("y")
	all := []flow.Fitter{scale, mm, hot, enc, log, lin}
	for _, s := range all {
		if err := s.Fit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range all {
		want, err := s.Transform(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for g := range errs {
			wg.Go(func() {
				for range 20 {
					out, err := s.Transform(ctx, b)
					if err != nil {
						errs[g] = err
						return
					}
					if !array.RecordEqual(out.X, want.X) || !array.RecordEqual(out.Y, want.Y) {
						errs[g] = fmt.Errorf("%T: a concurrent Transform gave another batch", s)
					}
					out.Release()
				}
			})
		}
		wg.Wait()
		want.Release()
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	}
}
