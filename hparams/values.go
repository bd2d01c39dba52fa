package hparams

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/penstock-ml/penstock/flow"
)

// Values are hyperparameter values, flat: each key is the Key of a step's
// path and the parameter's name joined by "__" ("mlp__hidden",
// "features__scale__with_mean"; a parameter of the root step is its bare
// name). A value is a float64, an int, a bool or a string (see Type);
// Convert turns other Go numbers into these.
//
// Values given to a step's SetParams, and returned by its Params, are keyed
// by the bare parameter names of that step.
type Values map[string]any

// Keys returns the keys of v, sorted.
func (v Values) Keys() []string { return slices.Sorted(maps.Keys(v)) }

// String returns v as "{a: 1, b__c: "x"}", keys sorted.
func (v Values) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range v.Keys() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(formatValue(v[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// Nested returns v as a tree: the key "a__b__c" becomes the entry "c" of
// the map at "b" of the map at "a". It returns an error where a key is
// both a value and the prefix of another key ("a" and "a__b"), or where a
// key has an empty part.
func (v Values) Nested() (map[string]any, error) {
	out := map[string]any{}
	for _, key := range v.Keys() {
		parts := strings.Split(key, flow.KeySeparator)
		m := out
		for i, p := range parts {
			if p == "" {
				return nil, fmt.Errorf("hparams: key %q has an empty part", key)
			}
			if i == len(parts)-1 {
				if _, ok := m[p].(map[string]any); ok {
					return nil, fmt.Errorf("hparams: key %q is both a value and the prefix of other keys", key)
				}
				m[p] = v[key]
				break
			}
			next, ok := m[p]
			if !ok {
				sub := map[string]any{}
				m[p] = sub
				m = sub
				continue
			}
			sub, ok := next.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("hparams: key %q is both a value and the prefix of other keys", strings.Join(parts[:i+1], flow.KeySeparator))
			}
			m = sub
		}
	}
	return out, nil
}

// FromNested returns the flat Values of a tree made by Nested (or decoded
// from JSON): every entry that is not a map[string]any is a value, keyed by
// the names on its way joined by "__". A name that is empty or contains
// "__" is an error, and so is an empty map (it would have no key).
func FromNested(tree map[string]any) (Values, error) {
	out := Values{}
	if err := flatten(out, "", tree); err != nil {
		return nil, err
	}
	return out, nil
}

func flatten(out Values, prefix string, m map[string]any) error {
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if name == "" || strings.Contains(name, flow.KeySeparator) {
			return fmt.Errorf("hparams: nested name %q under %q: names are not empty and have no %q", name, prefix, flow.KeySeparator)
		}
		key := joinKey(prefix, name)
		if sub, ok := m[name].(map[string]any); ok {
			if len(sub) == 0 {
				return fmt.Errorf("hparams: nested %q is an empty map", key)
			}
			if err := flatten(out, key, sub); err != nil {
				return err
			}
			continue
		}
		out[key] = m[name]
	}
	return nil
}

// joinKey returns the key of the parameter name of the step whose path
// key is prefix.
func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + flow.KeySeparator + name
}

// Type is the type of a hyperparameter's values.
type Type int

// The types of values. Their Go types are float64, int, bool and string.
const (
	Float Type = iota + 1
	Int
	Bool
	String
)

func (t Type) String() string {
	switch t {
	case Float:
		return "float"
	case Int:
		return "int"
	case Bool:
		return "bool"
	case String:
		return "string"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// TypeOf returns the Type that v converts to: Float for float32 and
// float64, Int for every Go integer type, Bool, String; false for any
// other value.
func TypeOf(v any) (Type, bool) {
	switch v.(type) {
	case float64, float32:
		return Float, true
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr:
		return Int, true
	case bool:
		return Bool, true
	case string:
		return String, true
	}
	return 0, false
}

// Convert returns v as a value of type t: a float64 for Float (from any Go
// number), an int for Int (from any Go integer that fits, or from a float
// that is a whole number), the bool or string itself for Bool and String.
// Anything else is an error that says what v is and what was wanted.
func Convert(v any, t Type) (any, error) {
	switch t {
	case Float:
		if f, ok := asFloat(v); ok {
			return f, nil
		}
	case Int:
		if i, ok := asInt(v); ok {
			return i, nil
		}
		if f, ok := asFloat(v); ok {
			if f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 {
				return int(f), nil
			}
			if f == math.Trunc(f) && !math.IsInf(f, 0) {
				return nil, fmt.Errorf("%s is outside the range of an int", formatValue(v))
			}
			return nil, fmt.Errorf("%s is not a whole number, want an int", formatValue(v))
		}
	case Bool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case String:
		if s, ok := v.(string); ok {
			return s, nil
		}
	default:
		return nil, fmt.Errorf("unknown type %v", t)
	}
	return nil, fmt.Errorf("%s is %s, want %s", formatValue(v), describe(v), article(t))
}

// canonical converts v to its own Type's Go type.
func canonical(v any) (any, error) {
	t, ok := TypeOf(v)
	if !ok {
		return nil, fmt.Errorf("%s is %s, want a float64, int, bool or string", formatValue(v), describe(v))
	}
	return Convert(v, t)
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	if i, ok := asInt64(v); ok {
		return float64(i), true
	}
	if u, ok := v.(uint64); ok {
		return float64(u), true
	}
	if u, ok := v.(uint); ok {
		return float64(u), true
	}
	if u, ok := v.(uintptr); ok {
		return float64(u), true
	}
	return 0, false
}

func asInt(v any) (int, bool) {
	if i, ok := asInt64(v); ok {
		return int(i), true
	}
	var u uint64
	switch x := v.(type) {
	case uint:
		u = uint64(x)
	case uint64:
		u = x
	case uintptr:
		u = uint64(x)
	default:
		return 0, false
	}
	if u > math.MaxInt {
		return 0, false
	}
	return int(u), true
}

// asInt64 converts the integer types that always fit in an int64 (int is
// 64 bits wide on every platform this module builds for; see go.mod).
func asInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	}
	return 0, false
}

func describe(v any) string {
	if t, ok := TypeOf(v); ok {
		return article(t)
	}
	if v == nil {
		return "nil"
	}
	return fmt.Sprintf("a %T", v)
}

func article(t Type) string {
	if t == Int {
		return "an int"
	}
	return "a " + t.String()
}

// formatValue prints a value as errors and String methods show it:
// floats in their shortest form, strings quoted.
func formatValue(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case string:
		return strconv.Quote(x)
	}
	return fmt.Sprint(v)
}

func formatValues(vs []any) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = formatValue(v)
	}
	return strings.Join(parts, ", ")
}
