// Package flow is the core of Penstock: the Batch that carries a
// mini-batch, the step interfaces, the composites that contain steps
// (Pipeline, Union, and those of any package), the one walk over a tree of
// steps, and the Runner that executes a pipeline over a stream of batches.
//
// # Steps
//
// A Step is anything with Transform. Everything else is an optional
// capability that the runners find by type assertion, decided in one place
// (a method is never there just to fail): Fitter (partial fit, called once
// per batch and epoch), FitTransformer (fit and transform in one pass, and
// the place for train-only behaviour), Setupper and Teardowner (resources
// for one run), Merger (replicas fitted in parallel, then merged), Copier
// (an independent copy, learned state included) and Resetter (forget what
// was learned). A step with neither Fit nor FitTransform learns nothing
// and is passed over when fitting.
//
// # State and resources
//
// Learned state and resources are separate. Setup acquires, and Teardown
// releases, what one run needs (a device, a connection); what a step has
// learned (weights, statistics) survives Teardown, so Fit in one run and
// Transform in the next use the same model. A second Fit continues from the
// current state (partial fit); starting over is explicit: Reset the tree,
// or fit a fresh Copy.
//
// # Step trees
//
// A Composite is a step that contains steps, its children, as named nodes:
// a Pipeline (steps one after the other), a Union (branches side by side,
// joined row by row), or a metastep of any package (a wrapper that runs its
// child only when fitting, a choice between branches). A Chooser reports
// which of its children are active; the others are neither set up, nor
// fitted, nor run.
//
// Walk visits a tree of steps, depth first, with the Path of every node.
// It is the one recursion over trees: setup and teardown, replicas and
// merging, Copy, Reset, the checks of NewPipeline and the runners' claims
// are all walks, so a composite from any package takes part in all of them
// by implementing Composite. A Path prints as "outer/inner" in errors and
// statistics (String) and as "outer__inner" in hyperparameter keys (Key).
//
// The runner, not the composite, reaches the children: a composite runs its
// children's Transform, Fit and FitTransform itself, but never forwards
// Setup, Teardown, Replica or Merge. At the start of a run the runner sets
// up every active step value of the tree exactly once (a value held at
// several places included), parents before children, and tears them down
// in reverse at its end, also after a failure. Setup and Teardown (the
// functions) do the same for a pipeline used directly as a step.
//
// # Pipelines
//
// NewPipeline builds a Pipeline from named nodes and checks it: every
// mistake in the graph is an error before any goroutine starts. Options on
// a node (Replicas, QueueCapacity, Barrier, FitEpochs) say how the stage
// runs; options on NewPipeline are defaults.
//
// # Running
//
// A Runner runs a pipeline over a Source, sequentially (one goroutine, a
// plain loop) or streaming (every step a stage of goroutines linked by
// bounded queues). Both give identical results for deterministic steps.
// Fit fits; Transform and FitTransform return a Stream, itself a Source,
// read with Next or with a range loop over All. In both engines Transform,
// FitTransform and Fit set every step up before they return (a setup error
// is theirs); the streaming engine then starts processing at once, the
// sequential one at each Next.
//
// In fit mode a Joiner barrier splits the run into passes over the source:
// the steps before a Joiner are fitted on the whole stream before the steps
// after it see anything. A replayable source (see Rewinder) is rewound for
// each pass; any other is spilled to disk (Arrow IPC) during the first pass
// and read back, so memory stays bounded. FitEpochs limits a step's fit to
// the first epochs of a Repeat stream, and a pass whose steps are all so
// limited ends after their last epoch. Runner.OnEpoch is called at the end
// of every epoch and pass, at a consistent cut, and can stop a pass early.
// An endless fit (a source that never ends, such as a daemon's inputs)
// checkpoints through Runner.OnCut: the source's Next returns ErrCut where
// it wants a cut, and the hook runs once every batch that the source has
// returned before is fitted by every stage and nothing after has started.
//
// A step value belongs to one run at a time: a run that would share a step
// that another run may change (fits it, sets it up, tears it down) is
// refused with ErrInUse. Run a Copy instead; transform runs of steps that
// only read their state may share them.
//
// # Ownership
//
// Batches are reference counted (see Batch). A Source hands over its
// batches; a step borrows its input and returns a batch that the runner
// owns; the Stream hands its batches to the caller. Steps allocate with
// Allocator(ctx), the Runner's allocator, so a checked allocator given to
// the runner sees every byte. On every path — success, error, panic,
// cancellation, a caller who stops reading and calls Close — every batch in
// flight is released and every goroutine has returned by the time Fit,
// Collect or Stream.Close returns; the one exception is a read that ignores
// ctx, abandoned by Close (see Stream.Done).
//
// # Errors and cancellation
//
// Every blocking operation listens to the run's context. The first error —
// or a panic in a step, a hook or the source, turned into a *PanicError
// with its stack — cancels the whole run with that error as the cause and
// is returned, a step's wrapped in a *StepError that names the step's
// path, its type, the operation and the batch's sequence number. When the
// caller cancels with a cause, the cause is kept however a step, the source
// or a hook reports the cancellation — with ctx.Err(), with
// context.Cause(ctx), with an error that wraps either, or not at all
// (errors.Is holds); an error of their own that wraps neither is theirs.
//
// # Cost
//
// The sequential engine adds a function call, one clock read and a few
// atomic counter updates per batch and step. The streaming engine adds a
// queue hand-off per batch and stage (a few hundred nanoseconds; see
// bench/), plus a reorder step where replicas or an out-of-order barrier
// upstream can disorder batches. Memory is bounded by the queue capacities
// times the batch size, whatever the length of the stream.
package flow
