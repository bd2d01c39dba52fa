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

// deafSource blocks in its second Next, after closing entered, until
// release is closed, whatever ctx says: a read from a pipe that sends
// nothing.
type deafSource struct {
	flow.Source
	reads            *int
	entered, release chan struct{}
}

func (s deafSource) Next(ctx context.Context) (flow.Batch, error) {
	if *s.reads++; *s.reads == 2 {
		close(s.entered)
		<-s.release
	}
	return s.Source.Next(ctx)
}

// TestStatsAfterAbandonedRead checks that the source's busy time stops
// when the run abandons a read that ignores ctx: the goroutine inside it
// goes on, but the run, and its figures, have ended.
func TestStatsAfterAbandonedRead(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	const inside = 20 * time.Millisecond
	numbersSrc := numbers(t, mem, 0, 40, 10)
	defer numbersSrc.Close()
	src := deafSource{numbersSrc, new(int), make(chan struct{}), make(chan struct{})}
	s, err := flow.Runner{Engine: flow.Streaming, Allocator: mem}.Transform(ctx, pipeline(t, []flow.Node{flow.Named("a", scale{mem, 2})}), src)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-src.entered:
	case <-ctx.Done():
		t.Fatal("the source's second read never began")
	}
	time.Sleep(inside)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	first := s.Stats()
	checkBounded(t, first)
	time.Sleep(inside)
	later := s.Stats()
	checkBounded(t, later)
	if got := first.Stages[0].Busy; got < inside {
		t.Errorf("source busy %v after %v inside Next; want at least that", got, inside)
	}
	if first.Stages[0].Busy != later.Stages[0].Busy || first.Elapsed != later.Elapsed {
		t.Errorf("after Close: source busy %v then %v, elapsed %v then %v; want both fixed", first.Stages[0].Busy, later.Stages[0].Busy, first.Elapsed, later.Elapsed)
	}
	close(src.release) // the abandoned read returns, and its goroutine lets go
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("the run did not let go of its source")
	}
}
