package checkpoint

// An adversarial audit of the promises of checkpoint's doc comments: what
// the key counts (an inactive branch does not; the choice, the data and
// the state the prefix starts from do) and cancellation with a cause in
// the middle of a fit, in both engines.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
	"go.uber.org/goleak"
)

// choicePipeline is choose(a: slow(scaleA), b: slow(scaleB)) →
// checkpoint → cheap, with branch choice chosen.
func (w *world) choicePipeline(c *Cache, choice string, scaleA, scaleB float64) *Pipeline {
	w.t.Helper()
	ch, err := steps.NewChooseOneOf(
		flow.Named("a", &slowStep{scale: scaleA, calls: w.calls}),
		flow.Named("b", &slowStep{scale: scaleB, calls: w.calls}))
	if err != nil {
		w.t.Fatal(err)
	}
	if err := ch.SetParams(hparams.Values{"choice": choice}); err != nil {
		w.t.Fatal(err)
	}
	pre, err := flow.NewPipeline([]flow.Node{flow.Named("pick", ch)})
	if err != nil {
		w.t.Fatal(err)
	}
	suf, err := flow.NewPipeline([]flow.Node{flow.Named("cheap", &cheapStep{})})
	if err != nil {
		w.t.Fatal(err)
	}
	p, err := New(c, pre, suf)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// The hyperparameters of an inactive branch are not in the key (a change
// hits), the choice and the active branch's are (a change misses).
func TestAuditKeyCountsOnlyTheActiveBranch(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			w := newWorld(t, 1)
			if err := steps.Register(w.reg); err != nil {
				t.Fatal(err)
			}
			c := w.cache(t.TempDir())
			fit := func(what string, choice string, a, b float64, wantHit bool) {
				t.Helper()
				p := w.choicePipeline(c, choice, a, b)
				before := w.calls.Load()
				res, err := p.Fit(deadline(t), w.runner(e), w.data(rows, -1, 0))
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				calls := w.calls.Load() - before
				if res.Hit != wantHit || (wantHit && calls != 0) || (!wantHit && calls != rows/4) {
					t.Errorf("%s: hit=%v, %d calls of the slow steps; want hit=%v", what, res.Hit, calls, wantHit)
				}
			}
			fit("first fit", "a", 2, 5, false)
			fit("the inactive branch's scale 5 -> 7", "a", 2, 7, true)
			fit("the active branch's scale 2 -> 3", "a", 3, 5, false)
			fit("choice a -> b", "b", 2, 5, false)
			fit("choice b, the inactive a's scale 2 -> 9", "b", 9, 5, true)
		})
	}
}

// A prefix that has already learned something continues from it (a
// second Fit continues from the current state): its fit must not hit the
// entry of a prefix that started from nothing, whose state differs.
func TestAuditKeyCountsTheStartingState(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			w := newWorld(t, 1)
			c := w.cache(t.TempDir())
			fresh := w.pipeline(c, 2, 0)
			if _, err := fresh.Fit(deadline(t), w.runner(e), w.data(rows, -1, 0)); err != nil {
				t.Fatal(err)
			}
			warm := w.pipeline(c, 2, 0)
			slow := warm.Prefix().Step("slow").(*slowStep)
			slow.sum, slow.n = 1000, 10 // learned before, elsewhere
			res, err := warm.Fit(deadline(t), w.runner(e), w.data(rows, -1, 0))
			if err != nil {
				t.Fatal(err)
			}
			after := warm.Prefix().Step("slow").(*slowStep)
			want := fresh.Prefix().Step("slow").(*slowStep)
			if after.n != 10+want.n || after.sum != 1000+want.sum {
				t.Errorf("hit=%v: the prefix that had seen 10 rows has n=%d sum=%v after the fit; want n=%d sum=%v (it continues)",
					res.Hit, after.n, after.sum, 10+want.n, 1000+want.sum)
			}
		})
	}
}

// stopper passes its batches on and cancels the run, with cancel, at its
// third; from then on it reports the cancellation as a step would.
type stopper struct {
	cancel func()
	n      int
}

func (s *stopper) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return s.Transform(ctx, in)
}

func (s *stopper) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	s.n++
	if s.n == 3 {
		s.cancel()
	}
	if ctx.Err() != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	return mapX(ctx, in, func(v float64) float64 { return v })
}

// A fit cancelled with a cause in the middle of the prefix's run returns
// the cause, stores nothing (the next fit misses and stores) and leaves
// no goroutine, temporary directory or batch behind.
func TestAuditFitCancelCause(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			w := newWorld(t, 1)
			dir := t.TempDir()
			c := w.cache(dir)
			cause := errors.New("audit: stop now")
			ctx, cancel := context.WithCancelCause(deadline(t))
			defer cancel(nil)
			st := &stopper{cancel: func() { cancel(cause) }}
			if err := w.reg.Register(persist.Type{Name: "checkpointtest.Stopper", Version: 1, Of: (*stopper)(nil),
				New: func(persist.Spec) (flow.Step, error) { return &stopper{}, nil }}); err != nil {
				t.Fatal(err)
			}
			pre, err := flow.NewPipeline([]flow.Node{flow.Named("slow", &slowStep{scale: 2, calls: w.calls}), flow.Named("stop", st)})
			if err != nil {
				t.Fatal(err)
			}
			suf, err := flow.NewPipeline([]flow.Node{flow.Named("cheap", &cheapStep{})})
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(c, pre, suf)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Fit(ctx, w.runner(e), w.data(rows, -1, 0))
			if !errors.Is(err, cause) {
				t.Fatalf("got %v; want an error wrapping the cause", err)
			}
			st.cancel = func() {}
			st.n = 10
			res, err := p.Fit(deadline(t), w.runner(e), w.data(rows, -1, 0))
			if err != nil {
				t.Fatal(err)
			}
			if res.Hit || !res.Stored {
				t.Errorf("after a cancelled fit: hit=%v stored=%v; want a miss that stores", res.Hit, res.Stored)
			}
		})
	}
}

// capped is an allocator that refuses (panics on) any allocation above
// its bound: reading back a damaged entry must not ask for what a corrupt
// length says.
type capped struct {
	memory.Allocator
	bound int
}

func (c capped) Allocate(n int) []byte {
	if n > c.bound {
		panic(fmt.Sprintf("capped: asked for %d bytes, more than %d", n, c.bound))
	}
	return c.Allocator.Allocate(n)
}

func (c capped) Reallocate(n int, b []byte) []byte {
	if n > c.bound {
		panic(fmt.Sprintf("capped: asked for %d bytes, more than %d", n, c.bound))
	}
	return c.Allocator.Reallocate(n, b)
}

// An entry whose output file was damaged on disk (a flipped bit in its
// schema, a message's length, a buffer's value) fails its check (the
// SHA-256 of each output file, in its meta) and is a miss, fitted and
// stored again: never a crash, a panic, an allocation of what a corrupt
// length asks for, a leak, or outputs read back as other values or types
// (a flip in the schema's length once made arrow's reader ask the Go heap
// for all the machine's memory; another turned a float64 column into a
// float16 one).
func TestAuditDamagedOutputsAreMisses(t *testing.T) {
	w := newWorld(t, 1)
	c := w.cache(t.TempDir())
	res, _, _ := w.fitOnce(c, flow.Sequential, 2, w.data(rows, -1, 0))
	entry := c.entryDir(res.Key)
	files := map[string][]byte{}
	names, err := os.ReadDir(entry)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(entry, n.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[n.Name()] = b
	}
	orig := files[xFile]
	for i := 0; i < len(orig); i += 11 {
		bit := byte(1) << (i % 8)
		if err := os.MkdirAll(entry, 0o755); err != nil {
			t.Fatal(err)
		}
		for n, d := range files {
			if n == xFile {
				d = append([]byte(nil), d...)
				d[i] ^= bit
			}
			if err := os.WriteFile(filepath.Join(entry, n), d, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		mem := memory.NewCheckedAllocator(capped{memory.NewGoAllocator(), 64 << 20})
		p := w.pipeline(c, 2, 0)
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("byte %d, bit %#x flipped: panic %v", i, bit, r)
				}
			}()
			res, err := p.Fit(deadline(t), flow.Runner{Allocator: mem}, w.data(rows, -1, 0))
			if err != nil || res.Hit || !res.Stored {
				t.Errorf("byte %d, bit %#x flipped: hit=%v, stored=%v, %v; want a miss that stores", i, bit, res.Hit, res.Stored, err)
			}
		}()
		mem.AssertSize(t, 0)
	}
}

// FuzzEntryOutputs reads arbitrary bytes as the outputs of a cache entry
// (x.arrows): every batch, then a rewind and every batch again; an error,
// never a panic, a hang, an allocation beyond the entry's bound or a
// leak.
func FuzzEntryOutputs(f *testing.F) {
	mem := memory.NewGoAllocator()
	dir := f.TempDir()
	w := &entryWriter{tmp: dir, mem: mem, meta: meta{Format: formatVersion}}
	for i := range 3 {
		x := float64s(mem, float64(i), float64(i)+0.5, -1)
		if err := w.write(flow.Batch{Seq: int64(i), X: x}); err != nil {
			f.Fatal(err)
		}
		x.Release()
	}
	if err := w.finish(); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(dir, xFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff})
	m := w.meta
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		mb, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, metaFile), mb, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, xFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		mem := memory.NewCheckedAllocator(capped{memory.NewGoAllocator(), 64 << 20})
		defer mem.AssertSize(t, 0)
		e, ok, err := openOutputs(dir, mem, false, false) // the reader itself, unverified
		if err != nil || !ok {
			return // a miss
		}
		defer e.close()
		for pass := range 2 {
			if pass == 1 {
				if err := e.Rewind(); err != nil {
					return
				}
			}
			for {
				b, err := e.Next(t.Context())
				if err != nil {
					break
				}
				b.Release()
			}
		}
	})
}

// float64s is a record of one float64 column "x".
func float64s(mem memory.Allocator, v ...float64) arrow.RecordBatch {
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	b.AppendValues(v, nil)
	a := b.NewArray()
	defer a.Release()
	return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "x", Type: a.DataType()}}, nil), []arrow.Array{a}, int64(len(v)))
}
