package hparams

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/penstock-ml/penstock/flow"
)

// node is one node of a step tree, as Get, Set and Gather see it.
type node struct {
	path    flow.Path
	step    flow.Step
	tunable Tunable // nil where the step is not Tunable
	params  Values  // its Params, canonical
	space   Space   // its own Space, nil where it is not a Spacer
	active  bool    // runs, as the tree is configured now
	// reachable: some configuration of the tree's Switches makes it
	// active (no other Chooser above leaves it out).
	reachable bool
	// cond is the condition of the nearest Switch above that decides
	// whether it is active; nil where none does.
	cond *condition
}

// where names n in errors.
func (n *node) where() string {
	if len(n.path) == 0 {
		return fmt.Sprintf("the root step (%T)", n.step)
	}
	return fmt.Sprintf("step %q (%T)", n.path.String(), n.step)
}

// key returns the key of n's parameter name.
func (n *node) key(name string) string { return joinKey(n.path.Key(), name) }

// nodes walks root with flow.Walk and returns every node of it, in the
// walk's order, with its parameters read and checked.
func nodes(root flow.Step) ([]*node, error) {
	var out []*node
	byPath := map[string]*node{}
	err := flow.Walk(root, func(v flow.Visit) error {
		n := &node{path: v.Path, step: v.Node.Step, active: v.Active, reachable: true}
		if len(v.Path) > 0 {
			parent := byPath[v.Path[:len(v.Path)-1].Key()]
			name := v.Path[len(v.Path)-1]
			n.cond = parent.cond
			switch c := v.Parent.(type) {
			case Switch:
				n.reachable = parent.reachable
				if param, in := c.ActiveWhen(name); param != "" {
					n.cond = &condition{key: parent.key(param), in: in}
				}
			case flow.Chooser:
				n.reachable = parent.reachable && c.Active(name)
			default:
				n.reachable = parent.reachable
			}
		}
		if err := n.read(); err != nil {
			return err
		}
		if sw, ok := n.step.(Switch); ok {
			if err := n.checkSwitch(sw); err != nil {
				return err
			}
		}
		out = append(out, n)
		byPath[v.Path.Key()] = n
		return nil
	})
	return out, err
}

// read reads n's parameters and space and checks them.
func (n *node) read() error {
	t, tunable := n.step.(Tunable)
	sp, spacer := n.step.(Spacer)
	if spacer && !tunable {
		return fmt.Errorf("hparams: %s has a Space but no Params (it is not Tunable)", n.where())
	}
	if !tunable {
		return nil
	}
	n.tunable = t
	n.params = Values{}
	for name, v := range t.Params() {
		if err := checkName(name); err != nil {
			return fmt.Errorf("hparams: %s: parameter %q: %w", n.where(), name, err)
		}
		c, err := canonical(v)
		if err != nil {
			return fmt.Errorf("hparams: %s: parameter %q: %w", n.where(), name, err)
		}
		n.params[name] = c
	}
	if !spacer {
		return nil
	}
	n.space = sp.Space()
	for _, name := range n.space.Keys() {
		cur, ok := n.params[name]
		if !ok {
			return fmt.Errorf("hparams: %s: its Space has %q, which its Params lack", n.where(), name)
		}
		if d := n.space[name]; d != nil && d.Type() != typeOf(cur) {
			return fmt.Errorf("hparams: %s: parameter %q is %s, but its Space's %v gives %ss", n.where(), name, article(typeOf(cur)), d, d.Type())
		}
	}
	return nil
}

// checkSwitch checks that ActiveWhen agrees with Active and names
// parameters that have a space.
func (n *node) checkSwitch(sw Switch) error {
	for _, child := range sw.Children() {
		param, in := sw.ActiveWhen(child.Name)
		want := true
		if param != "" {
			cur, ok := n.params[param]
			if !ok {
				return fmt.Errorf("hparams: %s: ActiveWhen(%q) names the parameter %q, which its Params lack", n.where(), child.Name, param)
			}
			if _, ok := n.space[param]; !ok {
				return fmt.Errorf("hparams: %s: ActiveWhen(%q) names the parameter %q, which its Space lacks", n.where(), child.Name, param)
			}
			want = false
			for _, v := range in {
				if c, err := Convert(v, typeOf(cur)); err == nil && c == cur {
					want = true
				}
			}
		}
		if got := sw.Active(child.Name); got != want {
			return fmt.Errorf("hparams: %s: Active(%q) is %t, but ActiveWhen(%q) = %q %s says %t for %s", n.where(), child.Name, got, child.Name, param, formatValues(in), want, n.params)
		}
	}
	return nil
}

func typeOf(v any) Type { t, _ := TypeOf(v); return t }

// checkName checks a parameter's name as flow checks a node's (see
// flow.Path), so that keys are unambiguous.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("the name is empty")
	case strings.Contains(name, flow.KeySeparator) || strings.Contains(name, flow.PathSeparator):
		return fmt.Errorf("%q and %q are reserved for paths", flow.KeySeparator, flow.PathSeparator)
	case strings.HasPrefix(name, "_") || strings.HasSuffix(name, "_"):
		return errors.New("a name may not begin or end with \"_\", which would make keys ambiguous")
	}
	return nil
}

// Get returns the hyperparameters of every active step of the tree under
// root (see flow.Visit.Active): each Tunable's Params, keyed by the step's
// path and the name ("features__scale__with_mean"), values converted to
// float64, int, bool or string. The steps of a branch that a Chooser
// leaves out are not read, so after Set of a sample of Gather's space, Get
// returns that sample where every parameter has a distribution. It returns
// an error where a step's parameters are malformed (see Tunable) or a
// Switch contradicts itself.
func Get(root flow.Step) (Values, error) {
	ns, err := nodes(root)
	if err != nil {
		return nil, err
	}
	out := Values{}
	for _, n := range ns {
		if !n.active {
			continue
		}
		for name, v := range n.params {
			if n.applies(name, 0) {
				out[n.key(name)] = v
			}
		}
	}
	return out, nil
}

// applies reports whether n's parameter name applies under the current
// values of n's parameters: whether every condition of its own Space
// holds, and the parameters those test apply too. depth bounds a chain
// of conditions that loops (which Gather refuses).
func (n *node) applies(name string, depth int) bool {
	if depth > len(n.space) {
		return false
	}
	conds, _ := unwrap(n.space[name])
	for _, c := range conds {
		cur, ok := n.params[c.key]
		if !ok || !n.applies(c.key, depth+1) {
			return false
		}
		held := false
		for _, v := range c.in {
			if x, err := Convert(v, typeOf(cur)); err == nil && x == cur {
				held = true
			}
		}
		if !held {
			return false
		}
	}
	return true
}

// Gather returns the search space of the tree under root: the Space of
// every Spacer that some choice of the Switches could make active, keys
// prefixed with the step's path (conditions too), and every key under a
// Switch's child made conditional on the Switch's parameter that
// activates the child (see Conditional). A step left out by a Chooser
// that is not a Switch is left out of the space. It returns Space.Check's
// error for the result (and one where a condition tests for a value that
// its key cannot take), and an error where a step's parameters or space
// are malformed or a Switch contradicts itself.
func Gather(root flow.Step) (Space, error) {
	ns, err := nodes(root)
	if err != nil {
		return nil, err
	}
	out := Space{}
	for _, n := range ns {
		if !n.reachable {
			continue
		}
		for name, d := range n.space {
			if d == nil {
				return nil, fmt.Errorf("hparams: %s: parameter %q: %w", n.where(), name, errNilDistribution)
			}
			conds, inner := unwrap(d)
			for i := range conds {
				conds[i].key = n.key(conds[i].key)
			}
			if n.cond != nil {
				conds = append([]condition{*n.cond}, conds...)
			}
			out[n.key(name)] = wrap(conds, inner)
		}
	}
	if _, err := out.plan(true); err != nil {
		return nil, err
	}
	return out, nil
}

// target is a parameter that Set may set.
type target struct {
	n    *node
	name string
	dist Distribution // declared, under its conditions; nil where none
}

// Set sets the hyperparameters in v on the steps of the tree under root,
// all or none. A key may name a parameter of any step of the tree, active
// or not.
//
// Everything is checked first: every key must name a parameter (else the
// error wraps ErrUnknownKey and lists the valid keys); every value must
// convert to the parameter's Type (that of its declared distribution,
// else of its current value) and lie in the declared distribution (else
// the error wraps ErrInvalidValue and names the key, the value and the
// distribution). Errors name every bad key, sorted. Then each step's
// SetParams is called with its share of v, parents before children; if
// one fails, the steps already set are given back their old values and
// the error names the step.
//
// Set changes the steps in place: it is not called while the tree runs.
func Set(root flow.Step, v Values) error {
	ns, err := nodes(root)
	if err != nil {
		return err
	}
	targets := map[string]target{}
	for _, n := range ns {
		for name := range n.params {
			var d Distribution
			if n.space != nil {
				_, d = unwrap(n.space[name])
			}
			targets[n.key(name)] = target{n: n, name: name, dist: d}
		}
	}
	var unknown []string
	var errs []error
	shares := map[*node]Values{}
	for _, key := range v.Keys() {
		t, ok := targets[key]
		if !ok {
			unknown = append(unknown, key)
			continue
		}
		c, err := t.convert(v[key])
		if err != nil {
			errs = append(errs, errorOf(ErrInvalidValue, "hparams: %q: %v", key, err))
			continue
		}
		if shares[t.n] == nil {
			shares[t.n] = Values{}
		}
		shares[t.n][t.name] = c
	}
	if len(unknown) > 0 {
		valid := make([]string, 0, len(targets))
		for k := range targets {
			valid = append(valid, k)
		}
		slices.Sort(valid)
		errs = append([]error{unknownKeys("set", unknown, valid)}, errs...)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	var done []*node
	for _, n := range ns {
		share, ok := shares[n]
		if !ok {
			continue
		}
		if err := n.tunable.SetParams(share); err != nil {
			err = fmt.Errorf("hparams: set: %s: %w", n.where(), err)
			return errors.Join(err, rollback(done, shares))
		}
		done = append(done, n)
	}
	return nil
}

// convert converts x to t's Type and checks it against t's distribution.
func (t target) convert(x any) (any, error) {
	if t.dist == nil {
		return Convert(x, typeOf(t.n.params[t.name]))
	}
	c, err := Convert(x, t.dist.Type())
	if err != nil {
		return nil, fmt.Errorf("%v (%v)", err, t.dist)
	}
	if !t.dist.Contains(c) {
		return nil, fmt.Errorf("%s is outside %v", formatValue(c), t.dist)
	}
	return c, nil
}

// rollback gives the nodes in done, already set with shares, their old
// values back, last first.
func rollback(done []*node, shares map[*node]Values) error {
	var errs []error
	for _, n := range slices.Backward(done) {
		old := Values{}
		for name := range shares[n] {
			old[name] = n.params[name]
		}
		if err := n.tunable.SetParams(old); err != nil {
			errs = append(errs, fmt.Errorf("hparams: set: restoring %s: %w", n.where(), err))
		}
	}
	return errors.Join(errs...)
}
