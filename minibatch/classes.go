package minibatch

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
)

// This file holds class labels: finding the label column of a batch and
// giving each distinct label value a small id, shared by stratified
// splitting (split.go) and re-sampling (resample.go).

// labelColumn returns the label column of b: the column named name in Y,
// else in X, or the first column of Y when name is empty. where describes
// it for error messages.
func labelColumn(b flow.Batch, name string) (col arrow.Array, where string, err error) {
	if name == "" {
		if b.Y == nil || b.Y.NumCols() == 0 {
			return nil, "the first column of Y", errors.New("the batch has no Y (or Y has no columns); name the label column or give the batches a Y")
		}
		return b.Y.Column(0), fmt.Sprintf("Y column %q", b.Y.ColumnName(0)), nil
	}
	for _, rec := range []struct {
		role string
		rec  arrow.RecordBatch
	}{{"Y", b.Y}, {"X", b.X}} {
		if rec.rec == nil {
			continue
		}
		if idx := rec.rec.Schema().FieldIndices(name); len(idx) > 0 {
			return rec.rec.Column(idx[0]), fmt.Sprintf("%s column %q", rec.role, name), nil
		}
	}
	var have []string
	for _, rec := range []arrow.RecordBatch{b.Y, b.X} {
		if rec != nil {
			for _, f := range rec.Schema().Fields() {
				have = append(have, strconv.Quote(f.Name))
			}
		}
	}
	return nil, fmt.Sprintf("label column %q", name), fmt.Errorf("no column %q in Y or X (columns: %s)", name, strings.Join(have, ", "))
}

// classKey is one distinct label value.
type classKey struct {
	kind classKind
	bits uint64 // integer, float or boolean value
	str  string // string value (owned: cloned from the Arrow buffer)
}

type classKind uint8

const (
	classNull classKind = iota
	classInt
	classUint
	classFloat32
	classFloat64
	classString
	classBool
)

// String returns the text of the label: decimal for integers, the shortest
// exact form for floats, the value for strings, true or false, and
// "(null)" for a null.
func (k classKey) String() string {
	switch k.kind {
	case classInt:
		return strconv.FormatInt(int64(k.bits), 10)
	case classUint:
		return strconv.FormatUint(k.bits, 10)
	case classFloat32:
		return strconv.FormatFloat(float64(math.Float32frombits(uint32(k.bits))), 'g', -1, 32)
	case classFloat64:
		return strconv.FormatFloat(math.Float64frombits(k.bits), 'g', -1, 64)
	case classString:
		return k.str
	case classBool:
		return strconv.FormatBool(k.bits != 0)
	}
	return "(null)"
}

// classTable gives each distinct label value a small id, in order of first
// appearance.
type classTable struct {
	ids  map[classKey]int32
	keys []classKey
}

func (t *classTable) id(k classKey) int32 {
	if id, ok := t.ids[k]; ok {
		return id
	}
	if t.ids == nil {
		t.ids = make(map[classKey]int32)
	}
	k.str = strings.Clone(k.str)
	id := int32(len(t.keys))
	t.ids[k] = id
	t.keys = append(t.keys, k)
	return id
}

// appendIDs appends the class id of every row of col to dst. A null is a
// class of its own when nulls is true and an error otherwise.
func (t *classTable) appendIDs(dst []int32, col arrow.Array, nulls bool) ([]int32, error) {
	if col.NullN() > 0 && !nulls {
		for i := range col.Len() {
			if col.IsNull(i) {
				return dst, fmt.Errorf("row %d is null; every row needs a class", i)
			}
		}
	}
	switch a := col.(type) {
	case *array.Int8:
		return appendIntIDs(t, dst, a, a.Int8Values()), nil
	case *array.Int16:
		return appendIntIDs(t, dst, a, a.Int16Values()), nil
	case *array.Int32:
		return appendIntIDs(t, dst, a, a.Int32Values()), nil
	case *array.Int64:
		return appendIntIDs(t, dst, a, a.Int64Values()), nil
	case *array.Uint8:
		return appendUintIDs(t, dst, a, a.Uint8Values()), nil
	case *array.Uint16:
		return appendUintIDs(t, dst, a, a.Uint16Values()), nil
	case *array.Uint32:
		return appendUintIDs(t, dst, a, a.Uint32Values()), nil
	case *array.Uint64:
		return appendUintIDs(t, dst, a, a.Uint64Values()), nil
	case *array.Float32:
		return appendKeyIDs(t, dst, a, func(i int) classKey {
			v := a.Value(i)
			switch {
			case v == 0:
				v = 0 // -0 and +0 are one class
			case v != v:
				v = float32(math.NaN())
			}
			return classKey{kind: classFloat32, bits: uint64(math.Float32bits(v))}
		}), nil
	case *array.Float64:
		return appendKeyIDs(t, dst, a, func(i int) classKey {
			v := a.Value(i)
			switch {
			case v == 0:
				v = 0
			case v != v:
				v = math.NaN()
			}
			return classKey{kind: classFloat64, bits: math.Float64bits(v)}
		}), nil
	case *array.String:
		return appendKeyIDs(t, dst, a, func(i int) classKey { return classKey{kind: classString, str: a.Value(i)} }), nil
	case *array.LargeString:
		return appendKeyIDs(t, dst, a, func(i int) classKey { return classKey{kind: classString, str: a.Value(i)} }), nil
	case *array.StringView:
		return appendKeyIDs(t, dst, a, func(i int) classKey { return classKey{kind: classString, str: a.Value(i)} }), nil
	case *array.Boolean:
		return appendKeyIDs(t, dst, a, func(i int) classKey {
			if a.Value(i) {
				return classKey{kind: classBool, bits: 1}
			}
			return classKey{kind: classBool}
		}), nil
	case *array.Dictionary:
		dict, err := t.appendIDs(nil, a.Dictionary(), nulls)
		if err != nil {
			return dst, fmt.Errorf("dictionary: %w", err)
		}
		null := int32(-1)
		for i := range a.Len() {
			if a.IsNull(i) {
				if null < 0 {
					null = t.id(classKey{kind: classNull})
				}
				dst = append(dst, null)
				continue
			}
			dst = append(dst, dict[a.GetValueIndex(i)])
		}
		return dst, nil
	}
	return dst, fmt.Errorf("got type %s; want an integer, floating-point, string or boolean column (or a dictionary of one) as class labels", col.DataType())
}

func appendIntIDs[T int8 | int16 | int32 | int64](t *classTable, dst []int32, col arrow.Array, vals []T) []int32 {
	return appendKeyIDs(t, dst, col, func(i int) classKey { return classKey{kind: classInt, bits: uint64(int64(vals[i]))} })
}

func appendUintIDs[T uint8 | uint16 | uint32 | uint64](t *classTable, dst []int32, col arrow.Array, vals []T) []int32 {
	return appendKeyIDs(t, dst, col, func(i int) classKey { return classKey{kind: classUint, bits: uint64(vals[i])} })
}

func appendKeyIDs(t *classTable, dst []int32, col arrow.Array, key func(i int) classKey) []int32 {
	hasNulls := col.NullN() > 0
	for i := range col.Len() {
		if hasNulls && col.IsNull(i) {
			dst = append(dst, t.id(classKey{kind: classNull}))
			continue
		}
		dst = append(dst, t.id(key(i)))
	}
	return dst
}
