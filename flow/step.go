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
// and per replica, before the first batch.
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
// afterwards (map-reduce fitting). Replica returns an independent copy in
// the step's current state that Fit can change without touching the
// receiver; after the replicas have been fitted, each on its share of the
// stream, Merge folds their learned state into the receiver. A replicated
// stage whose fittable step is not a Merger refuses to fit.
type Merger interface {
	Step
	Replica() Step
	Merge(replicas []Step) error
}
