package flow_test

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"go.uber.org/goleak"
)

func TestAllClosesOnBreak(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			c := &center{mem: mem}
			src := numbers(t, mem, 0, 100, 10)
			defer src.Close()
			s, err := r.FitTransform(ctx, pipeline(t, []flow.Node{flow.Named("c", c)}), src)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for b, err := range s.All(ctx) {
				if err != nil {
					t.Fatal(err)
				}
				b.Release()
				if n++; n == 3 {
					break
				}
			}
			if c.teardown != 1 {
				t.Errorf("%d teardowns after break; want 1 (All closes the stream)", c.teardown)
			}
			if _, err := s.Next(ctx); !errors.Is(err, flow.ErrClosed) {
				t.Errorf("Next after the loop: got %v; want ErrClosed", err)
			}
		})
	}
}

func TestAllYieldsRunError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			src := numbers(t, mem, 0, 100, 10)
			defer src.Close()
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("f", failing{scale{mem, 1}, 4, false})}), src)
			if err != nil {
				t.Fatal(err)
			}
			var got, errs int
			for b, err := range s.All(ctx) {
				if err != nil {
					if !errors.Is(err, errBoom) {
						t.Errorf("got %v; want boom", err)
					}
					errs++
					continue
				}
				got++
				b.Release()
			}
			// Streaming may drop outputs still queued when the run fails.
			if errs != 1 || got > 4 || (r.Engine == flow.Sequential && got != 4) {
				t.Errorf("%d batches and %d errors; want 4 (at most 4 streaming) and 1", got, errs)
			}
		})
	}
}

// A stream dropped without Close is closed once unreachable.
func TestDroppedStreamIsClosed(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			c := &center{mem: mem}
			src := numbers(t, mem, 0, 1000, 10)
			defer src.Close()
			p := pipeline(t, []flow.Node{flow.Named("c", c)})
			func() {
				s, err := r.FitTransform(ctx, p, src)
				if err != nil {
					t.Fatal(err)
				}
				b, err := s.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				b.Release()
			}()
			deadline := time.Now().Add(10 * time.Second)
			for {
				runtime.GC()
				s, err := r.Transform(ctx, p, src)
				if err == nil {
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					break // the dropped run has let go of its steps
				}
				if !errors.Is(err, flow.ErrInUse) {
					t.Fatal(err)
				}
				if time.Now().After(deadline) {
					t.Fatal("a dropped stream still holds its run after 10 s of GC")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	goleak.VerifyNone(t)
	mem.AssertSize(t, 0)
}
