package flow

import "context"

// Step is anything that transforms a batch. It is the one method that every
// step has; everything else is an optional capability that the runners find
// by type assertion (Fitter, FitTransformer, Setupper, Teardowner, Merger).
//
// Transform borrows in and returns a batch that the caller owns (see Batch).
// It may return a different number of rows and may change Y. Transform runs
// on the transform path only: train-only behaviour (augmentation, noise,
// dropout) belongs in Fit or FitTransform. The runners may call Transform
// from several goroutines at once (replicas share one step on the transform
// path), so Transform must not change the step.
type Step interface {
	Transform(ctx context.Context, in Batch) (Batch, error)
}

// Fitter is a step that learns. Fit is called again and again, once per
// mini-batch and epoch (partial fit), never concurrently on one value. It
// borrows in. A step without Fit is not fittable and is passed over when
// fitting.
type Fitter interface {
	Step
	Fit(ctx context.Context, in Batch) error
}

// FitTransformer is a step that can fit on a batch and transform it in one
// pass, where that is cheaper than Fit followed by Transform, or where the
// fit path transforms differently (train-only behaviour). The runners call
// it in preference to Fit then Transform.
type FitTransformer interface {
	Step
	FitTransform(ctx context.Context, in Batch) (Batch, error)
}

// Setupper is a step that acquires heavy resources (a network, a device)
// before a run. Setup is never called by a constructor, so that a step can be
// copied for trials and replicas first. The runners call Setup once per run
// on every active step value of the tree (and on each replica of a
// replicated stage that fits), before the first batch; composites never
// forward it to their children (see Composite).
//
// Resources are not learned state: Setup and Teardown acquire and release
// what one run needs, and what a step learned (weights, statistics)
// survives Teardown, so Fit in one run and Transform in the next use the
// same model.
type Setupper interface {
	Setup(ctx context.Context) error
}

// Teardowner is a step that releases what Setup acquired. The runners call
// Teardown after every run that called Setup, also after a failure or a
// cancellation; ctx is then no longer cancelled. A teardown error after a
// failed run does not hide the run's first error.
type Teardowner interface {
	Teardown(ctx context.Context) error
}

// Merger is a step whose replicas can be fitted in parallel and combined
// afterwards (map-reduce fitting).
//
// Replica returns a step with the receiver's configuration (its
// hyperparameters) and no learned state: what a replica learns is its share
// of the stream only. After the replicas have been fitted, each on its
// share, Merge folds their learned state into the receiver's current
// state. So a step that was already fitted and is fitted again with
// replicas ends as if it had been fitted again sequentially: its old state,
// counted once, plus every batch of the new fit, counted once. Replica and
// Merge are never called concurrently with Fit on the receiver.
//
// A replicated stage whose fittable steps are not all Mergers refuses to
// fit (see CanMerge); on the transform path replicas share one step.
type Merger interface {
	Step
	Replica() Step
	Merge(replicas []Step) error
}

// Copier is a step that can be copied: Copy returns an independent step in
// the receiver's current state, learned state included, that shares
// nothing that Fit, Setup or Teardown change. Copy is called on a step that
// is not set up and returns one that is not. Copy (the function) copies
// whole trees with it.
type Copier interface {
	Copy() Step
}

// Resetter is a step that can forget what it learned: after Reset, the next
// Fit starts from the initial state (the hyperparameters stay). Reset (the
// function) resets whole trees with it.
type Resetter interface {
	Reset()
}
