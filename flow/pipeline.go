package flow

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/penstock-ml/penstock/barrier"
)

// Node is a named step of a pipeline, with the options of its stage.
type Node struct {
	Name string
	Step Step
	opts []Option
}

// Named returns the node called name that runs s. Options set how the
// streaming runner runs it (Replicas, QueueCapacity, Barrier).
func Named(name string, s Step, opts ...Option) Node {
	return Node{Name: name, Step: s, opts: opts}
}

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
	_ Setupper       = (*Pipeline)(nil)
	_ Teardowner     = (*Pipeline)(nil)
	_ Merger         = (*Pipeline)(nil)
)

// NewPipeline checks nodes and returns the pipeline made of them. The
// options are defaults for every stage of this pipeline (see Option).
// It returns an error for an empty pipeline, an empty, reserved ("/" or
// "__") or duplicate name, a nil step, a pipeline that contains itself, an
// impossible option, a Joiner inside a feature union or inside a replicated
// sub-pipeline, and replicas on a feature union.
func NewPipeline(nodes []Node, defaults ...Option) (*Pipeline, error) {
	p := &Pipeline{nodes: append([]Node(nil), nodes...), defaults: configOf(defaults)}
	if p.defaults.err != nil {
		return nil, fmt.Errorf("penstock: pipeline defaults: %w", p.defaults.err)
	}
	if p.defaults.replicas != 0 || p.defaults.barrierSet {
		return nil, errors.New("penstock: pipeline defaults: Replicas and Barrier belong to one stage; set them with Named")
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
	seen := make(map[string]bool, len(nodes))
	for i, n := range nodes {
		switch {
		case n.Name == "":
			return fmt.Errorf("penstock: %s: step %d has no name", what, i)
		case strings.Contains(n.Name, "/") || strings.Contains(n.Name, "__"):
			return fmt.Errorf("penstock: %s: step name %q: \"/\" and \"__\" are reserved for paths", what, n.Name)
		case seen[n.Name]:
			return fmt.Errorf("penstock: %s: duplicate step name %q", what, n.Name)
		case n.Step == nil:
			return fmt.Errorf("penstock: %s: step %q is nil", what, n.Name)
		}
		seen[n.Name] = true
		if c := configOf(n.opts); c.err != nil {
			return fmt.Errorf("penstock: %s: step %q: %w", what, n.Name, c.err)
		}
	}
	return nil
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

func (p *Pipeline) fittable() bool {
	for _, n := range p.nodes {
		if fittable(n.Step) {
			return true
		}
	}
	return false
}

func (p *Pipeline) hasJoiner() bool {
	for _, n := range p.nodes {
		if configOf(n.opts).barrier == barrier.Joiner {
			return true
		}
		if sub, ok := n.Step.(*Pipeline); ok && sub.hasJoiner() {
			return true
		}
	}
	return false
}

// Transform runs in through every step's Transform, in order.
func (p *Pipeline) Transform(ctx context.Context, in Batch) (Batch, error) {
	return p.through(ctx, in, len(p.nodes), opTransform)
}

// FitTransform fits every fittable step on in, as transformed by the steps
// before it, and returns the output of the last step. A pipeline with a
// Joiner refuses: fitting on the whole stream takes a Runner.
func (p *Pipeline) FitTransform(ctx context.Context, in Batch) (Batch, error) {
	if p.hasJoiner() {
		return Batch{}, errors.New("penstock: a pipeline with a Joiner fits on a whole stream: use a Runner")
	}
	return p.through(ctx, in, len(p.nodes), opFitTransform)
}

// Fit fits every fittable step on in (partial fit). The steps after the
// last fittable one do not run.
func (p *Pipeline) Fit(ctx context.Context, in Batch) error {
	if p.hasJoiner() {
		return errors.New("penstock: a pipeline with a Joiner fits on a whole stream: use a Runner")
	}
	last := -1
	for i, n := range p.nodes {
		if fittable(n.Step) {
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
	return stepError(n.Name, n.Step, "fit", &b, err)
}

// through runs the first k steps of p on in with op. The result is owned by
// the caller; in is borrowed.
func (p *Pipeline) through(ctx context.Context, in Batch, k int, op op) (Batch, error) {
	cur := in
	cur.Retain()
	for _, n := range p.nodes[:k] {
		o := op
		if o != opTransform && !fittable(n.Step) {
			o = opTransform
		}
		next, err := apply(ctx, n.Step, o, cur)
		if err != nil {
			cur.Release()
			return Batch{}, stepError(n.Name, n.Step, o.String(), &cur, err)
		}
		next.Seq, next.Epoch = cur.Seq, cur.Epoch
		cur.Release()
		cur = next
	}
	return cur, nil
}

// Setup sets up every step, in order. If one fails, those already set up
// are torn down.
func (p *Pipeline) Setup(ctx context.Context) error { return setupNodes(ctx, p.nodes) }

// Teardown tears down every step, in reverse order, and returns their
// errors joined.
func (p *Pipeline) Teardown(ctx context.Context) error { return teardownNodes(ctx, p.nodes) }

// Replica returns a pipeline whose fittable steps are replicas (see Merger)
// and whose other steps are shared. It panics if a fittable step is not a
// Merger: the runners check CanMerge first.
func (p *Pipeline) Replica() Step {
	return &Pipeline{nodes: replicaNodes(p.nodes), defaults: p.defaults}
}

// Merge merges each fittable step of the replicas into p's.
func (p *Pipeline) Merge(replicas []Step) error {
	return mergeNodes(p.nodes, replicas, func(r Step) []Node {
		if rp, ok := r.(*Pipeline); ok {
			return rp.nodes
		}
		return nil
	})
}

// CanMerge reports whether s can be fitted as several replicas: it is not
// fittable, or it is a Merger, or it is a pipeline or union whose fittable
// steps all can. The error names the first step that cannot.
func CanMerge(s Step) error {
	switch s := s.(type) {
	case *Pipeline:
		for _, n := range s.nodes {
			if err := CanMerge(n.Step); err != nil {
				return fmt.Errorf("%q: %w", n.Name, err)
			}
		}
		return nil
	case *Union:
		for _, n := range s.branches {
			if err := CanMerge(n.Step); err != nil {
				return fmt.Errorf("%q: %w", n.Name, err)
			}
		}
		return nil
	}
	if !fittable(s) {
		return nil
	}
	if _, ok := s.(Merger); !ok {
		return fmt.Errorf("%T does not implement flow.Merger, so its replicas' states cannot be merged", s)
	}
	return nil
}

// fittable reports whether s learns anything.
func fittable(s Step) bool {
	switch s := s.(type) {
	case *Pipeline:
		return s.fittable()
	case *Union:
		return s.fittable()
	case Fitter, FitTransformer:
		return true
	}
	return false
}

func setup(ctx context.Context, path string, s Step) error {
	su, ok := s.(Setupper)
	if !ok {
		return nil
	}
	if err := guard(func() error { return su.Setup(ctx) }); err != nil {
		return stepError(path, s, "setup", nil, err)
	}
	return nil
}

func teardown(ctx context.Context, path string, s Step) error {
	td, ok := s.(Teardowner)
	if !ok {
		return nil
	}
	if err := guard(func() error { return td.Teardown(context.WithoutCancel(ctx)) }); err != nil {
		return stepError(path, s, "teardown", nil, err)
	}
	return nil
}
