package flow_test

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"go.uber.org/goleak"
)

// cutter asks for a cut before every batch whose index is in at, the way a
// daemon's source asks for a checkpoint: Next returns ErrCut once, then
// the batch.
type cutter struct {
	flow.Source
	at   map[int64]bool
	read int64
	cut  bool // the cut before batch read has been asked for
}

func (c *cutter) Next(ctx context.Context) (flow.Batch, error) {
	if c.at[c.read] && !c.cut {
		c.cut = true
		return flow.Batch{}, flow.ErrCut
	}
	b, err := c.Source.Next(ctx)
	if err == nil {
		c.read++
		c.cut = false
	}
	return b, err
}

// At a cut that the source asks for, every batch read before it has been
// fitted by every stage (replicas merged) and none read after, in both
// engines; ErrStop from the hook ends the fit there.
func TestOnCut(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			src, done := epochs(t, mem, 3) // 30 batches of 10 rows
			defer done()
			c := &center{mem: mem}
			p := pipeline(t, []flow.Node{
				flow.Named("slow", jitter{scale{mem, 1}, 200_000}),
				flow.Named("center", c, flow.Replicas(2)),
			})
			var seen, batches []int64
			r.OnCut = func(_ context.Context, cut flow.Cut) error {
				seen = append(seen, c.n)
				batches = append(batches, cut.Batches)
				if cut.Batches == 25 {
					return flow.ErrStop
				}
				return nil
			}
			cs := &cutter{Source: src, at: map[int64]bool{0: true, 3: true, 4: true, 17: true, 25: true}}
			if _, err := r.Fit(ctx, p, cs); err != nil {
				t.Fatal(err)
			}
			want := []int64{0, 3, 4, 17, 25}
			if len(batches) != len(want) {
				t.Fatalf("cuts after %v batches; want %v", batches, want)
			}
			for i, n := range want {
				if batches[i] != n || seen[i] != 10*n {
					t.Fatalf("cut %d: after %d batches, %d rows fitted; want %d, %d", i, batches[i], seen[i], n, 10*n)
				}
			}
			if c.n != 250 || cs.read != 25 {
				t.Errorf("after ErrStop: %d rows fitted, %d batches read; want 250, 25", c.n, cs.read)
			}
		})
	}
}

// An error from OnCut fails the run and names the hook; without OnCut a
// source's ErrCut is ignored.
func TestOnCutError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	bad := errors.New("disk full")
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			src, done := epochs(t, mem, 1)
			defer done()
			c := &center{mem: mem}
			cs := &cutter{Source: src, at: map[int64]bool{2: true, 5: true}}
			if _, err := r.Fit(ctx, pipeline(t, []flow.Node{flow.Named("c", c)}), cs); err != nil {
				t.Fatalf("without OnCut: %v", err)
			}
			if c.n != 100 {
				t.Fatalf("without OnCut: %d rows fitted; want 100", c.n)
			}
			src2, done2 := epochs(t, mem, 1)
			defer done2()
			r.OnCut = func(context.Context, flow.Cut) error { return bad }
			_, err := r.Fit(ctx, pipeline(t, []flow.Node{flow.Named("c", &center{mem: mem})}), &cutter{Source: src2, at: map[int64]bool{2: true}})
			if !errors.Is(err, bad) {
				t.Fatalf("got %v; want the hook's error", err)
			}
		})
	}
}
