package flow_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
)

// eofAt passes batches through and fails on the batch whose Seq is at
// with an error that wraps io.EOF, as a step that reads a file of its own
// (a vocabulary, a lookup table) and finds it cut short may.
type eofAt struct{ at int64 }

var errShortFile = fmt.Errorf("vocabulary file cut short: %w", io.EOF)

func (f eofAt) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if in.Seq == f.at {
		return flow.Batch{}, errShortFile
	}
	return passThrough{}.Transform(ctx, in)
}

// An error that wraps io.EOF — a step's, a hook's, or the cause that the
// caller cancels with — is the run's error like any other: only the end of
// the source ends a run quietly. Fit, Each, Collect and Close return it,
// in both engines and every kind of run, and the steps after it see
// nothing more.
func TestErrorWrappingEOFIsNotTheEnd(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	build := func() *flow.Pipeline {
		return pipeline(t, []flow.Node{
			flow.Named("bad", eofAt{at: 2}),
			flow.Named("m", &mean{mem: mem}, flow.Barrier(barrier.Joiner)),
			flow.Named("n", &mean{mem: mem}),
		})
	}
	for _, r := range runners(mem) {
		for _, k := range auditKinds {
			t.Run(fmt.Sprintf("step/%v/%v", r.Engine, k), func(t *testing.T) {
				r.SpillDir = t.TempDir()
				err := k.run(ctx, r, build(), &gen{mem: mem, n: 6, rows: 2})
				var se *flow.StepError
				if !errors.As(err, &se) || se.Path.String() != "bad" || !errors.Is(err, errShortFile) {
					t.Fatalf("got %v; want the StepError of bad wrapping its error", err)
				}
			})
			t.Run(fmt.Sprintf("hook/%v/%v", r.Engine, k), func(t *testing.T) {
				r.SpillDir = t.TempDir()
				errEval := fmt.Errorf("evaluation set: %w", io.EOF)
				r.OnEpoch = func(context.Context, flow.EpochEnd) error { return errEval }
				p := pipeline(t, []flow.Node{flow.Named("m", &mean{mem: mem}), flow.Named("n", &mean{mem: mem})})
				err := k.run(ctx, r, p, &gen{mem: mem, n: 6, rows: 2, epoch: 2})
				if !errors.Is(err, errEval) {
					t.Fatalf("got %v; want the OnEpoch error", err)
				}
			})
		}
		t.Run(fmt.Sprintf("cause/%v", r.Engine), func(t *testing.T) {
			cause := fmt.Errorf("input drained, shutting down: %w", io.EOF)
			runCtx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			s, err := r.Transform(runCtx, pipeline(t, []flow.Node{flow.Named("m", &mean{mem: mem})}), &gen{mem: mem, n: -1, rows: 1})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			err = s.Each(ctx, func(flow.Batch) error {
				if n++; n == 2 {
					cancel(cause)
				}
				return nil
			})
			if !errors.Is(err, cause) {
				t.Errorf("Each after a cancellation with a cause wrapping io.EOF: got %v; want the cause", err)
			}
			if err := s.Close(); !errors.Is(err, cause) {
				t.Errorf("Close: got %v; want the cause", err)
			}
		})
	}
}

// A Stream is a Source: a run that reads another run's stream fails when
// that run fails with an error that wraps io.EOF, instead of taking it for
// the end of its source. Both engines, inside and out.
func TestSourceErrorWrappingEOFIsNotTheEnd(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	for _, inner := range runners(mem) {
		for _, outer := range runners(mem) {
			t.Run(fmt.Sprintf("%v/%v", inner.Engine, outer.Engine), func(t *testing.T) {
				in, err := inner.Transform(ctx, pipeline(t, []flow.Node{flow.Named("bad", eofAt{at: 2})}), &gen{mem: mem, n: 6, rows: 2})
				if err != nil {
					t.Fatal(err)
				}
				defer in.Close()
				s, err := outer.Transform(ctx, pipeline(t, []flow.Node{flow.Named("m", &mean{mem: mem})}), in)
				if err != nil {
					t.Fatal(err)
				}
				bs, err := flow.Collect(ctx, s)
				for _, b := range bs {
					b.Release()
				}
				var se *flow.StepError
				if !errors.As(err, &se) || se.Path.String() != "bad" || !errors.Is(err, errShortFile) {
					t.Errorf("got %d batches and %v; want the inner run's StepError", len(bs), err)
				}
			})
		}
	}
}
