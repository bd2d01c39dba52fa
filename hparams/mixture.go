package hparams

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// mixture is Mixture.
type mixture struct {
	weights []float64
	ds      []Distribution
	scale   float64 // the weights are weighed as weights[i]·scale (see checkWeights)
	total   float64 // of the weights so scaled
	err     error
}

// Mixture returns the weighted mixture of ds: a draw picks component i
// with probability weights[i] / sum(weights), then draws from it. The
// components have one Type and are all continuous or all discrete (a
// density of a mix of both is not defined); weights are positive and
// finite, one per component.
//
// Its Density is the weighted sum of the components' densities; it is
// finite where every component is (its values are theirs, once each, in
// order); its Stats are defined where every component's are.
func Mixture(weights []float64, ds ...Distribution) Distribution {
	m := mixture{weights: append([]float64(nil), weights...), ds: append([]Distribution(nil), ds...)}
	m.total, m.scale, m.err = m.check()
	if m.err != nil {
		m.err = fmt.Errorf("%s: %w", m, m.err)
	}
	return m
}

func (m mixture) check() (total, scale float64, err error) {
	if len(m.ds) == 0 {
		return 0, 0, fmt.Errorf("no components")
	}
	total, scale, err = checkWeights(m.weights, len(m.ds))
	if err != nil {
		return 0, 0, err
	}
	for i, d := range m.ds {
		if d == nil {
			return 0, 0, fmt.Errorf("component %d is nil", i)
		}
		if err := d.Validate(); err != nil {
			return 0, 0, fmt.Errorf("component %d: %w", i, err)
		}
		if d.Type() != m.ds[0].Type() {
			return 0, 0, fmt.Errorf("component %d (%v) is over %ss, component 0 over %ss", i, d, d.Type(), m.ds[0].Type())
		}
		if d.Continuous() != m.ds[0].Continuous() {
			return 0, 0, fmt.Errorf("components 0 (%v) and %d (%v) mix continuous and discrete", m.ds[0], i, d)
		}
	}
	return total, scale, nil
}

func (m mixture) String() string {
	parts := make([]string, len(m.ds))
	for i, d := range m.ds {
		parts[i] = fmt.Sprint(d)
	}
	return fmt.Sprintf("Mixture(%v, %s)", m.weights, strings.Join(parts, ", "))
}
func (m mixture) Type() Type {
	if m.err != nil || len(m.ds) == 0 {
		return 0
	}
	return m.ds[0].Type()
}
func (m mixture) Validate() error { return m.err }
func (m mixture) Sample(r *rand.Rand) any {
	return m.ds[pick(r, m.weights, m.scale, m.total)].Sample(r)
}
func (m mixture) Contains(v any) bool {
	for _, d := range m.ds {
		if d.Contains(v) {
			return true
		}
	}
	return false
}
func (m mixture) Values() ([]any, bool) {
	var out []any
	seen := map[any]bool{}
	for _, d := range m.ds {
		vs, ok := d.Values()
		if !ok {
			return nil, false
		}
		for _, v := range vs {
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	if len(out) > MaxValues {
		return nil, false
	}
	return out, true
}
func (m mixture) Continuous() bool { return m.err == nil && m.ds[0].Continuous() }
func (m mixture) Density(v any) float64 {
	p := 0.0
	for i, d := range m.ds {
		p += m.weights[i] * m.scale / m.total * d.Density(v)
	}
	return p
}
func (m mixture) Stats() (Stats, bool) {
	out := Stats{Min: math.Inf(1), Max: math.Inf(-1)}
	second := 0.0
	for i, d := range m.ds {
		s, ok := d.Stats()
		if !ok {
			return Stats{}, false
		}
		w := m.weights[i] * m.scale / m.total
		out.Min = math.Min(out.Min, s.Min)
		out.Max = math.Max(out.Max, s.Max)
		out.Mean += w * s.Mean
		second += w * (s.Std*s.Std + s.Mean*s.Mean)
	}
	out.Std = math.Sqrt(math.Max(second-out.Mean*out.Mean, 0))
	return out, true
}
