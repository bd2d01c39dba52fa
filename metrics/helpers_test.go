package metrics_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx returns a context that ends the test instead of hanging it.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkedMem returns an allocator that fails the test if anything it
// allocated is still held when the test ends.
func checkedMem(t *testing.T) *memory.CheckedAllocator {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// An array builds an Arrow array from mem; the caller releases it.
type arrayFunc func(mem memory.Allocator) arrow.Array

func int64s(v ...int64) arrayFunc {
	return func(mem memory.Allocator) arrow.Array {
		b := array.NewInt64Builder(mem)
		defer b.Release()
		b.AppendValues(v, nil)
		return b.NewArray()
	}
}

func int32s(v ...int64) arrayFunc {
	return func(mem memory.Allocator) arrow.Array {
		b := array.NewInt32Builder(mem)
		defer b.Release()
		for _, x := range v {
			b.Append(int32(x))
		}
		return b.NewArray()
	}
}

func float64s(v ...float64) arrayFunc {
	return func(mem memory.Allocator) arrow.Array {
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		b.AppendValues(v, nil)
		return b.NewArray()
	}
}

func float32s(v ...float64) arrayFunc {
	return func(mem memory.Allocator) arrow.Array {
		b := array.NewFloat32Builder(mem)
		defer b.Release()
		for _, x := range v {
			b.Append(float32(x))
		}
		return b.NewArray()
	}
}

func strs(v ...string) arrayFunc {
	return func(mem memory.Allocator) arrow.Array {
		b := array.NewStringBuilder(mem)
		defer b.Release()
		b.AppendValues(v, nil)
		return b.NewArray()
	}
}

// withNull is f's array with row i null.
func withNull(f arrayFunc, i int) arrayFunc {
	return func(mem memory.Allocator) arrow.Array {
		a := f(mem)
		defer a.Release()
		b := array.NewBuilder(mem, a.DataType())
		defer b.Release()
		for r := range a.Len() {
			if r == i {
				b.AppendNull()
			} else if err := b.AppendValueFromString(a.ValueStr(r)); err != nil {
				panic(err)
			}
		}
		return b.NewArray()
	}
}

// lists is a fixed_size_list<float64> (or <float32>) column of rows (of
// width 2 when there are none).
func lists(f32 bool, rows ...[]float64) arrayFunc {
	return func(mem memory.Allocator) arrow.Array {
		width := 2 // of a column of no rows
		if len(rows) > 0 {
			width = len(rows[0])
		}
		var elem arrow.DataType = arrow.PrimitiveTypes.Float64
		if f32 {
			elem = arrow.PrimitiveTypes.Float32
		}
		b := array.NewFixedSizeListBuilder(mem, int32(width), elem)
		defer b.Release()
		for _, row := range rows {
			b.Append(true)
			for _, v := range row {
				switch vb := b.ValueBuilder().(type) {
				case *array.Float64Builder:
					vb.Append(v)
				case *array.Float32Builder:
					vb.Append(float32(v))
				}
			}
		}
		return b.NewArray()
	}
}

func f64Lists(rows ...[]float64) arrayFunc { return lists(false, rows...) }
func f32Lists(rows ...[]float64) arrayFunc { return lists(true, rows...) }

// near reports whether got is want to within a relative (or, near zero,
// absolute) tolerance of 1e-12, or both are NaN.
func near(got, want float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) <= 1e-12*math.Max(1, math.Abs(want))
}
