package metrics_test

// An adversarial audit of the promises of metrics' doc comments: arrays
// that are slices of larger ones (an offset into their buffers), one
// class, NaN and infinities in every place a number is read, and Score
// cancelled with a cause in both engines.

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/metrics"
)

// score returns m's Value over pred and truth, failing the test on an
// error.
func score(t *testing.T, m metrics.Metric, pred, truth arrow.Array) float64 {
	t.Helper()
	if err := m.Update(pred, truth); err != nil {
		t.Fatalf("%s: %v", m.Name(), err)
	}
	return m.Value()
}

// A slice of an array (array.NewSlice: an offset into its buffers, its
// child's for a list) scores as an array of the same rows built afresh,
// for every metric and every kind of column.
func TestAuditSlicedArrays(t *testing.T) {
	mem := checkedMem(t)
	probs := [][]float64{{0.1, 0.9}, {0.8, 0.2}, {0.3, 0.7}, {0.5, 0.5}, {0.9, 0.1}, {0.2, 0.8}, {0.6, 0.4}}
	classes := []int64{1, 0, 0, 1, 0, 1, 1}
	values := []float64{0.5, 1.5, -2, 3.25, 4, -1, 0.75}
	truths := []float64{0.25, 1, -2.5, 3, 5, -1.5, 1}
	cases := []struct {
		m           func() metrics.Metric
		pred, truth func(lo, hi int) arrayFunc
	}{
		{metrics.Accuracy, func(lo, hi int) arrayFunc { return int64s(classes[lo:hi]...) }, func(lo, hi int) arrayFunc { return int64s(rev(classes)[lo:hi]...) }},
		{metrics.Accuracy, func(lo, hi int) arrayFunc { return f32Lists(probs[lo:hi]...) }, func(lo, hi int) arrayFunc { return int32s(classes[lo:hi]...) }},
		{func() metrics.Metric { return metrics.MacroF1() }, func(lo, hi int) arrayFunc { return f64Lists(probs[lo:hi]...) }, func(lo, hi int) arrayFunc { return int64s(rev(classes)[lo:hi]...) }},
		{metrics.LogLoss, func(lo, hi int) arrayFunc { return f64Lists(probs[lo:hi]...) }, func(lo, hi int) arrayFunc { return int64s(classes[lo:hi]...) }},
		{metrics.LogLoss, func(lo, hi int) arrayFunc { return float32s(column(probs, 1)[lo:hi]...) }, func(lo, hi int) arrayFunc { return f32Lists(probs[lo:hi]...) }},
		{metrics.MSE, func(lo, hi int) arrayFunc { return float64s(values[lo:hi]...) }, func(lo, hi int) arrayFunc { return float64s(truths[lo:hi]...) }},
		{metrics.MAE, func(lo, hi int) arrayFunc { return f32Lists(probs[lo:hi]...) }, func(lo, hi int) arrayFunc { return f64Lists(rev2(probs)[lo:hi]...) }},
		{metrics.R2, func(lo, hi int) arrayFunc { return float32s(values[lo:hi]...) }, func(lo, hi int) arrayFunc { return int64s(ints(truths)[lo:hi]...) }},
	}
	n := len(classes)
	for _, c := range cases {
		name := c.m().Name()
		for _, w := range [][2]int{{2, 6}, {1, n}, {3, 5}} {
			lo, hi := w[0], w[1]
			whole, wholeT := c.pred(0, n)(mem), c.truth(0, n)(mem)
			sp, st := arraySlice(whole, lo, hi), arraySlice(wholeT, lo, hi)
			fresh, freshT := c.pred(lo, hi)(mem), c.truth(lo, hi)(mem)
			got, want := score(t, c.m(), sp, st), score(t, c.m(), fresh, freshT)
			if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Errorf("%s over rows %d to %d of a %s: %v from the slice; want %v, as from the same rows afresh", name, lo, hi, whole.DataType(), got, want)
			}
			for _, a := range []arrow.Array{whole, wholeT, sp, st, fresh, freshT} {
				a.Release()
			}
		}
	}
}

func arraySlice(a arrow.Array, lo, hi int) arrow.Array {
	return array.NewSlice(a, int64(lo), int64(hi))
}

func rev[T any](s []T) []T {
	out := make([]T, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func rev2(rows [][]float64) [][]float64 {
	out := make([][]float64, len(rows))
	for i, r := range rows {
		out[i] = rev(r)
	}
	return out
}

func column(rows [][]float64, k int) []float64 {
	out := make([]float64, len(rows))
	for i, r := range rows {
		out[i] = r[k]
	}
	return out
}

func ints(v []float64) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(math.Round(x))
	}
	return out
}

// One class everywhere, as scikit-learn scores it: accuracy and macro F1
// 1 when every prediction is right (F1 averages over the one class seen),
// 0 when none is; R² of a constant truth 1 when exact and 0 otherwise.
func TestAuditOneClass(t *testing.T) {
	mem := checkedMem(t)
	for _, c := range []struct {
		m           metrics.Metric
		pred, truth arrayFunc
		want        float64
	}{
		{metrics.Accuracy(), int64s(2, 2, 2), int64s(2, 2, 2), 1},
		{metrics.MacroF1(), int64s(2, 2, 2), int64s(2, 2, 2), 1},
		{metrics.MacroF1(), int64s(0, 0, 0), int64s(1, 1, 1), 0},
		{metrics.R2(), float64s(3, 3, 3), float64s(3, 3, 3), 1},
		{metrics.R2(), float64s(3, 3, 4), float64s(3, 3, 3), 0},
		{metrics.LogLoss(), f64Lists([]float64{1, 0}, []float64{1, 0}), int64s(0, 0), 0},
	} {
		pred, truth := c.pred(mem), c.truth(mem)
		got := score(t, c.m, pred, truth)
		pred.Release()
		truth.Release()
		if math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: %v; want %v", c.m.Name(), got, c.want)
		}
	}
}

// NaN and infinities wherever a number is read are errors that name the
// metric, the role and the row, and change nothing.
func TestAuditNonFinite(t *testing.T) {
	mem := checkedMem(t)
	nan, inf := math.NaN(), math.Inf(1)
	for _, c := range []struct {
		m           func() metrics.Metric
		pred, truth arrayFunc
		role, row   string
	}{
		{metrics.Accuracy, f64Lists([]float64{0, 1}, []float64{nan, 1}), int64s(1, 1), "prediction", "row 1"},
		{func() metrics.Metric { return metrics.MacroF1() }, f32Lists([]float64{nan, 0}, []float64{0, 1}), int64s(1, 1), "prediction", "row 0"},
		{metrics.Accuracy, int64s(1, 0), f64Lists([]float64{0, 1}, []float64{1, nan}), "truth", "row 1"},
		{metrics.LogLoss, f64Lists([]float64{0.5, 0.5}, []float64{nan, 1}), int64s(1, 1), "prediction", "row 1"},
		{metrics.LogLoss, float64s(0.5, inf), int64s(1, 1), "prediction", "row 1"},
		{metrics.LogLoss, f64Lists([]float64{0.5, 0.5}, []float64{0, 1}), f64Lists([]float64{nan, 1}, []float64{0, 1}), "truth", "row 0"},
		{metrics.MSE, float64s(1, nan), float64s(1, 2), "prediction", "row 1"},
		{metrics.MAE, float64s(1, 2), float32s(-inf, 2), "truth", "row 0"},
		{metrics.R2, f64Lists([]float64{1, 2}, []float64{3, inf}), f64Lists([]float64{1, 2}, []float64{3, 4}), "prediction", "row 1"},
	} {
		m := c.m()
		if m.Name() == "mse" || m.Name() == "mae" || m.Name() == "r2" {
			good, goodT := float64s(1, 2, 3)(mem), float64s(1, 2, 4)(mem)
			if err := m.Update(good, goodT); err != nil {
				t.Fatal(err)
			}
			good.Release()
			goodT.Release()
		}
		before, rows := m.Value(), m.Rows()
		pred, truth := c.pred(mem), c.truth(mem)
		err := m.Update(pred, truth)
		pred.Release()
		truth.Release()
		if err == nil {
			t.Errorf("%s: no error; want one naming the %s at %s", m.Name(), c.role, c.row)
			continue
		}
		for _, w := range []string{m.Name(), c.role, c.row} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", m.Name(), err, w)
			}
		}
		if v := m.Value(); m.Rows() != rows || (v != before && !(math.IsNaN(v) && math.IsNaN(before))) {
			t.Errorf("%s: a failed Update changed the metric: %v over %d rows; want %v over %d", m.Name(), v, m.Rows(), before, rows)
		}
	}
}

// Score cancelled with a cause returns the cause, closes its run and
// releases every batch, in both engines.
func TestAuditScoreCancelCause(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			mem := checkedMem(t)
			cause := errors.New("audit: enough")
			ctx, cancel := context.WithCancelCause(testCtx(t))
			defer cancel(nil)
			r := flow.Runner{Engine: e, Allocator: mem}
			r.OnEpoch = func(context.Context, flow.EpochEnd) error { return nil }
			p, err := flow.NewPipeline([]flow.Node{flow.Named("stop", stopAt{n: 2, cancel: func() { cancel(cause) }}), flow.Named("classify", classify{failAt: -1})})
			if err != nil {
				t.Fatal(err)
			}
			_, err = metrics.Score(ctx, r, p, refSource(t, mem, false), "label", "class", metrics.Accuracy())
			if !errors.Is(err, cause) {
				t.Fatalf("got %v; want an error wrapping the cause", err)
			}
		})
	}
}

// stopAt passes its batches through and cancels the run at batch n.
type stopAt struct {
	n      int64
	cancel func()
}

func (s stopAt) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if in.Seq == s.n {
		s.cancel()
		<-ctx.Done()
		return flow.Batch{}, ctx.Err()
	}
	in.Retain()
	return in, nil
}

// R2 of a target whose squared deviations underflow to 0 (true values that
// differ by less than about 1e-162) is that of a target of zero variance,
// as scikit-learn's force_finite (it tests the sum of squares, which is 0
// there too): 1 where every prediction is exact, 0 otherwise; never NaN
// (0/0) or -Inf (x/0).
func TestAuditR2UnderflowedVariance(t *testing.T) {
	mem := checkedMem(t)
	truth := float64s(1e-200, 2e-200)(mem)
	defer truth.Release()
	for _, c := range []struct {
		pred arrayFunc
		want float64
	}{
		{float64s(1e-200, 2e-200), 1},
		{float64s(1, 1), 0},
	} {
		pred := c.pred(mem)
		if got := score(t, metrics.R2(), pred, truth); got != c.want {
			t.Errorf("R2 of %v against [1e-200 2e-200]: %v; want %v", pred, got, c.want)
		}
		pred.Release()
	}
}
