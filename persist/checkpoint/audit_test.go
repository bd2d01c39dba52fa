package checkpoint

// An adversarial audit of the promises of checkpoint's doc comments: what
// the key counts (an inactive branch does not; the choice, the data and
// the state the prefix starts from do) and cancellation with a cause in
// the middle of a fit, in both engines.

import (
	"context"
	"errors"
	"testing"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
	"go.uber.org/goleak"
)

// choicePipeline is choose(a: slow(scaleA), b: slow(scaleB)) →
// checkpoint → cheap, with branch choice chosen.
func (w *world) choicePipeline(c *Cache, choice string, scaleA, scaleB float64) *Pipeline {
	w.t.Helper()
	ch, err := steps.NewChooseOneOf(
		flow.Named("a", &slowStep{scale: scaleA, calls: w.calls}),
		flow.Named("b", &slowStep{scale: scaleB, calls: w.calls}))
	if err != nil {
		w.t.Fatal(err)
	}
	if err := ch.SetParams(hparams.Values{"choice": choice}); err != nil {
		w.t.Fatal(err)
	}
	pre, err := flow.NewPipeline([]flow.Node{flow.Named("pick", ch)})
	if err != nil {
		w.t.Fatal(err)
	}
	suf, err := flow.NewPipeline([]flow.Node{flow.Named("cheap", &cheapStep{})})
	if err != nil {
		w.t.Fatal(err)
	}
	p, err := New(c, pre, suf)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// The hyperparameters of an inactive branch are not in the key (a change
// hits), the choice and the active branch's are (a change misses).
func TestAuditKeyCountsOnlyTheActiveBranch(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			w := newWorld(t, 1)
			if err := steps.Register(w.reg); err != nil {
				t.Fatal(err)
			}
			c := w.cache(t.TempDir())
			fit := func(what string, choice string, a, b float64, wantHit bool) {
				t.Helper()
				p := w.choicePipeline(c, choice, a, b)
				before := w.calls.Load()
				res, err := p.Fit(deadline(t), w.runner(e), w.data(rows, -1, 0))
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				calls := w.calls.Load() - before
				if res.Hit != wantHit || (wantHit && calls != 0) || (!wantHit && calls != rows/4) {
					t.Errorf("%s: hit=%v, %d calls of the slow steps; want hit=%v", what, res.Hit, calls, wantHit)
				}
			}
			fit("first fit", "a", 2, 5, false)
			fit("the inactive branch's scale 5 -> 7", "a", 2, 7, true)
			fit("the active branch's scale 2 -> 3", "a", 3, 5, false)
			fit("choice a -> b", "b", 2, 5, false)
			fit("choice b, the inactive a's scale 2 -> 9", "b", 9, 5, true)
		})
	}
}

// A prefix that has already learned something continues from it (a
// second Fit continues from the current state): its fit must not hit the
// entry of a prefix that started from nothing, whose state differs.
func TestAuditKeyCountsTheStartingState(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			w := newWorld(t, 1)
			c := w.cache(t.TempDir())
			fresh := w.pipeline(c, 2, 0)
			if _, err := fresh.Fit(deadline(t), w.runner(e), w.data(rows, -1, 0)); err != nil {
				t.Fatal(err)
			}
			warm := w.pipeline(c, 2, 0)
			slow := warm.Prefix().Step("slow").(*slowStep)
			slow.sum, slow.n = 1000, 10 // learned before, elsewhere
			res, err := warm.Fit(deadline(t), w.runner(e), w.data(rows, -1, 0))
			if err != nil {
				t.Fatal(err)
			}
			after := warm.Prefix().Step("slow").(*slowStep)
			want := fresh.Prefix().Step("slow").(*slowStep)
			if after.n != 10+want.n || after.sum != 1000+want.sum {
				t.Errorf("hit=%v: the prefix that had seen 10 rows has n=%d sum=%v after the fit; want n=%d sum=%v (it continues)",
					res.Hit, after.n, after.sum, 10+want.n, 1000+want.sum)
			}
		})
	}
}

// stopper passes its batches on and cancels the run, with cancel, at its
// third; from then on it reports the cancellation as a step would.
type stopper struct {
	cancel func()
	n      int
}

func (s *stopper) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return s.Transform(ctx, in)
}

func (s *stopper) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	s.n++
	if s.n == 3 {
		s.cancel()
	}
	if ctx.Err() != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	return mapX(ctx, in, func(v float64) float64 { return v })
}

// A fit cancelled with a cause in the middle of the prefix's run returns
// the cause, stores nothing (the next fit misses and stores) and leaves
// no goroutine, temporary directory or batch behind.
func TestAuditFitCancelCause(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			w := newWorld(t, 1)
			dir := t.TempDir()
			c := w.cache(dir)
			cause := errors.New("audit: stop now")
			ctx, cancel := context.WithCancelCause(deadline(t))
			defer cancel(nil)
			st := &stopper{cancel: func() { cancel(cause) }}
			if err := w.reg.Register(persist.Type{Name: "checkpointtest.Stopper", Version: 1, Of: (*stopper)(nil),
				New: func(persist.Spec) (flow.Step, error) { return &stopper{}, nil }}); err != nil {
				t.Fatal(err)
			}
			pre, err := flow.NewPipeline([]flow.Node{flow.Named("slow", &slowStep{scale: 2, calls: w.calls}), flow.Named("stop", st)})
			if err != nil {
				t.Fatal(err)
			}
			suf, err := flow.NewPipeline([]flow.Node{flow.Named("cheap", &cheapStep{})})
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(c, pre, suf)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Fit(ctx, w.runner(e), w.data(rows, -1, 0))
			if !errors.Is(err, cause) {
				t.Fatalf("got %v; want an error wrapping the cause", err)
			}
			st.cancel = func() {}
			st.n = 10
			res, err := p.Fit(deadline(t), w.runner(e), w.data(rows, -1, 0))
			if err != nil {
				t.Fatal(err)
			}
			if res.Hit || !res.Stored {
				t.Errorf("after a cancelled fit: hit=%v stored=%v; want a miss that stores", res.Hit, res.Stored)
			}
		})
	}
}
