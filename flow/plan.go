package flow

import (
	"fmt"

	"github.com/penstock-ml/penstock/barrier"
)

// plan is a pipeline flattened into the stages that the runners execute:
// nested pipelines are inlined (unless replicated, then they are one stage)
// and each feature union is one stage with a sub-plan per branch.
type plan struct {
	stages []*stage
}

type stage struct {
	path     Path
	step     Step
	replicas int
	capacity int // of the stage's input queue
	barrier  barrier.Kind
	setB     bool // barrier set explicitly
	fitLimit int  // FitEpochs, its own or a composite's above it (the lower), or -1
	fit      bool // see fits
	// limits are the FitEpochs above 0 of a replicated stage and of the
	// steps below it that fitting it reaches: where its replicas change.
	limits []int

	branches []*plan // feature union: one plan per branch
	names    []Node  // feature union: the branch nodes, for naming outputs

	c counters
}

func (s *stage) isUnion() bool { return s.branches != nil }

// fits reports whether a fit fits the stage: its step is fittable and not
// frozen with FitEpochs(0). It is worked out once, with the plan: the
// walk runs the tree's composites' methods, which a run's goroutines do
// not call again.
func (s *stage) fits() bool { return s.fit }

// opFor returns what the stage does with a batch of the given epoch when
// the pass asks o of it: past its FitEpochs it only transforms, and a
// fit-only stage skips the batch (opSkip).
func (s *stage) opFor(o op, epoch int) op {
	if o == opTransform || s.fitLimit < 0 || epoch < s.fitLimit {
		return o
	}
	if o == opFit {
		return opSkip
	}
	return opTransform
}

// buildPlan flattens p. It is also NewPipeline's last check, so every error
// that only shows once nesting is resolved is found before any run.
//
// The plan knows two composites: a pipeline is inlined (its steps become
// stages of the outer chain) unless it is replicated, and a union's
// branches become chains of their own. Any other composite is one stage
// that runs its children itself.
func buildPlan(p *Pipeline) (*plan, error) {
	// The walk finds cycles, and checks every composite's children, before
	// the plan recurses into pipelines and unions.
	if err := Walk(p, func(v Visit) error {
		if err := checkEmpty(v.Path, v.Node.Step); err != nil {
			return fmt.Errorf("penstock: %w", err)
		}
		if v.Depth == 0 {
			return nil
		}
		if isNil(v.Node.Step) {
			return fmt.Errorf("penstock: step %q is nil", v.Path)
		}
		if c := configOf(v.Node.opts); c.err != nil {
			return fmt.Errorf("penstock: step %q: %w", v.Path, c.err)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	pl := &plan{}
	if err := pl.addPipeline(p, nil, stageConfig{}, -1); err != nil {
		return nil, err
	}
	return pl, nil
}

// addPipeline adds p's stages; outer is the FitEpochs of the node that
// holds p (or of a composite above it), -1 for none.
func (pl *plan) addPipeline(p *Pipeline, prefix Path, parent stageConfig, outer int) error {
	defaults := p.defaults.inherit(parent)
	for _, n := range p.nodes {
		if err := pl.addNode(n, prefix, defaults, outer); err != nil {
			return err
		}
	}
	return nil
}

// addNode adds the stage or stages of n. outer is the FitEpochs of a
// composite above n whose children became stages of their own (an inlined
// pipeline, a feature union), -1 for none: a stage fits on the epochs that
// both its own FitEpochs and outer allow, as a composite used directly as
// a step does (Node.Fits).
func (pl *plan) addNode(n Node, prefix Path, defaults stageConfig, outer int) error {
	cfg := configOf(n.opts).inherit(defaults)
	path := prefix.Child(n.Name)
	st := &stage{
		path:     path,
		step:     n.Step,
		replicas: cfg.replicaCount(),
		capacity: cfg.queueCapacity(),
		barrier:  cfg.barrier,
		setB:     cfg.barrierSet,
		fitLimit: lowerLimit(cfg.fitLimit(), outer),
	}
	switch s := n.Step.(type) {
	case *Pipeline:
		if cfg.replicas > 1 {
			if hasJoiner(s) {
				return fmt.Errorf("penstock: step %q: a replicated sub-pipeline runs batch by batch and cannot hold a Joiner", path)
			}
			if err := replicasBelow(path, s); err != nil {
				return err
			}
			break // one stage that runs the whole sub-pipeline
		}
		// The node's QueueCapacity is the queue in front of the
		// sub-pipeline, its first stage's (set below); its other stages
		// inherit the defaults of the pipelines around them, not the node's.
		first := len(pl.stages)
		if err := pl.addPipeline(s, path, defaults, st.fitLimit); err != nil {
			return err
		}
		// The node's barrier is its last stage's, unless that stage sets
		// its own; a Joiner on the node always holds (what follows the
		// sub-pipeline is fitted on what it has fitted on the whole stream).
		if last := pl.stages[len(pl.stages)-1]; cfg.barrierSet && (!last.setB || cfg.barrier == barrier.Joiner) {
			last.barrier, last.setB = cfg.barrier, true
		}
		if first < len(pl.stages) && cfg.capacitySet {
			pl.stages[first].capacity = cfg.capacity
		}
		return nil
	case *Union:
		if cfg.replicas > 1 {
			return fmt.Errorf("penstock: step %q: Replicas on a feature union: set them on its branches", path)
		}
		st.names = s.branches
		for _, b := range s.branches {
			sub := &plan{}
			if err := sub.addNode(b, path, defaults, st.fitLimit); err != nil {
				return err
			}
			for _, bs := range sub.stages {
				if bs.barrier == barrier.Joiner {
					return fmt.Errorf("penstock: step %q: a Joiner inside a feature union branch; put it after the union", bs.path)
				}
			}
			st.branches = append(st.branches, sub)
		}
	case Composite:
		if hasJoiner(s) {
			return fmt.Errorf("penstock: step %q: %T runs its children batch by batch and cannot hold a Joiner; put the Joiner after it", path, s)
		}
		if err := replicasBelow(path, s); err != nil {
			return err
		}
	}
	st.fit = st.fitLimit != 0 && fittable(st.step)
	if st.replicas > 1 && st.fit {
		st.limits = fitLimits(st)
	}
	pl.stages = append(pl.stages, st)
	return nil
}

// replicasBelow refuses Replicas above 1 on any node below s, the step of
// the stage at path that runs its children itself (a metastep, a
// replicated sub-pipeline): it calls their Transform, Fit and FitTransform
// in its own goroutines, one batch at a time, so no runner can give a node
// below it goroutines of its own. Inactive children are refused too: a
// choice may change before the next run.
func replicasBelow(path Path, s Step) error {
	return Walk(s, func(v Visit) error {
		if n := configOf(v.Node.opts).replicas; v.Depth > 0 && n > 1 {
			return fmt.Errorf("penstock: step %q: Replicas(%d) below %q, a %T, which runs its children itself, batch by batch in its stage, so they cannot have replicas of their own; Replicas on %q replicates the whole stage", join(path, v.Path), n, path, s, path)
		}
		return nil
	})
}

// fitLimits returns the FitEpochs above 0 of st and of the steps below it
// that fitting it reaches.
func fitLimits(st *stage) []int {
	var out []int
	if st.fitLimit > 0 {
		out = append(out, st.fitLimit)
	}
	_ = Walk(st.step, func(v Visit) error {
		if v.Depth > 0 && !fitReaches(v) {
			return SkipChildren
		}
		if l := configOf(v.Node.opts).fitLimit(); v.Depth > 0 && l > 0 {
			out = append(out, l)
		}
		return nil
	})
	return out
}

// lowerLimit returns the lower of two FitEpochs limits, -1 meaning none.
func lowerLimit(a, b int) int {
	if a < 0 || (b >= 0 && b < a) {
		return b
	}
	return a
}

// each calls fn for every stage of the plan, branches included, depth first.
func (pl *plan) each(fn func(*stage)) {
	for _, s := range pl.stages {
		fn(s)
		for _, b := range s.branches {
			b.each(fn)
		}
	}
}

// pass is one run over the source: the stages to run and what each does.
type pass struct {
	stages []*stage
	ops    []op
	last   bool // the pass whose output the caller sees (transform paths)
	// stopAt is the first epoch that no stage of the pass fits, where
	// every stage that the pass fits has a FitEpochs limit; else -1.
	stopAt int
}

// passes returns the passes that mode takes. A transform is one pass. A fit
// takes one pass per segment (the stages up to and including a Joiner, and
// the stages after the last Joiner) that has something to fit: the segments
// before it transform, its stages fit, and the stages after its last
// fittable step do not run. A fit-transform fits like a fit up to the last
// Joiner and ends with one pass that fit-transforms the last segment and
// returns its output.
func (pl *plan) passes(m mode) []pass {
	n := len(pl.stages)
	if m == modeTransform {
		return []pass{{stages: pl.stages, ops: make([]op, n), last: true, stopAt: -1}}
	}
	var bounds []int // exclusive end of each segment
	for i, s := range pl.stages {
		if s.barrier == barrier.Joiner && i < n-1 {
			bounds = append(bounds, i+1)
		}
	}
	bounds = append(bounds, n)
	var out []pass
	start := 0
	for si, end := range bounds {
		finalSeg := si == len(bounds)-1
		if m == modeFitTransform && finalSeg {
			ops := make([]op, n)
			for i := start; i < n; i++ {
				if pl.stages[i].fits() {
					ops[i] = opFitTransform
				}
			}
			out = append(out, pass{stages: pl.stages, ops: ops, last: true, stopAt: -1})
			break
		}
		lastFit := -1
		for i := start; i < end; i++ {
			if pl.stages[i].fits() {
				lastFit = i
			}
		}
		if lastFit >= 0 {
			ops := make([]op, lastFit+1)
			for i := start; i < lastFit; i++ {
				if pl.stages[i].fits() {
					ops[i] = opFitTransform
				}
			}
			ops[lastFit] = opFit
			if pl.stages[lastFit].isUnion() {
				ops[lastFit] = opFitTransform // a union's output is discarded by the runner
			}
			ps := pass{stages: pl.stages[:lastFit+1], ops: ops}
			ps.stopAt = stopEpoch(ps)
			out = append(out, ps)
		}
		start = end
	}
	return out
}

// stopEpoch returns the pass's stopAt: the largest FitEpochs of the stages
// that it fits, branches included, or -1 if one of them has no limit.
func stopEpoch(ps pass) int {
	stop := 0
	limited := func(s *stage) bool {
		if !s.fits() || s.isUnion() {
			return true
		}
		if s.fitLimit < 0 {
			return false
		}
		stop = max(stop, s.fitLimit)
		return true
	}
	for i, s := range ps.stages {
		if ps.ops[i] == opTransform {
			continue
		}
		ok := limited(s)
		for _, b := range s.branches {
			b.each(func(bs *stage) { ok = limited(bs) && ok })
		}
		if !ok {
			return -1
		}
	}
	return stop
}
