package queue

import (
	"context"
	"io"
	"sync/atomic"
	"time"
)

// Queue is a bounded FIFO between stages. See the package documentation for
// who closes it and how cancellation works. The zero value is not usable;
// call New.
type Queue[T any] struct {
	ch         chan T
	puts, gets atomic.Int64
	putWait    atomic.Int64 // nanoseconds producers spent blocked on a full queue
	getWait    atomic.Int64 // nanoseconds consumers spent blocked on an empty queue
	highWater  atomic.Int64
	closed     atomic.Bool
}

// New returns a queue that holds at most capacity items. A capacity below
// one makes a rendezvous queue: Put waits for a Get.
func New[T any](capacity int) *Queue[T] {
	if capacity < 0 {
		capacity = 0
	}
	return &Queue[T]{ch: make(chan T, capacity)}
}

// Put appends v, waiting while the queue is full. If ctx is done first it
// returns context.Cause(ctx) and v stays with the caller. Put on a closed
// queue panics: only the owner closes, after every producer has returned.
func (q *Queue[T]) Put(ctx context.Context, v T) error {
	select {
	case q.ch <- v:
		q.notePut()
		return nil
	default:
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	start := time.Now()
	select {
	case q.ch <- v:
		q.putWait.Add(int64(time.Since(start)))
		q.notePut()
		return nil
	case <-ctx.Done():
		q.putWait.Add(int64(time.Since(start)))
		return context.Cause(ctx)
	}
}

func (q *Queue[T]) notePut() {
	q.puts.Add(1)
	if n := int64(len(q.ch)); n > q.highWater.Load() {
		q.highWater.Store(n) // racy maximum: a metric, not an invariant
	}
}

// Get removes the oldest item, waiting while the queue is empty. It returns
// io.EOF once the queue is closed and drained, and context.Cause(ctx) if ctx
// is done first.
func (q *Queue[T]) Get(ctx context.Context) (T, error) {
	select {
	case v, ok := <-q.ch:
		return q.got(v, ok)
	default:
	}
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, context.Cause(ctx)
	}
	start := time.Now()
	select {
	case v, ok := <-q.ch:
		q.getWait.Add(int64(time.Since(start)))
		return q.got(v, ok)
	case <-ctx.Done():
		q.getWait.Add(int64(time.Since(start)))
		var zero T
		return zero, context.Cause(ctx)
	}
}

func (q *Queue[T]) got(v T, ok bool) (T, error) {
	if !ok {
		return v, io.EOF
	}
	q.gets.Add(1)
	return v, nil
}

// Close marks the end of the stream: consumers drain what is buffered and
// then see io.EOF. Only the owner calls Close, once, after every producer
// has returned; later calls do nothing.
func (q *Queue[T]) Close() {
	if q.closed.CompareAndSwap(false, true) {
		close(q.ch)
	}
}

// Drain removes every buffered item without waiting and passes each to
// release. The owner calls it after all producers and consumers have
// stopped, typically after a cancelled run.
func (q *Queue[T]) Drain(release func(T)) {
	for {
		select {
		case v, ok := <-q.ch:
			if !ok {
				return
			}
			release(v)
		default:
			return
		}
	}
}

// Len returns the number of buffered items.
func (q *Queue[T]) Len() int { return len(q.ch) }

// Cap returns the capacity given to New.
func (q *Queue[T]) Cap() int { return cap(q.ch) }

// Stats is a snapshot of a queue's metrics.
type Stats struct {
	Capacity  int
	Len       int           // items buffered now
	HighWater int           // most items seen buffered right after a Put
	Puts      int64         // items added
	Gets      int64         // items removed by Get
	PutWait   time.Duration // total time producers spent blocked on a full queue
	GetWait   time.Duration // total time consumers spent blocked on an empty queue
}

// Stats returns the queue's metrics. It is safe to call at any time.
func (q *Queue[T]) Stats() Stats {
	return Stats{
		Capacity:  cap(q.ch),
		Len:       len(q.ch),
		HighWater: int(q.highWater.Load()),
		Puts:      q.puts.Load(),
		Gets:      q.gets.Load(),
		PutWait:   time.Duration(q.putWait.Load()),
		GetWait:   time.Duration(q.getWait.Load()),
	}
}
