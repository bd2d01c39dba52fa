package flow

import (
	"context"
	"errors"
	"io"
	"sync"
)

// Stream is the output of a run: the batches that the pipeline's last
// step returns, read with Next like a Source. Reading to io.EOF (or to an
// error) ends the run; Close ends it early. Either way the caller calls
// Close, which waits until every goroutine of the run has returned and every
// batch in flight has been released, and tears the steps down.
//
// Next must not be called from several goroutines at once; Stats and Close
// may be called at any time from any goroutine.
type Stream struct {
	next  func(ctx context.Context) (Batch, error)
	close func() error
	stats func() Stats

	once sync.Once // Close runs close once; concurrent callers wait for it
	cerr error
	end  error // sticky result of Next once the stream has ended
}

var _ Source = (*Stream)(nil)

// Next returns the next output batch, which the caller owns and releases,
// or io.EOF once the run has finished, or the run's first error. An error
// that only comes from ctx (the caller's wait) leaves the run going.
func (s *Stream) Next(ctx context.Context) (Batch, error) {
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
// included), or a teardown error; closing a stream early is not an error.
// Close is idempotent.
func (s *Stream) Close() error {
	s.once.Do(func() { s.cerr = s.close() })
	return s.cerr
}

// Stats returns the run's statistics so far; after the run, its totals.
func (s *Stream) Stats() Stats { return s.stats() }

// Each calls fn with every batch of s, in order, then closes s. fn borrows
// the batch: Each releases it when fn returns, so fn retains what it keeps.
// The first error from s, fn or Close is returned; an error from fn stops
// the run.
func (s *Stream) Each(ctx context.Context, fn func(Batch) error) error {
	for {
		b, err := s.Next(ctx)
		if err != nil {
			cerr := s.Close()
			if errors.Is(err, io.EOF) {
				return cerr
			}
			return err
		}
		err = fn(b)
		b.Release()
		if err != nil {
			s.Close()
			return err
		}
	}
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

// quiet reports whether err is only the sign of a run that was closed
// early or that ended normally.
func quiet(err error) bool {
	return err == nil || errors.Is(err, ErrClosed) || errors.Is(err, io.EOF)
}
