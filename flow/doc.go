// Package flow is the core of Penstock: the Batch that carries a mini-batch,
// the step interfaces, the Pipeline that composes named steps, and the two
// runners that execute a pipeline over a stream of batches.
package flow
