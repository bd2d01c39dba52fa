package metrics_test

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/metrics"
)

// cast is f's array cast to type to.
func cast(f arrayFunc, to arrow.DataType) arrayFunc {
	return func(mem memory.Allocator) arrow.Array {
		a := f(mem)
		defer a.Release()
		b := array.NewBuilder(mem, to)
		defer b.Release()
		for i := range a.Len() {
			if err := b.AppendValueFromString(strconv.FormatFloat(valueOf(a, i), 'f', -1, 64)); err != nil {
				panic(err)
			}
		}
		return b.NewArray()
	}
}

func valueOf(a arrow.Array, i int) float64 {
	switch a := a.(type) {
	case *array.Int64:
		return float64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	}
	panic(a.DataType())
}

// TestIntegerTypes checks that every integer type reads as the same
// classes, and as the same values.
func TestIntegerTypes(t *testing.T) {
	types := []arrow.DataType{
		arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64,
		arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Uint32,
	}
	ints := make([]float64, len(refTruth))
	for i, v := range refTruth {
		ints[i] = math.Round(v + 2) // non-negative, for the unsigned types
	}
	mse := 0.0
	for i := range ints {
		d := ints[i] - refValues[i]
		mse += d * d
	}
	mse /= float64(len(ints))
	for _, dt := range types {
		t.Run(dt.String(), func(t *testing.T) {
			mem := checkedMem(t)
			for _, c := range []struct {
				metric      metrics.Metric
				pred, truth arrayFunc
				want        float64
			}{
				{metrics.Accuracy(), cast(int64s(refPred...), dt), cast(int64s(refClasses...), dt), 0.30434782608695654},
				{metrics.MacroF1(), cast(int64s(refPred...), dt), int64s(refClasses...), 0.2939291101055807},
				{metrics.LogLoss(), f64Lists(refProbs()...), cast(int64s(refClasses...), dt), 3.043010849858346},
				{metrics.MSE(), float64s(refValues...), cast(float64s(ints...), dt), mse},
			} {
				pred, truth := c.pred(mem), c.truth(mem)
				if err := c.metric.Update(pred, truth); err != nil {
					t.Errorf("%s: %v", c.metric.Name(), err)
				} else if got := c.metric.Value(); !near(got, c.want) {
					t.Errorf("%s: got %.17g; want %.17g", c.metric.Name(), got, c.want)
				}
				pred.Release()
				truth.Release()
			}
		})
	}
}

// TestMoreErrors covers the arrays that TestUpdateErrors does not.
func TestMoreErrors(t *testing.T) {
	mem := checkedMem(t)
	nullValue := func(mem memory.Allocator) arrow.Array {
		b := array.NewFixedSizeListBuilder(mem, 2, arrow.PrimitiveTypes.Float64)
		defer b.Release()
		vb := b.ValueBuilder().(*array.Float64Builder)
		b.Append(true)
		vb.AppendValues([]float64{0.5, 0.5}, nil)
		b.Append(true)
		vb.Append(0.5)
		vb.AppendNull()
		return b.NewArray()
	}
	cases := []struct {
		name        string
		metric      metrics.Metric
		pred, truth arrayFunc
		want        string
	}{
		{"a null value in a list", metrics.Accuracy(), nullValue, int64s(0, 1), "prediction has a null at value 1 of row 1"},
		{"a list of integers", metrics.MSE(), func(mem memory.Allocator) arrow.Array {
			b := array.NewFixedSizeListBuilder(mem, 1, arrow.PrimitiveTypes.Int64)
			defer b.Release()
			b.Append(true)
			b.ValueBuilder().(*array.Int64Builder).Append(1)
			return b.NewArray()
		}, float64s(1), "prediction has type fixed_size_list<item: int64, nullable>[1], want values"},
		{"soft labels above 1", metrics.LogLoss(), f64Lists([]float64{0.5, 0.5}), f64Lists([]float64{2, 0}), "truth has 2 at value 0 of row 0; want label weights in [0, 1]"},
		{"log_loss of string labels", metrics.LogLoss(), f64Lists([]float64{0.5, 0.5}), strs("a"), "truth has type utf8, want integer classes"},
		{"a nil prediction", metrics.MAE(), nil, float64s(1), "prediction is a nil array"},
		{"a nil truth", metrics.R2(), float64s(1), nil, "truth is a nil array"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var pred, truth arrow.Array
			if tc.pred != nil {
				pred = tc.pred(mem)
				defer pred.Release()
			}
			if tc.truth != nil {
				truth = tc.truth(mem)
				defer truth.Release()
			}
			err := tc.metric.Update(pred, truth)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestR2FarFromZero checks that R2 stays precise where the truth's mean is
// far larger than its spread, over batches and merged replicas: the
// formula Σy² - (Σy)²/n would lose every digit there (Σy² ≈ 2e19, whose
// rounding, ~4e3, exceeds the spread Σ(y-ȳ)² ≈ 80).
func TestR2FarFromZero(t *testing.T) {
	mem := checkedMem(t)
	const offset = 1e9
	ys, ps := make([]float64, len(refTruth)), make([]float64, len(refTruth))
	for i := range refTruth {
		ys[i], ps[i] = offset+refTruth[i], offset+refValues[i]
	}
	pred, truth := float64s(ps...)(mem), float64s(ys...)(mem)
	defer pred.Release()
	defer truth.Release()
	a, b := metrics.R2(), metrics.R2()
	pb, tb := batches(pred), batches(truth)
	for i := range pb {
		m := a
		if i%2 == 1 {
			m = b
		}
		if err := m.Update(pb[i], tb[i]); err != nil {
			t.Fatal(err)
		}
		pb[i].Release()
		tb[i].Release()
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	// r2_score(yr, pr), shifted: the values themselves are rounded to ~1e-7.
	if got, want := a.Value(), 0.8153741890833022; math.Abs(got-want) > 1e-6 {
		t.Errorf("got %.17g; want %.17g to within 1e-6", got, want)
	}
}
