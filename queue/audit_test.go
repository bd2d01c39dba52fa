package queue_test

// An adversarial audit of the promises of queue's doc comments: many
// producers and consumers at once, Close while consumers wait, Close
// twice and concurrently, cancellation with a cause, the metrics, the
// rendezvous queue, and the Group's error, Cancel, Stop and GoN.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/queue"
)

// audited are the kinds of queue the audit runs on: every capacity class
// and every option.
var audited = []struct {
	name     string
	capacity int
	opts     []queue.Option
}{
	{"rendezvous", 0, nil},
	{"cap1", 1, nil},
	{"cap7", 7, nil},
	{"cap7-untimed", 7, []queue.Option{queue.Untimed()}},
	{"cap7-uncounted", 7, []queue.Option{queue.Uncounted()}},
}

type tagged struct{ producer, seq int }

// Many producers, consumers that mix Get and TryGet, and Close by the
// owner once every producer has returned: every item comes out exactly
// once, each producer's items in the order it put them (each consumer
// sees each producer's items in increasing order), and every consumer
// ends with io.EOF.
func TestAuditNoLossNoDupPerProducerFIFO(t *testing.T) {
	for _, tc := range audited {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			const producers, consumers, each = 8, 5, 2000
			q := queue.New[tagged](tc.capacity, tc.opts...)
			var pwg sync.WaitGroup
			for p := range producers {
				pwg.Go(func() {
					for i := range each {
						v := tagged{p, i}
						if i%3 == 0 && q.TryPut(v) {
							continue
						}
						if err := q.Put(ctx, v); err != nil {
							t.Errorf("producer %d: Put: %v", p, err)
							return
						}
					}
				})
			}
			counts := make([][]int, consumers)
			errs := make(chan error, consumers)
			var cwg sync.WaitGroup
			for c := range consumers {
				counts[c] = make([]int, producers*each)
				cwg.Go(func() {
					last := make([]int, producers)
					for i := range last {
						last[i] = -1
					}
					for n := 0; ; n++ {
						var v tagged
						var err error
						if n%4 == 0 {
							var ok bool
							if v, ok, err = q.TryGet(); !ok && err == nil {
								continue
							}
						} else {
							v, err = q.Get(ctx)
						}
						if errors.Is(err, io.EOF) {
							errs <- nil
							return
						}
						if err != nil {
							errs <- err
							return
						}
						if v.seq <= last[v.producer] {
							errs <- fmt.Errorf("consumer %d: item %d of producer %d after its item %d", c, v.seq, v.producer, last[v.producer])
							return
						}
						last[v.producer] = v.seq
						counts[c][v.producer*each+v.seq]++
					}
				})
			}
			pwg.Wait()
			q.Close()
			cwg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			for i := range producers * each {
				n := 0
				for c := range consumers {
					n += counts[c][i]
				}
				if n != 1 {
					t.Fatalf("item %d of producer %d came out %d times; want once", i%each, i/each, n)
				}
			}
			st := q.Stats()
			if st.Len != 0 || st.Capacity != tc.capacity {
				t.Errorf("stats %+v; want Len 0, Capacity %d", st, tc.capacity)
			}
			if tc.name != "cap7-uncounted" && (st.Puts != producers*each || st.Gets != producers*each || st.HighWater > st.Capacity) {
				t.Errorf("stats %+v; want %d puts and gets, HighWater ≤ Capacity", st, producers*each)
			}
		})
	}
}

// Consumers blocked on an empty queue all see io.EOF when the owner
// closes it, however many Closes race; a Get or TryGet after that
// reports io.EOF again.
func TestAuditCloseWakesEveryConsumer(t *testing.T) {
	for _, tc := range audited {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			q := queue.New[int](tc.capacity, tc.opts...)
			const consumers = 16
			errs := make(chan error, consumers)
			for range consumers {
				go func() {
					_, err := q.Get(ctx)
					errs <- err
				}()
			}
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(q.Close)
			}
			wg.Wait()
			for range consumers {
				if err := <-errs; !errors.Is(err, io.EOF) {
					t.Errorf("blocked Get after Close: %v; want io.EOF", err)
				}
			}
			if _, err := q.Get(ctx); !errors.Is(err, io.EOF) {
				t.Errorf("Get after Close: %v; want io.EOF", err)
			}
			if v, ok, err := q.TryGet(); ok || !errors.Is(err, io.EOF) || v != 0 {
				t.Errorf("TryGet after Close: %d, %v, %v; want 0, false, io.EOF", v, ok, err)
			}
			q.Drain(func(int) { t.Error("Drain of a closed, empty queue released an item") })
		})
	}
}

// Get after Close hands out what is buffered, in order, before io.EOF;
// so does TryGet; Drain of a closed queue releases what is left and
// returns.
func TestAuditCloseDrainsThenEOF(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	q := queue.New[int](4)
	for i := range 4 {
		if !q.TryPut(i) {
			t.Fatalf("TryPut %d on a queue with room: false", i)
		}
	}
	q.Close()
	if v, err := q.Get(ctx); v != 0 || err != nil {
		t.Fatalf("Get: %d, %v; want 0, nil", v, err)
	}
	if v, ok, err := q.TryGet(); v != 1 || !ok || err != nil {
		t.Fatalf("TryGet: %d, %v, %v; want 1, true, nil", v, ok, err)
	}
	var left []int
	q.Drain(func(v int) { left = append(left, v) })
	if fmt.Sprint(left) != "[2 3]" {
		t.Fatalf("Drain released %v; want [2 3]", left)
	}
	if _, err := q.Get(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Get after Drain: %v; want io.EOF", err)
	}
}

// Put and TryPut on a closed queue panic, as documented: a producer that
// outlives Close is a bug of the owner, not an item silently dropped.
func TestAuditPutAfterClosePanics(t *testing.T) {
	for name, put := range map[string]func(*queue.Queue[int]){
		"Put":    func(q *queue.Queue[int]) { _ = q.Put(t.Context(), 1) },
		"TryPut": func(q *queue.Queue[int]) { q.TryPut(1) },
	} {
		for _, capacity := range []int{0, 1} {
			q := queue.New[int](capacity)
			q.Close()
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s on a closed queue of capacity %d did not panic", name, capacity)
					}
				}()
				put(q)
			}()
		}
	}
}

// A blocked Put or Get returns context.Cause however the context ends:
// a cause, a plain cancel, a deadline, or a parent's cause; and a Put
// that gave up leaves its item with the caller (nothing was added).
func TestAuditCancellationCause(t *testing.T) {
	cause := errors.New("the run failed")
	for _, tc := range []struct {
		name string
		make func(parent context.Context) (context.Context, func())
		want error
	}{
		{"cause", func(p context.Context) (context.Context, func()) {
			ctx, cancel := context.WithCancelCause(p)
			return ctx, func() { cancel(cause) }
		}, cause},
		{"cancel", func(p context.Context) (context.Context, func()) {
			return context.WithCancel(p)
		}, context.Canceled},
		{"parent cause", func(p context.Context) (context.Context, func()) {
			parent, cancel := context.WithCancelCause(p)
			ctx, cancelChild := context.WithTimeout(parent, time.Hour)
			return ctx, func() { cancel(cause); cancelChild() }
		}, cause},
		{"timeout cause", func(p context.Context) (context.Context, func()) {
			ctx, cancel := context.WithTimeoutCause(p, 20*time.Millisecond, cause)
			return ctx, func() { go func() { <-ctx.Done(); cancel() }() }
		}, cause},
		{"deadline", func(p context.Context) (context.Context, func()) {
			ctx, cancel := context.WithTimeout(p, 20*time.Millisecond)
			return ctx, func() { go func() { <-ctx.Done(); cancel() }() }
		}, context.DeadlineExceeded},
	} {
		for _, q := range audited {
			t.Run(tc.name+"/"+q.name, func(t *testing.T) {
				base, stop := context.WithTimeout(t.Context(), 10*time.Second)
				defer stop()
				full := queue.New[int](q.capacity, q.opts...)
				for full.TryPut(0) {
				}
				empty := queue.New[int](q.capacity, q.opts...)
				ctx, end := tc.make(base)
				putErr, getErr := make(chan error, 1), make(chan error, 1)
				go func() { putErr <- full.Put(ctx, 1) }()
				go func() { _, err := empty.Get(ctx); getErr <- err }()
				end()
				for what, ch := range map[string]chan error{"Put": putErr, "Get": getErr} {
					select {
					case err := <-ch:
						if !errors.Is(err, tc.want) {
							t.Errorf("blocked %s: %v; want %v", what, err, tc.want)
						}
					case <-base.Done():
						t.Fatalf("blocked %s did not return after its context ended", what)
					}
				}
				// Done already: both return the cause at once.
				if err := full.Put(ctx, 2); !errors.Is(err, tc.want) {
					t.Errorf("Put on a done context: %v; want %v", err, tc.want)
				}
				if _, err := empty.Get(ctx); !errors.Is(err, tc.want) {
					t.Errorf("Get on a done context: %v; want %v", err, tc.want)
				}
				if got := full.Len(); got != q.capacity {
					t.Errorf("Len %d after refused Puts; want %d", got, q.capacity)
				}
				full.Drain(func(v int) {
					if v != 0 {
						t.Errorf("a refused Put's item %d is in the queue", v)
					}
				})
			})
		}
	}
}

// Stats, read while producers and consumers run, stays in bounds:
// HighWater ≤ Capacity and Len ≤ Capacity; once quiescent,
// Puts − Gets == Len. The waits are timed unless Untimed.
func TestAuditStatsConsistency(t *testing.T) {
	for _, tc := range audited {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			q := queue.New[int](tc.capacity, tc.opts...)
			g := queue.NewGroup(ctx)
			const producers, each = 4, 3000
			g.GoN(producers, func(ctx context.Context, _ int) error {
				for i := range each {
					if err := q.Put(ctx, i); err != nil {
						return err
					}
				}
				return nil
			}, nil)
			var gotten atomic.Int64
			g.GoN(2, func(ctx context.Context, _ int) error {
				for gotten.Add(1) <= int64(producers*each-tc.capacity) {
					if _, err := q.Get(ctx); err != nil {
						return err
					}
				}
				return nil
			}, nil)
			stop := make(chan struct{})
			watched := make(chan error, 1)
			go func() {
				for {
					st := q.Stats()
					switch {
					case st.HighWater > st.Capacity || st.Len > st.Capacity || st.Len < 0:
						watched <- fmt.Errorf("stats %+v out of bounds", st)
						return
					case st.HighWater < 0 || st.PutWait < 0 || st.GetWait < 0:
						watched <- fmt.Errorf("stats %+v negative", st)
						return
					}
					select {
					case <-stop:
						watched <- nil
						return
					default:
						runtime.Gosched()
					}
				}
			}()
			err := g.Wait()
			g.Stop()
			close(stop)
			if werr := <-watched; werr != nil {
				t.Fatal(werr)
			}
			if err != nil {
				t.Fatal(err)
			}
			// Quiescent, with Capacity items left: the consumers took the
			// rest.
			st := q.Stats()
			switch tc.name {
			case "cap7-uncounted":
				if want := (queue.Stats{Capacity: tc.capacity, Len: st.Len}); st != want {
					t.Errorf("stats %+v; want %+v", st, want)
				}
			default:
				if st.Puts-st.Gets != int64(st.Len) || st.Puts != producers*each || st.Len != tc.capacity {
					t.Errorf("quiescent stats %+v: Puts − Gets ≠ Len", st)
				}
				if tc.capacity > 0 && st.HighWater < 1 {
					t.Errorf("stats %+v: HighWater 0 after %d puts", st, st.Puts)
				}
				if tc.name == "cap7-untimed" && (st.PutWait != 0 || st.GetWait != 0) {
					t.Errorf("Untimed queue: stats %+v; want no waits", st)
				}
			}
			q.Close()
			q.Drain(func(int) {})
		})
	}
}

// A rendezvous queue holds nothing: TryPut succeeds only while a Get is
// waiting, Len is always 0, and Put waits for a Get.
func TestAuditRendezvous(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, c := range []int{0, -3} {
		q := queue.New[int](c)
		if q.Cap() != 0 || q.Stats().Capacity != 0 {
			t.Errorf("New(%d): Cap %d; want 0", c, q.Cap())
		}
		if q.TryPut(1) {
			t.Fatalf("New(%d): TryPut with no Get waiting succeeded", c)
		}
		got := make(chan int)
		go func() {
			v, err := q.Get(ctx)
			if err != nil {
				t.Error(err)
			}
			got <- v
		}()
		for !q.TryPut(2) { // until the Get waits
			if ctx.Err() != nil {
				t.Fatal("TryPut never met the waiting Get")
			}
			time.Sleep(time.Millisecond)
		}
		if v := <-got; v != 2 {
			t.Errorf("Get: %d; want 2", v)
		}
		if q.Len() != 0 {
			t.Errorf("Len of a rendezvous queue %d", q.Len())
		}
		if _, ok, err := q.TryGet(); ok || err != nil {
			t.Errorf("TryGet of an empty rendezvous queue: %v, %v", ok, err)
		}
	}
}

// The group's error is the first one, whoever reports it: of goroutines
// that fail and Cancels from goroutines that the group does not wait for,
// all at once, one error wins; Wait and Err return it and it is the
// cause of the group's context.
func TestAuditGroupFirstErrorWins(t *testing.T) {
	for range 50 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		g := queue.NewGroup(ctx)
		start := make(chan struct{})
		var outside sync.WaitGroup
		for i := range 8 {
			err := fmt.Errorf("error %d", i)
			if i%2 == 0 {
				g.Go(func(context.Context) error { <-start; return err })
			} else {
				outside.Go(func() { <-start; g.Cancel(err) })
			}
		}
		g.Go(func(ctx context.Context) error { <-ctx.Done(); return context.Cause(ctx) })
		close(start)
		err := g.Wait()
		outside.Wait()
		if err == nil || err != g.Err() || context.Cause(g.Context()) != err {
			t.Fatalf("Wait %v, Err %v, cause %v; want one error for all three", err, g.Err(), context.Cause(g.Context()))
		}
		g.Cancel(errors.New("late"))
		if g.Err() != err {
			t.Fatalf("a later Cancel replaced the first error %v with %v", err, g.Err())
		}
		g.Stop()
		cancel()
	}
}

// Wait does not cancel the group's context, so a goroutine that the group
// does not wait for keeps it until Stop, which cancels it without making
// an error; Cancel(nil) does nothing; a cancelled parent's cause is what
// the goroutines see.
func TestAuditGroupContextLifetime(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	g := queue.NewGroup(ctx)
	g.Go(func(context.Context) error { return nil })
	g.Cancel(nil)
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := g.Context().Err(); err != nil {
		t.Fatalf("context after Wait: %v; want it alive until Stop", err)
	}
	outside := make(chan error, 1)
	go func() { <-g.Context().Done(); outside <- context.Cause(g.Context()) }()
	g.Stop()
	if err := <-outside; !errors.Is(err, context.Canceled) {
		t.Errorf("cause after Stop: %v; want context.Canceled", err)
	}
	if err := g.Err(); err != nil {
		t.Errorf("Err after Stop: %v; want nil (Stop is no failure)", err)
	}
	g.Stop() // twice: nothing

	cause := errors.New("parent failed")
	parent, cancelParent := context.WithCancelCause(ctx)
	g = queue.NewGroup(parent)
	defer g.Stop()
	g.Go(func(ctx context.Context) error { <-ctx.Done(); return context.Cause(ctx) })
	cancelParent(cause)
	if err := g.Wait(); !errors.Is(err, cause) {
		t.Errorf("Wait after the parent's cancel: %v; want its cause", err)
	}
}

// GoN: done runs once, after all n workers returned nil and before Wait
// returns; never when one failed, whichever finished last; n below one
// runs one worker.
func TestAuditGoN(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, n := range []int{1, 2, 16} {
		g := queue.NewGroup(ctx)
		var returned, dones atomic.Int32
		var seen sync.Map
		g.GoN(n, func(_ context.Context, w int) error {
			if _, dup := seen.LoadOrStore(w, true); dup {
				t.Errorf("worker %d ran twice", w)
			}
			returned.Add(1)
			return nil
		}, func() {
			if got := returned.Load(); got != int32(n) {
				t.Errorf("done ran after %d of %d workers", got, n)
			}
			dones.Add(1)
		})
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		if dones.Load() != 1 {
			t.Errorf("n=%d: done ran %d times; want once before Wait returned", n, dones.Load())
		}
		g.Stop()
	}
	// The failing worker finishes first, last, or in the middle.
	for failing := range 4 {
		g := queue.NewGroup(ctx)
		boom := errors.New("boom")
		release := make([]chan struct{}, 4)
		for i := range release {
			release[i] = make(chan struct{})
		}
		finished := make(chan struct{}, 4)
		g.GoN(4, func(_ context.Context, w int) error {
			<-release[w]
			defer func() { finished <- struct{}{} }()
			if w == failing {
				return boom
			}
			return nil
		}, func() { t.Errorf("done ran although worker %d failed", failing) })
		order := []int{failing, (failing + 1) % 4, (failing + 2) % 4, (failing + 3) % 4}
		if failing%2 == 1 {
			order = []int{(failing + 1) % 4, (failing + 2) % 4, (failing + 3) % 4, failing}
		}
		for _, w := range order {
			close(release[w])
			<-finished
		}
		if err := g.Wait(); !errors.Is(err, boom) {
			t.Errorf("Wait: %v; want boom", err)
		}
		g.Stop()
	}
	for _, n := range []int{0, -1} {
		g := queue.NewGroup(ctx)
		var ran atomic.Int32
		g.GoN(n, func(_ context.Context, w int) error {
			if w != 0 {
				t.Errorf("GoN(%d) ran worker %d", n, w)
			}
			ran.Add(1)
			return nil
		}, nil)
		if err := g.Wait(); err != nil || ran.Load() != 1 {
			t.Errorf("GoN(%d): %d workers ran, %v; want one", n, ran.Load(), err)
		}
		g.Stop()
	}
}

// Puts counts TryPut and Gets counts TryGet; Drain's items are not
// counted, so that Puts − Gets is Len on a quiescent queue only until
// Drain (as the Stats documentation says).
func TestAuditStatsCounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	q := queue.New[int](4)
	q.TryPut(1)
	if err := q.Put(ctx, 2); err != nil {
		t.Fatal(err)
	}
	q.TryPut(3)
	q.TryGet()
	if _, err := q.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Puts != 3 || st.Gets != 2 || st.Len != 1 || st.HighWater != 3 {
		t.Fatalf("stats %+v; want 3 Puts (TryPut too), 2 Gets (TryGet too), Len 1, HighWater 3", st)
	}
	q.Drain(func(int) {})
	if st := q.Stats(); st.Puts != 3 || st.Gets != 2 || st.Len != 0 {
		t.Fatalf("stats after Drain %+v; want 3 Puts, 2 Gets, Len 0", st)
	}
}

// Put and Get try the queue before they look at ctx: on a done context, a
// Put with room appends and a Get with an item returns it; only a call
// that would wait returns the cause (see Put and Get).
func TestAuditDoneContextWithRoom(t *testing.T) {
	cause := errors.New("stopped")
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(cause)
	q := queue.New[int](1)
	if err := q.Put(ctx, 1); err != nil {
		t.Fatalf("Put with room on a done context: %v; want nil", err)
	}
	if err := q.Put(ctx, 2); !errors.Is(err, cause) {
		t.Fatalf("Put on a full queue and a done context: %v; want the cause", err)
	}
	if v, err := q.Get(ctx); v != 1 || err != nil {
		t.Fatalf("Get of a buffered item on a done context: %d, %v; want 1, nil", v, err)
	}
	if _, err := q.Get(ctx); !errors.Is(err, cause) {
		t.Fatalf("Get on an empty queue and a done context: %v; want the cause", err)
	}
	q.Close()
	if _, err := q.Get(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Get on a closed queue and a done context: %v; want io.EOF", err)
	}
}

// HighWater is the most items seen buffered right after a Put, however
// many producers race: producers that fill a queue (with no consumer)
// leave it at Capacity, the length the last Put saw. (A plain load and
// store of the maximum lost it to a producer that stored a smaller length
// after the largest, a few times in 3000 under -race.)
func TestAuditHighWaterUnderContention(t *testing.T) {
	for i := range 3000 {
		q := queue.New[int](16)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for q.TryPut(1) {
				}
			})
		}
		wg.Wait()
		if st := q.Stats(); st.HighWater != 16 {
			t.Fatalf("try %d: HighWater %d after 8 producers filled a queue of 16", i, st.HighWater)
		}
	}
}
