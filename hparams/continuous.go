package hparams

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// floatOf converts v for a distribution over floats; false where v is
// not a finite number.
func floatOf(v any) (float64, bool) {
	c, err := Convert(v, Float)
	if err != nil {
		return 0, false
	}
	f := c.(float64)
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

func clamp(x, lo, hi float64) float64 { return math.Min(math.Max(x, lo), hi) }

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// uniform is Uniform.
type uniform struct{ lo, hi float64 }

// Uniform returns the distribution of the floats between lo and hi
// (lo < hi, both finite), each interval as likely as its length.
func Uniform(lo, hi float64) Distribution { return uniform{lo: lo, hi: hi} }

func (d uniform) String() string {
	return "Uniform(" + formatValue(d.lo) + ", " + formatValue(d.hi) + ")"
}
func (d uniform) Type() Type { return Float }
func (d uniform) Validate() error {
	if !finite(d.lo, d.hi) || !(d.lo < d.hi) {
		return fmt.Errorf("%s: want finite bounds, the lower below the upper", d)
	}
	return nil
}

// half is half the width, finite where the width hi - lo overflows a
// float64 (bounds beyond ±MaxFloat64/2); wide reports that it does.
func (d uniform) half() float64 { return d.hi/2 - d.lo/2 }
func (d uniform) wide() bool    { return math.IsInf(d.hi-d.lo, 0) }

func (d uniform) Sample(r *rand.Rand) any {
	u := r.Float64()
	if d.wide() {
		h := d.half()
		return clamp(d.lo+h*u+h*u, d.lo, d.hi)
	}
	return clamp(d.lo+(d.hi-d.lo)*u, d.lo, d.hi)
}
func (d uniform) Contains(v any) bool {
	x, ok := floatOf(v)
	return ok && x >= d.lo && x <= d.hi
}
func (d uniform) Values() ([]any, bool) { return nil, false }
func (d uniform) Continuous() bool      { return true }
func (d uniform) Density(v any) float64 {
	if !d.Contains(v) {
		return 0
	}
	if d.wide() {
		return 0.5 / d.half()
	}
	return 1 / (d.hi - d.lo)
}
func (d uniform) CDF(x float64) float64 {
	if d.wide() {
		return clamp((x/2-d.lo/2)/d.half(), 0, 1)
	}
	return clamp((x-d.lo)/(d.hi-d.lo), 0, 1)
}
func (d uniform) Stats() (Stats, bool) {
	if d.wide() { // lo < 0 < hi: lo + hi does not overflow
		return Stats{Min: d.lo, Max: d.hi, Mean: (d.lo + d.hi) / 2, Std: d.half() / math.Sqrt(3)}, true
	}
	return Stats{Min: d.lo, Max: d.hi, Mean: (d.lo + d.hi) / 2, Std: (d.hi - d.lo) / math.Sqrt(12)}, true
}

// logUniform is LogUniform.
type logUniform struct{ lo, hi float64 }

// LogUniform returns the distribution of the floats between lo and hi
// (0 < lo < hi) whose logarithm is uniform: each factor of ten as likely,
// the usual distribution of learning rates and regularization strengths.
func LogUniform(lo, hi float64) Distribution { return logUniform{lo: lo, hi: hi} }

func (d logUniform) String() string {
	return "LogUniform(" + formatValue(d.lo) + ", " + formatValue(d.hi) + ")"
}
func (d logUniform) Type() Type { return Float }
func (d logUniform) Validate() error {
	if !finite(d.lo, d.hi) || !(d.lo > 0 && d.lo < d.hi) {
		return fmt.Errorf("%s: want finite bounds, 0 < lower < upper", d)
	}
	return nil
}

// span is log(hi/lo), taken as log(hi) - log(lo) where the ratio
// overflows a float64 (LogUniform(1e-300, 1e300)); wide reports that it
// does.
func (d logUniform) span() float64 {
	if d.wide() {
		return math.Log(d.hi) - math.Log(d.lo)
	}
	return math.Log(d.hi / d.lo)
}
func (d logUniform) wide() bool { return math.IsInf(d.hi/d.lo, 0) }
func (d logUniform) Sample(r *rand.Rand) any {
	u := r.Float64()
	if d.wide() { // lo·exp(span·u) would overflow before lo scales it down
		return clamp(math.Exp(math.Log(d.lo)+d.span()*u), d.lo, d.hi)
	}
	return clamp(d.lo*math.Exp(d.span()*u), d.lo, d.hi)
}
func (d logUniform) Contains(v any) bool {
	x, ok := floatOf(v)
	return ok && x >= d.lo && x <= d.hi
}
func (d logUniform) Values() ([]any, bool) { return nil, false }
func (d logUniform) Continuous() bool      { return true }
func (d logUniform) Density(v any) float64 {
	if !d.Contains(v) {
		return 0
	}
	x, _ := floatOf(v)
	return 1 / (x * d.span())
}
func (d logUniform) CDF(x float64) float64 {
	if x <= d.lo {
		return 0
	}
	if d.wide() {
		return clamp((math.Log(x)-math.Log(d.lo))/d.span(), 0, 1)
	}
	return clamp(math.Log(x/d.lo)/d.span(), 0, 1)
}
func (d logUniform) Stats() (Stats, bool) {
	l := d.span()
	mean := (d.hi - d.lo) / l
	if math.IsInf(d.hi*d.hi, 0) { // the second moment overflows: in units of hi
		q := d.lo / d.hi
		v := (1-q*q)/(2*l) - (1-q)*(1-q)/(l*l)
		return Stats{Min: d.lo, Max: d.hi, Mean: mean, Std: d.hi * math.Sqrt(math.Max(v, 0))}, true
	}
	second := (d.hi*d.hi - d.lo*d.lo) / (2 * l)
	return Stats{Min: d.lo, Max: d.hi, Mean: mean, Std: math.Sqrt(math.Max(second-mean*mean, 0))}, true
}

// The standard normal density and distribution function, and the inverse
// of the latter.
func phi(z float64) float64 {
	if math.IsInf(z, 0) {
		return 0
	}
	return math.Exp(-z*z/2) / math.Sqrt(2*math.Pi)
}
func bigPhi(z float64) float64    { return 0.5 * math.Erfc(-z/math.Sqrt2) }
func bigPhiInv(p float64) float64 { return -math.Sqrt2 * math.Erfcinv(2*p) }

// normal is Normal and TruncatedNormal: a normal distribution of mean mu
// and standard deviation sigma, conditioned on [lo, hi] (±Inf for Normal).
type normal struct {
	mu, sigma, lo, hi float64
	truncated         bool
}

// Normal returns the normal distribution of the given mean and standard
// deviation (finite, std > 0).
func Normal(mean, std float64) Distribution {
	return normal{mu: mean, sigma: std, lo: math.Inf(-1), hi: math.Inf(1)}
}

// TruncatedNormal returns Normal(mean, std) truncated to [lo, hi]:
// conditioned on a value between the bounds, its density is the normal
// one scaled up to integrate to 1. One bound may be infinite.
func TruncatedNormal(mean, std, lo, hi float64) Distribution {
	return normal{mu: mean, sigma: std, lo: lo, hi: hi, truncated: true}
}

func (d normal) String() string {
	if !d.truncated {
		return "Normal(" + formatValue(d.mu) + ", " + formatValue(d.sigma) + ")"
	}
	return fmt.Sprintf("TruncatedNormal(%s, %s, %s, %s)", formatValue(d.mu), formatValue(d.sigma), formatValue(d.lo), formatValue(d.hi))
}
func (d normal) Type() Type { return Float }
func (d normal) Validate() error {
	switch {
	case !finite(d.mu, d.sigma) || !(d.sigma > 0):
		return fmt.Errorf("%s: want a finite mean and a finite std > 0", d)
	case math.IsNaN(d.lo) || math.IsNaN(d.hi) || !(d.lo < d.hi):
		return fmt.Errorf("%s: want the lower bound below the upper", d)
	case !(d.mass() > 0):
		return fmt.Errorf("%s: the bounds hold no probability", d)
	}
	return nil
}

// alpha and beta are the bounds in standard units.
func (d normal) alpha() float64 { return (d.lo - d.mu) / d.sigma }
func (d normal) beta() float64  { return (d.hi - d.mu) / d.sigma }

// mirrored reports whether the bounds lie right of the mean, where the
// standard functions are computed on the mirror image for precision.
func (d normal) mirrored() bool { return d.alpha() > 0 }

// mass is the probability of [lo, hi] under the untruncated normal.
func (d normal) mass() float64 {
	a, b := d.alpha(), d.beta()
	if d.mirrored() {
		return bigPhi(-a) - bigPhi(-b)
	}
	return bigPhi(b) - bigPhi(a)
}

func (d normal) Sample(r *rand.Rand) any {
	if !d.truncated { // kept within the float64s: a draw past them would be ±Inf
		return clamp(d.mu+d.sigma*r.NormFloat64(), -math.MaxFloat64, math.MaxFloat64)
	}
	// Inverse transform, on the side of the mean where Φ is precise.
	a, b, u := d.alpha(), d.beta(), r.Float64()
	var z float64
	if d.mirrored() {
		z = -bigPhiInv(bigPhi(-b) + u*d.mass())
	} else {
		z = bigPhiInv(bigPhi(a) + u*d.mass())
	}
	return clamp(d.mu+d.sigma*z, d.lo, d.hi)
}
func (d normal) Contains(v any) bool {
	x, ok := floatOf(v)
	return ok && x >= d.lo && x <= d.hi
}
func (d normal) Values() ([]any, bool) { return nil, false }
func (d normal) Continuous() bool      { return true }
func (d normal) Density(v any) float64 {
	if !d.Contains(v) {
		return 0
	}
	x, _ := floatOf(v)
	return phi((x-d.mu)/d.sigma) / (d.sigma * d.mass())
}
func (d normal) CDF(x float64) float64 {
	switch {
	case x <= d.lo:
		return 0
	case x >= d.hi:
		return 1
	}
	z := (x - d.mu) / d.sigma
	if d.mirrored() {
		return clamp(1-(bigPhi(-z)-bigPhi(-d.beta()))/d.mass(), 0, 1)
	}
	return clamp((bigPhi(z)-bigPhi(d.alpha()))/d.mass(), 0, 1)
}
func (d normal) Stats() (Stats, bool) {
	if !d.truncated {
		return Stats{Min: math.Inf(-1), Max: math.Inf(1), Mean: d.mu, Std: d.sigma}, true
	}
	a, b, z := d.alpha(), d.beta(), d.mass()
	pa, pb := phi(a), phi(b)
	apa, bpb := 0.0, 0.0
	if !math.IsInf(a, 0) {
		apa = a * pa
	}
	if !math.IsInf(b, 0) {
		bpb = b * pb
	}
	shift := (pa - pb) / z
	variance := d.sigma * d.sigma * (1 + (apa-bpb)/z - shift*shift)
	return Stats{Min: d.lo, Max: d.hi, Mean: d.mu + d.sigma*shift, Std: math.Sqrt(math.Max(variance, 0))}, true
}

// logNormal is LogNormal.
type logNormal struct{ mu, sigma float64 }

// LogNormal returns the distribution of exp(x) where x is Normal(mu,
// sigma) (finite, sigma > 0): positive floats, skewed toward small ones.
func LogNormal(mu, sigma float64) Distribution { return logNormal{mu: mu, sigma: sigma} }

func (d logNormal) String() string {
	return "LogNormal(" + formatValue(d.mu) + ", " + formatValue(d.sigma) + ")"
}
func (d logNormal) Type() Type { return Float }
func (d logNormal) Validate() error {
	if !finite(d.mu, d.sigma) || !(d.sigma > 0) {
		return fmt.Errorf("%s: want a finite mu and a finite sigma > 0", d)
	}
	return nil
}

// Sample keeps exp within the positive float64s: past them a draw would
// be +Inf or 0, which LogNormal does not contain.
func (d logNormal) Sample(r *rand.Rand) any {
	return clamp(math.Exp(d.mu+d.sigma*r.NormFloat64()), math.SmallestNonzeroFloat64, math.MaxFloat64)
}
func (d logNormal) Contains(v any) bool {
	x, ok := floatOf(v)
	return ok && x > 0
}
func (d logNormal) Values() ([]any, bool) { return nil, false }
func (d logNormal) Continuous() bool      { return true }
func (d logNormal) Density(v any) float64 {
	if !d.Contains(v) {
		return 0
	}
	x, _ := floatOf(v)
	return phi((math.Log(x)-d.mu)/d.sigma) / (x * d.sigma)
}
func (d logNormal) CDF(x float64) float64 {
	if x <= 0 {
		return 0
	}
	return bigPhi((math.Log(x) - d.mu) / d.sigma)
}
func (d logNormal) Stats() (Stats, bool) {
	s2 := d.sigma * d.sigma
	return Stats{
		Min:  0,
		Max:  math.Inf(1),
		Mean: math.Exp(d.mu + s2/2),
		Std:  math.Sqrt(math.Expm1(s2) * math.Exp(2*d.mu+s2)),
	}, true
}
