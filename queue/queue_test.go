package queue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/queue"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFIFOAndClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	q := queue.New[int](3)
	for i := range 3 {
		if err := q.Put(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if got := q.Len(); got != 3 {
		t.Fatalf("Len %d; want 3", got)
	}
	q.Close()
	q.Close() // idempotent
	for i := range 3 {
		v, err := q.Get(ctx)
		if err != nil || v != i {
			t.Fatalf("Get: got %d, %v; want %d, nil", v, err, i)
		}
	}
	if _, err := q.Get(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Get after close: got %v; want io.EOF", err)
	}
	st := q.Stats()
	if st.Puts != 3 || st.Gets != 3 || st.HighWater != 3 || st.Capacity != 3 {
		t.Errorf("stats %+v; want 3 puts, 3 gets, high water 3, capacity 3", st)
	}
}

func TestUncounted(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	q := queue.New[int](2, queue.Uncounted())
	if err := q.Put(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if !q.TryPut(2) {
		t.Fatal("TryPut on a queue with room: got false; want true")
	}
	if q.TryPut(3) {
		t.Fatal("TryPut on a full queue: got true; want false")
	}
	if v, ok, err := q.TryGet(); v != 1 || !ok || err != nil {
		t.Fatalf("TryGet: got %d, %v, %v; want 1, true, nil", v, ok, err)
	}
	// A Get that waits: an Uncounted queue does not time it either.
	go func() {
		time.Sleep(10 * time.Millisecond)
		q.Close()
	}()
	if v, err := q.Get(ctx); v != 2 || err != nil {
		t.Fatalf("Get: got %d, %v; want 2, nil", v, err)
	}
	if _, err := q.Get(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Get after close: got %v; want io.EOF", err)
	}
	if st, want := q.Stats(), (queue.Stats{Capacity: 2}); st != want {
		t.Errorf("stats %+v; want %+v: an Uncounted queue keeps no metrics", st, want)
	}
}

func TestBackpressureAndCause(t *testing.T) {
	q := queue.New[int](1)
	ctx, cancel := context.WithCancelCause(t.Context())
	if err := q.Put(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("upstream failed")
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel(cause)
	}()
	// The queue is full: Put blocks until ctx is done, then reports the cause.
	if err := q.Put(ctx, 2); !errors.Is(err, cause) {
		t.Fatalf("Put on a full queue: got %v; want the cancel cause", err)
	}
	if st := q.Stats(); st.PutWait < 10*time.Millisecond {
		t.Errorf("PutWait %v; want the time blocked (≥ 10ms)", st.PutWait)
	}
	var drained []int
	q.Drain(func(v int) { drained = append(drained, v) })
	if len(drained) != 1 || drained[0] != 1 {
		t.Errorf("Drain gave %v; want [1]", drained)
	}
	empty := queue.New[int](0)
	if _, err := empty.Get(ctx); !errors.Is(err, cause) {
		t.Fatalf("Get on a done ctx: got %v; want the cause", err)
	}
}

func TestManyProducersConsumers(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, capacity := range []int{0, 1, 16} {
		t.Run(fmt.Sprint(capacity), func(t *testing.T) {
			q := queue.New[int](capacity)
			g := queue.NewGroup(ctx)
			const producers, each = 4, 1000
			g.GoN(producers, func(ctx context.Context, w int) error {
				for i := range each {
					if err := q.Put(ctx, w*each+i); err != nil {
						return err
					}
				}
				return nil
			}, q.Close)
			var mu sync.Mutex
			seen := make(map[int]bool)
			g.GoN(3, func(ctx context.Context, _ int) error {
				for {
					v, err := q.Get(ctx)
					if errors.Is(err, io.EOF) {
						return nil
					}
					if err != nil {
						return err
					}
					mu.Lock()
					seen[v] = true
					mu.Unlock()
				}
			}, nil)
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			if len(seen) != producers*each {
				t.Fatalf("consumers saw %d distinct items; want %d", len(seen), producers*each)
			}
		})
	}
}

func TestGroupFirstErrorCancels(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	g := queue.NewGroup(ctx)
	boom := errors.New("boom")
	closed := false
	g.GoN(3, func(ctx context.Context, w int) error {
		if w == 1 {
			return boom
		}
		<-ctx.Done()
		if !errors.Is(context.Cause(ctx), boom) {
			return fmt.Errorf("cause %v; want boom", context.Cause(ctx))
		}
		return context.Cause(ctx)
	}, func() { closed = true })
	if err := g.Wait(); !errors.Is(err, boom) {
		t.Fatalf("Wait: got %v; want boom", err)
	}
	if closed {
		t.Error("done ran although a worker failed")
	}
}

func BenchmarkPutGet(b *testing.B) {
	ctx := b.Context()
	q := queue.New[int](8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := q.Get(ctx); err != nil {
				return
			}
		}
	}()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := q.Put(ctx, i); err != nil {
			b.Fatal(err)
		}
	}
	q.Close()
	<-done
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/item")
}
