// Package flow is the core of Penstock: the Batch that carries a
// mini-batch, the step interfaces, the Pipeline that composes named steps,
// and the Runner that executes a pipeline over a stream of batches.
//
// # Steps
//
// A Step is anything with Transform. Everything else is an optional
// capability that the runners find by type assertion: Fitter (partial fit,
// called once per batch and epoch), FitTransformer (fit and transform in
// one pass, and the place for train-only behaviour), Setupper and
// Teardowner (heavy resources, acquired per run, released also after a
// failure), Merger (replicas fitted in parallel, then merged). A step with
// neither Fit nor FitTransform learns nothing and is passed over when
// fitting.
//
// # Pipelines
//
// NewPipeline builds a Pipeline from named nodes and checks it: every
// mistake in the graph is an error before any goroutine starts. Pipelines
// nest (a Pipeline is a Step) and NewUnion makes a feature union of
// branches. Options on a node (Replicas, QueueCapacity, Barrier) say how
// the streaming engine runs it; options on NewPipeline are defaults.
//
// # Running
//
// A Runner runs a pipeline over a Source, sequentially (one goroutine, a
// plain loop) or streaming (every step a stage of goroutines linked by
// bounded queues). Both give identical results for deterministic steps.
// Fit fits; Transform and FitTransform return a Stream, itself a Source.
//
// In fit mode a Joiner barrier splits the run into passes over the source:
// the steps before a Joiner are fitted on the whole stream before the steps
// after it see anything. A source that implements Rewinder is rewound for
// each pass; any other is spilled to disk (Arrow IPC) during the first pass
// and read back, so memory stays bounded.
//
// # Ownership
//
// Batches are reference counted (see Batch). A Source hands over its
// batches; a step borrows its input and returns a batch that the runner
// owns; the Stream hands its batches to the caller. On every path —
// success, error, panic, cancellation, a caller who stops reading and
// calls Close — every batch in flight is released and every goroutine has
// returned by the time Fit, Collect or Stream.Close returns.
//
// # Errors and cancellation
//
// Every blocking operation listens to the run's context. The first error —
// or a panic in a step, turned into a *PanicError with its stack — cancels
// the whole run with that error as the cause and is returned wrapped in a
// *StepError that names the step's path, its type, the operation and the
// batch's sequence number.
//
// # Cost
//
// The sequential engine adds a function call and three clock reads per
// batch and step. The streaming engine adds a queue hand-off per batch and
// stage (a few hundred nanoseconds; see bench/), plus a reorder step where
// replicas or an out-of-order barrier upstream can disorder batches. Memory
// is bounded by the queue capacities times the batch size, whatever the
// length of the stream.
package flow
