package flow_test

import (
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/flow"
)

// Close at any moment — before the first Next, while a step runs and
// reports the cancellation, between batches, as the run ends on its own —
// of a run whose Teardown fails: Close returns the teardown error every
// time (closing early is not an error, a failed teardown is), and a Next
// racing it returns batches in order, then an error wrapping ErrClosed, or,
// where the run reached its end first, the teardown error; never the
// teardown error of a run that Close cut short. Both engines, both paths.
func TestCloseAtAnyMomentKeepsTheTeardownError(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	const n = 4
	forEachStreamRun(t, mem, func(t *testing.T, r flow.Runner, k auditKind) {
		for i := range 150 {
			s := startFailingTeardown(ctx, t, r, k, n)
			var wg sync.WaitGroup
			var cerr error
			wg.Go(func() {
				time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
				cerr = s.Close()
			})
			var seqs []int64
			var nerr error
			for nerr == nil {
				var b flow.Batch
				if b, nerr = s.Next(ctx); nerr == nil {
					seqs = append(seqs, b.Seq)
					b.Release()
				}
			}
			wg.Wait()
			for j, q := range seqs {
				if q != int64(j) {
					t.Fatalf("try %d: batches %v; want them in order", i, seqs)
				}
			}
			ended := len(seqs) == n && (errors.Is(nerr, errTD) || errors.Is(nerr, io.EOF))
			if !ended && (!errors.Is(nerr, flow.ErrClosed) || errors.Is(nerr, errTD)) {
				t.Fatalf("try %d: %d batches, then %v; want an error wrapping ErrClosed (or the run's end)", i, len(seqs), nerr)
			}
			if !errors.Is(cerr, errTD) {
				t.Fatalf("try %d: Close after %d batches and %v: got %v; want the teardown error", i, len(seqs), nerr, cerr)
			}
		}
	})
}

// Close while Next is blocked in a source read that ignores ctx: the run
// ends there (Close does not wait for the read), so its Stats are its
// totals from then on — they do not change when the abandoned read
// returns later. Both engines.
func TestStatsAreFinalOnceCloseReturns(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			inRead, unblock := make(chan struct{}), make(chan struct{})
			src := &gen{mem: mem, n: -1, rows: 2, mode: ctxIgnoreMode, before: func(i int64) {
				if i == 2 {
					close(inRead)
					<-unblock // a read that ignores ctx
				}
			}}
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("p", passThrough{})}), src)
			if err != nil {
				t.Fatal(err)
			}
			nextDone := make(chan struct{})
			go func() {
				defer close(nextDone)
				for {
					b, err := s.Next(ctx)
					if err != nil {
						return
					}
					b.Release()
				}
			}()
			<-inRead
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			before := s.Stats()
			time.Sleep(5 * time.Millisecond)
			close(unblock)
			<-s.Done()
			<-nextDone
			if after := s.Stats(); after.Elapsed != before.Elapsed || after.String() != before.String() {
				t.Errorf("Stats changed after Close returned:\n%v\nthen\n%v", before, after)
			}
		})
	}
}
