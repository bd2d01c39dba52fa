package minibatch_test

// An adversarial audit of the promises of minibatch's doc comments: every
// source and wrapper under both engines of flow.Runner with a checked
// allocator, Close at any moment, cancellation with a cause, Rewind after
// partial reads and after errors, exact row accounting of the seeded
// stages, and hostile input.

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// auditRows is the number of rows of every audited source: "i" holds the
// row index 0 … auditRows-1.
const auditRows = 50

var errAuditCause = errors.New("audit: the caller's cause")

// auditCtx is a test context with a deadline.
func auditCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// auditMade is a source under audit and what closes the rest of what its
// case made (an inner source), after the source.
type auditMade struct {
	src  lifecycleSource
	done func()
}

// auditCase makes one source or wrapper over auditRows rows whose X has
// the column "i" (the row index, int64 or float64).
type auditCase struct {
	name string
	make func(t *testing.T, mem memory.Allocator, dir string) auditMade
	// sorted: the rows come in a seeded order, not by index.
	shuffled bool
	// replayable: Rewind works.
	replayable bool
	// rows: the rows it gives, when only some of the auditRows (0: all).
	rows int
}

// auditSplitCases are the sides of the splits over auditRows rows, each a
// part of the rows.
func auditSplitCases() []auditCase {
	side := func(name string, rows int, pick func(t *testing.T, ctx context.Context, mem memory.Allocator, m *minibatch.Memory) (*minibatch.SplitSource, []func() error)) auditCase {
		return auditCase{name: name, replayable: true, rows: rows, make: func(t *testing.T, mem memory.Allocator, _ string) auditMade {
			m := newMemory(t, mem, auditRows, 7)
			s, others := pick(t, auditCtx(t), mem, m)
			return auditMade{s, func() {
				for _, c := range others {
					c()
				}
				m.Close()
			}}
		}}
	}
	return []auditCase{
		side("holdout validation", 10, func(t *testing.T, ctx context.Context, mem memory.Allocator, m *minibatch.Memory) (*minibatch.SplitSource, []func() error) {
			train, val, err := minibatch.Holdout(ctx, m, 0.2, minibatch.WithStratify(false), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return val, []func() error{train.Close}
		}),
		side("kfold train", 40, func(t *testing.T, ctx context.Context, mem memory.Allocator, m *minibatch.Memory) (*minibatch.SplitSource, []func() error) {
			folds, err := minibatch.KFold(ctx, m, 5, minibatch.WithStratify(false), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			others := []func() error{folds[0].Validation.Close}
			for _, f := range folds[1:] {
				others = append(others, f.Train.Close, f.Validation.Close)
			}
			return folds[0].Train, others
		}),
		side("walk-forward validation", 10, func(t *testing.T, ctx context.Context, mem memory.Allocator, m *minibatch.Memory) (*minibatch.SplitSource, []func() error) {
			folds, err := minibatch.WalkForward(ctx, m, 4, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			var others []func() error
			for _, f := range folds {
				others = append(others, f.Train.Close)
				if f.Validation != folds[len(folds)-1].Validation {
					others = append(others, f.Validation.Close)
				}
			}
			return folds[len(folds)-1].Validation, others
		}),
	}
}

func auditSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Float64}}, nil)
}

// auditRecords makes auditRows rows in records of 7 rows (the last 1).
func auditRecords(mem memory.Allocator) []arrow.RecordBatch {
	var recs []arrow.RecordBatch
	for lo := 0; lo < auditRows; lo += 7 {
		hi := min(lo+7, auditRows)
		v := make([]float64, 0, hi-lo)
		for i := lo; i < hi; i++ {
			v = append(v, float64(i))
		}
		recs = append(recs, float64Record(mem, "i", v))
	}
	return recs
}

func auditCSVText() string {
	var sb strings.Builder
	sb.WriteString("i,y\n")
	for i := range auditRows {
		fmt.Fprintf(&sb, "%d,%d\n", i, i%3)
	}
	return sb.String()
}

func noDone() {}

func auditCases() []auditCase {
	memoryOf := func(t *testing.T, mem memory.Allocator) *minibatch.Memory { return newMemory(t, mem, auditRows, 7) }
	wrap := func(name string, shuffled bool, f func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) lifecycleSource) auditCase {
		return auditCase{name: name, shuffled: shuffled, replayable: true, make: func(t *testing.T, mem memory.Allocator, _ string) auditMade {
			m := memoryOf(t, mem)
			return auditMade{f(t, mem, m), func() { m.Close() }}
		}}
	}
	must := func(t *testing.T, s lifecycleSource, err error) lifecycleSource {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return []auditCase{
		{name: "memory", replayable: true, make: func(t *testing.T, mem memory.Allocator, _ string) auditMade {
			return auditMade{memoryOf(t, mem), noDone}
		}},
		{name: "generator", replayable: true, make: func(t *testing.T, mem memory.Allocator, _ string) auditMade {
			return auditMade{minibatch.Generate(func(ctx context.Context, seq int64) (flow.Batch, error) {
				lo := int(seq) * 7
				if lo >= auditRows {
					return flow.Batch{}, io.EOF
				}
				return flow.Batch{Seq: seq, X: float64Record(mem, "i", iota64(auditRows)[lo:min(lo+7, auditRows)])}, nil
			}), noDone}
		}},
		{name: "channel", make: func(t *testing.T, mem memory.Allocator, _ string) auditMade {
			ch := make(chan flow.Batch, 10)
			for k, r := range auditRecords(mem) {
				ch <- flow.Batch{Seq: int64(k), X: r}
			}
			close(ch)
			return auditMade{minibatch.FromChannel(ch), func() {
				for b := range ch {
					b.Release()
				}
			}}
		}},
		{name: "csv file", replayable: true, make: func(t *testing.T, mem memory.Allocator, dir string) auditMade {
			path := filepath.Join(dir, "a.csv")
			if err := os.WriteFile(path, []byte(auditCSVText()), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := minibatch.OpenCSV(path, minibatch.WithAllocator(mem), minibatch.WithLabels("y"), minibatch.WithBatchRows(7))
			return auditMade{must(t, s, err), noDone}
		}},
		{name: "csv gzip", replayable: true, make: func(t *testing.T, mem memory.Allocator, dir string) auditMade {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write([]byte(auditCSVText()))
			zw.Close()
			s, err := minibatch.NewCSV(bytes.NewReader(buf.Bytes()), minibatch.WithAllocator(mem), minibatch.WithLabels("y"), minibatch.WithBatchRows(7))
			return auditMade{must(t, s, err), noDone}
		}},
		{name: "ipc file", replayable: true, make: func(t *testing.T, mem memory.Allocator, dir string) auditMade {
			path := filepath.Join(dir, "a.arrow")
			recs := auditRecords(memory.NewGoAllocator())
			writeIPC(t, path, false, auditSchema(), recs, ipc.WithZstd())
			releaseAll(recs)
			s, err := minibatch.OpenIPCFile(path, minibatch.WithAllocator(mem))
			return auditMade{must(t, s, err), noDone}
		}},
		{name: "ipc stream", replayable: true, make: func(t *testing.T, mem memory.Allocator, dir string) auditMade {
			path := filepath.Join(dir, "a.arrows")
			recs := auditRecords(memory.NewGoAllocator())
			writeIPC(t, path, true, auditSchema(), recs, ipc.WithLZ4())
			releaseAll(recs)
			s, err := minibatch.OpenIPCStream(path, minibatch.WithAllocator(mem))
			return auditMade{must(t, s, err), noDone}
		}},
		{name: "cache", replayable: true, make: func(t *testing.T, mem memory.Allocator, _ string) auditMade {
			s, err := minibatch.NewCache(&onceSource{&rowsSource{mem: mem, sizes: []int{7, 7, 7, 7, 7, 7, 7, 1}}}, minibatch.WithAllocator(mem))
			return auditMade{must(t, s, err), noDone}
		}},
		wrap("rebatcher", false, func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) lifecycleSource {
			s, err := minibatch.NewRebatcher(m, 4, minibatch.Keep, minibatch.WithAllocator(mem))
			return must(t, s, err)
		}),
		wrap("shuffler", true, func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) lifecycleSource {
			s, err := minibatch.Shuffle(m, 16, minibatch.WithSeed(9), minibatch.WithAllocator(mem))
			return must(t, s, err)
		}),
		wrap("permute", true, func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) lifecycleSource {
			s, err := minibatch.Permute(m, 6, minibatch.WithSeed(9), minibatch.WithAllocator(mem))
			return must(t, s, err)
		}),
		{name: "permute windowed", shuffled: true, replayable: true, make: func(t *testing.T, mem memory.Allocator, _ string) auditMade {
			s, err := minibatch.Permute(&rowsSource{mem: mem, sizes: []int{7, 7, 7, 7, 7, 7, 7, 1}}, 6, minibatch.WithSeed(9), minibatch.WithAllocator(mem), minibatch.WithWindowRows(12))
			return auditMade{must(t, s, err), noDone}
		}},
		wrap("curriculum", true, func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) lifecycleSource {
			s, err := minibatch.Curriculum(m, 6, func(epoch, n int) ([]int, error) {
				o := make([]int, n)
				for i := range o {
					o[i] = n - 1 - i
				}
				return o, nil
			}, minibatch.WithAllocator(mem))
			return must(t, s, err)
		}),
		wrap("repeat", false, func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) lifecycleSource {
			s, err := minibatch.Repeat(m, 1)
			return must(t, s, err)
		}),
		wrap("epochs", true, func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) lifecycleSource {
			s, err := minibatch.Epochs(m, 1, minibatch.WithBatchRows(5), minibatch.WithShuffleRows(10), minibatch.WithSeed(2), minibatch.WithAllocator(mem))
			return must(t, s, err)
		}),
	}
}

// auditIDs returns the values of X's column "i" as ints.
func auditIDs(t *testing.T, b flow.Batch) []int {
	t.Helper()
	idx := b.X.Schema().FieldIndices("i")
	if len(idx) != 1 {
		t.Fatalf("X has no column i: %v", b.X.Schema())
	}
	var out []int
	switch c := b.X.Column(idx[0]).(type) {
	case *array.Float64:
		for _, v := range c.Float64Values() {
			out = append(out, int(v))
		}
	case *array.Int64:
		for _, v := range c.Int64Values() {
			out = append(out, int(v))
		}
	default:
		t.Fatalf("column i has type %s", c.DataType())
	}
	return out
}

// readIDs reads src to io.EOF, directly, and returns the row ids in order.
func readIDs(t *testing.T, ctx context.Context, src flow.Source) []int {
	t.Helper()
	var ids []int
	for {
		b, err := src.Next(ctx)
		if err == io.EOF {
			return ids
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		ids = append(ids, auditIDs(t, b)...)
		b.Release()
	}
}

// passThrough is a step that passes its input on.
type passThrough struct{}

func (passThrough) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

func auditPipeline(t *testing.T) *flow.Pipeline {
	t.Helper()
	p, err := flow.NewPipeline([]flow.Node{flow.Named("pass", passThrough{}, flow.Replicas(2))})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var auditEngines = []flow.Engine{flow.Sequential, flow.Streaming}

// runIDs reads src through a Runner's Transform and returns the row ids;
// with stopAfter > 0 it closes the stream after that many batches.
func runIDs(t *testing.T, ctx context.Context, e flow.Engine, mem memory.Allocator, src flow.Source, stopAfter int) []int {
	t.Helper()
	r := flow.Runner{Engine: e, Allocator: mem}
	s, err := r.Transform(ctx, auditPipeline(t), src)
	if err != nil {
		t.Fatalf("Transform: %v", err)
	}
	var ids []int
	n := 0
	for {
		if stopAfter > 0 && n == stopAfter {
			break
		}
		b, err := s.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			s.Close()
			t.Fatalf("stream Next: %v", err)
		}
		ids = append(ids, auditIDs(t, b)...)
		b.Release()
		n++
	}
	if err := s.Close(); err != nil {
		t.Fatalf("stream Close: %v", err)
	}
	return ids
}

func checkEveryRowOnce(t *testing.T, what string, ids []int, n int) {
	t.Helper()
	got := slices.Sorted(slices.Values(ids))
	if len(got) != n {
		t.Fatalf("%s: %d rows; want %d", what, len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("%s: sorted rows %v; want 0 … %d, each once", what, got, n-1)
		}
	}
}

// TestAuditSourcesUnderBothEngines: every source and wrapper gives every
// row exactly once, the same rows through either engine of a Runner as
// read directly; a replayable one gives the same rows again after Rewind,
// also after a partial read and after a stream closed early; nothing is
// left in the allocator.
func TestAuditSourcesUnderBothEngines(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range auditCases() {
		for _, e := range auditEngines {
			t.Run(tc.name+"/"+e.String(), func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				ctx := auditCtx(t)
				m := tc.make(t, mem, t.TempDir())
				defer m.done()
				defer m.src.Close()
				src := m.src

				if !tc.replayable {
					ids := runIDs(t, ctx, e, mem, src, 0)
					checkEveryRowOnce(t, "through the runner", ids, auditRows)
					if !tc.shuffled && !slices.IsSorted(ids) {
						t.Errorf("rows %v; want them in order", ids)
					}
					return
				}
				rw := src.(flow.Rewinder)
				direct := readIDs(t, ctx, src)
				checkEveryRowOnce(t, "read directly", direct, auditRows)
				if !tc.shuffled && !slices.IsSorted(direct) {
					t.Errorf("rows %v; want them in order", direct)
				}
				if err := rw.Rewind(); err != nil {
					t.Fatalf("Rewind: %v", err)
				}
				if got := runIDs(t, ctx, e, mem, src, 0); !slices.Equal(got, direct) && !tc.shuffled {
					t.Errorf("through the runner: %v; want %v", got, direct)
				} else {
					checkEveryRowOnce(t, "through the runner", got, auditRows)
				}

				// A partial read, then Rewind.
				if err := rw.Rewind(); err != nil {
					t.Fatalf("Rewind: %v", err)
				}
				b, err := src.Next(ctx)
				if err != nil {
					t.Fatalf("Next: %v", err)
				}
				b.Release()
				if err := rw.Rewind(); err != nil {
					t.Fatalf("Rewind after a partial read: %v", err)
				}
				if got := readIDs(t, ctx, src); !tc.shuffled && !slices.Equal(got, direct) {
					t.Errorf("after a partial read and Rewind: %v; want %v", got, direct)
				} else {
					checkEveryRowOnce(t, "after a partial read and Rewind", got, auditRows)
				}

				// A stream closed after one batch, then Rewind.
				if err := rw.Rewind(); err != nil {
					t.Fatalf("Rewind: %v", err)
				}
				runIDs(t, ctx, e, mem, src, 1)
				if err := rw.Rewind(); err != nil {
					t.Fatalf("Rewind after a stream closed early: %v", err)
				}
				if got := readIDs(t, ctx, src); !tc.shuffled && !slices.Equal(got, direct) {
					t.Errorf("after a stream closed early and Rewind: %v; want %v", got, direct)
				} else {
					checkEveryRowOnce(t, "after a stream closed early and Rewind", got, auditRows)
				}
			})
		}
	}
}

// TestAuditSeededReplay: a seeded stage gives the same order after Rewind
// as in its first pass, and the same order in a second value built with
// the same seed (the doc: the same seed and input give the same output).
func TestAuditSeededReplay(t *testing.T) {
	for _, tc := range auditCases() {
		if !tc.shuffled {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := auditCtx(t)
			// Two values with one seed, each read for three passes.
			var runs [][][]int
			for range 2 {
				m := tc.make(t, mem, t.TempDir())
				var passes [][]int
				for p := range 3 {
					if p > 0 {
						if err := m.src.(flow.Rewinder).Rewind(); err != nil {
							t.Fatal(err)
						}
					}
					passes = append(passes, readIDs(t, ctx, m.src))
				}
				runs = append(runs, passes)
				m.src.Close()
				m.done()
			}
			for p := range 3 {
				if !slices.Equal(runs[0][p], runs[1][p]) {
					t.Errorf("pass %d of two values with one seed: %v and %v; want the same order", p, runs[0][p], runs[1][p])
				}
			}
		})
	}
}

// TestAuditCloseAtAnyMoment: Close before the first Next, after a partial
// read, after the end, twice; Next, Rewind after Close are errors;
// Replayable is false; nothing is left in the allocator.
func TestAuditCloseAtAnyMoment(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range append(auditCases(), auditSplitCases()...) {
		for _, reads := range []int{0, 1, -1} {
			t.Run(fmt.Sprintf("%s/after %d reads", tc.name, reads), func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				ctx := auditCtx(t)
				m := tc.make(t, mem, t.TempDir())
				defer m.done()
				src := m.src
				switch reads {
				case 1:
					b, err := src.Next(ctx)
					if err != nil {
						t.Fatalf("Next: %v", err)
					}
					b.Release()
				case -1:
					readIDs(t, ctx, src)
				}
				for i := range 3 {
					if err := src.Close(); err != nil {
						t.Fatalf("Close #%d: %v; want nil", i+1, err)
					}
				}
				b, err := src.Next(ctx)
				if err == nil || err == io.EOF {
					b.Release()
					t.Fatalf("Next after Close: %v; want an error", err)
				}
				if !strings.Contains(err.Error(), "after Close") {
					t.Errorf("Next after Close: %q; want it to say after Close", err)
				}
				if r, ok := src.(interface{ Replayable() bool }); ok && r.Replayable() {
					t.Error("Replayable() = true after Close; want false")
				}
				if rw, ok := src.(flow.Rewinder); ok {
					if err := rw.Rewind(); err == nil {
						t.Error("Rewind after Close: nil; want an error")
					}
				}
			})
		}
	}
}

// TestAuditCancelCause: a Next whose ctx was cancelled with a cause
// returns an error that wraps the cause, before the first batch and after
// one, for every source and wrapper; the batches are not lost: after the
// cancellation a fresh ctx reads on (or, for a replayable source, Rewind
// gives every row again).
func TestAuditCancelCause(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range append(auditCases(), auditSplitCases()...) {
		for _, reads := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/after %d reads", tc.name, reads), func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				ctx := auditCtx(t)
				m := tc.make(t, mem, t.TempDir())
				defer m.done()
				defer m.src.Close()
				src := m.src
				for range reads {
					b, err := src.Next(ctx)
					if err != nil {
						t.Fatalf("Next: %v", err)
					}
					b.Release()
				}
				cctx, cancel := context.WithCancelCause(ctx)
				cancel(errAuditCause)
				b, err := src.Next(cctx)
				if err == nil {
					b.Release()
					t.Fatal("Next with a cancelled ctx returned a batch; want the cause")
				}
				if !errors.Is(err, errAuditCause) {
					t.Errorf("Next with a ctx cancelled with a cause: %v; want an error wrapping the cause %q", err, errAuditCause)
				}
				if rw, ok := src.(interface {
					flow.Rewinder
					Replayable() bool
				}); ok && rw.Replayable() {
					if err := rw.Rewind(); err != nil {
						t.Fatalf("Rewind after a cancelled Next: %v", err)
					}
					if ids := readIDs(t, ctx, src); tc.rows == 0 {
						checkEveryRowOnce(t, "after a cancelled Next and Rewind", ids, auditRows)
					} else if len(ids) != tc.rows {
						t.Errorf("after a cancelled Next and Rewind: %d rows; want %d", len(ids), tc.rows)
					}
				}
			})
		}
	}
}

// TestAuditCancelCauseThroughRunner: a run over each source, cancelled
// with a cause after its first batch, ends with an error wrapping the
// cause in both engines, and holds nothing after.
func TestAuditCancelCauseThroughRunner(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range append(auditCases(), auditSplitCases()...) {
		for _, e := range auditEngines {
			t.Run(tc.name+"/"+e.String(), func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				m := tc.make(t, mem, t.TempDir())
				defer m.done()
				defer m.src.Close()
				ctx, cancel := context.WithCancelCause(auditCtx(t))
				defer cancel(nil)
				s, err := flow.Runner{Engine: e, Allocator: mem}.Transform(ctx, auditPipeline(t), m.src)
				if err != nil {
					t.Fatal(err)
				}
				b, err := s.Next(auditCtx(t))
				if err != nil {
					t.Fatalf("first Next: %v", err)
				}
				b.Release()
				cancel(errAuditCause)
				var end error
				for end == nil {
					b, err := s.Next(auditCtx(t))
					if err != nil {
						end = err
						break
					}
					b.Release()
				}
				if cerr := s.Close(); !errors.Is(end, errAuditCause) && !errors.Is(cerr, errAuditCause) && end != io.EOF {
					t.Errorf("run cancelled with a cause: Next %v, Close %v; want the cause", end, cerr)
				}
			})
		}
	}
}

// TestAuditCSVErrorIsReplayable: an error in the middle of a CSV file is
// returned after the batches before it (no partial batch), again on every
// Next, and, after Rewind, the same batches and the same error come again.
func TestAuditCSVErrorIsReplayable(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := auditCtx(t)
	lines := strings.Split(strings.TrimSuffix(auditCSVText(), "\n"), "\n")
	lines[26] = "25,abc" // line 27: row 25, label not a number
	path := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := minibatch.OpenCSV(path, minibatch.WithAllocator(mem), minibatch.WithLabels("y"), minibatch.WithBatchRows(10), minibatch.WithInferRows(5))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for pass := range 2 {
		var ids []int
		var end error
		for {
			b, err := src.Next(ctx)
			if err != nil {
				end = err
				break
			}
			ids = append(ids, auditIDs(t, b)...)
			b.Release()
		}
		if want := iota(20); !slices.Equal(ids, want) {
			t.Errorf("pass %d: rows %v before the error; want %v (whole batches only)", pass, ids, want)
		}
		wantErr(t, end, `"`+path+`"`, "line 27", `column "y"`, `"abc"`, "int64")
		if _, again := src.Next(ctx); again == nil || again.Error() != end.Error() {
			t.Errorf("pass %d: Next after the error: %v; want the same error %v", pass, again, end)
		}
		if err := src.Rewind(); err != nil {
			t.Fatalf("Rewind after the error: %v", err)
		}
	}
}

func iota(n int) []int {
	v := make([]int, n)
	for i := range v {
		v[i] = i
	}
	return v
}

// readCSVErr reads data as a CSV table with opts and returns the first
// error, nil at a clean end, and the rows read.
func readCSVErr(t *testing.T, mem memory.Allocator, data []byte, opts ...minibatch.SourceOption) (int64, error) {
	t.Helper()
	ctx := auditCtx(t)
	src, err := minibatch.NewCSV(bytes.NewReader(data), append([]minibatch.SourceOption{minibatch.WithAllocator(mem), minibatch.WithName("hostile")}, opts...)...)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	var rows int64
	for {
		b, err := src.Next(ctx)
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		rows += b.Rows()
		b.Release()
	}
}

func gzipBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

// TestAuditCSVHostile: hostile CSV inputs fail with an error naming the
// input, the line and what was wrong, or read exactly as the doc says;
// none hangs, panics or leaks.
func TestAuditCSVHostile(t *testing.T) {
	floats := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Float64}, {Name: "b", Type: arrow.PrimitiveTypes.Float32}}, nil)
	ints := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64}, {Name: "b", Type: arrow.PrimitiveTypes.Uint8}}, nil)
	var zbuf bytes.Buffer
	zw, _ := zstd.NewWriter(&zbuf)
	zw.Write([]byte("a,b\n1,2\n3,4\n"))
	zw.Close()
	bigLine := "a,b\n1," + strings.Repeat("9", 1<<20) + "\n"
	cases := []struct {
		name     string
		data     []byte
		opts     []minibatch.SourceOption
		wantRows int64
		want     []string // nil: no error
	}{
		{"nan and inf are floats", []byte("a,b\nNaN,inf\n-Inf,+Infinity\n1,2\n"), []minibatch.SourceOption{minibatch.WithSchema(floats)}, 3, nil},
		{"float64 overflow", []byte("a,b\n1,2\n1e400,2\n"), []minibatch.SourceOption{minibatch.WithSchema(floats)}, 0, []string{`"hostile"`, "line 3", `column "a"`, `"1e400"`, "float64"}},
		{"float32 overflow", []byte("a,b\n1,2\n1,1e39\n"), []minibatch.SourceOption{minibatch.WithSchema(floats)}, 0, []string{"line 3", `column "b"`, `"1e39"`, "float32"}},
		{"int64 overflow", []byte("a,b\n9223372036854775807,1\n9223372036854775808,1\n"), []minibatch.SourceOption{minibatch.WithSchema(ints)}, 0, []string{"line 3", `column "a"`, `"9223372036854775808"`, "int64"}},
		{"uint8 overflow", []byte("a,b\n1,255\n1,256\n"), []minibatch.SourceOption{minibatch.WithSchema(ints)}, 0, []string{"line 3", `column "b"`, `"256"`, "uint8"}},
		{"negative uint", []byte("a,b\n1,-1\n"), []minibatch.SourceOption{minibatch.WithSchema(ints)}, 0, []string{"line 2", `column "b"`, `"-1"`, "uint8"}},
		{"int64 overflow in inference makes a float64 column", []byte("a,b\n1,1\n9223372036854775808,1\n"), nil, 2, nil},
		{"bom then numbers asked as header", []byte("\xef\xbb\xbfa,b\n1,2\n"), nil, 1, nil},
		{"bom twice", []byte("\xef\xbb\xbf\xef\xbb\xbfa,b\n1,2\n"), []minibatch.SourceOption{minibatch.WithSchema(arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.BinaryTypes.String}, {Name: "b", Type: arrow.PrimitiveTypes.Int64}}, nil))}, 0, []string{"line 1", "header column 1"}},
		{"nul in the header", []byte("a\x00,b\n1,2\n"), nil, 0, []string{"line 1", "NUL"}},
		{"nul in a quoted field", []byte("a,b\n1,\"x\x00y\"\n"), nil, 0, []string{"line 2", "NUL"}},
		{"quote never closed", []byte("a,b\n1,2\n3,\"4\n5,6\n7,8\n"), nil, 0, []string{"line 3", "quoted field opened on line 3"}},
		{"huge line beyond the limit", []byte(bigLine), []minibatch.SourceOption{minibatch.WithMaxRowBytes(1 << 16)}, 0, []string{"line 2", "longer than 65536 bytes"}},
		{"huge gzip line beyond the limit", gzipBytes(t, []byte(bigLine)), []minibatch.SourceOption{minibatch.WithMaxRowBytes(1 << 16)}, 0, []string{"line 2", "longer than 65536 bytes"}},
		{"gzip bomb", gzipBytes(t, []byte("a,b\n"+strings.Repeat("1,2\n", 1<<20))), []minibatch.SourceOption{minibatch.WithMaxInputBytes(1 << 20)}, -1, []string{`"hostile"`, "decompressed input exceeds 1048576 bytes", "WithMaxInputBytes"}},
		{"gzip bomb of one line", gzipBytes(t, []byte("a,b\n"+strings.Repeat("1", 8<<20))), []minibatch.SourceOption{minibatch.WithMaxInputBytes(1 << 20), minibatch.WithMaxRowBytes(64 << 20)}, 0, []string{"decompressed input exceeds 1048576 bytes"}},
		{"gzip header only", gzipBytes(t, nil)[:10], nil, 0, []string{`"hostile"`}},
		{"zstd is not read as text", zbuf.Bytes(), nil, 0, []string{`"hostile"`}},
		{"ragged first row", []byte("a,b\n1\n"), nil, 0, []string{"line 2", "has 1 fields, want 2"}},
		{"ragged row after inference", []byte("a,b\n" + strings.Repeat("1,2\n", 10) + "1,2,3\n"), []minibatch.SourceOption{minibatch.WithInferRows(3), minibatch.WithBatchRows(4)}, 8, []string{"line 12", "has 3 fields, want 2"}},
		{"lone cr line endings", []byte("a,b\r1,2\r3,4"), nil, 2, nil},
		{"only a header", []byte("a,b\n"), nil, 0, nil},
		{"only a bom", []byte("\xef\xbb\xbf"), nil, 0, []string{"empty input"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			rows, err := readCSVErr(t, mem, tc.data, tc.opts...)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got error %v; want %d rows", err, tc.wantRows)
				}
			} else {
				wantErr(t, err, tc.want...)
			}
			if tc.wantRows >= 0 && rows != tc.wantRows {
				t.Errorf("read %d rows; want %d", rows, tc.wantRows)
			}
		})
	}
}

// TestAuditStepHelpersCancelCause: MapRows and PackStep.Transform, given a
// ctx cancelled with a cause, return the cause and hold nothing.
func TestAuditStepHelpersCancelCause(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithCancelCause(auditCtx(t))
	cancel(errAuditCause)
	b := flow.Batch{X: float64Record(mem, "i", []float64{1, 2, 3})}
	defer b.Release()
	if out, err := (&minibatch.PackStep{Out: "x", Mem: mem}).Transform(ctx, b); !errors.Is(err, errAuditCause) {
		out.Release()
		t.Errorf("PackStep.Transform with a ctx cancelled with a cause: %v; want the cause", err)
	}
	if out, err := minibatch.MapRows(ctx, b, "x", "y", 1, func(x, y []float32) {}); !errors.Is(err, errAuditCause) {
		out.Release()
		t.Errorf("MapRows with a ctx cancelled with a cause: %v; want the cause", err)
	}
}

// TestAuditSplitsAccountEveryRow: the sides of Holdout, KFold and
// WalkForward, read through either engine and again after a partial read
// and Rewind, hold each row where the split put it and nowhere else:
// Holdout's two sides and each fold's pair partition the rows, KFold's
// validation sides partition them too, and one seed gives one split.
func TestAuditSplitsAccountEveryRow(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, e := range auditEngines {
		t.Run(e.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := auditCtx(t)
			m := newMemory(t, mem, auditRows, 7)
			defer m.Close()
			// side reads s through the runner, checks a partial read and
			// Rewind gives the same rows, and returns them.
			side := func(what string, s *minibatch.SplitSource) []int {
				t.Helper()
				ids := runIDs(t, ctx, e, mem, s, 0)
				if err := s.Rewind(); err != nil {
					t.Fatalf("%s: Rewind: %v", what, err)
				}
				if b, err := s.Next(ctx); err == nil {
					b.Release()
				}
				if err := s.Rewind(); err != nil {
					t.Fatalf("%s: Rewind after a partial read: %v", what, err)
				}
				if again := readIDs(t, ctx, s); !slices.Equal(again, ids) {
					t.Errorf("%s: after Rewind %v; want %v", what, again, ids)
				}
				if err := s.Rewind(); err != nil {
					t.Fatalf("%s: Rewind: %v", what, err)
				}
				return ids
			}
			var holdouts [][]int
			for range 2 {
				train, val, err := minibatch.Holdout(ctx, m, 0.2, minibatch.WithStratify(false), minibatch.WithSeed(4), minibatch.WithAllocator(mem))
				if err != nil {
					t.Fatal(err)
				}
				tr, va := side("holdout train", train), side("holdout validation", val)
				if len(va) != 10 {
					t.Errorf("holdout validation: %d rows; want round(50 × 0.2) = 10", len(va))
				}
				checkEveryRowOnce(t, "holdout train + validation", append(slices.Clone(tr), va...), auditRows)
				holdouts = append(holdouts, va)
				train.Close()
				val.Close()
			}
			if !slices.Equal(holdouts[0], holdouts[1]) {
				t.Errorf("holdout with one seed: validation %v, then %v; want the same", holdouts[0], holdouts[1])
			}

			folds, err := minibatch.KFold(ctx, m, 4, minibatch.WithStratify(false), minibatch.WithSeed(4), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			var vals []int
			for k, f := range folds {
				tr, va := side(fmt.Sprintf("fold %d train", k), f.Train), side(fmt.Sprintf("fold %d validation", k), f.Validation)
				checkEveryRowOnce(t, fmt.Sprintf("fold %d train + validation", k), append(slices.Clone(tr), va...), auditRows)
				if n := len(va); n < auditRows/4 || n > auditRows/4+1 {
					t.Errorf("fold %d: %d validation rows; want %d or %d", k, n, auditRows/4, auditRows/4+1)
				}
				vals = append(vals, va...)
				f.Train.Close()
				f.Validation.Close()
			}
			checkEveryRowOnce(t, "the validation sides of KFold", vals, auditRows)

			wf, err := minibatch.WalkForward(ctx, m, 3, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			for k, f := range wf {
				tr, va := side(fmt.Sprintf("walk-forward %d train", k), f.Train), side(fmt.Sprintf("walk-forward %d validation", k), f.Validation)
				if len(tr) == 0 || len(va) == 0 || !slices.IsSorted(tr) || !slices.IsSorted(va) || tr[len(tr)-1] >= va[0] {
					t.Errorf("walk-forward %d: train %v, validation %v; want both in order, train before validation", k, tr, va)
				}
				f.Train.Close()
				f.Validation.Close()
			}
		})
	}
}

// TestAuditEpochsAccountEveryRow: Epochs (re-batch, shuffle, repeat) and
// Repeat over Permute give every row exactly once per epoch, with
// Batch.Epoch marking the epochs, a new order each epoch, the same stream
// in both engines and for the same seed.
func TestAuditEpochsAccountEveryRow(t *testing.T) {
	defer goleak.VerifyNone(t)
	const epochs = 3
	type made struct {
		src  flow.Source
		stop func()
	}
	cases := []struct {
		name string
		make func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made
	}{
		{"epochs", func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made {
			e, err := minibatch.Epochs(m, epochs, minibatch.WithBatchRows(8), minibatch.WithShuffleRows(12), minibatch.WithSeed(11), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{e, func() { e.Close() }}
		}},
		{"repeat permute", func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made {
			p, err := minibatch.Permute(m, 9, minibatch.WithSeed(11), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			r, err := minibatch.Repeat(p, epochs)
			if err != nil {
				t.Fatal(err)
			}
			return made{r, func() { r.Close(); p.Close() }}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var streams [][]int
			for _, e := range []flow.Engine{flow.Sequential, flow.Streaming, flow.Sequential} {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				m := newMemory(t, mem, auditRows, 7)
				mk := tc.make(t, mem, m)
				ctx := auditCtx(t)
				s, err := flow.Runner{Engine: e, Allocator: mem}.Transform(ctx, auditPipeline(t), mk.src)
				if err != nil {
					t.Fatal(err)
				}
				perEpoch := make([][]int, epochs)
				var all []int
				last := 0
				for {
					b, err := s.Next(ctx)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("%s: Next: %v", e, err)
					}
					if b.Epoch < last || b.Epoch >= epochs {
						t.Fatalf("%s: batch of epoch %d after epoch %d; want 0 … %d in order", e, b.Epoch, last, epochs-1)
					}
					last = b.Epoch
					ids := auditIDs(t, b)
					perEpoch[b.Epoch] = append(perEpoch[b.Epoch], ids...)
					all = append(all, ids...)
					b.Release()
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				for k, ids := range perEpoch {
					checkEveryRowOnce(t, fmt.Sprintf("%s: epoch %d", e, k), ids, auditRows)
				}
				if slices.Equal(perEpoch[0], perEpoch[1]) || slices.Equal(perEpoch[1], perEpoch[2]) {
					t.Errorf("%s: epochs in the same order %v; want a new order each epoch", e, perEpoch[0])
				}
				streams = append(streams, all)
				mk.stop()
				m.Close()
				mem.AssertSize(t, 0)
			}
			for i := 1; i < len(streams); i++ {
				if !slices.Equal(streams[i], streams[0]) {
					t.Errorf("run %d: %v; want the stream of run 0 (one seed, either engine) %v", i, streams[i], streams[0])
				}
			}
		})
	}
}

// TestAuditBuildersConcurrent: the functions that build values and the
// step helpers, called from several goroutines at once on one shared
// batch (and one shared PackStep), each give the value that one call
// alone gives, with no race, and leave nothing in the allocator.
func TestAuditBuildersConcurrent(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := flow.WithAllocator(auditCtx(t), mem)
	const rows = 40
	labels := make([]int64, rows)
	for i := range labels {
		labels[i] = int64(i % 3)
	}
	tensor := tensorRecord(t, mem, "x", rows, 3)
	yb := array.NewInt64Builder(mem)
	yb.AppendValues(labels, nil)
	ya := yb.NewArray()
	yb.Release()
	y := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "y", Type: arrow.PrimitiveTypes.Int64}}, nil), []arrow.Array{ya}, rows)
	ya.Release()
	in := flow.Batch{X: tensor, Y: y}
	defer in.Release()
	plain := float64Record(mem, "a", iota64(rows))
	defer plain.Release()
	step := &minibatch.PackStep{Out: "t"}
	want, err := minibatch.Pack(plain, mem, "t", "a")
	if err != nil {
		t.Fatal(err)
	}
	wantVals, _, _, _ := minibatch.Float32View(want.Column(int(want.NumCols() - 1)))
	defer want.Release()

	var mu sync.Mutex
	var errs []error
	report := func(what string, err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			mu.Unlock()
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for range 20 {
					m, err := minibatch.FromSlices(7, []minibatch.Column{minibatch.Float64s("i", iota64(rows))}, nil, minibatch.WithAllocator(mem))
					report("FromSlices", err)
					if err == nil {
						var n int64
						for {
							b, err := m.Next(ctx)
							if err != nil {
								if err != io.EOF {
									report("FromSlices: Next", err)
								}
								break
							}
							n += b.Rows()
							b.Release()
						}
						if n != rows {
							report("FromSlices", fmt.Errorf("%d rows; want %d", n, rows))
						}
						m.Close()
					}
					p, err := minibatch.Pack(plain, mem, "t", "a")
					report("Pack", err)
					if err == nil {
						if v, _, _, _ := minibatch.Float32View(p.Column(int(p.NumCols() - 1))); !slices.Equal(v, wantVals) {
							report("Pack", fmt.Errorf("values %v; want %v", v, wantVals))
						}
						p.Release()
					}
					out, err := step.Transform(ctx, flow.Batch{X: plain})
					report("PackStep.Transform", err)
					if err == nil {
						out.Release()
					}
					cls, err := minibatch.Classes(in, "y", 3)
					report("Classes", err)
					if err == nil && !slices.Equal(cls, labels) {
						report("Classes", fmt.Errorf("goroutine %d: %v; want %v", g, cls, labels))
					}
					x, cls, err := minibatch.Examples(in, "x", "y", 3)
					report("Examples", err)
					if err == nil && (x.Rows != rows || len(cls) != rows) {
						report("Examples", fmt.Errorf("%d × %d, %d labels", x.Rows, x.Cols, len(cls)))
					}
					nm := minibatch.NewMatrix(mem, rows, 2)
					rec := nm.Record("m")
					nm.Release()
					rec.Release()
				}
			})
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("concurrent builders did not finish by the deadline")
	}
	for _, err := range errs {
		t.Error(err)
	}
}

// cancelAfter is a reader that cancels a context with errAuditCause once
// it has passed n bytes.
type cancelAfter struct {
	r      *bytes.Reader
	n      int64
	cancel context.CancelCauseFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.r.Size()-int64(c.r.Len()) >= c.n {
		c.cancel(errAuditCause)
	}
	return c.r.Read(p[:min(len(p), 512)])
}

func (c *cancelAfter) Seek(off int64, whence int) (int64, error) { return c.r.Seek(off, whence) }

// TestAuditCSVCancelMidBatch: a ctx cancelled with a cause in the middle
// of a CSV batch ends Next with the cause, no partial batch and nothing
// held; after Rewind a live ctx reads every row.
func TestAuditCSVCancelMidBatch(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var sb strings.Builder
	sb.WriteString("i\n")
	const rows = 20000
	for i := range rows {
		fmt.Fprintf(&sb, "%d\n", i)
	}
	ctx, cancel := context.WithCancelCause(auditCtx(t))
	defer cancel(nil)
	r := &cancelAfter{r: bytes.NewReader([]byte(sb.String())), n: 30000, cancel: cancel}
	src, err := minibatch.NewCSV(r, minibatch.WithAllocator(mem), minibatch.WithBatchRows(rows), minibatch.WithInferRows(10))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	b, err := src.Next(ctx)
	if err == nil {
		b.Release()
		t.Fatalf("Next returned a batch of %d rows; want the cause of the cancellation", b.Rows())
	}
	if !errors.Is(err, errAuditCause) {
		t.Fatalf("Next cancelled mid-batch: %v; want an error wrapping %q", err, errAuditCause)
	}
	if err := src.Rewind(); err != nil {
		t.Fatalf("Rewind: %v", err)
	}
	r.n = 1 << 40
	ids := readIDs(t, auditCtx(t), src)
	checkEveryRowOnce(t, "after Rewind", ids, rows)
}

// TestAuditSplitSidesInConcurrentRuns: the sides of a split read at once
// by runs of their own, in either engine (the doc: sides lock the parent,
// so reading them from different goroutines is safe), give the rows they
// give one after another, over a CSV file as over a Memory.
func TestAuditSplitSidesInConcurrentRuns(t *testing.T) {
	defer goleak.VerifyNone(t)
	parents := []auditCase{auditCases()[0], auditCases()[3]} // memory, csv file
	for _, pc := range parents {
		for _, e := range auditEngines {
			t.Run(pc.name+"/"+e.String(), func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				ctx := auditCtx(t)
				pm := pc.make(t, mem, t.TempDir())
				defer pm.done()
				defer pm.src.Close()
				folds, err := minibatch.KFold(ctx, pm.src, 3, minibatch.WithStratify(false), minibatch.WithSeed(8), minibatch.WithAllocator(mem))
				if err != nil {
					t.Fatal(err)
				}
				var sides []*minibatch.SplitSource
				for _, f := range folds {
					sides = append(sides, f.Train, f.Validation)
				}
				defer func() {
					for _, s := range sides {
						s.Close()
					}
				}()
				alone := make([][]int, len(sides))
				for i, s := range sides {
					alone[i] = readIDs(t, ctx, s)
					if err := s.Rewind(); err != nil {
						t.Fatal(err)
					}
				}
				p := auditPipeline(t)
				got := make([][]int, len(sides))
				errs := make([]error, len(sides))
				var wg sync.WaitGroup
				for i, s := range sides {
					wg.Go(func() {
						st, err := flow.Runner{Engine: e, Allocator: mem}.Transform(ctx, p, s)
						if err != nil {
							errs[i] = err
							return
						}
						defer st.Close()
						for {
							b, err := st.Next(ctx)
							if err == io.EOF {
								return
							}
							if err != nil {
								errs[i] = err
								return
							}
							col := b.X.Column(0)
							for k := range col.Len() {
								switch c := col.(type) {
								case *array.Float64:
									got[i] = append(got[i], int(c.Value(k)))
								case *array.Int64:
									got[i] = append(got[i], int(c.Value(k)))
								}
							}
							b.Release()
						}
					})
				}
				wg.Wait()
				for i := range sides {
					if errs[i] != nil {
						t.Errorf("%s: %v", sides[i], errs[i])
					} else if !slices.Equal(got[i], alone[i]) {
						t.Errorf("%s read at once with the others: %v; want %v", sides[i], got[i], alone[i])
					}
				}
			})
		}
	}
}

// TestAuditNilOption: a nil option is an error of every constructor, not
// a panic.
func TestAuditNilOption(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	data := ipcBytes(t, true, auditSchema(), nil)
	ctors := map[string]func() error{
		"NewCSV": func() error {
			_, err := minibatch.NewCSV(strings.NewReader("a\n1\n"), minibatch.WithAllocator(mem), nil)
			return err
		},
		"NewIPCStream": func() error {
			_, err := minibatch.NewIPCStream(bytes.NewReader(data), nil, minibatch.WithAllocator(mem))
			return err
		},
		"FromSlices": func() error {
			_, err := minibatch.FromSlices(2, []minibatch.Column{minibatch.Float64s("i", []float64{1})}, nil, nil)
			return err
		},
		"ResolveSourceOptions": func() error {
			_, err := minibatch.ResolveSourceOptions(nil)
			return err
		},
	}
	for name, ctor := range ctors {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("a nil option panicked: %v", r)
				}
			}()
			wantErr(t, ctor(), "nil")
		})
	}
}

// hostileSource is a replayable source whose batch at index bad (by its
// kind) is malformed; the others are rows of "i" and Y "y" in batches of
// 5, with empty batches between them.
type hostileSource struct {
	mem    memory.Allocator
	kind   string
	pos    int
	passes int // Rewinds so far
}

const hostileBatches = 8

func (h *hostileSource) Next(ctx context.Context) (flow.Batch, error) {
	if h.pos >= 2*hostileBatches {
		return flow.Batch{}, io.EOF
	}
	k := h.pos
	h.pos++
	if k%2 == 1 { // an empty batch between the others
		return flow.Batch{Seq: int64(k), X: float64Record(h.mem, "i", nil), Y: float64Record(h.mem, "y", nil)}, nil
	}
	lo := k / 2 * 5
	xs := iota64(lo + 5)[lo:]
	b := flow.Batch{Seq: int64(k), X: float64Record(h.mem, "i", xs), Y: float64Record(h.mem, "y", xs)}
	if k == 6 {
		switch h.kind {
		case "rows of X and Y differ":
			b.Y.Release()
			b.Y = float64Record(h.mem, "y", xs[:3])
		case "no X":
			b.X.Release()
			b.X = nil
		case "no X on replay":
			if h.passes > 1 {
				b.X.Release()
				b.X = nil
			}
		case "schema changes":
			b.X.Release()
			b.X = float64Record(h.mem, "j", xs)
		case "Y appears":
		}
	}
	if h.kind == "Y appears" && k < 6 {
		b.Y.Release()
		b.Y = nil
	}
	return b, nil
}

func (h *hostileSource) Rewind() error    { h.pos = 0; h.passes++; return nil }
func (h *hostileSource) Replayable() bool { return true }

// TestAuditHostileUpstream: the stages over a source that returns empty
// batches read every row once; over a source that returns a malformed
// batch (X and Y of different lengths, no X, another schema, Y from the
// middle on) they return an error, or pass the batch on as it is — never
// panic, never hold anything after Close.
func TestAuditHostileUpstream(t *testing.T) {
	defer goleak.VerifyNone(t)
	stages := map[string]func(src flow.Source, mem memory.Allocator) (lifecycleSource, error){
		"rebatch": func(src flow.Source, mem memory.Allocator) (lifecycleSource, error) {
			return minibatch.NewRebatcher(src, 4, minibatch.Pad(0), minibatch.WithAllocator(mem))
		},
		"shuffle": func(src flow.Source, mem memory.Allocator) (lifecycleSource, error) {
			return minibatch.Shuffle(src, 7, minibatch.WithAllocator(mem))
		},
		"permute windowed": func(src flow.Source, mem memory.Allocator) (lifecycleSource, error) {
			return minibatch.Permute(src, 6, minibatch.WithAllocator(mem), minibatch.WithWindowRows(9))
		},
		"cache": func(src flow.Source, mem memory.Allocator) (lifecycleSource, error) {
			return minibatch.NewCache(src, minibatch.WithAllocator(mem))
		},
		"repeat": func(src flow.Source, mem memory.Allocator) (lifecycleSource, error) {
			return minibatch.Repeat(src, 2)
		},
		"holdout train": func(src flow.Source, mem memory.Allocator) (lifecycleSource, error) {
			train, val, err := minibatch.Holdout(t.Context(), src, 0.25, minibatch.WithStratify(false), minibatch.WithAllocator(mem))
			if err != nil {
				return nil, err
			}
			val.Close()
			return train, nil
		},
	}
	for _, kind := range []string{"", "rows of X and Y differ", "no X", "schema changes", "Y appears", "no X on replay"} {
		for name, mk := range stages {
			t.Run(name+"/"+kind, func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				ctx := auditCtx(t)
				st, err := mk(&hostileSource{mem: mem, kind: kind}, mem)
				if err != nil && name == "holdout train" && kind != "" {
					t.Logf("%s: %v", kind, err)
					wantErr(t, err, "minibatch: holdout")
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				var ids []int
				var end error
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Fatalf("panic: %v\n%s", r, debug.Stack())
						}
					}()
					for {
						b, err := st.Next(ctx)
						if err != nil {
							end = err
							return
						}
						if b.X != nil && b.X.Schema().Field(0).Name == "i" {
							ids = append(ids, auditIDs(t, b)...)
						}
						b.Release()
					}
				}()
				if kind == "" {
					if end != io.EOF {
						t.Fatalf("over empty batches: %v; want io.EOF", end)
					}
					n := hostileBatches * 5
					if name == "repeat" {
						ids = ids[:len(ids)/2]
					}
					if name == "rebatch" {
						ids = ids[:n] // the pad of the last batch
					}
					if name == "holdout train" {
						if len(ids) != n*3/4 || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
							t.Errorf("holdout train over empty batches: rows %v; want %d distinct ones", ids, n*3/4)
						}
						return
					}
					checkEveryRowOnce(t, "over empty batches", ids, n)
					return
				}
				t.Logf("%s: %v", kind, end)
				if end != io.EOF && !strings.Contains(end.Error(), "minibatch") {
					t.Errorf("error %q does not name the stage", end)
				}
			})
		}
	}
}

// TestAuditStepsOverHostileBatches: the steps and step helpers given a
// batch with no X, no Y, X and Y of different lengths, or no rows return
// an error or a batch — never panic — and hold nothing after. (MapRows and
// PackStep pass Y on untouched, so they keep a mismatch of X and Y that
// they are given: that is their doc's "Y passed through".)
func TestAuditStepsOverHostileBatches(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := flow.WithAllocator(auditCtx(t), mem)
	labels := func(v ...int64) arrow.RecordBatch { return int64Rec(mem, "y", v) }
	batches := map[string]func() flow.Batch{
		"no X":          func() flow.Batch { return flow.Batch{Y: labels(0, 1)} },
		"no Y":          func() flow.Batch { return flow.Batch{X: tensorRecord(t, mem, "x", 2, 3)} },
		"rows differ":   func() flow.Batch { return flow.Batch{X: tensorRecord(t, mem, "x", 3, 3), Y: labels(0, 1)} },
		"no rows":       func() flow.Batch { return flow.Batch{X: tensorRecord(t, mem, "x", 0, 3), Y: labels()} },
		"plain columns": func() flow.Batch { return flow.Batch{X: float64Record(mem, "x", []float64{1, 2}), Y: labels(0, 1)} },
	}
	rs, err := minibatch.NewResampler(minibatch.WithClassLabel("y"), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]func(b flow.Batch) (flow.Batch, error){
		"Resampler.FitTransform": func(b flow.Batch) (flow.Batch, error) { return rs.FitTransform(ctx, b) },
		"PackStep":               func(b flow.Batch) (flow.Batch, error) { return (&minibatch.PackStep{Out: "p"}).Transform(ctx, b) },
		"MapRows": func(b flow.Batch) (flow.Batch, error) {
			return minibatch.MapRows(ctx, b, "x", "z", 2, func(x, y []float32) { y[0], y[1] = x[0], x[len(x)-1] })
		},
		"Examples": func(b flow.Batch) (flow.Batch, error) {
			_, _, err := minibatch.Examples(b, "x", "y", 2)
			return flow.Batch{}, err
		},
		"Classes": func(b flow.Batch) (flow.Batch, error) {
			_, err := minibatch.Classes(b, "y", 2)
			return flow.Batch{}, err
		},
		"LabelsFloat32": func(b flow.Batch) (flow.Batch, error) {
			_, err := minibatch.LabelsFloat32(b, "y")
			return flow.Batch{}, err
		},
	}
	for sname, step := range steps {
		for bname, mk := range batches {
			t.Run(sname+"/"+bname, func(t *testing.T) {
				in := mk()
				defer in.Release()
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panic: %v\n%s", r, debug.Stack())
					}
				}()
				out, err := step(in)
				if err != nil {
					if !strings.Contains(err.Error(), "minibatch") {
						t.Errorf("error %q does not name the package", err)
					}
					return
				}
				// The Resampler builds Y; the others pass Y on as it is.
				if sname == "Resampler.FitTransform" && out.X != nil && out.Y != nil && out.X.NumRows() != out.Y.NumRows() {
					t.Errorf("out: X has %d rows, Y %d; want an error or equal lengths", out.X.NumRows(), out.Y.NumRows())
				}
				out.Release()
			})
		}
	}
}

// TestAuditCacheCountsSharedBuffersOnce: a Cache of zero-copy slices of
// one batch (a Rebatcher's cuts) holds that batch's buffers once, and
// WithMaxBytes bounds what it holds, not the sum of the slices' views of
// the same buffers.
func TestAuditCacheCountsSharedBuffersOnce(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := auditCtx(t)
	const rows = 10000
	m := newMemory(t, mem, rows, rows) // one batch: 80 KB of X, 80 KB of Y
	defer m.Close()
	rb, err := minibatch.NewRebatcher(m, 100, minibatch.Keep, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	held := int64(2 * rows * 8)
	c, err := minibatch.NewCache(rb, minibatch.WithMaxBytes(2*held), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ids := readIDs(t, ctx, c)
	checkEveryRowOnce(t, "through the cache", ids, rows)
	if got := c.Bytes(); got > 2*held {
		t.Errorf("Bytes() = %d for the slices of one batch of %d bytes; want at most WithMaxBytes (%d)", got, held, 2*held)
	}
}

// TestAuditSchemaIsX: every source and wrapper's Schema, where it is known
// before the first batch, is the schema of the X that Next returns, and
// after the first batch it is known.
func TestAuditSchemaIsX(t *testing.T) {
	for _, tc := range append(auditCases(), auditSplitCases()...) {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			m := tc.make(t, mem, t.TempDir())
			defer m.done()
			defer m.src.Close()
			before := m.src.Schema()
			b, err := m.src.Next(auditCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Release()
			if before != nil && !before.Equal(b.X.Schema()) {
				t.Errorf("Schema() before Next: %v; want the batch's X schema %v", before, b.X.Schema())
			}
			if after := m.src.Schema(); after == nil || !after.Equal(b.X.Schema()) {
				t.Errorf("Schema() after Next: %v; want the batch's X schema %v", after, b.X.Schema())
			}
		})
	}
}
