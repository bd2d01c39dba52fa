package flow_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// numbers is a replayable source of x = lo … lo+n-1 (float64) and an id
// column with the same values (int64), in batches of size rows.
func numbers(t *testing.T, mem memory.Allocator, lo, n, size int) *minibatch.Memory {
	t.Helper()
	xs := make([]float64, n)
	ids := make([]int64, n)
	for i := range n {
		xs[i], ids[i] = float64(lo+i), int64(lo+i)
	}
	src, err := minibatch.FromSlices(size, []minibatch.Column{minibatch.Float64s("x", xs), minibatch.Int64s("id", ids)}, nil, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// once hides a source's Rewind, so a run must spill it.
type once struct{ flow.Source }

func runners(mem memory.Allocator) []flow.Runner {
	return []flow.Runner{{Engine: flow.Sequential, Allocator: mem}, {Engine: flow.Streaming, Allocator: mem}}
}

func pipeline(t *testing.T, nodes []flow.Node, opts ...flow.Option) *flow.Pipeline {
	t.Helper()
	p, err := flow.NewPipeline(nodes, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// output is what a run produced: the batches' sequence numbers and the
// values of the named columns, concatenated.
type output struct {
	seqs []int64
	cols map[string][]float64
}

func transform(ctx context.Context, t *testing.T, r flow.Runner, p *flow.Pipeline, src flow.Source, cols ...string) output {
	t.Helper()
	s, err := r.Transform(ctx, p, src)
	if err != nil {
		t.Fatal(err)
	}
	return collect(ctx, t, s, cols...)
}

func collect(ctx context.Context, t *testing.T, s *flow.Stream, cols ...string) output {
	t.Helper()
	bs, err := flow.Collect(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	out := output{cols: map[string][]float64{}}
	for _, b := range bs {
		out.seqs = append(out.seqs, b.Seq)
		for _, c := range cols {
			out.cols[c] = append(out.cols[c], column(b.X, c)...)
		}
		b.Release()
	}
	return out
}

func TestTimesEight(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, replicas := range []int{1, 2, 4} {
			for _, capacity := range []int{1, 5, 10} {
				for _, nested := range []bool{false, true} {
					name := fmt.Sprintf("%v/replicas=%d/cap=%d/nested=%v", r.Engine, replicas, capacity, nested)
					t.Run(name, func(t *testing.T) {
						opts := []flow.Option{flow.Replicas(replicas), flow.QueueCapacity(capacity)}
						p := pipeline(t, []flow.Node{
							flow.Named("a", scale{mem, 2}, opts...),
							flow.Named("b", scale{mem, 2}, opts...),
							flow.Named("c", scale{mem, 2}, opts...),
						})
						if nested {
							p = pipeline(t, []flow.Node{flow.Named("outer", p)})
						}
						src := numbers(t, mem, 0, 100, 10)
						defer src.Close()
						got := transform(ctx, t, r, p, src, "x", "id")
						for i := range 100 {
							if got.cols["x"][i] != 8*float64(i) || got.cols["id"][i] != float64(i) {
								t.Fatalf("row %d: got x=%v id=%v; want x=%v id=%d", i, got.cols["x"][i], got.cols["id"][i], 8*i, i)
							}
						}
						if want := []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(got.seqs, want) {
							t.Errorf("seqs %v; want %v", got.seqs, want)
						}
					})
				}
			}
		}
	}
}

func TestIncompleteLastBatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, tc := range []struct {
			last minibatch.Remainder
			want int
		}{{minibatch.Keep, 15}, {minibatch.Drop, 10}} {
			t.Run(fmt.Sprintf("%v/%v", r.Engine, tc.last), func(t *testing.T) {
				p := pipeline(t, []flow.Node{
					flow.Named("a", scale{mem, 2}, flow.Replicas(2)),
					flow.Named("b", scale{mem, 2}, flow.Replicas(2)),
					flow.Named("c", scale{mem, 2}, flow.Replicas(2)),
				})
				src := numbers(t, mem, 0, 15, 15)
				defer src.Close()
				rb, err := minibatch.NewRebatcher(src, 10, tc.last, minibatch.WithAllocator(mem))
				if err != nil {
					t.Fatal(err)
				}
				defer rb.Close()
				got := transform(ctx, t, r, p, rb, "x")
				if len(got.cols["x"]) != tc.want {
					t.Fatalf("got %d rows; want %d", len(got.cols["x"]), tc.want)
				}
				for i, v := range got.cols["x"] {
					if v != 8*float64(i) {
						t.Fatalf("row %d: got %v; want %v", i, v, 8*i)
					}
				}
			})
		}
	}
}

func TestInOrderMatchesSequentialUnderJitter(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	build := func(b barrier.Kind) *flow.Pipeline {
		opts := []flow.Option{flow.Replicas(2), flow.Barrier(b)}
		return pipeline(t, []flow.Node{
			flow.Named("a", scale{mem, 2}, opts...),
			flow.Named("jitter", jitter{scale{mem, 3}, 2 * time.Millisecond}, opts...),
			flow.Named("c", scale{mem, 0.5}, opts...),
		})
	}
	run := func(r flow.Runner, b barrier.Kind) output {
		src := numbers(t, mem, 0, 200, 5)
		defer src.Close()
		return transform(ctx, t, r, build(b), src, "x", "id")
	}
	seq := run(flow.Runner{Allocator: mem}, barrier.InOrder)
	in := run(flow.Runner{Engine: flow.Streaming, Allocator: mem}, barrier.InOrder)
	if !slices.Equal(in.seqs, seq.seqs) || !slices.Equal(in.cols["x"], seq.cols["x"]) || !slices.Equal(in.cols["id"], seq.cols["id"]) {
		t.Fatalf("in-order streaming differs from sequential:\n got seqs %v\nwant seqs %v", in.seqs, seq.seqs)
	}
	for i, v := range seq.cols["x"] {
		if v != 3*float64(i) {
			t.Fatalf("sequential row %d: got %v; want %v", i, v, 3*i)
		}
	}
	ooo := run(flow.Runner{Engine: flow.Streaming, Allocator: mem}, barrier.OutOfOrder)
	type row struct{ id, x float64 }
	rows := func(o output) []row {
		var rs []row
		for i := range o.cols["id"] {
			rs = append(rs, row{o.cols["id"][i], o.cols["x"][i]})
		}
		slices.SortFunc(rs, func(a, b row) int { return int(a.id - b.id) })
		return rs
	}
	if !slices.Equal(rows(ooo), rows(seq)) {
		t.Fatal("out-of-order streaming holds different rows than sequential")
	}
}

func TestFeatureUnion(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			u, err := flow.NewUnion(
				flow.Named("x5", scale{mem, 5}, flow.Replicas(2)),
				flow.Named("x2", scale{mem, 2}, flow.Replicas(3)),
				flow.Named("x3", pipeline(t, []flow.Node{flow.Named("s", scale{mem, 3})}), flow.Replicas(2)),
			)
			if err != nil {
				t.Fatal(err)
			}
			p := pipeline(t, []flow.Node{flow.Named("union", u), flow.Named("after", &record{})})
			src := numbers(t, mem, 0, 100, 10)
			defer src.Close()
			s, err := r.Transform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			bs, err := flow.Collect(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				for _, b := range bs {
					b.Release()
				}
			}()
			var names []string
			for _, f := range bs[0].X.Schema().Fields() {
				names = append(names, f.Name)
			}
			if want := []string{"x5__x", "x5__id", "x2__x", "x2__id", "x3__x", "x3__id"}; !slices.Equal(names, want) {
				t.Fatalf("columns %v; want %v", names, want)
			}
			row := 0
			for _, b := range bs {
				c5, c2, c3, id := column(b.X, "x5__x"), column(b.X, "x2__x"), column(b.X, "x3__x"), column(b.X, "x2__id")
				for i := range c5 {
					if id[i] != float64(row) || c5[i] != 5*id[i] || c2[i] != 2*id[i] || c3[i] != 3*id[i] {
						t.Fatalf("row %d: got id=%v ×5=%v ×2=%v ×3=%v", row, id[i], c5[i], c2[i], c3[i])
					}
					row++
				}
			}
			if row != 100 {
				t.Fatalf("got %d rows; want 100", row)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, r := range runners(mem) {
		for _, tc := range []struct {
			name    string
			step    flow.Step
			check   func(error) bool
			message string
		}{
			{"error", failing{scale{mem, 2}, 1, false}, func(err error) bool { return errors.Is(err, errBoom) }, "boom"},
			{"panic", failing{scale{mem, 2}, 1, true}, func(err error) bool {
				var pe *flow.PanicError
				return errors.As(err, &pe) && pe.Value == "kaboom" && strings.Contains(string(pe.Stack), "failing")
			}, "kaboom"},
		} {
			for _, replicas := range []int{1, 3} {
				t.Run(fmt.Sprintf("%v/%s/replicas=%d", r.Engine, tc.name, replicas), func(t *testing.T) {
					defer goleak.VerifyNone(t)
					ctx, cancel := context.WithTimeout(t.Context(), time.Second)
					defer cancel()
					p := pipeline(t, []flow.Node{
						flow.Named("a", scale{mem, 2}, flow.Replicas(replicas)),
						flow.Named("bad", tc.step, flow.Replicas(replicas)),
						flow.Named("c", scale{mem, 2}, flow.Replicas(replicas)),
					}, flow.QueueCapacity(2))
					src := numbers(t, mem, 0, 1000, 10)
					defer src.Close()
					s, err := r.Transform(ctx, p, src)
					if err != nil {
						t.Fatal(err)
					}
					_, err = flow.Collect(ctx, s)
					if err == nil || !tc.check(err) {
						t.Fatalf("got %v; want the step's %s", err, tc.name)
					}
					var se *flow.StepError
					if !errors.As(err, &se) || se.Path.String() != "bad" || se.Seq != 1 || !se.HasSeq {
						t.Fatalf("got %#v; want a StepError for step \"bad\", batch 1", err)
					}
					if msg := err.Error(); !strings.Contains(msg, `step "bad"`) || !strings.Contains(msg, tc.message) {
						t.Errorf("message %q names neither the step nor the cause", msg)
					}
					if ctx.Err() != nil {
						t.Fatal("the failure took more than a second to surface")
					}
				})
			}
		}
	}
}

func TestCancelMidRun(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			started := make(chan struct{}, 1)
			p := pipeline(t, []flow.Node{
				flow.Named("a", scale{mem, 2}, flow.Replicas(2)),
				flow.Named("block", blocking{started}),
			})
			src := numbers(t, mem, 0, 1000, 10)
			defer src.Close()
			go func() {
				select {
				case <-started:
				case <-time.After(5 * time.Second):
				}
				cancel()
			}()
			begin := time.Now()
			_, err := r.Fit(ctx, pipeline(t, []flow.Node{flow.Named("p", p), flow.Named("fit", &record{})}), src)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v; want context.Canceled", err)
			}
			if d := time.Since(begin); d > 6*time.Second {
				t.Fatalf("cancellation took %v", d)
			}
		})
	}
}

func TestConsumerStopsEarly(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			p := pipeline(t, []flow.Node{
				flow.Named("a", scale{mem, 2}, flow.Replicas(2)),
				flow.Named("b", scale{mem, 2}, flow.Replicas(2), flow.Barrier(barrier.OutOfOrder)),
			}, flow.QueueCapacity(3))
			src := numbers(t, mem, 0, 10000, 10)
			defer src.Close()
			s, err := r.Transform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				b, err := s.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				b.Release()
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close after an early stop: %v", err)
			}
			if _, err := s.Next(ctx); err == nil {
				t.Fatal("Next after Close returned a batch")
			}
		})
	}
}

func TestReuseAfterFit(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			c := &center{mem: mem}
			p := pipeline(t, []flow.Node{flow.Named("x2", scale{mem, 2}, flow.Replicas(2)), flow.Named("center", c)})
			fitSrc := numbers(t, mem, 0, 100, 10)
			defer fitSrc.Close()
			if _, err := r.Fit(ctx, p, fitSrc); err != nil {
				t.Fatal(err)
			}
			if c.mean() != 99 { // mean of 2×(0…99)
				t.Fatalf("fitted mean %v; want 99", c.mean())
			}
			for _, span := range [][2]int{{0, 100}, {300, 50}} {
				src := numbers(t, mem, span[0], span[1], 10)
				got := transform(ctx, t, r, p, src, "x")
				src.Close()
				if len(got.cols["x"]) != span[1] {
					t.Fatalf("%v: got %d rows; want %d", span, len(got.cols["x"]), span[1])
				}
				for i, v := range got.cols["x"] {
					if want := 2*float64(span[0]+i) - 99; v != want {
						t.Fatalf("%v row %d: got %v; want %v", span, i, v, want)
					}
				}
			}
			if c.setups != 3 || c.teardown != 3 {
				t.Errorf("setups %d, teardowns %d; want one each per run (3)", c.setups, c.teardown)
			}
		})
	}
}

func TestJoinerFitsOnWholeStream(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, spill := range []bool{false, true} {
			for _, replicas := range []int{1, 2} {
				t.Run(fmt.Sprintf("%v/spill=%v/replicas=%d", r.Engine, spill, replicas), func(t *testing.T) {
					defer goleak.VerifyNone(t)
					c := &center{mem: mem}
					rec := &record{}
					p := pipeline(t, []flow.Node{
						flow.Named("center", c, flow.Barrier(barrier.Joiner), flow.Replicas(replicas)),
						flow.Named("record", rec),
					})
					mb := numbers(t, mem, 0, 100, 10)
					defer mb.Close()
					var src flow.Source = mb
					if spill {
						src = once{mb}
					}
					r.SpillDir = t.TempDir()
					if _, err := r.Fit(ctx, p, src); err != nil {
						t.Fatal(err)
					}
					if c.n != 100 {
						t.Errorf("center fitted on %d rows; want 100 (one pass)", c.n)
					}
					if left, _ := os.ReadDir(r.SpillDir); len(left) != 0 {
						t.Errorf("spill left %d files behind", len(left))
					}
					slices.Sort(rec.seen)
					if len(rec.seen) != 100 {
						t.Fatalf("record saw %d rows; want 100", len(rec.seen))
					}
					for i, v := range rec.seen {
						if want := float64(i) - 49.5; v != want {
							t.Fatalf("record saw %v at rank %d; want %v (centred on the whole stream's mean)", v, i, want)
						}
					}
				})
			}
		}
	}
}

func TestFitTransformThroughJoiner(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			p := pipeline(t, []flow.Node{
				flow.Named("center", &center{mem: mem}, flow.Barrier(barrier.Joiner)),
				flow.Named("x2", scale{mem, 2}),
			})
			src := numbers(t, mem, 0, 100, 10)
			defer src.Close()
			s, err := r.FitTransform(ctx, p, once{src})
			if err != nil {
				t.Fatal(err)
			}
			got := collect(ctx, t, s, "x")
			for i, v := range got.cols["x"] {
				if want := 2 * (float64(i) - 49.5); v != want {
					t.Fatalf("row %d: got %v; want %v", i, v, want)
				}
			}
		})
	}
}

func TestReplicatedFitNeedsMerger(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	p := pipeline(t, []flow.Node{flow.Named("sum", &sumFit{}, flow.Replicas(2))})
	src := numbers(t, mem, 0, 100, 10)
	defer src.Close()
	_, err := flow.Runner{Engine: flow.Streaming}.Fit(ctx, p, src)
	if err == nil || !strings.Contains(err.Error(), `step "sum": cannot fit 2 replicas`) || !strings.Contains(err.Error(), "flow.Merger") {
		t.Fatalf("got %v; want a refusal naming the step and flow.Merger", err)
	}
	// Transforming needs no merge.
	got := transform(ctx, t, flow.Runner{Engine: flow.Streaming}, p, src, "x")
	if len(got.cols["x"]) != 100 {
		t.Fatalf("transform gave %d rows; want 100", len(got.cols["x"]))
	}
}

func TestBuildErrors(t *testing.T) {
	s := scale{memory.DefaultAllocator, 1}
	for _, tc := range []struct {
		name  string
		nodes []flow.Node
		opts  []flow.Option
		want  string
	}{
		{"empty", nil, nil, "has no steps"},
		{"no name", []flow.Node{flow.Named("", s)}, nil, "has no name"},
		{"duplicate", []flow.Node{flow.Named("a", s), flow.Named("a", s)}, nil, `duplicate step name "a"`},
		{"nil step", []flow.Node{flow.Named("a", nil)}, nil, `step "a" is nil`},
		{"reserved", []flow.Node{flow.Named("a__b", s)}, nil, "reserved"},
		{"bad replicas", []flow.Node{flow.Named("a", s, flow.Replicas(-1))}, nil, "Replicas(-1)"},
		{"bad capacity", []flow.Node{flow.Named("a", s, flow.QueueCapacity(-2))}, nil, "QueueCapacity(-2)"},
		{"bad barrier", []flow.Node{flow.Named("a", s, flow.Barrier(barrier.Kind(9)))}, nil, "unknown barrier"},
		{"replicas default", []flow.Node{flow.Named("a", s)}, []flow.Option{flow.Replicas(2)}, "belong to one stage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := flow.NewPipeline(tc.nodes, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want an error containing %q", err, tc.want)
			}
		})
	}
	inner := pipeline(t, []flow.Node{flow.Named("c", &center{}, flow.Barrier(barrier.Joiner)), flow.Named("d", s)})
	if _, err := flow.NewPipeline([]flow.Node{flow.Named("in", inner, flow.Replicas(2))}); err == nil || !strings.Contains(err.Error(), "Joiner") {
		t.Errorf("replicated sub-pipeline with a Joiner: got %v; want an error", err)
	}
	if _, err := flow.NewUnion(flow.Named("in", inner)); err == nil || !strings.Contains(err.Error(), "Joiner") {
		t.Errorf("union branch with a Joiner: got %v; want an error", err)
	}
	u, _ := flow.NewUnion(flow.Named("a", s))
	if _, err := flow.NewPipeline([]flow.Node{flow.Named("u", u, flow.Replicas(2))}); err == nil || !strings.Contains(err.Error(), "branches") {
		t.Errorf("replicated union: got %v; want an error", err)
	}
}

// TestStreamIsSource chains the output of one run into another.
func TestStreamIsSource(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	r := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	src := numbers(t, mem, 0, 50, 10)
	defer src.Close()
	first, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("a", scale{mem, 2})}), src)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	got := transform(ctx, t, r, pipeline(t, []flow.Node{flow.Named("b", scale{mem, 3})}), first, "x")
	for i, v := range got.cols["x"] {
		if v != 6*float64(i) {
			t.Fatalf("row %d: got %v; want %v", i, v, 6*i)
		}
	}
	if _, err := first.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("first stream after its end: got %v; want io.EOF", err)
	}
}

// fragile is a mergeable step whose replicas fail to set up after the
// first; every replica that was set up must be torn down.
type fragile struct {
	center
	made     *int
	downs    *int
	failFrom int
}

func (f *fragile) Replica() flow.Step {
	*f.made++
	return &fragile{center: center{mem: f.mem}, made: f.made, downs: f.downs, failFrom: f.failFrom}
}

func (f *fragile) Merge([]flow.Step) error { return nil }

func (f *fragile) Setup(context.Context) error {
	if *f.made >= f.failFrom && f.failFrom > 0 {
		return errors.New("no device left")
	}
	return nil
}

func (f *fragile) Teardown(context.Context) error { *f.downs++; return nil }

func TestReplicaSetupFailureTearsDown(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	var made, downs int
	// The step itself sets up (made == 0); its second replica fails.
	f := &fragile{center: center{mem: mem}, made: &made, downs: &downs, failFrom: 2}
	p := pipeline(t, []flow.Node{flow.Named("f", f, flow.Replicas(3))})
	src := numbers(t, mem, 0, 10, 5)
	defer src.Close()
	_, err := flow.Runner{Engine: flow.Streaming, Allocator: mem}.Fit(ctx, p, src)
	if err == nil || !strings.Contains(err.Error(), "no device left") || !strings.Contains(err.Error(), `step "f"`) {
		t.Fatalf("got %v; want the setup error naming step \"f\"", err)
	}
	// Torn down: the first replica, and the step itself.
	if downs != 2 {
		t.Fatalf("%d teardowns; want 2 (the replica that was set up, and the step)", downs)
	}
}

func TestFailureAfterSpilledJoiner(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			r.SpillDir = t.TempDir()
			u, err := flow.NewUnion(flow.Named("ok", scale{mem, 1}), flow.Named("bad", failing{scale{mem, 2}, 3, false}, flow.Replicas(2)))
			if err != nil {
				t.Fatal(err)
			}
			p := pipeline(t, []flow.Node{
				flow.Named("center", &center{mem: mem}, flow.Barrier(barrier.Joiner), flow.Replicas(2)),
				flow.Named("union", u),
			})
			src := numbers(t, mem, 0, 100, 10)
			defer src.Close()
			s, err := r.FitTransform(ctx, p, once{src})
			if err != nil {
				t.Fatal(err)
			}
			_, err = flow.Collect(ctx, s)
			var se *flow.StepError
			if !errors.Is(err, errBoom) || !errors.As(err, &se) || se.Path.String() != "union/bad" || se.Seq != 3 {
				t.Fatalf("got %v; want boom from step \"union/bad\" at batch 3", err)
			}
			if left, _ := os.ReadDir(r.SpillDir); len(left) != 0 {
				t.Errorf("spill left %d files behind", len(left))
			}
		})
	}
}

func TestEachStopsOnCallbackError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	stop := errors.New("enough")
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			src := numbers(t, mem, 0, 1000, 10)
			defer src.Close()
			s, err := r.Transform(ctx, pipeline(t, []flow.Node{flow.Named("a", scale{mem, 2}, flow.Replicas(2))}), src)
			if err != nil {
				t.Fatal(err)
			}
			seen := 0
			err = s.Each(ctx, func(b flow.Batch) error {
				if seen++; seen == 3 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || seen != 3 {
				t.Fatalf("got %v after %d batches; want the callback's error after 3", err, seen)
			}
		})
	}
}

func TestInOrderAfterOutOfOrder(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	defer goleak.VerifyNone(t)
	u, err := flow.NewUnion(
		flow.Named("x1", scale{mem, 1}),
		flow.Named("x3", jitter{scale{mem, 3}, time.Millisecond}, flow.Replicas(2)),
	)
	if err != nil {
		t.Fatal(err)
	}
	p := pipeline(t, []flow.Node{
		flow.Named("shake", jitter{scale{mem, 2}, 2 * time.Millisecond}, flow.Replicas(3), flow.Barrier(barrier.OutOfOrder)),
		flow.Named("one", scale{mem, 1}), // one replica, unordered input: must reorder
		flow.Named("again", jitter{scale{mem, 1}, time.Millisecond}, flow.Replicas(2), flow.Barrier(barrier.OutOfOrder)),
		flow.Named("union", u), // branches see unordered input
	}, flow.QueueCapacity(1))
	src := numbers(t, mem, 0, 300, 3)
	defer src.Close()
	got := transform(ctx, t, flow.Runner{Engine: flow.Streaming, Allocator: mem}, p, src, "x1__x", "x3__x", "x1__id")
	if want := 100; len(got.seqs) != want {
		t.Fatalf("got %d batches; want %d", len(got.seqs), want)
	}
	for i, s := range got.seqs {
		if s != int64(i) {
			t.Fatalf("batch %d has seq %d; want batches in order", i, s)
		}
	}
	for i := range 300 {
		if got.cols["x1__id"][i] != float64(i) || got.cols["x1__x"][i] != 2*float64(i) || got.cols["x3__x"][i] != 6*float64(i) {
			t.Fatalf("row %d: id %v x1 %v x3 %v", i, got.cols["x1__id"][i], got.cols["x1__x"][i], got.cols["x3__x"][i])
		}
	}
}
