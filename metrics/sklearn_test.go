package metrics_test

import (
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/metrics"
)

// The reference values of these tests were computed by scikit-learn 1.2.1
// (Debian's python3-sklearn, numpy 1.24.2) on the same data, with (the
// whole script is testdata/sklearn_reference.py):
//
//	import numpy as np
//	from sklearn.metrics import (accuracy_score, f1_score, log_loss,
//	    precision_recall_fscore_support, mean_squared_error,
//	    mean_absolute_error, r2_score)
//	y = np.array([2, 0, 0, 2, 0, 0, 1, 2, 1, 2, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 2, 0, 2])
//	P = np.array([[26, 64, 10], ..., [40, 20, 40]]) / 100  # refProbs, in hundredths
//	pred = P.argmax(axis=1)                               # refPred
//	accuracy_score(y, pred)                               # 0.30434782608695654
//	f1_score(y, pred, average="macro", zero_division=0)   # 0.2939291101055807
//	f1_score(y, pred, average=None, zero_division=0)      # [0.375, 0.35294117647058826, 0.15384615384615383]
//	precision_recall_fscore_support(y, pred, zero_division=0)
//	    # precision [0.375, 0.375, 0.14285714], recall [0.375, 0.33333333, 0.16666667], support [8, 9, 6]
//	log_loss(y, P, labels=[0, 1, 2], eps=1e-15)           # 3.043010849858346 (row 13 gives its true class 0)
//	P32 = P.astype(np.float32).astype(np.float64)
//	log_loss(y, P32, labels=[0, 1, 2], eps=1e-15)         # 3.0430108434535468
//	log_loss((y == 1).astype(int), P[:, 1], eps=1e-15)    # 2.3044615965502233
//	t2 = [0, 1, 2, 2, 1, 0]; p2 = [0, 1, 3, 1, 1, 3]      # class 3 never true, class 2 never predicted
//	f1_score(t2, p2, average="macro", zero_division=0)    # 0.3666666666666667
//	f1_score(t2, p2, average=None, zero_division=0)       # [0.6666666666666666, 0.8, 0.0, 0.0]
//	yr = np.array([2.29, ..., 3.74]); pr = np.array([1.8, ..., 3.84])  # refTruth, refValues
//	mean_squared_error(yr, pr)                            # 0.7645956521739131
//	mean_absolute_error(yr, pr)                           # 0.6769565217391303
//	r2_score(yr, pr)                                      # 0.8153741890833022
//	Y2 = np.stack([yr, 2 * yr - 1], axis=1); P2 = np.stack([pr, 1.5 * pr], axis=1)
//	mean_squared_error(Y2, P2)                            # 1.9449760869565214
//	mean_absolute_error(Y2, P2)                           # 1.0921739130434782
//	r2_score(Y2, P2)                                      # 0.8133526772929265
//	r2_score([3.0, 3.0, 3.0], [3.0, 3.0, 3.0])            # 1.0 (zero variance, exact)
//	r2_score([3.0, 3.0, 3.0], [3.0, 2.0, 3.0])            # 0.0 (zero variance, not exact)
//	r2_score([3.0], [2.0])                                # nan, UndefinedMetricWarning
//
// scikit-learn 1.2's default eps="auto" clips at the dtype's machine
// epsilon, 2.2e-16 for float64, instead of 1e-15: its log_loss(y, P,
// labels=[0, 1, 2]) is 3.108440284389062, the difference being row 13's
// -log(2.2e-16) for -log(1e-15). metrics.Eps is the older,
// dtype-independent default.
var (
	refClasses = []int64{2, 0, 0, 2, 0, 0, 1, 2, 1, 2, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 2, 0, 2}
	refPred    = []int64{1, 2, 0, 2, 1, 0, 2, 1, 1, 0, 2, 0, 1, 2, 2, 0, 1, 0, 1, 0, 1, 2, 0}
	refHundred = [][3]float64{{26, 64, 10}, {9, 3, 88}, {73, 24, 3}, {38, 22, 40}, {7, 53, 40}, {86, 3, 11},
		{43, 10, 47}, {1, 97, 2}, {15, 60, 25}, {77, 14, 9}, {3, 36, 61}, {65, 32, 3}, {11, 64, 25}, {6, 0, 94},
		{29, 30, 41}, {62, 7, 31}, {21, 51, 28}, {50, 30, 20}, {4, 70, 26}, {62, 31, 7}, {20, 60, 20}, {10, 0, 90},
		{40, 20, 40}}
	refTruth = []float64{2.29, 2.16, 4.25, 3.37, 5.74, 1.89, 3.58, 6.88, 2.52, 4.07, 6.14, 4.11, 1.73, -1.12,
		7.79, 3.86, 5.52, 2.05, 6.64, 4.04, 3.1, 1.2, 3.74}
	refValues = []float64{1.8, 1.94, 2.63, 2.88, 5.9, 0.64, 3.65, 7.54, 2.21, 3.45, 5.52, 5.05, 0.2, -1.42,
		7.37, 4.0, 5.45, 0.94, 8.68, 4.22, 1.76, 0.31, 3.84}
)

// refProbs returns the class probabilities P, row by row.
func refProbs() [][]float64 {
	out := make([][]float64, len(refHundred))
	for i, row := range refHundred {
		out[i] = []float64{row[0] / 100, row[1] / 100, row[2] / 100}
	}
	return out
}

// refOneHot returns refClasses one-hot encoded.
func refOneHot() [][]float64 {
	out := make([][]float64, len(refClasses))
	for i, c := range refClasses {
		out[i] = make([]float64, 3)
		out[i][c] = 1
	}
	return out
}

// refBinary returns y == 1 and P[:, 1].
func refBinary() ([]int64, []float64) {
	y := make([]int64, len(refClasses))
	p := make([]float64, len(refClasses))
	for i, c := range refClasses {
		if c == 1 {
			y[i] = 1
		}
		p[i] = refHundred[i][1] / 100
	}
	return y, p
}

// refTargets returns Y2 and P2, two targets per row.
func refTargets() (y2, p2 [][]float64) {
	for i := range refTruth {
		y2 = append(y2, []float64{refTruth[i], 2*refTruth[i] - 1})
		p2 = append(p2, []float64{refValues[i], 1.5 * refValues[i]})
	}
	return y2, p2
}

type refCase struct {
	name        string
	metric      func() metrics.Metric
	pred, truth arrayFunc
	want        float64
}

func refCases() []refCase {
	yb, pb := refBinary()
	y2, p2 := refTargets()
	pbRows := make([][]float64, len(pb))
	for i, p := range pb {
		pbRows[i] = []float64{p}
	}
	f1 := func() metrics.Metric { return metrics.MacroF1() }
	return []refCase{
		{"accuracy/int64", metrics.Accuracy, int64s(refPred...), int64s(refClasses...), 0.30434782608695654},
		{"accuracy/int32", metrics.Accuracy, int32s(refPred...), int32s(refClasses...), 0.30434782608695654},
		{"accuracy/argmax of probabilities", metrics.Accuracy, f64Lists(refProbs()...), int64s(refClasses...), 0.30434782608695654},
		{"accuracy/argmax of one-hot truth", metrics.Accuracy, f32Lists(refProbs()...), f64Lists(refOneHot()...), 0.30434782608695654},
		{"macro_f1/int64", f1, int64s(refPred...), int64s(refClasses...), 0.2939291101055807},
		{"macro_f1/argmax of probabilities", f1, f32Lists(refProbs()...), int32s(refClasses...), 0.2939291101055807},
		{"macro_f1/class only predicted, class only true", f1, int64s(0, 1, 3, 1, 1, 3), int64s(0, 1, 2, 2, 1, 0), 0.3666666666666667},
		{"log_loss/float64 probabilities", metrics.LogLoss, f64Lists(refProbs()...), int64s(refClasses...), 3.043010849858346},
		{"log_loss/float32 probabilities", metrics.LogLoss, f32Lists(refProbs()...), int64s(refClasses...), 3.0430108434535468},
		{"log_loss/one-hot truth", metrics.LogLoss, f64Lists(refProbs()...), f64Lists(refOneHot()...), 3.043010849858346},
		{"log_loss/binary, probability of class 1", metrics.LogLoss, float64s(pb...), int64s(yb...), 2.3044615965502233},
		{"log_loss/binary, list of width 1", metrics.LogLoss, f64Lists(pbRows...), int32s(yb...), 2.3044615965502233},
		{"mse/float64", metrics.MSE, float64s(refValues...), float64s(refTruth...), 0.7645956521739131},
		{"mae/float64", metrics.MAE, float64s(refValues...), float64s(refTruth...), 0.6769565217391303},
		{"r2/float64", metrics.R2, float64s(refValues...), float64s(refTruth...), 0.8153741890833022},
		{"mse/two targets", metrics.MSE, f64Lists(p2...), f64Lists(y2...), 1.9449760869565214},
		{"mae/two targets", metrics.MAE, f64Lists(p2...), f64Lists(y2...), 1.0921739130434782},
		{"r2/two targets", metrics.R2, f64Lists(p2...), f64Lists(y2...), 0.8133526772929265},
		{"r2/zero variance, exact", metrics.R2, float64s(3, 3, 3), float64s(3, 3, 3), 1},
		{"r2/zero variance, not exact", metrics.R2, float64s(3, 2, 3), float64s(3, 3, 3), 0},
		{"r2/list of width 1 against a column", metrics.R2, f64Lists(pbRows...), float64s(pb...), 1},
	}
}

// cuts are the batch boundaries used to split a case's rows: batches of
// 5, 7, 1, 0 and the rest rows (fewer where a case has fewer).
var cuts = []int{5, 12, 13, 13}

// batches slices arr into the batches of cuts; the caller releases them.
func batches(arr arrow.Array) []arrow.Array {
	var out []arrow.Array
	lo := 0
	for _, c := range append(cuts, arr.Len()) {
		hi := min(c, arr.Len())
		if hi < lo {
			hi = lo
		}
		out = append(out, array.NewSlice(arr, int64(lo), int64(hi)))
		lo = hi
	}
	return out
}

// TestSklearnReference checks every metric against scikit-learn, computed
// over all rows at once, over batches, and over batches shared between two
// replicas and merged.
func TestSklearnReference(t *testing.T) {
	for _, tc := range refCases() {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkedMem(t)
			pred, truth := tc.pred(mem), tc.truth(mem)
			defer pred.Release()
			defer truth.Release()
			rows := int64(pred.Len())

			whole := tc.metric()
			if err := whole.Update(pred, truth); err != nil {
				t.Fatalf("Update over all rows: %v", err)
			}
			if got := whole.Value(); !near(got, tc.want) {
				t.Errorf("over all rows: got %.17g; want %.17g (scikit-learn)", got, tc.want)
			}

			streamed := tc.metric()
			a, b := tc.metric(), tc.metric()
			ps, ts := batches(pred), batches(truth)
			for i := range ps {
				if err := streamed.Update(ps[i], ts[i]); err != nil {
					t.Fatalf("Update of batch %d: %v", i, err)
				}
				replica := a
				if i%2 == 1 {
					replica = b
				}
				if err := replica.Update(ps[i], ts[i]); err != nil {
					t.Fatalf("replica Update of batch %d: %v", i, err)
				}
				ps[i].Release()
				ts[i].Release()
			}
			if got := streamed.Value(); !near(got, whole.Value()) || !near(got, tc.want) {
				t.Errorf("over batches: got %.17g; want %.17g (all rows at once) and %.17g (scikit-learn)", got, whole.Value(), tc.want)
			}
			if err := a.Merge(b); err != nil {
				t.Fatalf("Merge: %v", err)
			}
			if got := a.Value(); !near(got, whole.Value()) || !near(got, tc.want) {
				t.Errorf("over two merged replicas: got %.17g; want %.17g (all rows at once) and %.17g (scikit-learn)", got, whole.Value(), tc.want)
			}
			for _, m := range []metrics.Metric{whole, streamed, a} {
				if m.Rows() != rows {
					t.Errorf("Rows: got %d; want %d", m.Rows(), rows)
				}
			}
			if got, err := metrics.Result(a); err != nil || got != a.Value() {
				t.Errorf("Result: got %v, %v; want %v, nil", got, err, a.Value())
			}
		})
	}
}

func TestPerClassF1(t *testing.T) {
	cases := []struct {
		name        string
		pred, truth []int64
		want        []metrics.ClassF1
	}{
		{"reference", refPred, refClasses, []metrics.ClassF1{
			// precision_recall_fscore_support(y, pred, zero_division=0)
			{Class: 0, Precision: 3.0 / 8, Recall: 3.0 / 8, F1: 0.375, Support: 8},
			{Class: 1, Precision: 0.375, Recall: 1.0 / 3, F1: 0.35294117647058826, Support: 9},
			{Class: 2, Precision: 1.0 / 7, Recall: 1.0 / 6, F1: 0.15384615384615383, Support: 6},
		}},
		{"class only predicted, class only true", []int64{0, 1, 3, 1, 1, 3}, []int64{0, 1, 2, 2, 1, 0}, []metrics.ClassF1{
			// f1_score(t2, p2, average=None, zero_division=0)
			{Class: 0, Precision: 1, Recall: 0.5, F1: 0.6666666666666666, Support: 2},
			{Class: 1, Precision: 2.0 / 3, Recall: 1, F1: 0.8, Support: 2},
			{Class: 2, Precision: 0, Recall: 0, F1: 0, Support: 2},
			{Class: 3, Precision: 0, Recall: 0, F1: 0, Support: 0},
		}},
		{"negative classes", []int64{-5, -5, 7}, []int64{-5, 7, 7}, []metrics.ClassF1{
			{Class: -5, Precision: 0.5, Recall: 1, F1: 2.0 / 3, Support: 1},
			{Class: 7, Precision: 1, Recall: 0.5, F1: 2.0 / 3, Support: 2},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkedMem(t)
			pred, truth := int64s(tc.pred...)(mem), int64s(tc.truth...)(mem)
			defer pred.Release()
			defer truth.Release()
			m := metrics.MacroF1()
			if err := m.Update(pred, truth); err != nil {
				t.Fatal(err)
			}
			got := m.PerClass()
			if len(got) != len(tc.want) {
				t.Fatalf("PerClass: got %d classes %+v; want %d", len(got), got, len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Class != w.Class || g.Support != w.Support || !near(g.Precision, w.Precision) || !near(g.Recall, w.Recall) || !near(g.F1, w.F1) {
					t.Errorf("class %d: got %+v; want %+v", i, g, w)
				}
			}
		})
	}
}

// TestLogLossClipping checks the clipping of probabilities to [Eps, 1-Eps]
// against its closed form: a row whose true class has probability 0 costs
// -log(1e-15) (after the row is divided by its sum, 1 + 1e-15 - 1e-15).
func TestLogLossClipping(t *testing.T) {
	mem := checkedMem(t)
	cases := []struct {
		name        string
		pred, truth arrayFunc
		want        float64
	}{
		{"probability 0 for the true class", f64Lists([]float64{0, 1}), int64s(0), -math.Log(metrics.Eps / (metrics.Eps + 1 - metrics.Eps))},
		{"probability 1 for the true class", f64Lists([]float64{0, 1}), int64s(1), -math.Log((1 - metrics.Eps) / (metrics.Eps + 1 - metrics.Eps))},
		{"binary 0 against class 1", float64s(0), int64s(1), -math.Log(metrics.Eps)},
		{"rows that do not sum to 1 are divided by their sum", f64Lists([]float64{0.2, 0.2}), int64s(0), math.Log(2)},
		{"soft labels", f64Lists([]float64{0.25, 0.75}), f64Lists([]float64{0.5, 0.5}), -(0.5*math.Log(0.25) + 0.5*math.Log(0.75))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pred, truth := tc.pred(mem), tc.truth(mem)
			defer pred.Release()
			defer truth.Release()
			m := metrics.LogLoss()
			if err := m.Update(pred, truth); err != nil {
				t.Fatal(err)
			}
			if got := m.Value(); !near(got, tc.want) {
				t.Errorf("got %.17g; want %.17g", got, tc.want)
			}
		})
	}
}
