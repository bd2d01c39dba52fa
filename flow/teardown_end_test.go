package flow_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

var errTD = errors.New("teardown failed")

// startFailingTeardown starts a run of kind k (a transform, or a
// fit-transform through a Joiner) over n one-row batches, whose first
// step's Teardown fails with errTD.
func startFailingTeardown(ctx context.Context, t *testing.T, r flow.Runner, k auditKind, n int64) *flow.Stream {
	t.Helper()
	r.SpillDir = t.TempDir()
	p := pipeline(t, []flow.Node{flow.Named("td", &badTeardown{err: errTD}), flow.Named("rest", auditPipeline(t, k, ctxErrMode, 0))})
	src := &gen{mem: r.Allocator, n: n, rows: 1}
	start := r.Transform
	if k == kindJoiner {
		start = r.FitTransform
	}
	s, err := start(ctx, p, src)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forEachStreamRun runs fn in a subtest for each engine and each path that
// returns a stream (a transform, a fit-transform through a Joiner).
func forEachStreamRun(t *testing.T, mem memory.Allocator, fn func(t *testing.T, r flow.Runner, k auditKind)) {
	for _, r := range runners(mem) {
		for _, k := range []auditKind{kindTransform, kindJoiner} {
			t.Run(fmt.Sprintf("%v/%v", r.Engine, k), func(t *testing.T) { fn(t, r, k) })
		}
	}
}

// A run whose steps all succeed and whose Teardown fails hands out its
// whole output, then the teardown error, also when the run has ended
// before the reader asks for the first batch (the streaming engine has
// queued it all); Close returns the teardown error. Both engines.
func TestTeardownErrorComesAfterTheOutput(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	const n = 4
	forEachStreamRun(t, mem, func(t *testing.T, r flow.Runner, k auditKind) {
		s := startFailingTeardown(ctx, t, r, k, n)
		if r.Engine == flow.Streaming {
			<-s.Done() // the run has ended, torn down and all
		}
		got := 0
		for {
			b, err := s.Next(ctx)
			if err != nil {
				if got != n || !errors.Is(err, errTD) {
					t.Errorf("%d batches, then %v; want %d, then the teardown error", got, err, n)
				}
				break
			}
			b.Release()
			got++
		}
		if err := s.Close(); !errors.Is(err, errTD) {
			t.Errorf("Close: got %v; want the teardown error", err)
		}
	})
}

// A loop over All that breaks early has closed the stream; a failed
// teardown, which the loop cannot yield, is what Close returns when called
// again (All's doc). Both engines and paths.
func TestAllBreakLeavesTheTeardownErrorToClose(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	forEachStreamRun(t, mem, func(t *testing.T, r flow.Runner, k auditKind) {
		s := startFailingTeardown(ctx, t, r, k, 4)
		for b, err := range s.All(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			b.Release()
			break
		}
		if _, err := s.Next(ctx); !errors.Is(err, flow.ErrClosed) {
			t.Errorf("Next after the loop: got %v; want ErrClosed (the loop closed the stream)", err)
		}
		if err := s.Close(); !errors.Is(err, errTD) {
			t.Errorf("Close after the loop: got %v; want the teardown error", err)
		}
	})
}
