package steps

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/penstock-ml/penstock/flow"
)

// This file holds what the wrappers and metasteps of this package share:
// checking their children, running a child on the fit or transform path,
// and naming a child in its errors.

// wrapCheck checks the children of the composite what (its constructor's
// name) as flow checks a pipeline's nodes: at least one, named by the
// rules of flow.Path, unique, not nil. The trees below are checked by
// NewPipeline when the composite is put in one.
func wrapCheck(what string, nodes ...flow.Node) error {
	if len(nodes) == 0 {
		return fmt.Errorf("steps: %s: no steps", what)
	}
	seen := map[string]bool{}
	for i, n := range nodes {
		switch {
		case n.Name == "":
			return fmt.Errorf("steps: %s: step %d has no name", what, i)
		case strings.Contains(n.Name, flow.PathSeparator) || strings.Contains(n.Name, flow.KeySeparator):
			return fmt.Errorf("steps: %s: step name %q: %q and %q are reserved for paths", what, n.Name, flow.PathSeparator, flow.KeySeparator)
		case strings.HasPrefix(n.Name, "_") || strings.HasSuffix(n.Name, "_"):
			return fmt.Errorf("steps: %s: step name %q may not begin or end with \"_\"", what, n.Name)
		case seen[n.Name]:
			return fmt.Errorf("steps: %s: duplicate step name %q", what, n.Name)
		case wrapIsNil(n.Step):
			return fmt.Errorf("steps: %s: step %q is nil (%T)", what, n.Name, n.Step)
		}
		seen[n.Name] = true
	}
	return nil
}

func wrapIsNil(s flow.Step) bool {
	if s == nil {
		return true
	}
	v := reflect.ValueOf(s)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// wrapSameChildren checks that children are old with their steps replaced,
// as WithChildren must.
func wrapSameChildren(what string, old, children []flow.Node) error {
	if len(children) != len(old) {
		return fmt.Errorf("steps: %s: WithChildren: %d children, want %d", what, len(children), len(old))
	}
	for i, n := range children {
		if n.Name != old[i].Name {
			return fmt.Errorf("steps: %s: WithChildren: child %d is %q, want %q", what, i, n.Name, old[i].Name)
		}
		if wrapIsNil(n.Step) {
			return fmt.Errorf("steps: %s: WithChildren: child %q is nil", what, n.Name)
		}
	}
	return nil
}

// wrapRun runs the child n on in (borrowed). On the fit path (fit true)
// it fits the child where n.Fits(in.Epoch) — FitTransform, or Fit then
// Transform — and transforms it otherwise (a frozen child); on the
// transform path it transforms. The output has in's Seq and Epoch; an
// error names the child (see wrapError).
func wrapRun(ctx context.Context, n flow.Node, fit bool, in flow.Batch) (flow.Batch, error) {
	op := "transform"
	var out flow.Batch
	var err error
	switch {
	case !fit || !n.Fits(in.Epoch):
		out, err = n.Step.Transform(ctx, in)
	default:
		op = "fit-transform"
		if ft, ok := n.Step.(flow.FitTransformer); ok {
			out, err = ft.FitTransform(ctx, in)
			break
		}
		if f, ok := n.Step.(flow.Fitter); ok {
			if err = f.Fit(ctx, in); err != nil {
				break
			}
		}
		out, err = n.Step.Transform(ctx, in)
	}
	if err != nil {
		out.Release()
		return flow.Batch{}, wrapError(n, op, &in, err)
	}
	out.Seq, out.Epoch = in.Seq, in.Epoch
	return out, nil
}

// wrapFit fits the child n on in (borrowed) without keeping an output:
// Fit, or FitTransform with its output released. A child that does not
// fit on this epoch (not fittable, or frozen) is left alone.
func wrapFit(ctx context.Context, n flow.Node, in flow.Batch) error {
	if !n.Fits(in.Epoch) {
		return nil
	}
	var err error
	switch s := n.Step.(type) {
	case flow.Fitter:
		err = s.Fit(ctx, in)
	case flow.FitTransformer:
		var out flow.Batch
		out, err = s.FitTransform(ctx, in)
		out.Release()
	}
	return wrapError(n, "fit", &in, err)
}

// wrapError names the child n in err, as a pipeline names its steps: a
// *flow.StepError whose path starts with the child's name (an error that
// is already one, from a composite below, gets the name as a prefix), so
// that the runner's error reads "outer/child".
func wrapError(n flow.Node, op string, in *flow.Batch, err error) error {
	if err == nil {
		return nil
	}
	if se, ok := err.(*flow.StepError); ok {
		cp := *se
		cp.Path = append(flow.Path{n.Name}, se.Path...)
		return &cp
	}
	e := &flow.StepError{Path: flow.Path{n.Name}, Type: fmt.Sprintf("%T", n.Step), Op: op, Err: err}
	if in != nil {
		e.Seq, e.HasSeq = in.Seq, true
	}
	return e
}

// wrapPass returns in, retained: the output of a step that passes its
// batch through.
func wrapPass(in flow.Batch) flow.Batch {
	in.Retain()
	return in
}
