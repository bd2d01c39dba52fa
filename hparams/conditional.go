package hparams

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// Conditional is a hyperparameter that applies only when another
// parameter of its space, Key, takes one of the values In: a learning
// rate's momentum that applies only to the "sgd" solver, the parameters of
// one branch of a choice. Where it applies it is distributed as Dist;
// where it does not, Space.Sample and Space.Grid leave its key out.
//
// In a step's own Space, Key is the bare name of another parameter of the
// step; Gather prefixes it with the step's path, as it does the keys. Gather
// also makes every parameter under a Switch's child conditional on the
// Switch's parameter that activates that child.
//
// A Conditional is itself a Distribution, Dist's: its methods are Dist's.
type Conditional struct {
	Key  string
	In   []any
	Dist Distribution
}

// When returns d, applying only where the parameter key takes one of in.
func When(d Distribution, key string, in ...any) Conditional {
	return Conditional{Key: key, In: in, Dist: d}
}

func (c Conditional) String() string {
	if len(c.In) == 0 {
		return fmt.Sprintf("When(%v, %q)", c.Dist, c.Key)
	}
	return fmt.Sprintf("When(%v, %q, %s)", c.Dist, c.Key, formatValues(c.In))
}

// Type is Dist's.
func (c Conditional) Type() Type {
	if c.Dist == nil {
		return 0
	}
	return c.Dist.Type()
}

// Validate checks the condition and Dist; whether Key is a parameter of
// the space, and In values of it, is Space.Check's to say.
func (c Conditional) Validate() error {
	switch {
	case c.Key == "":
		return fmt.Errorf("%s: no key", c)
	case len(c.In) == 0:
		return fmt.Errorf("%s: no values for %q (it would never apply)", c, c.Key)
	case c.Dist == nil:
		return fmt.Errorf("%s: no distribution", c)
	}
	return c.Dist.Validate()
}

// Sample, Contains, Values, Continuous, Density and Stats are Dist's.
func (c Conditional) Sample(r *rand.Rand) any { return c.Dist.Sample(r) }
func (c Conditional) Contains(v any) bool     { return c.Dist.Contains(v) }
func (c Conditional) Values() ([]any, bool)   { return c.Dist.Values() }
func (c Conditional) Continuous() bool        { return c.Dist.Continuous() }
func (c Conditional) Density(v any) float64   { return c.Dist.Density(v) }
func (c Conditional) Stats() (Stats, bool)    { return c.Dist.Stats() }

// condition is one Conditional's condition.
type condition struct {
	key string
	in  []any
}

// unwrap returns the conditions of d, outermost first, and the
// distribution under them.
func unwrap(d Distribution) ([]condition, Distribution) {
	var conds []condition
	for {
		c, ok := d.(Conditional)
		if !ok {
			return conds, d
		}
		conds = append(conds, condition{key: c.Key, in: c.In})
		d = c.Dist
	}
}

// wrap returns d under conds, the first outermost.
func wrap(conds []condition, d Distribution) Distribution {
	for i := len(conds) - 1; i >= 0; i-- {
		d = Conditional{Key: conds[i].key, In: conds[i].in, Dist: d}
	}
	return d
}

// errNilDistribution is the error of a key without a distribution.
var errNilDistribution = errors.New("no distribution (nil)")
