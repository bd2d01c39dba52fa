package automl

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/penstock-ml/penstock/hparams"
)

// TPE is the Tree-structured Parzen Estimator (Bergstra et al., 2011). It
// proposes at random (as Random) until Startup trials are done with a
// finite score — so more than Startup steps where trials fail or run at
// once (Config.Parallel) — and after that it splits the trials that are
// done into good ones (the best Gamma fraction, at least one and at most
// 25, leaving at least one bad) and bad ones, models each parameter's
// values in each group with a Parzen estimator l (good) and g (bad), draws
// Candidates values from l and proposes the one that maximizes l(x)/g(x),
// parameter by parameter, in the space's order (a condition's key first,
// so a branch's parameters are modelled on the trials that took that
// branch).
//
// The estimators follow each distribution's type and bounds: a finite
// distribution of at most 10 values (a Choice, a Boolean, a small
// IntRange) is a categorical with the prior's probabilities added to the
// counts; one of more numbers is modelled on the index of its values; a
// continuous distribution with a CDF (Uniform, LogUniform, Normal,
// TruncatedNormal, LogNormal) on u = CDF(x) in [0, 1], so a LogUniform is
// modelled in log space and the prior is uniform; truncated Gaussians with
// bandwidths from the neighbours' distances plus the prior (weight Prior)
// make each estimator. A distribution of none of these kinds is sampled
// from its prior. Draws come from the step's Request.Rand.
//
// The zero value uses Startup 10, Gamma 0.25, Candidates 24, Prior 1.
type TPE struct {
	Startup    int
	Gamma      float64
	Candidates int
	Prior      float64
}

func (t TPE) settings() TPE {
	if t.Startup <= 0 {
		t.Startup = 10
	}
	if !(t.Gamma > 0 && t.Gamma < 1) {
		t.Gamma = 0.25
	}
	if t.Candidates <= 0 {
		t.Candidates = 24
	}
	if !(t.Prior > 0) {
		t.Prior = 1
	}
	return t
}

func (t TPE) String() string {
	s := t.settings()
	return fmt.Sprintf("TPE(startup=%d, gamma=%v, candidates=%d, prior=%v)", s.Startup, s.Gamma, s.Candidates, s.Prior)
}

// Propose proposes step r.Step.
func (t TPE) Propose(r Request) (Proposal, error) {
	s := t.settings()
	var obs []Trial
	for _, tr := range r.Trials {
		if tr.Status == Done && !math.IsNaN(tr.Score) && !math.IsInf(tr.Score, 0) {
			obs = append(obs, tr)
		}
	}
	if len(obs) < s.Startup {
		return Random{}.Propose(r)
	}
	if err := r.Space.Check(); err != nil {
		return Proposal{}, fmt.Errorf("automl: tpe: %w", err)
	}
	loss := func(tr Trial) float64 {
		if r.Maximize {
			return -tr.Score
		}
		return tr.Score
	}
	slices.SortStableFunc(obs, func(a, b Trial) int { return cmp.Compare(loss(a), loss(b)) })
	nGood := min(max(1, int(math.Ceil(s.Gamma*float64(len(obs))))), 25, len(obs)-1)
	good, bad := obs[:nGood], obs[nGood:]
	rng := r.Rand()
	out := hparams.Values{}
	for _, key := range spaceOrder(r.Space) {
		conds, d := unwrapConditions(r.Space[key])
		if !conditionsHold(r.Space, conds, out) {
			continue
		}
		out[key] = s.sample(d, valuesOf(good, key, d), valuesOf(bad, key, d), rng)
	}
	return Proposal{Params: out}, nil
}

// valuesOf returns the values of key in trials that have it, converted to
// d's type.
func valuesOf(trials []Trial, key string, d hparams.Distribution) []any {
	var out []any
	for _, tr := range trials {
		v, ok := tr.Params[key]
		if !ok {
			continue
		}
		if c, err := hparams.Convert(v, d.Type()); err == nil && d.Contains(c) {
			out = append(out, c)
		}
	}
	return out
}

// sample draws Candidates values from l, the estimator of good, and
// returns the one with the largest l/g, g the estimator of bad; the prior
// where either group has no value.
func (s TPE) sample(d hparams.Distribution, good, bad []any, rng *rand.Rand) any {
	if len(good) == 0 || len(bad) == 0 {
		return d.Sample(rng)
	}
	if vs, ok := d.Values(); ok {
		if len(vs) <= 10 || !numeric(d) {
			return s.categorical(d, vs, good, bad, rng)
		}
		return s.ordinal(d, vs, good, bad, rng)
	}
	if cdf, ok := d.(hparams.Cumulative); ok && d.Continuous() && d.Type() == hparams.Float {
		if st, ok := d.Stats(); ok {
			return s.cumulative(cdf, st, good, bad, rng)
		}
	}
	if st, ok := d.Stats(); ok && d.Type() == hparams.Float && !math.IsInf(st.Min, 0) && !math.IsInf(st.Max, 0) && st.Max > st.Min {
		x := s.unit(scaled(good, st), scaled(bad, st), rng)
		v := st.Min + x*(st.Max-st.Min)
		if d.Contains(v) {
			return v
		}
	}
	return d.Sample(rng)
}

func numeric(d hparams.Distribution) bool {
	return d.Type() == hparams.Float || d.Type() == hparams.Int
}

// categorical: counts plus Prior times the prior's probabilities.
func (s TPE) categorical(d hparams.Distribution, vs, good, bad []any, rng *rand.Rand) any {
	weights := func(obs []any) []float64 {
		w := make([]float64, len(vs))
		var prior float64
		for i, v := range vs {
			w[i] = d.Density(v)
			prior += w[i]
		}
		for i := range w {
			if prior > 0 {
				w[i] *= s.Prior / prior
			} else {
				w[i] = s.Prior / float64(len(vs))
			}
		}
		for _, o := range obs {
			if i := slices.Index(vs, o); i >= 0 {
				w[i]++
			}
		}
		var total float64
		for _, x := range w {
			total += x
		}
		for i := range w {
			w[i] /= total
		}
		return w
	}
	l, g := weights(good), weights(bad)
	best, bestRatio := -1, math.Inf(-1)
	for range s.Candidates {
		i := pickIndex(l, rng)
		if ratio := math.Log(l[i]) - math.Log(g[i]); ratio > bestRatio {
			best, bestRatio = i, ratio
		}
	}
	return vs[best]
}

func pickIndex(w []float64, rng *rand.Rand) int {
	u := rng.Float64()
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

// ordinal models the index of a value among many ordered values.
func (s TPE) ordinal(d hparams.Distribution, vs, good, bad []any, rng *rand.Rand) any {
	n := float64(len(vs) - 1)
	index := func(obs []any) []float64 {
		var u []float64
		for _, o := range obs {
			if i := slices.Index(vs, o); i >= 0 {
				u = append(u, float64(i)/n)
			}
		}
		return u
	}
	x := s.unit(index(good), index(bad), rng)
	return vs[int(math.Round(x*n))]
}

// cumulative models u = CDF(x) and maps the chosen u back by bisection.
func (s TPE) cumulative(d hparams.Cumulative, st hparams.Stats, good, bad []any, rng *rand.Rand) any {
	toU := func(obs []any) []float64 {
		u := make([]float64, len(obs))
		for i, o := range obs {
			u[i] = d.CDF(o.(float64))
		}
		return u
	}
	u := s.unit(toU(good), toU(bad), rng)
	lo, hi := st.Min, st.Max
	if math.IsInf(lo, 0) {
		lo = st.Mean - 40*st.Std
	}
	if math.IsInf(hi, 0) {
		hi = st.Mean + 40*st.Std
	}
	for range 100 {
		mid := lo + (hi-lo)/2
		if mid == lo || mid == hi {
			break
		}
		if d.CDF(mid) < u {
			lo = mid
		} else {
			hi = mid
		}
	}
	x := lo + (hi-lo)/2
	if !d.Contains(x) {
		return d.Sample(rng)
	}
	return x
}

func scaled(obs []any, st hparams.Stats) []float64 {
	u := make([]float64, len(obs))
	for i, o := range obs {
		u[i] = (o.(float64) - st.Min) / (st.Max - st.Min)
	}
	return u
}

// unit draws Candidates points in [0, 1] from the estimator of good and
// returns the one with the largest l/g.
func (s TPE) unit(good, bad []float64, rng *rand.Rand) float64 {
	l, g := newParzen(good, s.Prior), newParzen(bad, s.Prior)
	best, bestRatio := 0.5, math.Inf(-1)
	for range s.Candidates {
		x := l.sample(rng)
		if ratio := math.Log(l.density(x)) - math.Log(g.density(x)); ratio > bestRatio {
			best, bestRatio = x, ratio
		}
	}
	return best
}

// parzen is a mixture on [0, 1] of truncated Gaussians, one per
// observation, and the uniform prior.
type parzen struct {
	mu, sigma []float64
	prior     float64 // the prior's weight; each observation weighs 1
}

func newParzen(obs []float64, prior float64) parzen {
	p := parzen{mu: slices.Sorted(slices.Values(obs)), prior: prior}
	n := len(p.mu)
	p.sigma = make([]float64, n)
	minSigma := 1 / math.Min(100, float64(n+1))
	for i, m := range p.mu {
		left, right := m, 1-m // the distance to the edges where there is no neighbour
		if i > 0 {
			left = m - p.mu[i-1]
		}
		if i < n-1 {
			right = p.mu[i+1] - m
		}
		p.sigma[i] = math.Min(math.Max(math.Max(left, right), minSigma), 1)
	}
	return p
}

func (p parzen) sample(rng *rand.Rand) float64 {
	total := float64(len(p.mu)) + p.prior
	k := rng.Float64() * total
	i := int(k)
	if i >= len(p.mu) {
		return rng.Float64()
	}
	for range 64 { // rejection: the mass inside [0, 1] is at least about 1/3
		if x := p.mu[i] + p.sigma[i]*rng.NormFloat64(); x >= 0 && x <= 1 {
			return x
		}
	}
	return p.mu[i]
}

func (p parzen) density(x float64) float64 {
	sum := p.prior // the uniform density is 1
	for i, m := range p.mu {
		s := p.sigma[i]
		mass := normCDF((1-m)/s) - normCDF(-m/s)
		z := (x - m) / s
		sum += math.Exp(-z*z/2) / (s * math.Sqrt(2*math.Pi) * mass)
	}
	return sum / (float64(len(p.mu)) + p.prior)
}

func normCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

// condition is one condition of a Conditional: key takes one of in.
type condition struct {
	key string
	in  []any
}

// unwrapConditions returns the conditions of d, outermost first, and the
// distribution under them.
func unwrapConditions(d hparams.Distribution) ([]condition, hparams.Distribution) {
	var conds []condition
	for {
		c, ok := d.(hparams.Conditional)
		if !ok {
			return conds, d
		}
		conds = append(conds, condition{key: c.Key, in: c.In})
		d = c.Dist
	}
}

// conditionsHold reports whether every condition holds on the values v
// chosen so far.
func conditionsHold(space hparams.Space, conds []condition, v hparams.Values) bool {
	for _, c := range conds {
		x, ok := v[c.key]
		if !ok {
			return false
		}
		d, ok := space[c.key]
		if !ok {
			return false
		}
		held := false
		for _, want := range c.in {
			if w, err := hparams.Convert(want, d.Type()); err == nil && w == x {
				held = true
				break
			}
		}
		if !held {
			return false
		}
	}
	return true
}

// spaceOrder returns the keys of a checked space with every key after the
// keys its conditions test, keys sorted otherwise.
func spaceOrder(space hparams.Space) []string {
	var order []string
	done := map[string]bool{}
	var visit func(k string, depth int)
	visit = func(k string, depth int) {
		if done[k] || depth > len(space) {
			return
		}
		conds, _ := unwrapConditions(space[k])
		for _, c := range conds {
			if _, ok := space[c.key]; ok {
				visit(c.key, depth+1)
			}
		}
		if !done[k] {
			done[k] = true
			order = append(order, k)
		}
	}
	for _, k := range space.Keys() {
		visit(k, 0)
	}
	return order
}
