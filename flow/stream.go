package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"
)

// Stream is the output of a run: the batches that the pipeline's last
// step returns, read with Next like a Source. Reading to io.EOF (or to an
// error) ends the run; Close ends it early. Either way the caller calls
// Close, which waits until every goroutine of the run has returned and every
// batch in flight has been released, and tears the steps down. All reads
// the stream and closes it.
//
// Next must not be called from several goroutines at once. Close and Stats
// may be called at any time from any goroutine, also while Next runs: Next
// then returns what it was producing or an error wrapping ErrClosed, and
// every Next after Close returns an error wrapping ErrClosed, in both
// engines. The one caller that may not call Close is the run itself: a
// step, a Teardown or a hook (Runner.OnEpoch, Runner.OnCut) of the run
// would wait for itself there; a hook ends the run by returning an error,
// or its pass with ErrStop. A source whose Next ignores ctx (a read from a
// pipe that sends nothing) does not hold Close up: the run abandons that
// read, and the goroutine inside it returns once the read does, releasing
// what it read. Done tells when the run has let go of its source. A step
// that ignores ctx does hold Close up, until it returns: a step's batch
// and state are the run's, which Close must not leave behind.
//
// A Stream that is dropped without Close does not hold its goroutines and
// Arrow buffers forever: once it becomes unreachable, the garbage
// collector's cleanup (runtime.AddCleanup) closes it. That is a safety
// net, not a way to close: it runs at an unknown time, and its error is
// lost.
type Stream struct {
	next  func(ctx context.Context) (Batch, error)
	c     *closer
	stats func() Stats
	done  <-chan struct{}

	cleanup runtime.Cleanup
	closed  atomic.Bool
	end     error // sticky result of Next once the stream has ended
}

// closer runs a run's close once; Stream.Close and the stream's cleanup
// share it, and it holds no reference to the Stream.
type closer struct {
	once  sync.Once
	close func() error
	err   error
}

func (c *closer) do() error {
	c.once.Do(func() { c.err = c.close() })
	return c.err
}

func newStream(base *runBase, next func(context.Context) (Batch, error), closeRun func() error, stats func() Stats) *Stream {
	s := &Stream{next: next, c: &closer{close: closeRun}, stats: stats, done: base.srcDone}
	// The cleanup must not block the runtime's cleanup goroutine.
	s.cleanup = runtime.AddCleanup(s, func(c *closer) { go c.do() }, s.c)
	return s
}

var _ Source = (*Stream)(nil)

// Next returns the next output batch, which the caller owns and releases,
// or io.EOF once the run has finished, or the run's first error. The end
// is io.EOF itself: an error that wraps io.EOF (a step's, a hook's, the
// cause of a cancellation) is the run's error, and All, Each, Collect,
// Close and Runner.Fit return it like any other. An error
// that only comes from ctx (the caller's wait) leaves the run going. The
// sequential engine, which runs the source and the steps inside Next, with
// the run's context, looks at ctx when Next begins; the streaming engine
// stops waiting as soon as ctx is done.
func (s *Stream) Next(ctx context.Context) (Batch, error) {
	if s.closed.Load() {
		return Batch{}, fmt.Errorf("penstock: Next after Close: %w", ErrClosed)
	}
	if s.end != nil {
		return Batch{}, s.end
	}
	b, err := s.next(ctx)
	if err != nil && (ctx.Err() == nil || !errors.Is(err, context.Cause(ctx))) {
		s.end = err
	}
	return b, err
}

// Close stops the run if it is still going, waits for it, releases what is
// in flight and tears the steps down. It returns the run's error, if the
// run failed on its own (a failure the caller has already seen from Next
// included) or was cancelled through the ctx it was started with (an error
// wrapping the cause, in both engines), or a teardown error; closing a
// stream early is not an error. Only this stream's own Close is quiet: a
// step's error or a cause that wraps ErrClosed from another stream (a step
// that reads a run of its own) is the run's error. Close is idempotent;
// concurrent calls wait for the first.
func (s *Stream) Close() error {
	s.closed.Store(true)
	s.cleanup.Stop()
	return s.c.do()
}

// Done returns a channel that is closed once the run has ended and no
// longer touches its source, a read abandoned by Close included: from then
// on the caller may close the source, or give it to another run.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Stats returns the run's statistics so far; after the run, its totals.
func (s *Stream) Stats() Stats { return s.stats() }

// All returns an iterator over the stream's batches that closes the stream
// when the loop ends, however it ends (to the end, break, return or panic):
//
//	for b, err := range stream.All(ctx) {
//		if err != nil {
//			return err // the run's error, or the Close error
//		}
//		use(b)
//		b.Release()
//	}
//
// Each batch is the loop body's, to release. The loop yields an error at
// most once, as its last element; an early break is not an error. After a
// break (or a return) the loop can yield nothing more, so Close's own
// error, a failed teardown, is not seen there: Close, called again,
// returns it.
func (s *Stream) All(ctx context.Context) iter.Seq2[Batch, error] {
	return func(yield func(Batch, error) bool) {
		closed := false
		defer func() {
			if !closed {
				s.Close()
			}
		}()
		for {
			b, err := s.Next(ctx)
			if err != nil {
				closed = true
				cerr := s.Close()
				if !atEnd(err) {
					yield(Batch{}, err)
				} else if cerr != nil {
					yield(Batch{}, cerr)
				}
				return
			}
			if !yield(b, nil) {
				return
			}
		}
	}
}

// Each calls fn with every batch of s, in order, then closes s. fn borrows
// the batch: Each releases it when fn returns, so fn retains what it keeps.
// The first error from s, fn or Close is returned; an error from fn stops
// the run.
func (s *Stream) Each(ctx context.Context, fn func(Batch) error) error {
	for b, err := range s.All(ctx) {
		if err != nil {
			return err
		}
		err = fn(b)
		b.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// Collect reads s to the end, closes it and returns every batch, which the
// caller releases. On error it releases what it read and returns the error.
func Collect(ctx context.Context, s *Stream) ([]Batch, error) {
	var out []Batch
	err := s.Each(ctx, func(b Batch) error {
		b.Retain()
		out = append(out, b)
		return nil
	})
	if err != nil {
		for _, b := range out {
			b.Release()
		}
		return nil, err
	}
	return out, nil
}

// atEnd reports whether err is the end of a stream: io.EOF itself, as the
// queues, the engines and the run's source (see replay) return it. An error
// that wraps io.EOF — a step's, a hook's, the cause of a cancellation — is
// a failure like any other, not the end.
func atEnd(err error) bool { return err == io.EOF }
