package hparams

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// Space is a search space: each key's distribution. A step's own Space
// (see Spacer) is keyed by bare parameter names; Gather's by the full keys
// of a tree ("mlp__lr"), as Values are.
//
// A space is conditional where a distribution is a Conditional: its key
// applies only when another key of the space takes given values (the
// parameters of a Switch's branch apply only where the Switch chooses it).
// Sample and Grid give values for the keys that apply and no others, so
// every Values they give has exactly the keys that the configured tree
// reads (see Get).
//
// A Space is a map: build one as a literal, read it as one. Its methods
// never change it.
type Space map[string]Distribution

// Keys returns the keys of s, sorted.
func (s Space) Keys() []string { return slices.Sorted(maps.Keys(s)) }

// String returns one "key: distribution" line per key, keys sorted.
func (s Space) String() string {
	var b strings.Builder
	for _, k := range s.Keys() {
		fmt.Fprintf(&b, "%s: %v\n", k, s[k])
	}
	return b.String()
}

// plan is a checked space: the keys in an order where every key comes
// after the keys of its conditions, and each key's conditions, with
// values converted to the Type of the key they test.
type plan struct {
	order []string
	conds map[string][]condition
	dists map[string]Distribution // under the conditions
}

// Check returns nil where s can be sampled: every distribution is valid
// (see Distribution.Validate), and every condition of a Conditional tests
// another key of s, for values of its Type, without a cycle. The error
// names every key that fails.
//
// A condition may test for values that its key cannot take (after an
// Override narrowed a choice, a branch's keys never apply); Gather,
// though, refuses a step's space whose conditions test for values outside
// the distributions they test, a typing mistake.
func (s Space) Check() error {
	_, err := s.plan(false)
	return err
}

// plan checks s and returns its plan. strict: every value of a condition
// must be one of the key it tests.
func (s Space) plan(strict bool) (*plan, error) {
	p := &plan{conds: map[string][]condition{}, dists: map[string]Distribution{}}
	var errs []error
	keys := s.Keys()
	for _, k := range keys {
		if s[k] == nil {
			errs = append(errs, fmt.Errorf("hparams: %q: %w", k, errNilDistribution))
			continue
		}
		if k == "" {
			errs = append(errs, errors.New("hparams: a space has the empty key"))
			continue
		}
		if err := s[k].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("hparams: %q: %w", k, err))
			continue
		}
		p.conds[k], p.dists[k] = unwrap(s[k])
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, k := range keys {
		for i, c := range p.conds[k] {
			dep, ok := p.dists[c.key]
			if !ok || c.key == k {
				errs = append(errs, errorOf(ErrUnknownKey, "hparams: %q: the condition on %q: not another key of the space", k, c.key))
				continue
			}
			in := make([]any, len(c.in))
			for j, v := range c.in {
				cv, err := Convert(v, dep.Type())
				if err == nil && strict && !dep.Contains(cv) {
					err = fmt.Errorf("it is not a value of %v", dep)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("hparams: %q: the condition on %q: %s: %w", k, c.key, formatValue(v), err))
				}
				in[j] = cv
			}
			p.conds[k][i] = condition{key: c.key, in: in}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Order the keys, conditions first: a depth-first walk over them.
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var visit func(k string, path []string) error
	visit = func(k string, path []string) error {
		switch state[k] {
		case done:
			return nil
		case onPath:
			return fmt.Errorf("hparams: the conditions of the space form a cycle: %s", strings.Join(append(path, k), " → "))
		}
		state[k] = onPath
		for _, c := range p.conds[k] {
			if err := visit(c.key, append(path, k)); err != nil {
				return err
			}
		}
		state[k] = done
		p.order = append(p.order, k)
		return nil
	}
	for _, k := range keys {
		if err := visit(k, nil); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// applies reports whether key applies where the keys before it in the
// plan's order have the values in v.
func (p *plan) applies(key string, v Values) bool {
	for _, c := range p.conds[key] {
		x, ok := v[c.key]
		if !ok || !slices.Contains(c.in, x) {
			return false
		}
	}
	return true
}

// Sample draws one value for every key that applies: the keys that others
// depend on first (a Switch's choice before its branches' keys), keys in
// sorted order otherwise, each key that does not apply skipped without a
// draw. So equal draws of r give equal Values, and the Values hold
// exactly the keys that apply. It returns Check's error.
func (s Space) Sample(r *rand.Rand) (Values, error) {
	p, err := s.plan(false)
	if err != nil {
		return nil, err
	}
	out := Values{}
	for _, k := range p.order {
		if p.applies(k, out) {
			out[k] = p.dists[k].Sample(r)
		}
	}
	return out, nil
}

// Grid returns every combination of values of the keys that apply: a
// Switch's branches are combined one at a time, so a choice between a
// branch of 3 values and one of 2 gives 5 combinations, not 6. Each
// Values yielded is new (the caller may keep it). It returns Check's
// error, or one wrapping ErrNotFinite that names every key whose values
// are not finite (see Distribution.Values).
func (s Space) Grid() (iter.Seq[Values], error) {
	p, err := s.plan(false)
	if err != nil {
		return nil, err
	}
	values := map[string][]any{}
	var infinite []string
	for _, k := range p.order {
		vs, ok := p.dists[k].Values()
		if !ok {
			infinite = append(infinite, fmt.Sprintf("%q (%v)", k, p.dists[k]))
			continue
		}
		values[k] = vs
	}
	if len(infinite) > 0 {
		slices.Sort(infinite)
		return nil, errorOf(ErrNotFinite, "hparams: grid: the values of %s are not finite; override them with a Choice, or a Quantized of a bounded distribution", strings.Join(infinite, ", "))
	}
	return func(yield func(Values) bool) {
		cur := Values{}
		var next func(i int) bool
		next = func(i int) bool {
			if i == len(p.order) {
				return yield(maps.Clone(cur))
			}
			k := p.order[i]
			if !p.applies(k, cur) {
				return next(i + 1)
			}
			for _, v := range values[k] {
				cur[k] = v
				if !next(i + 1) {
					return false
				}
			}
			delete(cur, k)
			return true
		}
		next(0)
	}, nil
}

// Override returns s with the distributions of o in place of s's, for the
// keys of o: the way a user narrows a tree's space before a search. A key
// keeps its conditions in s (and gains o's, if o's distribution is a
// Conditional). It is an error, and nothing is returned, where a key of o
// is not one of s (wrapping ErrUnknownKey, listing the valid keys), where
// a distribution of o is invalid, or where it is not within s's: every
// value of a finite one, or the bounds of another, must lie in s's
// distribution (see Stats; the bounds may not straddle a gap between a
// Mixture's components), so that Set accepts what the result samples.
// A distribution of another Type whose values are all in s's (Fixed(1)
// for a float) gives values converted to s's Type.
func (s Space) Override(o Space) (Space, error) {
	var unknown []string
	for _, k := range o.Keys() {
		if _, ok := s[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return nil, unknownKeys("override", unknown, s.Keys())
	}
	out := maps.Clone(s)
	var errs []error
	for _, k := range o.Keys() {
		if o[k] == nil {
			errs = append(errs, fmt.Errorf("hparams: override %q: %w", k, errNilDistribution))
			continue
		}
		if err := o[k].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("hparams: override %q: %w", k, err))
			continue
		}
		oldConds, old := unwrap(s[k])
		newConds, d := unwrap(o[k])
		if err := within(d, old); err != nil {
			errs = append(errs, errorOf(ErrInvalidValue, "hparams: override %q: %v is not within %v: %v", k, d, old, err))
			continue
		}
		if d.Type() != old.Type() {
			d = retyped{Distribution: d, t: old.Type()}
		}
		out[k] = wrap(append(oldConds, newConds...), d)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := out.Check(); err != nil {
		return nil, err
	}
	return out, nil
}

// within returns an error where d may give a value that old cannot.
func within(d, old Distribution) error {
	if vs, ok := d.Values(); ok {
		for _, v := range vs {
			if !old.Contains(v) {
				return fmt.Errorf("%s is not a value of it", formatValue(v))
			}
		}
		return nil
	}
	if d.Type() != Float || old.Type() != Float || !old.Continuous() {
		return errors.New("it has more values than MaxValues, so they cannot all be checked")
	}
	ds, ok1 := d.Stats()
	os, ok2 := old.Stats()
	if !ok1 || !ok2 {
		return errors.New("their bounds are not defined")
	}
	if ds.Min < os.Min || ds.Max > os.Max {
		return fmt.Errorf("its bounds [%s, %s] exceed [%s, %s]", formatValue(ds.Min), formatValue(ds.Max), formatValue(os.Min), formatValue(os.Max))
	}
	if !covers(old, ds.Min, ds.Max) {
		return fmt.Errorf("its bounds [%s, %s] cross a gap between the components", formatValue(ds.Min), formatValue(ds.Max))
	}
	return nil
}

// span is an interval of numbers, both ends included.
type span struct{ lo, hi float64 }

// covers reports whether every number of [lo, hi] is a value of the
// continuous distribution d: a distribution of one interval (Uniform,
// Normal, …) covers its bounds, a Mixture only the runs where its
// components' intervals join.
func covers(d Distribution, lo, hi float64) bool {
	spans := intervals(d)
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	for i := 0; i < len(spans); {
		run := spans[i]
		for i++; i < len(spans) && spans[i].lo <= run.hi; i++ {
			run.hi = max(run.hi, spans[i].hi)
		}
		if run.lo <= lo && hi <= run.hi {
			return true
		}
	}
	return false
}

// intervals returns the intervals whose union is the values of the
// continuous distribution d: its bounds, or its components' intervals.
func intervals(d Distribution) []span {
	switch x := d.(type) {
	case Conditional:
		return intervals(x.Dist)
	case retyped:
		return intervals(x.Distribution)
	case mixture:
		var out []span
		for _, c := range x.ds {
			out = append(out, intervals(c)...)
		}
		return out
	}
	s, ok := d.Stats()
	if !ok {
		return nil
	}
	return []span{{s.Min, s.Max}}
}

// retyped is a distribution whose values are converted to another Type:
// an Override's Fixed(1) for a float parameter. Override makes one only
// where every value converts (within holds).
type retyped struct {
	Distribution
	t Type
}

func (d retyped) Type() Type { return d.t }

func (d retyped) Sample(r *rand.Rand) any {
	v, _ := Convert(d.Distribution.Sample(r), d.t)
	return v
}

func (d retyped) Values() ([]any, bool) {
	vs, ok := d.Distribution.Values()
	if !ok {
		return nil, false
	}
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i], _ = Convert(v, d.t)
	}
	return out, ok
}
