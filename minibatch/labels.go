package minibatch

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
)

// This file holds what a step needs to read its expected outputs: a label
// or target column of Y as a Go slice (LabelsInt64, Classes, LabelsFloat32),
// and a classifier's features and labels together (Examples).

// LabelsInt64 returns the column named column of b's Y as one int64 per
// row: class labels.
//
// An int64 column is returned without copying: the slice aliases the
// column's Arrow buffer, is valid while the caller holds b (a step, while
// it has not returned) and must not be written to. Any other integer,
// floating-point or boolean (0, 1) column is converted into a new Go slice,
// the caller's. The error names the column and says what is wrong: b has no
// Y, Y has no such column (with the columns it has), the column has a type
// that is not numeric, holds nulls (with the first null row), or holds a
// value that is not a whole number in int64's range (with its row). Cost:
// O(1) for int64, else O(rows).
func LabelsInt64(b flow.Batch, column string) ([]int64, error) {
	col, err := yColumn(b, column)
	if err != nil {
		return nil, err
	}
	n := col.Len()
	switch c := col.(type) {
	case *array.Int64:
		return c.Int64Values(), nil
	case *array.Int8:
		return convert[int64](c.Int8Values()), nil
	case *array.Int16:
		return convert[int64](c.Int16Values()), nil
	case *array.Int32:
		return convert[int64](c.Int32Values()), nil
	case *array.Uint8:
		return convert[int64](c.Uint8Values()), nil
	case *array.Uint16:
		return convert[int64](c.Uint16Values()), nil
	case *array.Uint32:
		return convert[int64](c.Uint32Values()), nil
	case *array.Uint64:
		for i, v := range c.Uint64Values() {
			if v > math.MaxInt64 {
				return nil, fmt.Errorf("minibatch: labels: column %q of Y, row %d, holds %d, beyond int64's range", column, i, v)
			}
		}
		return convert[int64](c.Uint64Values()), nil
	case *array.Boolean:
		out := make([]int64, n)
		for i := range out {
			if c.Value(i) {
				out[i] = 1
			}
		}
		return out, nil
	case *array.Float16, *array.Float32, *array.Float64:
		out := make([]int64, n)
		for i := range out {
			v := floatAt(col, i)
			// -2⁶³ is an int64 and 2⁶³ is not: both are exact float64s.
			if v != math.Trunc(v) || v < -(1<<63) || v >= 1<<63 {
				return nil, fmt.Errorf("minibatch: labels: column %q of Y, row %d, holds %v, which is not an integer; class labels must be whole numbers (LabelsFloat32 reads real-valued targets)", column, i, v)
			}
			out[i] = int64(v)
		}
		return out, nil
	}
	return nil, labelTypeError(column, col.DataType())
}

// Classes returns the column named column of b's Y as class labels for a
// classifier of classes classes: LabelsInt64 (the same types, aliasing and
// errors), each label checked to lie in [0, classes). The error for one
// that does not names the column, the row and the value, and gives the
// range; classes below 1 is an error. Cost: LabelsInt64's, plus O(rows).
func Classes(b flow.Batch, column string, classes int) ([]int64, error) {
	if classes < 1 {
		return nil, fmt.Errorf("minibatch: labels: column %q of Y: %d classes, want at least 1", column, classes)
	}
	y, err := LabelsInt64(b, column)
	if err != nil {
		return nil, err
	}
	for i, v := range y {
		if v < 0 || v >= int64(classes) {
			return nil, fmt.Errorf("minibatch: labels: column %q of Y, row %d, holds %d; want 0 to %d (classes is %d)", column, i, v, classes-1, classes)
		}
	}
	return y, nil
}

// Examples returns what a classifier fits on: the features of b's X
// (Features(b, features)) and the class labels of b's Y (Classes(b,
// labels, classes)), with the same aliasing and errors, and checks that
// they have as many rows. The error for a batch whose label column has
// more or fewer rows than its features names both columns and both counts.
// Cost: Features' plus Classes'.
func Examples(b flow.Batch, features, labels string, classes int) (Matrix, []int64, error) {
	x, err := Features(b, features)
	if err != nil {
		return Matrix{}, nil, err
	}
	y, err := Classes(b, labels, classes)
	if err != nil {
		return Matrix{}, nil, err
	}
	if len(y) != x.Rows {
		return Matrix{}, nil, fmt.Errorf("minibatch: examples: column %q of Y has %d rows, column %q of X has %d; want as many labels as rows of features",
			labels, len(y), features, x.Rows)
	}
	return x, y, nil
}

// LabelsFloat32 returns the column named column of b's Y as one float32 per
// row: regression targets, or labels for a loss computed in float32.
//
// A float32 column is returned without copying: the slice aliases the
// column's Arrow buffer, is valid while the caller holds b (a step, while
// it has not returned) and must not be written to. Any other integer,
// floating-point or boolean (0, 1) column is converted into a new Go slice,
// the caller's (integers beyond 2²⁴ round to the nearest float32). The
// error names the column and says what is wrong: b has no Y, Y has no such
// column (with the columns it has), the column has a type that is not
// numeric, holds nulls (with the first null row), or holds a finite float64
// beyond float32's range (with its row). Cost: O(1) for float32, else
// O(rows).
func LabelsFloat32(b flow.Batch, column string) ([]float32, error) {
	col, err := yColumn(b, column)
	if err != nil {
		return nil, err
	}
	switch c := col.(type) {
	case *array.Float32:
		return c.Float32Values(), nil
	case *array.Float64:
		for i, v := range c.Float64Values() {
			if math.Abs(v) > math.MaxFloat32 && !math.IsInf(v, 0) {
				return nil, fmt.Errorf("minibatch: labels: column %q of Y, row %d, holds %v, beyond float32's range", column, i, v)
			}
		}
		return convert[float32](c.Float64Values()), nil
	case *array.Float16:
		out := make([]float32, c.Len())
		for i := range out {
			out[i] = c.Value(i).Float32()
		}
		return out, nil
	case *array.Boolean:
		out := make([]float32, c.Len())
		for i := range out {
			if c.Value(i) {
				out[i] = 1
			}
		}
		return out, nil
	case *array.Int8:
		return convert[float32](c.Int8Values()), nil
	case *array.Int16:
		return convert[float32](c.Int16Values()), nil
	case *array.Int32:
		return convert[float32](c.Int32Values()), nil
	case *array.Int64:
		return convert[float32](c.Int64Values()), nil
	case *array.Uint8:
		return convert[float32](c.Uint8Values()), nil
	case *array.Uint16:
		return convert[float32](c.Uint16Values()), nil
	case *array.Uint32:
		return convert[float32](c.Uint32Values()), nil
	case *array.Uint64:
		return convert[float32](c.Uint64Values()), nil
	}
	return nil, labelTypeError(column, col.DataType())
}

// yColumn returns the column named column of b's Y, checked for nulls.
func yColumn(b flow.Batch, column string) (arrow.Array, error) {
	if b.Y == nil {
		return nil, fmt.Errorf("minibatch: labels %q: the batch has no Y; a source puts the label columns in Y with minibatch.WithLabels", column)
	}
	col, err := recordColumn(b.Y, "Y", column)
	if err != nil {
		return nil, fmt.Errorf("minibatch: labels: %w; a source puts the label columns in Y with minibatch.WithLabels", err)
	}
	if n := col.NullN(); n > 0 {
		first := 0
		for first < col.Len() && col.IsValid(first) {
			first++
		}
		if first == col.Len() { // an invalid array: its null count lies
			return nil, fmt.Errorf("minibatch: labels: column %q of Y counts %d nulls but its validity bitmap marks none; an invalid array", column, n)
		}
		return nil, fmt.Errorf("minibatch: labels: column %q of Y has %d nulls, the first at row %d; labels cannot be null: drop or fill those rows first", column, n, first)
	}
	return col, nil
}

func labelTypeError(column string, dt arrow.DataType) error {
	return fmt.Errorf("minibatch: labels: column %q of Y has type %s, want an integer, floating-point or boolean column; encode other labels as integers first", column, dt)
}

// number is the element types that convert converts between.
type number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// convert returns a new slice of src's values converted to T.
func convert[T, S number](src []S) []T {
	out := make([]T, len(src))
	for i, v := range src {
		out[i] = T(v)
	}
	return out
}

// floatAt returns value i of a float16, float32 or float64 column.
func floatAt(col arrow.Array, i int) float64 {
	switch c := col.(type) {
	case *array.Float16:
		return float64(c.Value(i).Float32())
	case *array.Float32:
		return float64(c.Value(i))
	default:
		return col.(*array.Float64).Value(i)
	}
}
