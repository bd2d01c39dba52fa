package flow

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/penstock-ml/penstock/barrier"
)

// Pipeline is a step made of named steps run one after the other; it is
// itself a Step, so pipelines nest. Build it with NewPipeline, which checks
// it; run it over a stream with a Runner. Fitting changes the steps in
// place, so one pipeline can be fitted once and then transform many
// streams.
//
// Used directly as a step (Transform, Fit, FitTransform on one batch), a
// pipeline runs its steps in a plain loop.
type Pipeline struct {
	nodes    []Node
	defaults stageConfig
}

var (
	_ Fitter         = (*Pipeline)(nil)
	_ FitTransformer = (*Pipeline)(nil)
	_ Composite      = (*Pipeline)(nil)
)

// NewPipeline checks nodes and returns the pipeline made of them. The
// options are defaults for every stage of this pipeline (see Option).
// It returns an error for an empty pipeline (a zero Pipeline or Union
// anywhere in the tree included), an empty, reserved ("/" or "__"),
// "_"-edged or duplicate name anywhere in the tree (the children of every
// composite included, see Path), a nil step (typed nil pointers included),
// a pipeline that contains itself, an impossible option (Replicas, Barrier
// or FitEpochs as a default included), a Joiner anywhere that runs batch
// by batch (inside a feature union, a replicated sub-pipeline or any other
// composite but a pipeline), replicas on a feature union, and replicas on
// a node below a step that runs its children itself (a metastep or a
// replicated sub-pipeline; see Replicas).
func NewPipeline(nodes []Node, defaults ...Option) (*Pipeline, error) {
	p := &Pipeline{nodes: append([]Node(nil), nodes...), defaults: configOf(defaults)}
	if p.defaults.err != nil {
		return nil, fmt.Errorf("penstock: pipeline defaults: %w", p.defaults.err)
	}
	if p.defaults.replicas != 0 || p.defaults.barrierSet || p.defaults.fitSet {
		return nil, errors.New("penstock: pipeline defaults: Replicas, Barrier and FitEpochs belong to one stage; set them with Named")
	}
	if err := checkNodes("pipeline", nodes); err != nil {
		return nil, err
	}
	if _, err := buildPlan(p); err != nil {
		return nil, err
	}
	return p, nil
}

func checkNodes(what string, nodes []Node) error {
	if len(nodes) == 0 {
		return fmt.Errorf("penstock: %s has no steps", what)
	}
	if err := checkNames(what, nodes); err != nil {
		return err
	}
	for _, n := range nodes {
		if isNil(n.Step) {
			return fmt.Errorf("penstock: %s: step %q is nil (%T)", what, n.Name, n.Step)
		}
		if c := configOf(n.opts); c.err != nil {
			return fmt.Errorf("penstock: %s: step %q: %w", what, n.Name, c.err)
		}
		if err := checkTree(Path{n.Name}, n.Step); err != nil {
			return fmt.Errorf("penstock: %s: %w", what, err)
		}
	}
	return nil
}

// checkNames checks that the names of nodes, the children of one
// composite, make paths whose two forms are unambiguous (see Path): each
// name is not empty, contains neither "/" nor "__", neither begins nor
// ends with "_" (else ["a_", "b"] and ["a", "_b"] would share the key
// "a___b"), and is not its sibling's.
func checkNames(what string, nodes []Node) error {
	seen := make(map[string]bool, len(nodes))
	for i, n := range nodes {
		switch {
		case n.Name == "":
			return fmt.Errorf("penstock: %s: step %d has no name", what, i)
		case strings.Contains(n.Name, PathSeparator) || strings.Contains(n.Name, KeySeparator):
			return fmt.Errorf("penstock: %s: step name %q: %q and %q are reserved for paths", what, n.Name, PathSeparator, KeySeparator)
		case strings.HasPrefix(n.Name, "_") || strings.HasSuffix(n.Name, "_"):
			return fmt.Errorf("penstock: %s: step name %q: a name may not begin or end with \"_\", which would make its hyperparameter keys ambiguous", what, n.Name)
		case seen[n.Name]:
			return fmt.Errorf("penstock: %s: duplicate step name %q", what, n.Name)
		}
		seen[n.Name] = true
	}
	return nil
}

// checkTree checks s, at path base, and every node below it, whatever
// package defines its composites: no step is nil, and the names of each
// composite's children make paths that name one node.
func checkTree(base Path, s Step) error {
	return Walk(s, func(v Visit) error {
		path := join(base, v.Path)
		if isNil(v.Node.Step) {
			return fmt.Errorf("step %q is nil (%T)", path, v.Node.Step)
		}
		if err := checkEmpty(path, v.Node.Step); err != nil {
			return err
		}
		c, ok := v.Node.Step.(Composite)
		if !ok {
			return nil
		}
		if err := checkNames(fmt.Sprintf("step %q (%T)", path, c), c.Children()); err != nil {
			return err
		}
		return nil
	})
}

// checkEmpty refuses a Pipeline or a Union, at path, with no children: a
// zero value, which NewPipeline and NewUnion would have refused, and which
// the runners cannot run.
func checkEmpty(path Path, s Step) error {
	what := ""
	switch c := s.(type) {
	case *Pipeline:
		if len(c.nodes) == 0 {
			what = "pipeline has no steps"
		}
	case *Union:
		if len(c.branches) == 0 {
			what = "union has no branches"
		}
	}
	if what == "" {
		return nil
	}
	if len(path) == 0 {
		return fmt.Errorf("the %s (a zero %T: build it with its constructor)", what, s)
	}
	return fmt.Errorf("step %q: the %s (a zero %T: build it with its constructor)", path, what, s)
}

// Nodes returns the pipeline's nodes, in order.
func (p *Pipeline) Nodes() []Node { return append([]Node(nil), p.nodes...) }

// Step returns the step called name, or nil.
func (p *Pipeline) Step(name string) Step {
	for _, n := range p.nodes {
		if n.Name == name {
			return n.Step
		}
	}
	return nil
}

// Children returns the pipeline's nodes, in order (see Composite).
func (p *Pipeline) Children() []Node { return p.Nodes() }

// WithChildren returns a pipeline with p's defaults and the given nodes,
// checked as NewPipeline checks them.
func (p *Pipeline) WithChildren(children []Node) (Composite, error) {
	if err := sameNames(p.nodes, children); err != nil {
		return nil, err
	}
	for _, n := range children {
		if err := checkTree(Path{n.Name}, n.Step); err != nil {
			return nil, fmt.Errorf("penstock: WithChildren: %w", err)
		}
	}
	q := &Pipeline{nodes: append([]Node(nil), children...), defaults: p.defaults}
	if _, err := buildPlan(q); err != nil {
		return nil, err
	}
	return q, nil
}

// sameNames checks that children are old with steps replaced.
func sameNames(old, children []Node) error {
	if len(children) != len(old) {
		return fmt.Errorf("penstock: WithChildren: %d children, want %d", len(children), len(old))
	}
	for i, n := range children {
		if n.Name != old[i].Name {
			return fmt.Errorf("penstock: WithChildren: child %d is %q, want %q", i, n.Name, old[i].Name)
		}
		if isNil(n.Step) {
			return fmt.Errorf("penstock: WithChildren: child %q is nil", n.Name)
		}
	}
	return nil
}

// hasJoiner reports whether any node of the tree below s has a Joiner
// barrier.
func hasJoiner(s Step) bool {
	err := Walk(s, func(v Visit) error {
		if v.Depth > 0 && configOf(v.Node.opts).barrier == barrier.Joiner {
			return errFound
		}
		return nil
	})
	return errors.Is(err, errFound)
}

// Transform runs in through every step's Transform, in order.
func (p *Pipeline) Transform(ctx context.Context, in Batch) (Batch, error) {
	return p.through(ctx, in, len(p.nodes), opTransform)
}

// FitTransform fits every fittable step on in, as transformed by the steps
// before it, and returns the output of the last step. A pipeline with a
// Joiner refuses: fitting on the whole stream takes a Runner.
func (p *Pipeline) FitTransform(ctx context.Context, in Batch) (Batch, error) {
	if hasJoiner(p) {
		return Batch{}, errors.New("penstock: a pipeline with a Joiner fits on a whole stream: use a Runner")
	}
	return p.through(ctx, in, len(p.nodes), opFitTransform)
}

// Fit fits every fittable step on in (partial fit). The steps after the
// last fittable one do not run.
func (p *Pipeline) Fit(ctx context.Context, in Batch) error {
	if hasJoiner(p) {
		return errors.New("penstock: a pipeline with a Joiner fits on a whole stream: use a Runner")
	}
	last := -1
	for i, n := range p.nodes {
		if nodeFits(n, in.Epoch) {
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	b, err := p.through(ctx, in, last, opFitTransform)
	if err != nil {
		return err
	}
	defer b.Release()
	n := p.nodes[last]
	_, err = apply(ctx, n.Step, opFit, b)
	return stepError(Path{n.Name}, n.Step, "fit", &b, err)
}

// nodeFits reports whether fitting on a batch of the given epoch fits n:
// its step is fittable and its FitEpochs, if any, is above epoch.
func nodeFits(n Node, epoch int) bool {
	limit := configOf(n.opts).fitLimit()
	return (limit < 0 || epoch < limit) && fittable(n.Step)
}

// through runs the first k steps of p on in with op. The result is owned by
// the caller; in is borrowed.
func (p *Pipeline) through(ctx context.Context, in Batch, k int, op op) (Batch, error) {
	cur := in
	cur.Retain()
	for _, n := range p.nodes[:k] {
		o := op
		if o != opTransform && !nodeFits(n, cur.Epoch) {
			o = opTransform
		}
		next, err := apply(ctx, n.Step, o, cur)
		if err != nil {
			cur.Release()
			return Batch{}, stepError(Path{n.Name}, n.Step, o.String(), &cur, err)
		}
		next.Seq, next.Epoch = cur.Seq, cur.Epoch
		cur.Release()
		cur = next
	}
	return cur, nil
}
