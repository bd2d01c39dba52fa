package flow_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
)

// hold blocks in its first Transform, after closing entered, until release
// is closed.
type hold struct {
	scale
	once             *sync.Once
	entered, release chan struct{}
}

func (h hold) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	first := false
	h.once.Do(func() { first = true })
	if first {
		close(h.entered)
		select {
		case <-h.release:
		case <-ctx.Done():
			return flow.Batch{}, context.Cause(ctx)
		}
	}
	return h.scale.Transform(ctx, in)
}

// holdSource blocks in its second Next, after closing entered, until
// release is closed.
type holdSource struct {
	flow.Source
	reads            *int
	entered, release chan struct{}
}

func (s holdSource) Next(ctx context.Context) (flow.Batch, error) {
	if *s.reads++; *s.reads == 2 {
		close(s.entered)
		select {
		case <-s.release:
		case <-ctx.Done():
			return flow.Batch{}, context.Cause(ctx)
		}
	}
	return s.Source.Next(ctx)
}

// TestStatsBusyWhileBusy checks that the streaming engine's live Stats
// count a step, and a read of the source, that is still going on as busy:
// the engine reads the clock only around waits, so the busy stretch going
// on must be worked out when Stats is read.
func TestStatsBusyWhileBusy(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	const held = 30 * time.Millisecond
	step := hold{scale{mem, 2}, new(sync.Once), make(chan struct{}), make(chan struct{})}
	p := pipeline(t, []flow.Node{flow.Named("hold", step)})
	numbersSrc := numbers(t, mem, 0, 40, 10)
	defer numbersSrc.Close()
	src := holdSource{numbersSrc, new(int), make(chan struct{}), make(chan struct{})}
	s, err := flow.Runner{Engine: flow.Streaming, Allocator: mem}.Transform(ctx, p, src)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []chan struct{}{step.entered, src.entered} {
		select {
		case <-c:
		case <-ctx.Done():
			t.Fatal("the step or the source was never entered")
		}
	}
	time.Sleep(held)
	mid := s.Stats()
	checkBounded(t, mid)
	if len(mid.Stages) != 2 {
		t.Fatalf("stages %v; want the source and hold", names(mid.Stages))
	}
	if got := mid.Stages[0].Busy; got < held {
		t.Errorf("source inside Next for %v: busy %v; want at least that", held, got)
	}
	if got := mid.Stages[1].Busy; got < held {
		t.Errorf("step inside Transform for %v: busy %v; want at least that", held, got)
	}
	close(step.release)
	close(src.release)
	if got := collect(ctx, t, s, "x"); len(got.cols["x"]) != 40 {
		t.Fatalf("got %d rows; want 40", len(got.cols["x"]))
	}
	st := s.Stats()
	checkBounded(t, st)
	for i, ss := range st.Stages {
		if ss.Busy < mid.Stages[i].Busy {
			t.Errorf("%s: busy %v at the end, %v during the run; want it not to shrink", ss.Name(), ss.Busy, mid.Stages[i].Busy)
		}
	}
	if hs := st.Stages[1]; hs.BatchesIn != 4 || hs.BatchesOut != 4 {
		t.Errorf("hold: %d batches in, %d out; want 4 and 4", hs.BatchesIn, hs.BatchesOut)
	}
}
