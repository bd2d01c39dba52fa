package metrics

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// What each kind of column may be, for error messages.
const (
	wantClasses = "integer classes (int8 to int64, uint8 to uint32) or class scores " +
		"(fixed_size_list<float32> or fixed_size_list<float64>, one value per class; the class is the argmax)"
	wantProbs = "class probabilities (fixed_size_list<float32> or fixed_size_list<float64>, one value per class), " +
		"or the probability of class 1 (float32 or float64)"
	wantLogTruth = "integer classes (int8 to int64, uint8 to uint32) or one-hot or soft labels " +
		"(fixed_size_list<float32> or fixed_size_list<float64>, one value per class)"
	wantValues = "values (float32, float64, int8 to int64, uint8 to uint32) or a vector of values per row " +
		"(fixed_size_list<float32> or fixed_size_list<float64>)"
)

// noNulls reports the nulls of col, a column playing role, by row.
func noNulls(name, role string, col arrow.Array) error {
	if n := col.NullN(); n > 0 {
		first := 0
		for col.IsValid(first) {
			first++
		}
		return fmt.Errorf("metrics: %s: %s has %d nulls (the first at row %d); fill or drop them first", name, role, n, first)
	}
	return nil
}

// integers returns an integer column as a function of the row, or false
// when col is not one of the integer types that can hold a class.
func integers(col arrow.Array) (func(i int) int64, bool) {
	switch c := col.(type) {
	case *array.Int64:
		v := c.Int64Values()
		return func(i int) int64 { return v[i] }, true
	case *array.Int32:
		v := c.Int32Values()
		return func(i int) int64 { return int64(v[i]) }, true
	case *array.Int16:
		v := c.Int16Values()
		return func(i int) int64 { return int64(v[i]) }, true
	case *array.Int8:
		v := c.Int8Values()
		return func(i int) int64 { return int64(v[i]) }, true
	case *array.Uint32:
		v := c.Uint32Values()
		return func(i int) int64 { return int64(v[i]) }, true
	case *array.Uint16:
		v := c.Uint16Values()
		return func(i int) int64 { return int64(v[i]) }, true
	case *array.Uint8:
		v := c.Uint8Values()
		return func(i int) int64 { return int64(v[i]) }, true
	}
	return nil, false
}

// floats returns a float column as a function of the row, or false.
func floats(col arrow.Array) (func(i int) float64, bool) {
	switch c := col.(type) {
	case *array.Float64:
		v := c.Float64Values()
		return func(i int) float64 { return v[i] }, true
	case *array.Float32:
		v := c.Float32Values()
		return func(i int) float64 { return float64(v[i]) }, true
	}
	return nil, false
}

// matrix is a FixedSizeList<float32|float64> column: rows × width values,
// row-major, read as float64.
type matrix struct {
	rows, width int
	at          func(j int) float64 // value j of the row-major rows × width values
}

func (m matrix) get(i, k int) float64 { return m.at(i*m.width + k) }

// vectors returns col as a matrix, false when col is not a fixed-size list
// of float32 or float64, or an error for a list of width 0 or with null
// values.
func vectors(name, role string, col arrow.Array) (matrix, bool, error) {
	fsl, ok := col.(*array.FixedSizeList)
	if !ok {
		return matrix{}, false, nil
	}
	width := int(fsl.DataType().(*arrow.FixedSizeListType).Len())
	values, ok := floats(fsl.ListValues())
	if !ok {
		return matrix{}, false, nil
	}
	if width == 0 {
		return matrix{}, true, fmt.Errorf("metrics: %s: %s has type %s, want at least one value per row", name, role, col.DataType())
	}
	start := fsl.Offset() * width
	if child := fsl.ListValues(); child.NullN() > 0 {
		for j := start; j < start+fsl.Len()*width; j++ {
			if child.IsNull(j) {
				return matrix{}, true, fmt.Errorf("metrics: %s: %s has a null at value %d of row %d; fill it first", name, role, (j-start)%width, (j-start)/width)
			}
		}
	}
	return matrix{rows: fsl.Len(), width: width, at: func(j int) float64 { return values(start + j) }}, true, nil
}

// classes reads col, a column playing role, as one class per row: an
// integer column as it is, a column of class scores as the index of its
// largest value (the first one on ties, as numpy's argmax).
func classes(name, role string, col arrow.Array) (func(i int) int64, error) {
	if err := noNulls(name, role, col); err != nil {
		return nil, err
	}
	if at, ok := integers(col); ok {
		return at, nil
	}
	m, ok, err := vectors(name, role, col)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("metrics: %s: %s has type %s, want %s", name, role, col.DataType(), wantClasses)
	}
	best := make([]int64, m.rows)
	for i := range m.rows {
		b, bv := 0, m.get(i, 0)
		for k := range m.width {
			v := m.get(i, k)
			if math.IsNaN(v) {
				return nil, fmt.Errorf("metrics: %s: %s has NaN at value %d of row %d; its class is undefined", name, role, k, i)
			}
			if v > bv {
				b, bv = k, v
			}
		}
		best[i] = int64(b)
	}
	return func(i int) int64 { return best[i] }, nil
}

// values reads col, a column playing role, as rows × width finite values: a
// numeric column has width 1.
func values(name, role string, col arrow.Array) (matrix, error) {
	if err := noNulls(name, role, col); err != nil {
		return matrix{}, err
	}
	var m matrix
	if at, ok := floats(col); ok {
		m = matrix{rows: col.Len(), width: 1, at: at}
	} else if at, ok := integers(col); ok {
		return matrix{rows: col.Len(), width: 1, at: func(j int) float64 { return float64(at(j)) }}, nil
	} else {
		var err error
		if m, ok, err = vectors(name, role, col); err != nil {
			return matrix{}, err
		}
		if !ok {
			return matrix{}, fmt.Errorf("metrics: %s: %s has type %s, want %s", name, role, col.DataType(), wantValues)
		}
	}
	for j := range m.rows * m.width {
		if v := m.at(j); math.IsNaN(v) || math.IsInf(v, 0) {
			return matrix{}, fmt.Errorf("metrics: %s: %s has %v at %s; want finite values", name, role, v, position(m, j))
		}
	}
	return m, nil
}

// position names value j of m: its row, and its index in the row when rows
// hold several values.
func position(m matrix, j int) string {
	if m.width == 1 {
		return fmt.Sprintf("row %d", j)
	}
	return fmt.Sprintf("value %d of row %d", j%m.width, j/m.width)
}
