package hparams

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// fixed is Fixed: always one value.
type fixed struct {
	v   any
	t   Type
	err error
}

// Fixed returns the distribution that always gives v (a float64, int,
// bool or string, or another Go number, converted by Convert): a
// hyperparameter that a search leaves as it is.
func Fixed(v any) Distribution {
	c, err := canonical(v)
	if err == nil {
		err = notNaN(c)
	}
	if err != nil {
		return fixed{v: v, err: fmt.Errorf("Fixed: %w", err)}
	}
	t, _ := TypeOf(c)
	return fixed{v: c, t: t}
}

func (d fixed) String() string        { return "Fixed(" + formatValue(d.v) + ")" }
func (d fixed) Type() Type            { return d.t }
func (d fixed) Validate() error       { return d.err }
func (d fixed) Sample(*rand.Rand) any { return d.v }
func (d fixed) Contains(v any) bool   { c, err := Convert(v, d.t); return err == nil && c == d.v }
func (d fixed) Values() ([]any, bool) { return []any{d.v}, true }
func (d fixed) Continuous() bool      { return false }
func (d fixed) Density(v any) float64 { return indicator(d.Contains(v)) }
func (d fixed) Stats() (Stats, bool)  { return numericStats([]any{d.v}, []float64{1}) }

func indicator(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// boolean is Boolean.
type boolean struct{ p float64 }

// Boolean returns the distribution of a bool that is true with
// probability p (Boolean(0.5) for a fair coin); p is in [0, 1].
func Boolean(p float64) Distribution { return boolean{p: p} }

func (d boolean) String() string { return "Boolean(" + formatValue(d.p) + ")" }
func (d boolean) Type() Type     { return Bool }
func (d boolean) Validate() error {
	if !(d.p >= 0 && d.p <= 1) {
		return fmt.Errorf("Boolean(%s): the probability of true is not in [0, 1]", formatValue(d.p))
	}
	return nil
}
func (d boolean) Sample(r *rand.Rand) any { return r.Float64() < d.p }
func (d boolean) Contains(v any) bool {
	b, ok := v.(bool)
	return ok && d.Density(b) > 0
}
func (d boolean) Values() ([]any, bool) {
	var out []any
	for _, b := range []bool{false, true} {
		if d.Density(b) > 0 {
			out = append(out, b)
		}
	}
	return out, true
}
func (d boolean) Continuous() bool { return false }
func (d boolean) Density(v any) float64 {
	b, ok := v.(bool)
	switch {
	case !ok:
		return 0
	case b:
		return d.p
	default:
		return 1 - d.p
	}
}
func (d boolean) Stats() (Stats, bool) { return Stats{}, false }

// choice is Choice, PriorityChoice and WeightedChoice: one of a list of
// values, with weights.
type choice struct {
	name    string
	values  []any
	weights []float64 // nil for equal weights
	scale   float64   // the weights are weighed as weights[i]·scale (see checkWeights)
	total   float64   // of the weights so scaled
	t       Type
	err     error
}

// Choice returns the distribution that gives one of values, each as
// likely. The values are of one Type (ints and floats together are
// floats) and distinct.
func Choice(values ...any) Distribution { return newChoice("Choice", values, nil) }

// PriorityChoice is Choice weighted toward the first values: of n values,
// the i-th (from 0) has weight n-i, so the first is n times as likely as
// the last. It is for lists ordered from the usual choice to the unusual.
func PriorityChoice(values ...any) Distribution {
	w := make([]float64, len(values))
	for i := range w {
		w[i] = float64(len(values) - i)
	}
	return newChoice("PriorityChoice", values, w)
}

// WeightedChoice is Choice with a weight for each value: the value i is
// drawn with probability weights[i] / sum(weights). Weights are positive
// and finite, one per value.
func WeightedChoice(weights []float64, values ...any) Distribution {
	return newChoice("WeightedChoice", values, append([]float64(nil), weights...))
}

func newChoice(name string, values []any, weights []float64) choice {
	d := choice{name: name, weights: weights}
	d.values, d.t, d.err = sameType(values)
	if d.err == nil && len(values) == 0 {
		d.err = errors.New("no values")
	}
	if d.err == nil && weights != nil {
		d.total, d.scale, d.err = checkWeights(weights, len(values))
	}
	if d.err == nil {
		seen := map[any]bool{}
		for i, v := range d.values {
			if err := notNaN(v); err != nil {
				d.err = fmt.Errorf("value %d: %w", i, err)
				break
			}
			if seen[v] {
				d.err = fmt.Errorf("%s is listed twice", formatValue(v))
				break
			}
			seen[v] = true
		}
	}
	if d.err != nil {
		d.err = fmt.Errorf("%s(%s): %w", name, formatValues(values), d.err)
		d.values = append([]any(nil), values...)
	}
	return d
}

// notNaN refuses a NaN value: no value equals it, so a distribution that
// gave it would give what its own Contains, and so Set, refuses.
func notNaN(v any) error {
	if f, ok := v.(float64); ok && math.IsNaN(f) {
		return errors.New("NaN is no value (it equals none, itself included)")
	}
	return nil
}

// sameType converts values to one Type: Float where ints and floats are
// mixed, else the Type they share.
func sameType(values []any) ([]any, Type, error) {
	out := make([]any, len(values))
	var t Type
	for i, v := range values {
		c, err := canonical(v)
		if err != nil {
			return nil, 0, fmt.Errorf("value %d: %w", i, err)
		}
		out[i] = c
		vt, _ := TypeOf(c)
		switch {
		case t == 0 || t == vt:
			t = vt
		case (t == Int && vt == Float) || (t == Float && vt == Int):
			t = Float
		default:
			return nil, 0, fmt.Errorf("value %d (%s) is %s, the others are %s", i, formatValue(v), article(vt), article(t))
		}
	}
	for i := range out {
		out[i], _ = Convert(out[i], t)
	}
	return out, t, nil
}

// checkWeights checks weights and returns their total and the scale to
// weigh them by: 1, or where their sum overflows (1e308 and 1e308) the
// power of two that brings it back into the float64s, which keeps their
// ratios exact.
func checkWeights(weights []float64, n int) (total, scale float64, err error) {
	if len(weights) != n {
		return 0, 0, fmt.Errorf("%d weights for %d values", len(weights), n)
	}
	for i, w := range weights {
		if !(w > 0) || math.IsInf(w, 0) {
			return 0, 0, fmt.Errorf("weight %d is %s, want a positive finite number", i, formatValue(w))
		}
		total += w
	}
	for scale = 1; math.IsInf(total, 1); {
		scale /= 2
		total = 0
		for _, w := range weights {
			total += w * scale
		}
	}
	return total, scale, nil
}

func (d choice) String() string {
	if d.name == "WeightedChoice" {
		return fmt.Sprintf("WeightedChoice(%v, %s)", d.weights, formatValues(d.values))
	}
	return d.name + "(" + formatValues(d.values) + ")"
}
func (d choice) Type() Type      { return d.t }
func (d choice) Validate() error { return d.err }
func (d choice) Sample(r *rand.Rand) any {
	if d.weights == nil {
		return d.values[r.IntN(len(d.values))]
	}
	return d.values[pick(r, d.weights, d.scale, d.total)]
}

// pick draws an index with probability weights[i]·scale/total.
func pick(r *rand.Rand, weights []float64, scale, total float64) int {
	u := r.Float64() * total
	for i, w := range weights {
		if u < w*scale {
			return i
		}
		u -= w * scale
	}
	return len(weights) - 1
}

func (d choice) index(v any) int {
	c, err := Convert(v, d.t)
	if err != nil {
		return -1
	}
	for i, x := range d.values {
		if x == c {
			return i
		}
	}
	return -1
}

func (d choice) Contains(v any) bool { return d.index(v) >= 0 }
func (d choice) Values() ([]any, bool) {
	if len(d.values) > MaxValues {
		return nil, false
	}
	return append([]any(nil), d.values...), true
}
func (d choice) Continuous() bool { return false }
func (d choice) Density(v any) float64 {
	i := d.index(v)
	switch {
	case i < 0:
		return 0
	case d.weights == nil:
		return 1 / float64(len(d.values))
	default:
		return d.weights[i] * d.scale / d.total
	}
}
func (d choice) Stats() (Stats, bool) {
	p := make([]float64, len(d.values))
	for i, v := range d.values {
		p[i] = d.Density(v)
	}
	return numericStats(d.values, p)
}

// numericStats returns the stats of a finite distribution over numbers
// whose value i has probability p[i].
func numericStats(values []any, p []float64) (Stats, bool) {
	if len(values) == 0 {
		return Stats{}, false
	}
	s := Stats{Min: math.Inf(1), Max: math.Inf(-1)}
	xs := make([]float64, len(values))
	for i, v := range values {
		t, _ := TypeOf(v)
		if t != Float && t != Int {
			return Stats{}, false
		}
		xs[i], _ = asFloat(v)
		s.Min = math.Min(s.Min, xs[i])
		s.Max = math.Max(s.Max, xs[i])
		s.Mean += p[i] * xs[i]
	}
	variance := 0.0
	for i, x := range xs {
		variance += p[i] * (x - s.Mean) * (x - s.Mean)
	}
	s.Std = math.Sqrt(variance)
	return s, true
}

// intRange is IntRange.
type intRange struct{ lo, hi int }

// IntRange returns the distribution of the ints from lo to hi, both
// included, each as likely.
func IntRange(lo, hi int) Distribution { return intRange{lo: lo, hi: hi} }

func (d intRange) String() string { return fmt.Sprintf("IntRange(%d, %d)", d.lo, d.hi) }
func (d intRange) Type() Type     { return Int }
func (d intRange) Validate() error {
	if d.lo > d.hi {
		return fmt.Errorf("IntRange(%d, %d): the lower bound is above the upper", d.lo, d.hi)
	}
	if uint64(d.hi-d.lo) >= math.MaxInt64 {
		return fmt.Errorf("IntRange(%d, %d): the range is too wide", d.lo, d.hi)
	}
	return nil
}
func (d intRange) n() int64 { return int64(d.hi-d.lo) + 1 }
func (d intRange) Sample(r *rand.Rand) any {
	return d.lo + int(r.Int64N(d.n()))
}
func (d intRange) Contains(v any) bool {
	c, err := Convert(v, Int)
	return err == nil && c.(int) >= d.lo && c.(int) <= d.hi
}
func (d intRange) Values() ([]any, bool) {
	if d.n() > MaxValues {
		return nil, false
	}
	out := make([]any, 0, d.n())
	for i := range int(d.n()) { // counted: i <= hi would overflow at math.MaxInt
		out = append(out, d.lo+i)
	}
	return out, true
}
func (d intRange) Continuous() bool { return false }
func (d intRange) Density(v any) float64 {
	if !d.Contains(v) {
		return 0
	}
	return 1 / float64(d.n())
}
func (d intRange) Stats() (Stats, bool) {
	n := float64(d.n())
	return Stats{
		Min:  float64(d.lo),
		Max:  float64(d.hi),
		Mean: (float64(d.lo) + float64(d.hi)) / 2,
		Std:  math.Sqrt((n*n - 1) / 12),
	}, true
}
