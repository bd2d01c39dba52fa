package hparams_test

import (
	"context"
	"fmt"
	"slices"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

// Test-only steps and composites, of a package other than flow and
// hparams, as the step library's will be.

// passThrough is a Transform that returns its input.
type passThrough struct{}

func (passThrough) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

// scaler is a leaf with a bool and a float parameter.
type scaler struct {
	passThrough
	withMean bool
	factor   float64
}

var (
	_ hparams.Tunable = (*scaler)(nil)
	_ hparams.Spacer  = (*scaler)(nil)
)

func (s *scaler) Params() hparams.Values {
	return hparams.Values{"with_mean": s.withMean, "factor": s.factor}
}

func (s *scaler) SetParams(p hparams.Values) error {
	next := *s
	for k, v := range p {
		var ok bool
		switch k {
		case "with_mean":
			next.withMean, ok = v.(bool)
		case "factor":
			next.factor, ok = v.(float64)
		default:
			return fmt.Errorf("scaler: no parameter %q", k)
		}
		if !ok {
			return fmt.Errorf("scaler: %s: %T", k, v)
		}
	}
	*s = next
	return nil
}

func (s *scaler) Space() hparams.Space {
	return hparams.Space{"with_mean": hparams.Boolean(0.5), "factor": hparams.Uniform(0.5, 2)}
}

// intLeaf is a leaf with one int parameter, whose space is given.
type intLeaf struct {
	passThrough
	name  string
	value int
	dist  hparams.Distribution
}

func (l *intLeaf) Params() hparams.Values { return hparams.Values{l.name: l.value} }

func (l *intLeaf) SetParams(p hparams.Values) error {
	for k, v := range p {
		i, ok := v.(int)
		if k != l.name || !ok {
			return fmt.Errorf("intLeaf: %s = %v (%T)", k, v, v)
		}
		l.value = i
	}
	return nil
}

func (l *intLeaf) Space() hparams.Space { return hparams.Space{l.name: l.dist} }

// mlp is a leaf with int, float and string parameters, one of which
// (momentum) applies only to one solver.
type mlp struct {
	passThrough
	hidden   int
	lr       float64
	act      string
	solver   string
	momentum float64
}

func newMLP() *mlp { return &mlp{hidden: 64, lr: 1e-3, act: "relu", solver: "adam", momentum: 0.9} }

func (m *mlp) Params() hparams.Values {
	return hparams.Values{"hidden": m.hidden, "lr": m.lr, "act": m.act, "solver": m.solver, "momentum": m.momentum}
}

func (m *mlp) SetParams(p hparams.Values) error {
	next := *m
	for k, v := range p {
		var ok bool
		switch k {
		case "hidden":
			next.hidden, ok = v.(int)
		case "lr":
			next.lr, ok = v.(float64)
		case "act":
			next.act, ok = v.(string)
		case "solver":
			next.solver, ok = v.(string)
		case "momentum":
			next.momentum, ok = v.(float64)
		default:
			return fmt.Errorf("mlp: no parameter %q", k)
		}
		if !ok {
			return fmt.Errorf("mlp: %s: %T", k, v)
		}
	}
	*m = next
	return nil
}

func (m *mlp) Space() hparams.Space {
	return hparams.Space{
		"hidden":   hparams.IntRange(16, 256),
		"lr":       hparams.LogUniform(1e-5, 1),
		"act":      hparams.Choice("relu", "tanh"),
		"solver":   hparams.Choice("adam", "sgd"),
		"momentum": hparams.When(hparams.Uniform(0, 0.99), "solver", "sgd"),
	}
}

// window is a leaf whose SetParams refuses lo > hi: a constraint between
// parameters that only the step can check.
type window struct {
	passThrough
	lo, hi int
}

func (w *window) Params() hparams.Values { return hparams.Values{"lo": w.lo, "hi": w.hi} }

func (w *window) SetParams(p hparams.Values) error {
	lo, hi := w.lo, w.hi
	if v, ok := p["lo"]; ok {
		lo = v.(int)
	}
	if v, ok := p["hi"]; ok {
		hi = v.(int)
	}
	if lo > hi {
		return fmt.Errorf("window: lo %d > hi %d", lo, hi)
	}
	w.lo, w.hi = lo, hi
	return nil
}

func (w *window) Space() hparams.Space {
	return hparams.Space{"lo": hparams.IntRange(0, 10), "hi": hparams.IntRange(0, 10)}
}

// chooseOneOf runs the branch its parameter "choice" names: a Switch.
type chooseOneOf struct {
	branches []flow.Node
	choice   string
}

var _ hparams.Switch = (*chooseOneOf)(nil)

func newChoose(choice string, branches ...flow.Node) *chooseOneOf {
	return &chooseOneOf{branches: branches, choice: choice}
}

func (c *chooseOneOf) Children() []flow.Node { return slices.Clone(c.branches) }

func (c *chooseOneOf) WithChildren(children []flow.Node) (flow.Composite, error) {
	if len(children) != len(c.branches) {
		return nil, fmt.Errorf("chooseOneOf: %d children, want %d", len(children), len(c.branches))
	}
	return &chooseOneOf{branches: slices.Clone(children), choice: c.choice}, nil
}

func (c *chooseOneOf) Active(name string) bool { return name == c.choice }

func (c *chooseOneOf) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	for _, b := range c.branches {
		if b.Name == c.choice {
			return b.Step.Transform(ctx, in)
		}
	}
	return flow.Batch{}, fmt.Errorf("chooseOneOf: no branch %q", c.choice)
}

func (c *chooseOneOf) names() []any {
	out := make([]any, len(c.branches))
	for i, b := range c.branches {
		out[i] = b.Name
	}
	return out
}

func (c *chooseOneOf) Params() hparams.Values { return hparams.Values{"choice": c.choice} }

func (c *chooseOneOf) SetParams(p hparams.Values) error {
	for k, v := range p {
		if k != "choice" || !slices.Contains(c.names(), v) {
			return fmt.Errorf("chooseOneOf: %s = %v", k, v)
		}
		c.choice = v.(string)
	}
	return nil
}

func (c *chooseOneOf) Space() hparams.Space {
	return hparams.Space{"choice": hparams.Choice(c.names()...)}
}

func (c *chooseOneOf) ActiveWhen(child string) (string, []any) {
	return "choice", []any{child}
}

// optional runs its child where "enabled" is true: a Switch over a bool.
type optional struct {
	child   flow.Node
	enabled bool
}

var _ hparams.Switch = (*optional)(nil)

func (o *optional) Children() []flow.Node { return []flow.Node{o.child} }
func (o *optional) WithChildren(children []flow.Node) (flow.Composite, error) {
	return &optional{child: children[0], enabled: o.enabled}, nil
}
func (o *optional) Active(string) bool { return o.enabled }
func (o *optional) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if o.enabled {
		return o.child.Step.Transform(ctx, in)
	}
	in.Retain()
	return in, nil
}
func (o *optional) Params() hparams.Values { return hparams.Values{"enabled": o.enabled} }
func (o *optional) SetParams(p hparams.Values) error {
	if v, ok := p["enabled"]; ok {
		o.enabled = v.(bool)
	}
	return nil
}
func (o *optional) Space() hparams.Space { return hparams.Space{"enabled": hparams.Boolean(0.5)} }
func (o *optional) ActiveWhen(string) (string, []any) {
	return "enabled", []any{true}
}

// fixedChoice is a Chooser whose choice is not a hyperparameter.
type fixedChoice struct {
	branches []flow.Node
	pick     string
}

func (c *fixedChoice) Children() []flow.Node { return slices.Clone(c.branches) }
func (c *fixedChoice) WithChildren(children []flow.Node) (flow.Composite, error) {
	return &fixedChoice{branches: slices.Clone(children), pick: c.pick}, nil
}
func (c *fixedChoice) Active(name string) bool { return name == c.pick }
func (c *fixedChoice) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	for _, b := range c.branches {
		if b.Name == c.pick {
			return b.Step.Transform(ctx, in)
		}
	}
	return flow.Batch{}, fmt.Errorf("fixedChoice: no branch %q", c.pick)
}

// liar is a Switch whose ActiveWhen contradicts Active.
type liar struct{ chooseOneOf }

func (l *liar) Active(name string) bool { return name != l.choice }

// tree builds the test pipeline:
//
//	features: union(
//	    scale: scaler
//	    pick: chooseOneOf(
//	        pca: intLeaf components IntRange(1, 3)
//	        poly: pipeline(poly: intLeaf degree Choice(2, 3), scale: scaler)))
//	mlp: mlp
func tree() (*flow.Pipeline, error) {
	poly, err := flow.NewPipeline([]flow.Node{
		flow.Named("poly", &intLeaf{name: "degree", value: 2, dist: hparams.Choice(2, 3)}),
		flow.Named("scale", &scaler{factor: 1}),
	})
	if err != nil {
		return nil, err
	}
	pick := newChoose("pca",
		flow.Named("pca", &intLeaf{name: "components", value: 2, dist: hparams.IntRange(1, 3)}),
		flow.Named("poly", poly),
	)
	features, err := flow.NewUnion(
		flow.Named("scale", &scaler{withMean: true, factor: 1}),
		flow.Named("pick", pick),
	)
	if err != nil {
		return nil, err
	}
	return flow.NewPipeline([]flow.Node{
		flow.Named("features", features),
		flow.Named("mlp", newMLP()),
	})
}
