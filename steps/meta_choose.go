package steps

import (
	"context"
	"fmt"
	"slices"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

// This file holds ChooseOneOf, a choice between branches that is a
// hyperparameter.

// ChooseOneOf runs one of its branches, the one that its hyperparameter
// "choice" (a string, the branch's name) names: Transform, Fit and
// FitTransform are the chosen branch's. The other branches are not active
// (flow.Chooser): the runners neither set them up, nor fit, nor run them,
// and hparams.Get leaves them out. It is an hparams.Switch, so
// hparams.Gather makes every key under a branch conditional on "choice"
// naming it, and a search samples the choice first, then the chosen
// branch's parameters.
//
// Default space: "choice" Choice(the branch names, in order). Its methods
// are safe for concurrent use where the chosen branch's are; SetParams is
// not called while it runs.
type ChooseOneOf struct {
	branches []flow.Node
	choice   string
}

var (
	_ flow.Chooser        = (*ChooseOneOf)(nil)
	_ flow.FitTransformer = (*ChooseOneOf)(nil)
	_ flow.Fitter         = (*ChooseOneOf)(nil)
	_ hparams.Switch      = (*ChooseOneOf)(nil)
	_ hparams.Spacer      = (*ChooseOneOf)(nil)
)

// NewChooseOneOf returns the choice between branches, with the first
// branch chosen. The error names a missing, duplicate or reserved branch
// name, or a nil step.
func NewChooseOneOf(branches ...flow.Node) (*ChooseOneOf, error) {
	if err := wrapCheck("NewChooseOneOf", branches...); err != nil {
		return nil, err
	}
	return &ChooseOneOf{branches: slices.Clone(branches), choice: branches[0].Name}, nil
}

// Children returns the branches, chosen or not, in order.
func (c *ChooseOneOf) Children() []flow.Node { return slices.Clone(c.branches) }

// WithChildren returns a ChooseOneOf of the given branches (the same
// names) with the same choice.
func (c *ChooseOneOf) WithChildren(children []flow.Node) (flow.Composite, error) {
	if err := wrapSameChildren("ChooseOneOf", c.branches, children); err != nil {
		return nil, err
	}
	return &ChooseOneOf{branches: slices.Clone(children), choice: c.choice}, nil
}

// Active reports whether name is the chosen branch.
func (c *ChooseOneOf) Active(name string) bool { return name == c.choice }

// ActiveWhen says that the branch name is active when "choice" is name.
func (c *ChooseOneOf) ActiveWhen(name string) (string, []any) { return "choice", []any{name} }

// Choice returns the name of the chosen branch.
func (c *ChooseOneOf) Choice() string { return c.choice }

func (c *ChooseOneOf) chosen() flow.Node {
	for _, b := range c.branches {
		if b.Name == c.choice {
			return b
		}
	}
	panic("steps.ChooseOneOf: the choice is not a branch") // SetParams keeps it one
}

// Transform returns the chosen branch's transform of in.
func (c *ChooseOneOf) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return wrapRun(ctx, c.chosen(), false, in)
}

// FitTransform fits the chosen branch on in and returns its output.
func (c *ChooseOneOf) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return wrapRun(ctx, c.chosen(), true, in)
}

// Fit fits the chosen branch on in.
func (c *ChooseOneOf) Fit(ctx context.Context, in flow.Batch) error {
	return wrapFit(ctx, c.chosen(), in)
}

func (c *ChooseOneOf) names() []any {
	out := make([]any, len(c.branches))
	for i, b := range c.branches {
		out[i] = b.Name
	}
	return out
}

// Params returns "choice".
func (c *ChooseOneOf) Params() hparams.Values { return hparams.Values{"choice": c.choice} }

// SetParams sets "choice" to the name of a branch.
func (c *ChooseOneOf) SetParams(p hparams.Values) error {
	choice := c.choice
	for k, v := range p {
		s, ok := v.(string)
		if k != "choice" || !ok {
			return fmt.Errorf("steps.ChooseOneOf: no string parameter %q (%T); it has \"choice\"", k, v)
		}
		choice = s
	}
	if !slices.Contains(c.names(), any(choice)) {
		return fmt.Errorf("steps.ChooseOneOf: choice %q is not a branch; want one of %v", choice, c.names())
	}
	c.choice = choice
	return nil
}

// Space returns "choice": Choice(the branch names).
func (c *ChooseOneOf) Space() hparams.Space {
	return hparams.Space{"choice": hparams.Choice(c.names()...)}
}
