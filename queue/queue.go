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
	ch      chan T
	untimed bool
	counted bool
	closed  atomic.Bool
	// The producers' and the consumers' counters on cache lines of their
	// own, so that a producer and a consumer on two cores do not contend.
	_         [64]byte
	puts      atomic.Int64
	putWait   atomic.Int64 // nanoseconds producers spent blocked on a full queue
	highWater atomic.Int64
	_         [64]byte
	gets      atomic.Int64
	getWait   atomic.Int64 // nanoseconds consumers spent blocked on an empty queue
	_         [64]byte
}

// Option configures a Queue.
type Option func(*config)

type config struct{ untimed, uncounted bool }

// Untimed makes a queue that does not time the waits of Put and Get (its
// Stats report PutWait and GetWait 0): for callers that time their own
// waits, and would otherwise read the clock twice per blocked call more.
func Untimed() Option { return func(c *config) { c.untimed = true } }

// Uncounted makes a queue that keeps no metrics at all: its Stats report
// Capacity and Len, and 0 for everything else. It implies Untimed. It is
// for callers that count their items themselves, and would otherwise pay
// two atomic additions and a high-water check per item for figures that
// nobody reads.
func Uncounted() Option { return func(c *config) { c.untimed, c.uncounted = true, true } }

// New returns a queue that holds at most capacity items. A capacity below
// one makes a rendezvous queue: Put waits for a Get. By default Put and Get
// time their waits (see Stats and Untimed).
func New[T any](capacity int, opts ...Option) *Queue[T] {
	if capacity < 0 {
		capacity = 0
	}
	var c config
	for _, o := range opts {
		o(&c)
	}
	return &Queue[T]{ch: make(chan T, capacity), untimed: c.untimed, counted: !c.uncounted}
}

// TryPut appends v if the queue has room, without waiting, and reports
// whether it did. Like Put, it panics on a closed queue.
func (q *Queue[T]) TryPut(v T) bool {
	select {
	case q.ch <- v:
		q.notePut()
		return true
	default:
		return false
	}
}

// TryGet removes the oldest item if there is one, without waiting: ok
// reports whether it did. Once the queue is closed and drained it returns
// io.EOF.
func (q *Queue[T]) TryGet() (v T, ok bool, err error) {
	select {
	case v, open := <-q.ch:
		v, err = q.got(v, open)
		return v, err == nil, err
	default:
		return v, false, nil
	}
}

// Put appends v, waiting while the queue is full. If ctx is done before
// there is room it returns context.Cause(ctx) and v stays with the caller;
// a Put that finds room appends v without looking at ctx. Put on a closed
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
	var start time.Time
	if !q.untimed {
		start = time.Now()
	}
	select {
	case q.ch <- v:
		q.notePutWait(start)
		q.notePut()
		return nil
	case <-ctx.Done():
		q.notePutWait(start)
		return context.Cause(ctx)
	}
}

func (q *Queue[T]) notePutWait(start time.Time) {
	if !q.untimed {
		q.putWait.Add(int64(time.Since(start)))
	}
}

func (q *Queue[T]) noteGetWait(start time.Time) {
	if !q.untimed {
		q.getWait.Add(int64(time.Since(start)))
	}
}

func (q *Queue[T]) notePut() {
	if !q.counted {
		return
	}
	q.puts.Add(1)
	// The maximum by compare-and-swap: a plain store could replace a
	// larger length that another producer stored since the load. Only a
	// new maximum pays for it.
	n := int64(len(q.ch))
	for hw := q.highWater.Load(); n > hw; hw = q.highWater.Load() {
		if q.highWater.CompareAndSwap(hw, n) {
			break
		}
	}
}

// Get removes the oldest item, waiting while the queue is empty. It returns
// io.EOF once the queue is closed and drained, and context.Cause(ctx) if ctx
// is done before an item comes; an item already there is returned without
// looking at ctx.
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
	var start time.Time
	if !q.untimed {
		start = time.Now()
	}
	select {
	case v, ok := <-q.ch:
		q.noteGetWait(start)
		return q.got(v, ok)
	case <-ctx.Done():
		q.noteGetWait(start)
		var zero T
		return zero, context.Cause(ctx)
	}
}

func (q *Queue[T]) got(v T, ok bool) (T, error) {
	if !ok {
		return v, io.EOF
	}
	if q.counted {
		q.gets.Add(1)
	}
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

// Cap returns the capacity given to New, 0 for a rendezvous queue (also
// one made with a negative capacity).
func (q *Queue[T]) Cap() int { return cap(q.ch) }

// Stats is a snapshot of a queue's metrics.
type Stats struct {
	Capacity  int
	Len       int           // items buffered now
	HighWater int           // most items seen buffered right after a Put
	Puts      int64         // items added (Put and TryPut)
	Gets      int64         // items removed by Get and TryGet, not by Drain
	PutWait   time.Duration // total time producers spent blocked on a full queue
	GetWait   time.Duration // total time consumers spent blocked on an empty queue
}

// Stats returns the queue's metrics (only Capacity and Len for an
// Uncounted queue). It is safe to call at any time; while no Put or Get
// runs, Puts − Gets is Len, until Drain removes items without counting
// them.
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
