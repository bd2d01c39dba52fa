package flow_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/penstock-ml/penstock/flow"
)

// readsClosed is a step that reads a run of its own (a lookup served by
// another pipeline) whose stream has been closed: from the batch whose Seq
// is at, it returns the inner stream's error, which wraps ErrClosed.
type readsClosed struct {
	inner *flow.Stream
	at    int64
}

func (s readsClosed) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if in.Seq >= s.at {
		_, err := s.inner.Next(ctx)
		return flow.Batch{}, fmt.Errorf("lookup: %w", err)
	}
	in.Retain()
	return in, nil
}

// A run that fails on its own with an error that wraps another stream's
// ErrClosed, or that the caller cancels with such a cause, has failed: it
// was not closed early. Close returns that error (a teardown error does
// not replace it), as Fit and Each do, in both engines; only this
// stream's own Close makes ErrClosed quiet.
func TestAnotherStreamsErrClosedFailsTheRun(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	closedStream := func(t *testing.T, r flow.Runner) *flow.Stream {
		t.Helper()
		s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("p", passThrough{})}), &gen{mem: mem, n: 3, rows: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	errTeardown := errors.New("teardown failed too")
	for _, r := range runners(mem) {
		t.Run("step/"+r.Engine.String(), func(t *testing.T) {
			for _, td := range []error{nil, errTeardown} {
				p := pipeline(t, []flow.Node{flow.Named("lookup", readsClosed{closedStream(t, r), 2}), flow.Named("td", &badTeardown{err: td}), flow.Named("m", &mean{mem: mem})})
				s, err := r.Transform(ctx, p, &gen{mem: mem, n: 6, rows: 1})
				if err != nil {
					t.Fatal(err)
				}
				var nerr error
				for nerr == nil {
					var b flow.Batch
					b, nerr = s.Next(ctx)
					b.Release()
				}
				var se *flow.StepError
				if !errors.As(nerr, &se) || se.Path.String() != "lookup" {
					t.Errorf("teardown %v: Next: got %v; want the StepError of lookup", td, nerr)
				}
				cerr := s.Close()
				if !errors.As(cerr, &se) || se.Path.String() != "lookup" || !errors.Is(cerr, flow.ErrClosed) {
					t.Errorf("teardown %v: Close: got %v; want the run's error, the StepError of lookup", td, cerr)
				}
				if _, err := r.Fit(ctx, p, &gen{mem: mem, n: 6, rows: 1}); !errors.As(err, &se) || se.Path.String() != "lookup" {
					t.Errorf("teardown %v: Fit: got %v; want the StepError of lookup", td, err)
				}
			}
		})
		t.Run("cause/"+r.Engine.String(), func(t *testing.T) {
			_, upstream := closedStream(t, r).Next(ctx)
			cause := fmt.Errorf("upstream feed ended: %w", upstream)
			runCtx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			s, err := r.Transform(runCtx, pipeline(t, []flow.Node{flow.Named("p", passThrough{})}), &gen{mem: mem, n: -1, rows: 1})
			if err != nil {
				t.Fatal(err)
			}
			cancel(cause) // Close finds the run cancelled, read or not
			if err := s.Close(); !errors.Is(err, cause) {
				t.Errorf("Close of a run cancelled with a cause that wraps ErrClosed: got %v; want the cause", err)
			}
		})
	}
}
