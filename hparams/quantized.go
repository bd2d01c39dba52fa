package hparams

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// quantized is Quantized.
type quantized struct {
	d          Distribution
	c          Cumulative // d, where it has a CDF
	step       float64
	kmin, kmax float64 // the multiples of step within d's bounds; ±Inf where unbounded
	err        error
}

// Quantized returns d rounded to a multiple of step (step > 0, and d's
// bounds divided by it within the float64s): a draw of
// d rounded to the nearest multiple, moved inward by a step where that
// would leave d's bounds. So its values are the multiples of step between
// d's bounds, and the probability of each is the mass that d puts on the
// values that round to it. d is a continuous distribution with a CDF
// (Uniform, LogUniform, Normal, TruncatedNormal, LogNormal).
//
// Where d is bounded and there are at most MaxValues multiples, none
// beyond 2^53 steps from 0 (past it, not every multiple is a float64),
// Quantized is finite and its Stats are exact; otherwise its Mean is d's and its Std
// d's widened by Sheppard's correction, sqrt(var + step²/12), which is
// exact only in the limit of small steps.
func Quantized(d Distribution, step float64) Distribution {
	q := quantized{d: d, step: step}
	q.err = q.check()
	if q.err != nil {
		q.err = fmt.Errorf("%s: %w", q, q.err)
	}
	return q
}

func (q *quantized) check() error {
	if q.d == nil {
		return fmt.Errorf("no distribution")
	}
	if err := q.d.Validate(); err != nil {
		return err
	}
	if !(q.step > 0) || math.IsInf(q.step, 0) {
		return fmt.Errorf("the step is %s, want a positive finite number", formatValue(q.step))
	}
	c, ok := q.d.(Cumulative)
	if !ok || !q.d.Continuous() || q.d.Type() != Float {
		return fmt.Errorf("%s is not a continuous distribution over floats with a CDF", q.d)
	}
	q.c = c
	s, _ := q.d.Stats()
	q.kmin, q.kmax = math.Ceil(s.Min/q.step), math.Floor(s.Max/q.step)
	for _, b := range []float64{s.Min, s.Max} {
		if !math.IsInf(b, 0) && math.IsInf(b/q.step, 0) {
			return fmt.Errorf("the step %s is too small for the bound %s: their quotient is beyond the float64s", formatValue(q.step), formatValue(b))
		}
	}
	if q.kmin > q.kmax {
		return fmt.Errorf("no multiple of %s lies between %s and %s", formatValue(q.step), formatValue(s.Min), formatValue(s.Max))
	}
	return nil
}

func (q quantized) String() string {
	return fmt.Sprintf("Quantized(%v, %s)", q.d, formatValue(q.step))
}
func (q quantized) Type() Type      { return Float }
func (q quantized) Validate() error { return q.err }

// k returns the multiple of step that x rounds to, within the bounds.
func (q quantized) k(x float64) float64 { return clamp(math.Round(x/q.step), q.kmin, q.kmax) }

func (q quantized) Sample(r *rand.Rand) any {
	return q.value(q.k(q.d.Sample(r).(float64)))
}

// value is the k-th multiple of step (0, never -0).
func (q quantized) value(k float64) float64 {
	if k == 0 {
		return 0
	}
	return k * q.step
}

// index returns the multiple of step that v is, or false.
func (q quantized) index(v any) (float64, bool) {
	x, ok := floatOf(v)
	if !ok {
		return 0, false
	}
	k := math.Round(x / q.step)
	if k < q.kmin || k > q.kmax || math.Abs(x/q.step-k) > 1e-9*math.Max(1, math.Abs(k)) {
		return 0, false
	}
	return k, true
}

func (q quantized) Contains(v any) bool { _, ok := q.index(v); return ok }

// maxExactK bounds the multiples that Values counts: up to 2^53, every
// integer is a float64, so k++ reaches each multiple once; beyond it k+1
// may be k, and a count by ones would never end.
const maxExactK = 1 << 53

func (q quantized) Values() ([]any, bool) {
	if !(math.Abs(q.kmin) <= maxExactK && math.Abs(q.kmax) <= maxExactK) || q.kmax-q.kmin+1 > MaxValues {
		return nil, false
	}
	out := make([]any, 0, int(q.kmax-q.kmin)+1)
	for k := q.kmin; k <= q.kmax; k++ {
		out = append(out, q.value(k))
	}
	return out, true
}

func (q quantized) Continuous() bool { return false }

// Density is the probability of the multiple v: d's mass on the values
// that round to it, the whole tail for the outermost multiples.
func (q quantized) Density(v any) float64 {
	k, ok := q.index(v)
	if !ok {
		return 0
	}
	hi, lo := 1.0, 0.0
	if k < q.kmax {
		hi = q.c.CDF((k + 0.5) * q.step)
	}
	if k > q.kmin {
		lo = q.c.CDF((k - 0.5) * q.step)
	}
	return math.Max(hi-lo, 0)
}

func (q quantized) Stats() (Stats, bool) {
	if values, ok := q.Values(); ok {
		p := make([]float64, len(values))
		for i, v := range values {
			p[i] = q.Density(v)
		}
		return numericStats(values, p)
	}
	s, _ := q.d.Stats()
	return Stats{
		Min:  q.value(q.kmin),
		Max:  q.value(q.kmax),
		Mean: s.Mean,
		Std:  math.Sqrt(s.Std*s.Std + q.step*q.step/12),
	}, true
}
