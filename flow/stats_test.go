package flow_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// pause multiplies x by f after sleeping exactly d.
type pause struct {
	scale
	d time.Duration
}

func (p pause) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if err := sleep(ctx, p.d); err != nil {
		return flow.Batch{}, err
	}
	return p.scale.Transform(ctx, in)
}

// slowSource sleeps d before each read of its source.
type slowSource struct {
	flow.Source
	d time.Duration
}

func (s slowSource) Next(ctx context.Context) (flow.Batch, error) {
	if err := sleep(ctx, s.d); err != nil {
		return flow.Batch{}, err
	}
	return s.Source.Next(ctx)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// names returns the printed names of stages.
func names(stages []flow.StageStats) []string {
	var out []string
	for _, s := range stages {
		out = append(out, s.Name())
	}
	return out
}

// checkBounded fails t where a time of st exceeds its elapsed time, in the
// whole run or in a pass, or where the passes add up to more than the run.
func checkBounded(t *testing.T, st flow.Stats) {
	t.Helper()
	check := func(where string, stages []flow.StageStats, elapsed time.Duration) {
		for _, s := range stages {
			for _, f := range []struct {
				name string
				d    time.Duration
			}{{"Busy", s.Busy}, {"WaitIn", s.WaitIn}, {"WaitOut", s.WaitOut}} {
				if f.d < 0 || f.d > elapsed {
					t.Errorf("%s: stage %s (×%d): %s %v; want within [0, %v]", where, s.Name(), s.Replicas, f.name, f.d, elapsed)
				}
			}
		}
	}
	check("run", st.Stages, st.Elapsed)
	var sum time.Duration
	for i, ps := range st.Passes {
		check(fmt.Sprintf("pass %d", i+1), ps.Stages, ps.Elapsed)
		sum += ps.Elapsed
	}
	if sum > st.Elapsed {
		t.Errorf("passes took %v together; want at most the run's %v", sum, st.Elapsed)
	}
}

func TestStats(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			p := pipeline(t, []flow.Node{
				flow.Named("fast", scale{mem, 2}),
				flow.Named("slow", pause{scale{mem, 1}, 2 * time.Millisecond}),
				flow.Named("last", scale{mem, 2}),
			})
			src := numbers(t, mem, 0, 200, 10)
			defer src.Close()
			s, err := r.Transform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			first, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			first.Release()
			mid := s.Stats()
			if mid.Elapsed <= 0 || len(mid.Stages) != 4 || mid.Stages[3].BatchesOut < 1 || mid.Stages[0].BatchesOut < 1 {
				t.Fatalf("stats during the run:\n%v\nwant time passed, a batch read and a batch out of the last stage", mid)
			}
			checkBounded(t, mid)
			got := collect(ctx, t, s, "x")
			if len(got.cols["x"]) != 190 {
				t.Fatalf("got %d rows; want 190 after the first batch", len(got.cols["x"]))
			}
			st := s.Stats()
			checkBounded(t, st)
			if want := []string{"(source)", "fast", "slow", "last"}; !slices.Equal(names(st.Stages), want) {
				t.Fatalf("stages %v; want %v", names(st.Stages), want)
			}
			if len(st.Passes) != 1 || !slices.Equal(names(st.Passes[0].Stages), names(st.Stages)) {
				t.Fatalf("passes %+v; want one with the run's stages", st.Passes)
			}
			src0 := st.Stages[0]
			if !src0.Source || src0.Path != nil || src0.Replicas != 1 || src0.Passes != 1 ||
				src0.BatchesIn != 0 || src0.BatchesOut != 20 || src0.RowsOut != 200 || src0.Busy <= 0 {
				t.Errorf("source %+v; want Source, no path, 1 replica, 1 pass, 20 batches and 200 rows read, busy > 0", src0)
			}
			for _, ss := range st.Stages[1:] {
				if ss.Source || ss.Replicas != 1 || ss.Passes != 1 || ss.BatchesIn != 20 || ss.BatchesOut != 20 || ss.RowsIn != 200 || ss.RowsOut != 200 {
					t.Errorf("stage %s: %+v; want 1 replica, 1 pass, 20 batches and 200 rows each way", ss.Name(), ss)
				}
			}
			if slow := st.Stages[2]; slow.Busy < 20*2*time.Millisecond {
				t.Errorf("slow stage busy %v; want at least 20 × 2ms", slow.Busy)
			}
			if bn, _ := st.Bottleneck(); bn.Path.String() != "slow" {
				t.Errorf("bottleneck %q; want \"slow\"\n%v", bn.Name(), st)
			}
			if bn, _ := st.Passes[0].Bottleneck(); bn.Path.String() != "slow" {
				t.Errorf("pass bottleneck %q; want \"slow\"\n%v", bn.Name(), st)
			}
			last := st.Stages[3]
			if r.Engine == flow.Streaming && last.WaitIn < last.Busy {
				t.Errorf("the stage after the bottleneck waited %v for input, busy %v; want it starved", last.WaitIn, last.Busy)
			}
			if r.Engine == flow.Sequential && (last.WaitIn != 0 || last.WaitOut != 0 || src0.WaitOut != 0) {
				t.Errorf("sequential waits: last %v/%v, source out %v; want 0: nothing waits", last.WaitIn, last.WaitOut, src0.WaitOut)
			}
		})
	}
}

func TestStatsSourceBottleneck(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	const batches, wait = 15, 3 * time.Millisecond
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			p := pipeline(t, []flow.Node{
				flow.Named("a", scale{mem, 2}),
				flow.Named("b", scale{mem, 2}, flow.Replicas(2)),
			})
			src := numbers(t, mem, 0, 10*batches, 10)
			defer src.Close()
			s, err := r.Transform(ctx, p, slowSource{src, wait})
			if err != nil {
				t.Fatal(err)
			}
			if got := collect(ctx, t, s, "x"); len(got.cols["x"]) != 10*batches {
				t.Fatalf("got %d rows; want %d", len(got.cols["x"]), 10*batches)
			}
			st := s.Stats()
			checkBounded(t, st)
			bn, ok := st.Bottleneck()
			if !ok || !bn.Source || bn.Name() != "(source)" {
				t.Fatalf("bottleneck %q (found %v); want the source\n%v", bn.Name(), ok, st)
			}
			if bn.Busy < batches*wait || bn.BatchesOut != batches || bn.RowsOut != 10*batches {
				t.Errorf("source busy %v, read %d batches %d rows; want at least %v, %d, %d", bn.Busy, bn.BatchesOut, bn.RowsOut, batches*wait, batches, 10*batches)
			}
			if pb, _ := st.Passes[0].Bottleneck(); !pb.Source {
				t.Errorf("pass bottleneck %q; want the source", pb.Name())
			}
			if line := st.String(); !strings.HasSuffix(line, "\nbottleneck: (source) ("+fmt.Sprintf("%.0f", 100*bn.Utilization(st.Elapsed))+"% busy)") {
				t.Errorf("report does not end naming the source as bottleneck:\n%s", line)
			}
		})
	}
}

// TestStatsReplicas checks that the times of a replicated stage are per
// replica: four replicas that each sleep for a quarter of the run, and four
// that wait for them all the run long, both report less than the elapsed
// time, also while the run goes on.
func TestStatsReplicas(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	const batches, wait = 40, 4 * time.Millisecond
	for _, r := range runners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			p := pipeline(t, []flow.Node{
				flow.Named("slow", pause{scale{mem, 2}, wait}, flow.Replicas(4)),
				flow.Named("after", scale{mem, 2}, flow.Replicas(4)),
			})
			src := numbers(t, mem, 0, 10*batches, 10)
			defer src.Close()
			s, err := r.Transform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var polled []flow.Stats
			wg.Go(func() { // Stats from another goroutine while the run goes on
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
						polled = append(polled, s.Stats())
					}
				}
			})
			got := collect(ctx, t, s, "x")
			close(stop)
			wg.Wait()
			if len(got.cols["x"]) != 10*batches {
				t.Fatalf("got %d rows; want %d", len(got.cols["x"]), 10*batches)
			}
			for _, mid := range polled {
				checkBounded(t, mid)
			}
			st := s.Stats()
			checkBounded(t, st)
			want := 4
			if r.Engine == flow.Sequential {
				want = 1 // one goroutine runs every stage
			}
			for _, ss := range st.Stages[1:] {
				if ss.Replicas != want {
					t.Errorf("stage %s: %d replicas; want %d", ss.Name(), ss.Replicas, want)
				}
			}
			slow := st.Stages[1]
			if perReplica := batches * wait / time.Duration(want); slow.Busy < perReplica {
				t.Errorf("slow stage busy %v per replica; want at least %v", slow.Busy, perReplica)
			}
			if bn, _ := st.Bottleneck(); bn.Name() != "slow" {
				t.Errorf("bottleneck %q; want \"slow\"\n%v", bn.Name(), st)
			}
			if r.Engine == flow.Streaming {
				if after := st.Stages[2]; after.WaitIn < st.Elapsed/4 {
					t.Errorf("stage after: waited %v per replica for input in %v; want most of the run", after.WaitIn, st.Elapsed)
				}
			}
		})
	}
}

// TestStatsPasses fits a pipeline with a Joiner, which takes two passes over
// the source: each pass counts one read of it, the run's totals say over
// how many passes they are summed.
func TestStatsPasses(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		for _, spilled := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/spilled=%v", r.Engine, spilled), func(t *testing.T) {
				p := pipeline(t, []flow.Node{
					flow.Named("center", &center{mem: mem}, flow.Barrier(barrier.Joiner)),
					flow.Named("after", &center{mem: mem}),
					flow.Named("unfitted", scale{mem, 2}), // after the last fittable step: never runs
				})
				mb := numbers(t, mem, 0, 100, 10)
				defer mb.Close()
				var src flow.Source = mb
				if spilled {
					src = once{mb}
				}
				st, err := r.Fit(ctx, p, src)
				if err != nil {
					t.Fatal(err)
				}
				checkBounded(t, st)
				if len(st.Passes) != 2 {
					t.Fatalf("%d passes; want 2\n%v", len(st.Passes), st)
				}
				type row struct {
					name                                   string
					passes                                 int
					batchesIn, rowsIn, batchesOut, rowsOut int64
				}
				rows := func(stages []flow.StageStats) []row {
					var out []row
					for _, s := range stages {
						out = append(out, row{s.Name(), s.Passes, s.BatchesIn, s.RowsIn, s.BatchesOut, s.RowsOut})
					}
					return out
				}
				for _, tc := range []struct {
					where string
					got   []flow.StageStats
					want  []row
				}{
					{"pass 1", st.Passes[0].Stages, []row{
						{"(source)", 1, 0, 0, 10, 100},
						{"center", 1, 10, 100, 0, 0}, // fit only
					}},
					{"pass 2", st.Passes[1].Stages, []row{
						{"(source)", 1, 0, 0, 10, 100},
						{"center", 1, 10, 100, 10, 100},
						{"after", 1, 10, 100, 0, 0},
					}},
					{"run", st.Stages, []row{
						{"(source)", 2, 0, 0, 20, 200},
						{"center", 2, 20, 200, 10, 100},
						{"after", 1, 10, 100, 0, 0},
						{"unfitted", 0, 0, 0, 0, 0},
					}},
				} {
					if got := rows(tc.got); !slices.Equal(got, tc.want) {
						t.Errorf("%s: got %+v; want %+v", tc.where, got, tc.want)
					}
				}
				for i, ps := range st.Passes {
					if ps.Elapsed <= 0 || ps.Stages[0].Busy <= 0 {
						t.Errorf("pass %d: elapsed %v, source busy %v; want both > 0", i+1, ps.Elapsed, ps.Stages[0].Busy)
					}
				}
			})
		}
	}
}

// cells splits a row of the printed table at runs of two spaces or more,
// and returns the cells with the rune offset at which each starts.
func cells(line string) (texts []string, starts []int) {
	runes := []rune(line)
	for i := 0; i < len(runes); {
		j := i
		for j < len(runes) && !(runes[j] == ' ' && (j+1 == len(runes) || runes[j+1] == ' ')) {
			j++
		}
		texts, starts = append(texts, string(runes[i:j])), append(starts, i)
		for j < len(runes) && runes[j] == ' ' {
			j++
		}
		i = j
	}
	return texts, starts
}

func TestStatsString(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	header := []string{"stage", "replicas", "batches in→out", "rows in→out", "busy", "wait-in", "wait-out"}
	union, err := flow.NewUnion(flow.Named("a", scale{mem, 2}), flow.Named("b", scale{mem, 3}))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runners(mem) {
		t.Run(r.Engine.String()+"/transform", func(t *testing.T) {
			p := pipeline(t, []flow.Node{
				flow.Named("scale", pause{scale{mem, 2}, time.Millisecond}, flow.Replicas(2)),
				flow.Named("u", union),
			})
			src := numbers(t, mem, 0, 50, 10)
			defer src.Close()
			s, err := r.Transform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			collect(ctx, t, s)
			st := s.Stats()
			lines := strings.Split(st.String(), "\n")
			replicas := "2"
			if r.Engine == flow.Sequential {
				replicas = "1"
			}
			want := [][]string{
				header,
				{"(source)", "1", "-→5", "-→50"},
				{"scale", replicas, "5→5", "50→50"},
				{"u", "1", "5→5", "50→50"},
				{"u/a", "1", "5→5", "50→50"},
				{"u/b", "1", "5→5", "50→50"},
			}
			if len(lines) != len(want)+2 {
				t.Fatalf("%d lines; want a title, %d table rows and the bottleneck:\n%s", len(lines), len(want), st)
			}
			if re := regexp.MustCompile(`^elapsed \S+, 1 pass$`); !re.MatchString(lines[0]) {
				t.Errorf("title %q; want %v", lines[0], re)
			}
			checkTable(t, lines[1:len(lines)-1], want, 0)
			if bn, _ := st.Bottleneck(); lines[len(lines)-1] != fmt.Sprintf("bottleneck: %s (%.0f%% busy)", bn.Name(), 100*bn.Utilization(st.Elapsed)) {
				t.Errorf("last line %q; want the bottleneck %s", lines[len(lines)-1], bn.Name())
			}
		})
		t.Run(r.Engine.String()+"/passes", func(t *testing.T) {
			p := pipeline(t, []flow.Node{
				flow.Named("center", &center{mem: mem}, flow.Barrier(barrier.Joiner)),
				flow.Named("after", &center{mem: mem}),
			})
			src := numbers(t, mem, 0, 30, 10)
			defer src.Close()
			st, err := r.Fit(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(st.String(), "\n")
			want := [][]string{
				append([]string{"pass"}, header...),
				{"1", "(source)", "1", "-→3", "-→30"},
				{"1", "center", "1", "3→0", "30→0"},
				{"2", "(source)", "1", "-→3", "-→30"},
				{"2", "center", "1", "3→3", "30→30"},
				{"2", "after", "1", "3→0", "30→0"},
			}
			if len(lines) != len(want)+4 {
				t.Fatalf("%d lines; want a title, %d table rows, a line per pass and the bottleneck:\n%s", len(lines), len(want), st)
			}
			if re := regexp.MustCompile(`^elapsed \S+, 2 passes$`); !re.MatchString(lines[0]) {
				t.Errorf("title %q; want %v", lines[0], re)
			}
			checkTable(t, lines[1:len(want)+1], want, 1)
			for i, line := range lines[len(want)+1 : len(want)+3] {
				if re := regexp.MustCompile(fmt.Sprintf(`^pass %d: \S+, bottleneck: \S+ \(\d+%% busy\)$`, i+1)); !re.MatchString(line) {
					t.Errorf("pass line %q; want %v", line, re)
				}
			}
			if re := regexp.MustCompile(`^bottleneck: \S+ \(\d+% busy\)$`); !re.MatchString(lines[len(lines)-1]) {
				t.Errorf("last line %q; want %v", lines[len(lines)-1], re)
			}
		})
	}
	if got, want := (flow.Stats{}).String(), "elapsed 0s, 0 passes"; got != want {
		t.Errorf("zero Stats: %q; want %q", got, want)
	}
}

// checkTable checks that rows are aligned on the columns of their first
// row (the header), and that each row begins with the cells of want; the
// name is in column name.
func checkTable(t *testing.T, rows []string, want [][]string, name int) {
	t.Helper()
	_, cols := cells(rows[0])
	for i, row := range rows {
		got, starts := cells(row)
		if !slices.Equal(starts, cols) {
			t.Errorf("row %d %q: cells at %v; want aligned at %v", i, row, starts, cols)
		}
		if len(got) != len(want[0]) || !slices.Equal(got[:len(want[i])], want[i]) {
			t.Errorf("row %d: cells %q; want %d cells beginning %q", i, got, len(want[0]), want[i])
		}
		if i > 0 && !regexp.MustCompile(`^\d+%$`).MatchString(got[name+4]) {
			t.Errorf("row %d: busy %q; want a percentage", i, got[name+4])
		}
	}
}

// The statistics of a fit with a Joiner: two passes over the source, one
// row per stage and pass.
func ExampleStats() {
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	src, err := minibatch.FromSlices(2, []minibatch.Column{minibatch.Float64s("x", []float64{1, 2, 3, 4, 5, 6})}, nil, minibatch.WithAllocator(mem))
	if err != nil {
		panic(err)
	}
	defer src.Close()
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("center", &center{mem: mem}, flow.Barrier(barrier.Joiner)),
		flow.Named("recenter", &center{mem: mem}, flow.Replicas(2)),
	})
	if err != nil {
		panic(err)
	}
	stats, err := flow.Runner{Engine: flow.Streaming}.Fit(ctx, p, src)
	if err != nil {
		panic(err)
	}
	for i, ps := range stats.Passes {
		for _, st := range ps.Stages {
			fmt.Printf("pass %d: %-8s ×%d %d→%d batches\n", i+1, st.Name(), st.Replicas, st.BatchesIn, st.BatchesOut)
		}
	}
	for _, st := range stats.Stages {
		fmt.Printf("run: %-8s %d passes, %d rows in, %d rows out\n", st.Name(), st.Passes, st.RowsIn, st.RowsOut)
	}
	// Output:
	// pass 1: (source) ×1 0→3 batches
	// pass 1: center   ×1 3→0 batches
	// pass 2: (source) ×1 0→3 batches
	// pass 2: center   ×1 3→3 batches
	// pass 2: recenter ×2 3→0 batches
	// run: (source) 2 passes, 0 rows in, 12 rows out
	// run: center   2 passes, 12 rows in, 6 rows out
	// run: recenter 1 passes, 6 rows in, 0 rows out
}
