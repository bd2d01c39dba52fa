package flow_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"go.uber.org/goleak"
)

// A union branch that is a pipeline whose last stage is replicated with an
// out-of-order barrier used to yield nothing and hang.
func TestUnionBranchReplicatedOutOfOrder(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			branch := pipeline(t, []flow.Node{
				flow.Named("one", scale{mem, 1}),
				flow.Named("two", jitter{scale{mem, 2}, time.Millisecond}, flow.Replicas(2), flow.Barrier(barrier.OutOfOrder)),
			})
			u, err := flow.NewUnion(flow.Named("a", scale{mem, 1}), flow.Named("b", branch))
			if err != nil {
				t.Fatal(err)
			}
			src := numbers(t, mem, 0, 200, 10)
			defer src.Close()
			got := transform(ctx, t, r, pipeline(t, []flow.Node{flow.Named("u", u)}), src, "a__x", "b__x")
			if len(got.seqs) != 20 {
				t.Fatalf("%d batches; want 20", len(got.seqs))
			}
			for i := range 200 {
				if got.cols["a__x"][i] != float64(i) || got.cols["b__x"][i] != 2*float64(i) {
					t.Fatalf("row %d: a=%v b=%v; want %d and %d", i, got.cols["a__x"][i], got.cols["b__x"][i], i, 2*i)
				}
			}
		})
	}
}

// uneven returns X and Y with different row counts.
type uneven struct{ mem memory.Allocator }

func (u uneven) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.X.Retain()
	return flow.Batch{X: in.X, Y: in.X.NewSlice(0, in.X.NumRows()-1)}, nil
}

func TestRowCountMismatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			src := numbers(t, mem, 0, 20, 10)
			defer src.Close()
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("uneven", uneven{mem})}), src)
			if err != nil {
				t.Fatal(err)
			}
			_, err = flow.Collect(ctx, s)
			if err == nil || !strings.Contains(err.Error(), `step "uneven"`) || !strings.Contains(err.Error(), "10 rows") || !strings.Contains(err.Error(), "9 rows") {
				t.Fatalf("got %v; want an error naming the step and both row counts", err)
			}
		})
	}
}

// ctxErr returns ctx.Err() (not its cause) once ctx is done.
type ctxErr struct{ started chan struct{} }

func (c ctxErr) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	select {
	case c.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return flow.Batch{}, ctx.Err()
}

func TestCancelCauseKept(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cause := errors.New("operator pulled the plug")
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			ctx, cancel := context.WithCancelCause(deadline(t))
			started := make(chan struct{}, 1)
			src := numbers(t, mem, 0, 20, 10)
			defer src.Close()
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("wait", ctxErr{started})}), src)
			if err != nil {
				t.Fatal(err)
			}
			go func() { <-started; cancel(cause) }()
			_, err = flow.Collect(t.Context(), s)
			if !errors.Is(err, cause) {
				t.Fatalf("got %v; want an error wrapping the cause", err)
			}
		})
	}
}

// leaky returns a batch together with an error on its third batch.
type leaky struct {
	src *minibatch.Memory
	n   int
}

func (l *leaky) Next(ctx context.Context) (flow.Batch, error) {
	b, err := l.src.Next(ctx)
	if l.n++; l.n == 3 && err == nil {
		return b, errors.New("disk on fire")
	}
	return b, err
}

func TestSourceBatchWithErrorReleased(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			src := numbers(t, mem, 0, 50, 10)
			defer src.Close()
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("a", scale{mem, 1})}), &leaky{src: src})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := flow.Collect(ctx, s); err == nil || !strings.Contains(err.Error(), "disk on fire") {
				t.Fatalf("got %v; want the source's error", err)
			}
		})
	}
}

// Close returns promptly while the source blocks in a read that ignores
// ctx: a CSV stream from a pipe that sends nothing.
func TestCloseWhileSourceBlocks(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			ctx := deadline(t)
			pr, pw := io.Pipe()
			done := make(chan struct{})
			var src *minibatch.CSVSource
			go func() { // the header, then nothing
				defer close(done)
				pw.Write([]byte("x\n1\n2\n"))
			}()
			src, err := minibatch.NewCSV(pr, minibatch.WithAllocator(mem), minibatch.WithBatchRows(1), minibatch.WithInferRows(1))
			if err != nil {
				t.Fatal(err)
			}
			<-done
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("a", passThrough{})}), src)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // the reader: its Next blocks in the pipe
				defer wg.Done()
				for {
					b, err := s.Next(ctx)
					if err != nil {
						return
					}
					b.Release()
				}
			}()
			time.Sleep(50 * time.Millisecond)
			closed := make(chan error, 1)
			go func() { closed <- s.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close: %v", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Close did not return while the source blocked")
			}
			if _, err := s.Next(ctx); !errors.Is(err, flow.ErrClosed) {
				t.Errorf("Next after Close: got %v; want ErrClosed", err)
			}
			pw.Close() // the blocked read returns; the abandoned goroutine ends
			wg.Wait()
			select {
			case <-s.Done():
			case <-ctx.Done():
				t.Fatal("the run did not let go of its source")
			}
			src.Close()
		})
	}
}

// Close from another goroutine while Next runs a step.
func TestCloseDuringNext(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			ctx := deadline(t)
			src := numbers(t, mem, 0, 100, 10)
			defer src.Close()
			c := &center{mem: mem}
			p := pipeline(t, []flow.Node{flow.Named("c", c), flow.Named("slow", jitter{scale{mem, 1}, 5 * time.Millisecond})})
			if _, err := r.Fit(ctx, p, src); err != nil {
				t.Fatal(err)
			}
			src.Rewind()
			s, err := r.Transform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Add(1)
			nextErr := make(chan error, 1)
			go func() {
				defer wg.Done()
				for {
					b, err := s.Next(ctx)
					if err != nil {
						nextErr <- err
						return
					}
					b.Release()
				}
			}()
			time.Sleep(8 * time.Millisecond)
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if c.teardown != 2 || c.setups != 2 {
				t.Errorf("setups %d, teardowns %d after the fit and the closed transform; want 2 and 2", c.setups, c.teardown)
			}
			wg.Wait()
			if err := <-nextErr; !errors.Is(err, flow.ErrClosed) {
				t.Errorf("Next racing Close: got %v; want ErrClosed", err)
			}
			if _, err := s.Next(ctx); !errors.Is(err, flow.ErrClosed) {
				t.Errorf("Next after Close: got %v; want ErrClosed", err)
			}
		})
	}
}

func TestUnionJoinErrorNamesStep(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	var msgs []string
	for _, r := range runners(mem) {
		u, err := flow.NewUnion(flow.Named("a", scale{mem, 1}), flow.Named("b", dropRow{}))
		if err != nil {
			t.Fatal(err)
		}
		src := numbers(t, mem, 0, 20, 10)
		s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("u", u)}), src)
		if err != nil {
			t.Fatal(err)
		}
		_, err = flow.Collect(ctx, s)
		src.Close()
		var se *flow.StepError
		if !errors.As(err, &se) || se.Path.String() != "u" || !se.HasSeq || se.Seq != 0 {
			t.Fatalf("%s: got %v; want a StepError of step \"u\" at batch 0", r.Engine, err)
		}
		msgs = append(msgs, err.Error())
	}
	if !slices.Equal(msgs[:1], msgs[1:]) {
		t.Errorf("engines differ:\n%s\n%s", msgs[0], msgs[1])
	}
}

// dropRow drops the last row.
type dropRow struct{}

func (dropRow) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	x := in.X.NewSlice(0, in.X.NumRows()-1)
	return flow.Batch{X: x}, nil
}

// passThrough returns its input.
type passThrough struct{}

func (passThrough) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

var _ = array.NewRecordBatch

// A Joiner fit over a CSV read from a plain io.Reader (which cannot
// rewind) spills it and gives the same result as over the file.
func TestJoinerOverCSVReader(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	var text strings.Builder
	text.WriteString("x,id\n")
	for i := range 500 {
		fmt.Fprintf(&text, "%d.5,%d\n", i, i)
	}
	path := filepath.Join(t.TempDir(), "data.csv")
	if err := os.WriteFile(path, []byte(text.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := []minibatch.Option{minibatch.WithAllocator(mem), minibatch.WithBatchRows(64)}
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			r.SpillDir = t.TempDir()
			fit := func(src flow.Source) (float64, []float64) {
				c, rec := &center{mem: mem}, &record{}
				p := pipeline(t, []flow.Node{flow.Named("center", c, flow.Barrier(barrier.Joiner)), flow.Named("rec", rec)})
				if _, err := r.Fit(ctx, p, src); err != nil {
					t.Fatal(err)
				}
				return c.mean(), rec.seen
			}
			file, err := minibatch.OpenCSV(path, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			pipe, err := minibatch.NewCSV(struct{ io.Reader }{strings.NewReader(text.String())}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer pipe.Close()
			if !flow.Replayable(file) || flow.Replayable(pipe) {
				t.Fatalf("Replayable: file %v, reader %v; want true, false", flow.Replayable(file), flow.Replayable(pipe))
			}
			wantMean, wantSeen := fit(file)
			gotMean, gotSeen := fit(pipe)
			if gotMean != wantMean || !slices.Equal(gotSeen, wantSeen) || len(gotSeen) != 500 {
				t.Errorf("over the reader: mean %v, %d rows; over the file: mean %v, %d rows", gotMean, len(gotSeen), wantMean, len(wantSeen))
			}
			if left, _ := os.ReadDir(r.SpillDir); len(left) != 0 {
				t.Errorf("spill left %d files behind", len(left))
			}
		})
	}
}
