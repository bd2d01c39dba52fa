package metrics_test

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/penstock-ml/penstock/metrics"
)

func allMetrics() []metrics.Metric {
	return []metrics.Metric{metrics.Accuracy(), metrics.MacroF1(), metrics.LogLoss(), metrics.MSE(), metrics.MAE(), metrics.R2()}
}

func TestNamesAndDirection(t *testing.T) {
	want := []struct {
		name   string
		higher bool
	}{{"accuracy", true}, {"macro_f1", true}, {"log_loss", false}, {"mse", false}, {"mae", false}, {"r2", true}}
	for i, m := range allMetrics() {
		if m.Name() != want[i].name || m.HigherIsBetter() != want[i].higher {
			t.Errorf("metric %d: got %q, higher is better %v; want %q, %v", i, m.Name(), m.HigherIsBetter(), want[i].name, want[i].higher)
		}
	}
}

// TestEmpty checks the metrics before any row, after batches of no rows,
// and R2 over one row.
func TestEmpty(t *testing.T) {
	mem := checkedMem(t)
	for _, m := range allMetrics() {
		t.Run(m.Name(), func(t *testing.T) {
			check := func(when string) {
				t.Helper()
				if v := m.Value(); !math.IsNaN(v) || m.Rows() != 0 {
					t.Errorf("%s: got Value %v, Rows %d; want NaN, 0", when, v, m.Rows())
				}
				if _, err := metrics.Result(m); !errors.Is(err, metrics.ErrEmpty) {
					t.Errorf("%s: Result error: got %v; want ErrEmpty", when, err)
				}
			}
			check("new")
			var pred, truth arrow.Array
			switch m.Name() {
			case "log_loss":
				pred, truth = f64Lists()(mem), int64s()(mem)
			case "accuracy", "macro_f1":
				pred, truth = int64s()(mem), int64s()(mem)
			default:
				pred, truth = float64s()(mem), float64s()(mem)
			}
			defer pred.Release()
			defer truth.Release()
			if err := m.Update(pred, truth); err != nil {
				t.Fatalf("Update of no rows: %v", err)
			}
			check("after a batch of no rows")
			other := allMetrics()[indexOf(m.Name())]
			if err := m.Merge(other); err != nil {
				t.Fatalf("Merge of two empty metrics: %v", err)
			}
			check("after merging an empty metric")
		})
	}
	t.Run("r2 over one row", func(t *testing.T) {
		m := metrics.R2()
		pred, truth := float64s(2)(mem), float64s(3)(mem)
		defer pred.Release()
		defer truth.Release()
		if err := m.Update(pred, truth); err != nil {
			t.Fatal(err)
		}
		if _, err := metrics.Result(m); !errors.Is(err, metrics.ErrUndefined) || !math.IsNaN(m.Value()) {
			t.Errorf("got Value %v, Result error %v; want NaN, ErrUndefined", m.Value(), err)
		}
	})
}

func indexOf(name string) int {
	for i, m := range allMetrics() {
		if m.Name() == name {
			return i
		}
	}
	panic(name)
}

// TestUpdateErrors checks that a bad batch is refused with an error that
// says what is wrong and where, and that it changes nothing.
func TestUpdateErrors(t *testing.T) {
	probs := f64Lists([]float64{0.5, 0.5}, []float64{0.1, 0.9})
	cases := []struct {
		name        string
		metric      func() metrics.Metric
		pred, truth arrayFunc
		want        []string // substrings of the error
	}{
		{"accuracy of floats", metrics.Accuracy, float64s(1, 0), int64s(1, 0),
			[]string{"accuracy", "prediction has type float64", "want integer classes"}},
		{"accuracy of strings", metrics.Accuracy, int64s(1, 0), strs("a", "b"),
			[]string{"accuracy", "truth has type utf8", "want integer classes"}},
		{"f1 of rows that differ in number", func() metrics.Metric { return metrics.MacroF1() }, int64s(1, 0, 1), int64s(1, 0),
			[]string{"macro_f1", "prediction has 3 rows and truth 2"}},
		{"f1 with a null", func() metrics.Metric { return metrics.MacroF1() }, int64s(1, 0, 1), withNull(int64s(1, 0, 1), 1),
			[]string{"truth has 1 nulls (the first at row 1)"}},
		{"accuracy of NaN scores", metrics.Accuracy, f64Lists([]float64{0.5, 0.5}, []float64{math.NaN(), 1}), int64s(1, 0),
			[]string{"prediction has NaN at value 0 of row 1"}},
		{"log_loss of a class out of range", metrics.LogLoss, probs, int64s(1, 2),
			[]string{"log_loss", "truth has class 2 at row 1", "from 0 to 1"}},
		{"log_loss of a negative class", metrics.LogLoss, probs, int64s(-1, 0),
			[]string{"truth has class -1 at row 0"}},
		{"log_loss of logits", metrics.LogLoss, f64Lists([]float64{2.5, -1}), int64s(0),
			[]string{"prediction has 2.5 at value 0 of row 0", "want probabilities in [0, 1]", "softmax"}},
		{"log_loss of a binary probability above 1", metrics.LogLoss, float64s(0.5, 1.5), int64s(0, 1),
			[]string{"prediction has 1.5 at row 1"}},
		{"log_loss of integers", metrics.LogLoss, int64s(0, 1), int64s(0, 1),
			[]string{"prediction has type int64", "want class probabilities"}},
		{"log_loss of one-hot labels of another width", metrics.LogLoss, probs, f64Lists([]float64{1, 0, 0}, []float64{0, 1, 0}),
			[]string{"truth has 3 values per row and the prediction 2 classes"}},
		{"log_loss of a null probability", metrics.LogLoss, withNull(float64s(0.5, 0.5), 0), int64s(0, 1),
			[]string{"prediction has 1 nulls (the first at row 0)"}},
		{"mse of strings", metrics.MSE, strs("1", "2"), float64s(1, 2),
			[]string{"mse", "prediction has type utf8", "want values"}},
		{"mae of infinity", metrics.MAE, float64s(1, math.Inf(1)), float64s(1, 2),
			[]string{"mae", "prediction has +Inf at row 1", "want finite values"}},
		{"r2 of NaN truth", metrics.R2, float64s(1, 2), float32s(1, math.NaN()),
			[]string{"r2", "truth has NaN at row 1"}},
		{"r2 of widths that differ", metrics.R2, f64Lists([]float64{1, 2}), float64s(1),
			[]string{"prediction has 2 values per row and truth 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkedMem(t)
			pred, truth := tc.pred(mem), tc.truth(mem)
			defer pred.Release()
			defer truth.Release()
			m := tc.metric()
			err := m.Update(pred, truth)
			if err == nil {
				t.Fatalf("Update: got no error; want one saying %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Update error: got %q; want it to contain %q", err, w)
				}
			}
			if m.Rows() != 0 || !math.IsNaN(m.Value()) {
				t.Errorf("after the failed Update: got Rows %d, Value %v; want 0, NaN (nothing changed)", m.Rows(), m.Value())
			}
		})
	}
}

// TestWidthAcrossBatches checks that the number of classes of LogLoss, and
// of targets of the regression metrics, is fixed by the first batch, and
// that a refused batch or merge changes nothing.
func TestWidthAcrossBatches(t *testing.T) {
	mem := checkedMem(t)
	cases := []struct {
		name          string
		metric        func() metrics.Metric
		first, second [2]arrayFunc // pred, truth
		want          string
	}{
		{"log_loss", metrics.LogLoss,
			[2]arrayFunc{f64Lists([]float64{0.5, 0.5}), int64s(0)},
			[2]arrayFunc{f64Lists([]float64{0.2, 0.3, 0.5}), int64s(2)},
			"prediction has 3 classes, want 2"},
		{"mse", metrics.MSE,
			[2]arrayFunc{float64s(1), float64s(2)},
			[2]arrayFunc{f64Lists([]float64{1, 2}), f64Lists([]float64{1, 2})},
			"batch has 2 targets, want 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			update := func(m metrics.Metric, cols [2]arrayFunc) error {
				p, y := cols[0](mem), cols[1](mem)
				defer p.Release()
				defer y.Release()
				return m.Update(p, y)
			}
			m := tc.metric()
			if err := update(m, tc.first); err != nil {
				t.Fatal(err)
			}
			before := m.Value()
			err := update(m, tc.second)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("second batch: got error %v; want one containing %q", err, tc.want)
			}
			other := tc.metric()
			if err := update(other, tc.second); err != nil {
				t.Fatal(err)
			}
			if err := m.Merge(other); err == nil || !strings.Contains(err.Error(), "want the same number") {
				t.Errorf("Merge: got error %v; want one saying the widths differ", err)
			}
			if m.Rows() != 1 || m.Value() != before {
				t.Errorf("after the refused batch and merge: got Rows %d, Value %v; want 1, %v", m.Rows(), m.Value(), before)
			}
			m.Reset()
			if err := update(m, tc.second); err != nil {
				t.Errorf("after Reset, a batch of another width: got %v; want no error", err)
			}
		})
	}
}

func TestMergeErrors(t *testing.T) {
	acc := metrics.Accuracy()
	f1 := metrics.MacroF1()
	cases := []struct {
		name  string
		m, o  metrics.Metric
		wants string
	}{
		{"accuracy with f1", acc, f1, "accuracy: merge with macro_f1 (*metrics.F1): want another accuracy"},
		{"f1 with accuracy", f1, acc, "macro_f1: merge with accuracy"},
		{"mse with mae", metrics.MSE(), metrics.MAE(), "mse: merge with mae: want another mse"},
		{"into itself", f1, f1, "merge into itself"},
		{"with nil", acc, nil, "merge with nil"},
		{"with a typed nil", f1, (*metrics.F1)(nil), "merge with nil"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Merge(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.wants) {
				t.Errorf("got %v; want an error containing %q", err, tc.wants)
			}
		})
	}
}

// TestReset checks that Reset forgets every row, and that Merge leaves its
// argument unchanged.
func TestReset(t *testing.T) {
	mem := checkedMem(t)
	for _, tc := range refCases() {
		t.Run(tc.name, func(t *testing.T) {
			pred, truth := tc.pred(mem), tc.truth(mem)
			defer pred.Release()
			defer truth.Release()
			m, o := tc.metric(), tc.metric()
			if err := o.Update(pred, truth); err != nil {
				t.Fatal(err)
			}
			if err := m.Merge(o); err != nil {
				t.Fatal(err)
			}
			if got := o.Value(); !near(got, tc.want) || o.Rows() != int64(pred.Len()) {
				t.Errorf("the merged metric changed: got %v over %d rows; want %v over %d", got, o.Rows(), tc.want, pred.Len())
			}
			m.Reset()
			if m.Rows() != 0 || !math.IsNaN(m.Value()) {
				t.Errorf("after Reset: got Rows %d, Value %v; want 0, NaN", m.Rows(), m.Value())
			}
			if err := m.Update(pred, truth); err != nil {
				t.Fatal(err)
			}
			if got := m.Value(); !near(got, tc.want) {
				t.Errorf("after Reset and Update: got %v; want %v", got, tc.want)
			}
		})
	}
}

// TestReplicasConcurrently gives each of several goroutines its own
// metrics and a share of the batches, then merges them: the documented way
// to score in parallel (run with -race).
func TestReplicasConcurrently(t *testing.T) {
	mem := checkedMem(t)
	pred, truth := float64s(refValues...)(mem), float64s(refTruth...)(mem)
	defer pred.Release()
	defer truth.Release()
	ps, ts := batches(pred), batches(truth)
	defer func() {
		for i := range ps {
			ps[i].Release()
			ts[i].Release()
		}
	}()
	const replicas = 3
	type set struct{ mse, mae, r2 metrics.Metric }
	sets := make([]set, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for r := range replicas {
		sets[r] = set{metrics.MSE(), metrics.MAE(), metrics.R2()}
		wg.Go(func() {
			for i := r; i < len(ps); i += replicas {
				for _, m := range []metrics.Metric{sets[r].mse, sets[r].mae, sets[r].r2} {
					if err := m.Update(ps[i], ts[i]); err != nil {
						errs[r] = err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for r := 1; r < replicas; r++ {
		for _, pair := range [][2]metrics.Metric{{sets[0].mse, sets[r].mse}, {sets[0].mae, sets[r].mae}, {sets[0].r2, sets[r].r2}} {
			if err := pair[0].Merge(pair[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		m    metrics.Metric
		want float64
	}{{sets[0].mse, 0.7645956521739131}, {sets[0].mae, 0.6769565217391303}, {sets[0].r2, 0.8153741890833022}} {
		if got := c.m.Value(); !near(got, c.want) || c.m.Rows() != int64(len(refTruth)) {
			t.Errorf("%s: got %.17g over %d rows; want %.17g over %d", c.m.Name(), got, c.m.Rows(), c.want, len(refTruth))
		}
	}
}
