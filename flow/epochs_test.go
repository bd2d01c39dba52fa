package flow_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"go.uber.org/goleak"
)

// counting counts the batches read from a replayable source.
type counting struct {
	flow.Rewinder
	mu    sync.Mutex
	reads int
}

func (c *counting) Next(ctx context.Context) (flow.Batch, error) {
	b, err := c.Rewinder.Next(ctx)
	if err == nil {
		c.mu.Lock()
		c.reads++
		c.mu.Unlock()
	}
	return b, err
}

// epochs returns a source of 20 epochs of x = 0 … 99, in batches of 10.
func epochs(t *testing.T, mem memory.Allocator, n int) (*counting, func()) {
	t.Helper()
	src := numbers(t, mem, 0, 100, 10)
	rep, err := minibatch.Repeat(src, n)
	if err != nil {
		t.Fatal(err)
	}
	return &counting{Rewinder: rep}, func() { src.Close() }
}

// A standardizer fitted on the first epoch only, before a Joiner: the
// first pass stops after epoch 0, the second reads all 20 epochs.
func TestFitEpochsBeforeJoiner(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, spill := range []bool{false, true} {
			name := r.Engine.String()
			if spill {
				name += "/spilled"
			}
			t.Run(name, func(t *testing.T) {
				defer goleak.VerifyNone(t)
				r.SpillDir = t.TempDir()
				src, done := epochs(t, mem, 20)
				defer done()
				c := &center{mem: mem}
				rec := &record{}
				p := pipeline(t, []flow.Node{
					flow.Named("center", c, flow.FitEpochs(1), flow.Barrier(barrier.Joiner)),
					flow.Named("rec", rec),
				})
				var in flow.Source = src
				if spill {
					in = once{src}
				}
				if _, err := r.Fit(ctx, p, in); err != nil {
					t.Fatal(err)
				}
				if c.n != 100 || c.mean() != 49.5 {
					t.Errorf("center fitted on %d rows (mean %v); want 100 (49.5): the first epoch only", c.n, c.mean())
				}
				if len(rec.seen) != 2000 {
					t.Errorf("rec fitted on %d rows; want 2000 (20 epochs)", len(rec.seen))
				}
				want := 10 + 1 + 200 // epoch 0 and the first batch of epoch 1, then everything
				if spill {
					want = 200 // spilled on the first pass, read back from disk
				}
				if src.reads != want {
					t.Errorf("source read %d batches; want %d", src.reads, want)
				}
			})
		}
	}
}

// FitEpochs(0) freezes a step; FitEpochs(3) limits a step fitted in the
// same pass as an unlimited one.
func TestFitEpochsLimits(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			src, done := epochs(t, mem, 5)
			defer done()
			frozen, three, all := &center{mem: mem}, &center{mem: mem}, &center{mem: mem}
			p := pipeline(t, []flow.Node{
				flow.Named("frozen", frozen, flow.FitEpochs(0)),
				flow.Named("three", three, flow.FitEpochs(3)),
				flow.Named("all", all),
			})
			if _, err := r.Fit(ctx, p, src); err != nil {
				t.Fatal(err)
			}
			if frozen.n != 0 || three.n != 300 || all.n != 500 {
				t.Errorf("fitted rows: frozen %d, three %d, all %d; want 0, 300, 500", frozen.n, three.n, all.n)
			}
		})
	}
	if _, err := flow.NewPipeline([]flow.Node{flow.Named("a", &center{}, flow.FitEpochs(-1))}); err == nil {
		t.Error("FitEpochs(-1): no error")
	}
}

// The OnEpoch hook runs at a consistent cut (every batch of the epoch
// fitted, replicas merged) and ErrStop ends the fit early.
func TestOnEpoch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			src, done := epochs(t, mem, 10)
			defer done()
			c := &center{mem: mem}
			p := pipeline(t, []flow.Node{
				flow.Named("slow", jitter{scale{mem, 1}, 200_000}),
				flow.Named("center", c, flow.Replicas(2)),
			})
			var seen []int64
			var ends []flow.EpochEnd
			r.OnEpoch = func(_ context.Context, e flow.EpochEnd) error {
				seen = append(seen, c.n)
				ends = append(ends, e)
				if e.Epoch == 3 {
					return flow.ErrStop
				}
				return nil
			}
			if _, err := r.Fit(ctx, p, src); err != nil {
				t.Fatal(err)
			}
			want := []int64{100, 200, 300, 400, 400} // epochs 0-3, then the end of the pass
			if len(seen) != len(want) {
				t.Fatalf("hook saw %v; want %v", seen, want)
			}
			for i := range want {
				if seen[i] != want[i] {
					t.Fatalf("hook saw fitted rows %v; want %v", seen, want)
				}
			}
			last := ends[len(ends)-1]
			if !last.EndOfPass || last.Epoch != 3 || ends[0].Batches != 10 || ends[0].EndOfPass {
				t.Errorf("hook events %+v", ends)
			}
		})
	}
}

func TestOnEpochError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	bad := errors.New("metric went NaN")
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			src, done := epochs(t, mem, 5)
			defer done()
			r.OnEpoch = func(_ context.Context, e flow.EpochEnd) error {
				if e.Epoch == 1 {
					return bad
				}
				return nil
			}
			_, err := r.Fit(ctx, pipeline(t, []flow.Node{flow.Named("c", &center{mem: mem})}), src)
			if !errors.Is(err, bad) {
				t.Fatalf("got %v; want the hook's error", err)
			}
		})
	}
}
