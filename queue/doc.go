// Package queue holds the bounded queues that link the stages of a
// streaming run, and the worker group that runs a stage's replicas.
//
// A Queue is a bounded FIFO safe for any number of producers and consumers.
// Put blocks while the queue is full (backpressure) and Get while it is
// empty; a blocked Put or Get also returns as soon as its context is done,
// with the context's cause, so that the first error of a run is what every
// blocked goroutine reports. (One that need not wait does not look at its
// context: a Put with room appends, a Get with an item returns it.) The
// owner of a queue — the code that started all of its producers — closes
// it once after the last producer has returned; Get then drains what is
// left and reports io.EOF. A queue never releases what it holds: after a
// cancelled run its owner calls Drain to hand each leftover item back for
// release.
//
// Cost per item: one channel send and one receive, plus two atomic
// additions for the metrics, on the producer's and the consumer's own cache
// lines. Put and Get try the channel without blocking first and read the
// clock only on the slow path, so an uncontended queue pays nothing for its
// blocked-time metrics; an Untimed queue never reads it, for callers that
// time their own waits. An Uncounted queue keeps no metrics and pays
// nothing but the channel's send and receive, for callers that count their
// items themselves. TryPut and TryGet never wait.
//
// A Group runs goroutines that share one fate: the first error cancels the
// group's context with that error as its cause, and Wait returns it, as
// golang.org/x/sync/errgroup does; unlike errgroup, a goroutine that the
// group does not wait for can fail it too (Cancel), and the context lives
// until Stop, so that such a goroutine is not cancelled by Wait.
package queue
