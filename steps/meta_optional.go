package steps

import (
	"context"
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

// This file holds Optional, a step that a hyperparameter turns on or off.

// Optional runs its child where its hyperparameter "enabled" (a bool) is
// true; where it is false the batch passes through on every path and the
// child is not active (flow.Chooser): neither set up, nor fitted, nor run,
// nor read by hparams.Get. It is an hparams.Switch: hparams.Gather makes
// the child's keys conditional on "enabled" being true.
//
// Default space: "enabled" Boolean(0.5). Its methods are safe for
// concurrent use where the child's are; SetParams is not called while it
// runs.
type Optional struct {
	child   flow.Node
	enabled bool
}

var (
	_ flow.Chooser        = (*Optional)(nil)
	_ flow.FitTransformer = (*Optional)(nil)
	_ flow.Fitter         = (*Optional)(nil)
	_ hparams.Switch      = (*Optional)(nil)
	_ hparams.Spacer      = (*Optional)(nil)
)

// NewOptional returns the step that runs child where enabled. The error
// names a child without a name or step, or with a reserved name.
func NewOptional(child flow.Node, enabled bool) (*Optional, error) {
	if err := wrapCheck("NewOptional", child); err != nil {
		return nil, err
	}
	return &Optional{child: child, enabled: enabled}, nil
}

// Children returns the child.
func (o *Optional) Children() []flow.Node { return []flow.Node{o.child} }

// WithChildren returns an Optional of the given child (same name), as
// enabled as o.
func (o *Optional) WithChildren(children []flow.Node) (flow.Composite, error) {
	if err := wrapSameChildren("Optional", []flow.Node{o.child}, children); err != nil {
		return nil, err
	}
	return &Optional{child: children[0], enabled: o.enabled}, nil
}

// Active reports whether the child runs: "enabled".
func (o *Optional) Active(string) bool { return o.enabled }

// ActiveWhen says that the child is active when "enabled" is true.
func (o *Optional) ActiveWhen(string) (string, []any) { return "enabled", []any{true} }

// Enabled reports whether the child runs.
func (o *Optional) Enabled() bool { return o.enabled }

// Transform returns the child's transform of in, or in where disabled.
func (o *Optional) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if !o.enabled {
		return wrapPass(in), nil
	}
	return wrapRun(ctx, o.child, false, in)
}

// FitTransform fits the child on in and returns its output, or returns in
// where disabled.
func (o *Optional) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if !o.enabled {
		return wrapPass(in), nil
	}
	return wrapRun(ctx, o.child, true, in)
}

// Fit fits the child on in where enabled.
func (o *Optional) Fit(ctx context.Context, in flow.Batch) error {
	if !o.enabled {
		return nil
	}
	return wrapFit(ctx, o.child, in)
}

// Params returns "enabled".
func (o *Optional) Params() hparams.Values { return hparams.Values{"enabled": o.enabled} }

// SetParams sets "enabled".
func (o *Optional) SetParams(p hparams.Values) error {
	e := o.enabled
	for k, v := range p {
		b, ok := v.(bool)
		if k != "enabled" || !ok {
			return fmt.Errorf("steps.Optional: no bool parameter %q (%T); it has \"enabled\"", k, v)
		}
		e = b
	}
	o.enabled = e
	return nil
}

// Space returns "enabled": Boolean(0.5).
func (o *Optional) Space() hparams.Space { return hparams.Space{"enabled": hparams.Boolean(0.5)} }
