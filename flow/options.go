package flow

import (
	"fmt"

	"github.com/penstock-ml/penstock/barrier"
)

// DefaultQueueCapacity is the capacity of a stage's input queue when neither
// the stage nor its pipeline sets one.
const DefaultQueueCapacity = 8

// Option configures how a step runs as a stage of the streaming runner.
// Given to Named it applies to one stage; given to NewPipeline it sets the
// default for every stage of that pipeline, nested pipelines included,
// unless they set their own: QueueCapacity only, as Replicas, Barrier and
// FitEpochs belong to one stage (NewPipeline refuses them as defaults).
// The sequential runner honours FitEpochs alone.
type Option func(*stageConfig)

// stageConfig is a stage's configuration; the zero values mean "not set".
type stageConfig struct {
	replicas    int
	capacity    int
	capacitySet bool
	barrier     barrier.Kind
	barrierSet  bool
	fitEpochs   int // fit on epochs < fitEpochs; meaningful where fitSet
	fitSet      bool
	err         error
}

// Replicas sets the number of goroutines that run the stage's step, each
// taking the next batch from the stage's input queue. 0 means 1, the
// default. On the transform path the replicas share the step; on the fit
// path each fits its own Merger.Replica and the results are merged (at the
// end of the pass, and at every consistent cut, where each then gets a
// fresh replica; see Runner.OnEpoch). So in a fit-transform a replica
// transforms with what it has learned itself since the pass began or the
// last cut, not with the merged state: the output of a replicated stage
// that learns differs from the sequential engine's. Past the stage's
// FitEpochs, the replicas share the step again, into which what they
// learned in the epochs that it fitted has been merged.
//
// Only a stage can be replicated: a node of a pipeline (nested pipelines
// are inlined, so their nodes are stages too) or of a feature union's
// branch. A metastep (any Composite but a Pipeline or a Union) and a
// replicated sub-pipeline run their children themselves, batch by batch
// inside their stage, so Replicas above 1 on a node anywhere below one
// cannot be honoured by either engine: NewPipeline, NewUnion and
// WithChildren refuse it with an error that names the node's path, and so
// does the start of a run where the tree has changed since. Replicas on
// the metastep's own node replicates it, children and all.
func Replicas(n int) Option {
	return func(c *stageConfig) {
		if n < 0 {
			c.fail(fmt.Errorf("Replicas(%d): want 0 or more", n))
			return
		}
		c.replicas = n
	}
}

// QueueCapacity sets the capacity of the bounded queue in front of the stage,
// in batches. 0 makes a rendezvous (the producer waits for the stage). The
// default is DefaultQueueCapacity.
//
// Given to Named it sets that node's queue only. On a sub-pipeline's node
// that is the queue in front of the sub-pipeline's first step, whatever
// that step sets; the sub-pipeline's other steps keep their own capacity,
// else the sub-pipeline's default, else that of the pipelines around it,
// as if the node set none. (On a replicated sub-pipeline, one stage, it
// is that stage's queue.) Given to NewPipeline it is the default of every
// stage of the pipeline, nested pipelines included, unless they set their
// own (see Option).
func QueueCapacity(n int) Option {
	return func(c *stageConfig) {
		if n < 0 {
			c.fail(fmt.Errorf("QueueCapacity(%d): want 0 or more", n))
			return
		}
		c.capacity, c.capacitySet = n, true
	}
}

// Barrier sets the barrier after the stage: barrier.InOrder (the default),
// barrier.OutOfOrder or barrier.Joiner. On a sub-pipeline's node it sets
// the barrier after the sub-pipeline's last step, unless that step sets
// its own; a Joiner there holds whatever the last step sets.
func Barrier(k barrier.Kind) Option {
	return func(c *stageConfig) {
		if !k.Valid() {
			c.fail(fmt.Errorf("Barrier(%v): unknown barrier", k))
			return
		}
		c.barrier, c.barrierSet = k, true
	}
}

// FitEpochs limits fitting the stage's step to the first n epochs of a fit
// (batches whose Epoch is below n): on later batches the step transforms
// only, as if it were not fittable. FitEpochs(1) fits a standardizer on the
// first epoch of a Repeat stream only; FitEpochs(0) freezes the step. The
// default is no limit. On a composite's node (a sub-pipeline, a feature
// union, a metastep) it limits the fit of every step below it: a step
// fits on the epochs that its own FitEpochs and every one above it allow.
// Both engines honour it, and so does a Pipeline used directly as a step.
//
// A fit pass whose fitted steps are all limited ends once the source
// reaches an epoch that none of them fits: with a Joiner after a
// FitEpochs(1) standardizer, the first pass reads one epoch (and the first
// batch of the next), not all of them. A source that must be spilled for
// later passes is still read to its end, without running the steps.
func FitEpochs(n int) Option {
	return func(c *stageConfig) {
		if n < 0 {
			c.fail(fmt.Errorf("FitEpochs(%d): want 0 or more", n))
			return
		}
		c.fitEpochs, c.fitSet = n, true
	}
}

// fitLimit returns the stage's FitEpochs, or -1 for no limit.
func (c stageConfig) fitLimit() int {
	if c.fitSet {
		return c.fitEpochs
	}
	return -1
}

func (c *stageConfig) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

func configOf(opts []Option) stageConfig {
	var c stageConfig
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// inherit fills what c leaves unset from parent (replicas, barrier and
// FitEpochs are never inherited: they belong to one stage).
func (c stageConfig) inherit(parent stageConfig) stageConfig {
	if !c.capacitySet {
		c.capacity, c.capacitySet = parent.capacity, parent.capacitySet
	}
	return c
}

// queueCapacity returns the resolved capacity of the stage's input queue.
func (c stageConfig) queueCapacity() int {
	if c.capacitySet {
		return c.capacity
	}
	return DefaultQueueCapacity
}

func (c stageConfig) replicaCount() int {
	if c.replicas < 1 {
		return 1
	}
	return c.replicas
}
