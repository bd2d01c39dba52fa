package checkpoint

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/penstock-ml/penstock/flow"
)

const rows = 40

// fitOnce fits a fresh slow → checkpoint → cheap pipeline and returns the
// result, the calls of the slow step it made, and the pipeline.
func (w *world) fitOnce(c *Cache, e flow.Engine, scale float64, src flow.Source) (Result, int64, *Pipeline) {
	w.t.Helper()
	p := w.pipeline(c, scale, 0)
	before := w.calls.Load()
	res, err := p.Fit(deadline(w.t), w.runner(e), src)
	if err != nil {
		w.t.Fatalf("%v: Fit: %v", e, err)
	}
	return res, w.calls.Load() - before, p
}

func TestSecondFitSkipsSlowStep(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			w := newWorld(t, 1)
			c := w.cache(t.TempDir())
			src := w.data(rows, -1, 0)
			res1, calls1, p1 := w.fitOnce(c, e, 2, src)
			if res1.Hit || !res1.Stored || calls1 != rows/4 {
				t.Fatalf("first fit: hit=%v stored=%v calls=%d; want a miss that stores, %d calls", res1.Hit, res1.Stored, calls1, rows/4)
			}
			if err := src.Rewind(); err != nil {
				t.Fatal(err)
			}
			res2, calls2, p2 := w.fitOnce(c, e, 2, src)
			if !res2.Hit || calls2 != 0 {
				t.Fatalf("second fit: hit=%v calls=%d; want a hit with no call of the slow step", res2.Hit, calls2)
			}
			if res1.Key != res2.Key {
				t.Errorf("keys differ: %s, %s", res1.Key, res2.Key)
			}
			// The suffix was fitted on the same outputs.
			c1 := p1.Suffix().Step("cheap").(*cheapStep)
			c2 := p2.Suffix().Step("cheap").(*cheapStep)
			if c1.max != c2.max || c1.seen != c2.seen || c2.seen != rows {
				t.Errorf("cheap step after hit: max=%v seen=%d; after miss max=%v seen=%d", c2.max, c2.seen, c1.max, c1.seen)
			}
			// The restored prefix has the fitted state.
			s1 := p1.Prefix().Step("slow").(*slowStep)
			s2 := p2.Prefix().Step("slow").(*slowStep)
			if s1.sum != s2.sum || s1.n != s2.n || s2.scale != 2 {
				t.Errorf("restored slow step sum=%v n=%d scale=%v; want sum=%v n=%d scale=2", s2.sum, s2.n, s2.scale, s1.sum, s1.n)
			}
		})
	}
}

func TestChangesMiss(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			dir := t.TempDir()
			w := newWorld(t, 1)
			c := w.cache(dir)
			base := w.data(rows, -1, 0)
			if res, calls, _ := w.fitOnce(c, e, 2, base); res.Hit || calls == 0 {
				t.Fatalf("first fit: hit=%v calls=%d; want a miss", res.Hit, calls)
			}
			check := func(what string, w *world, c *Cache, scale float64, src flow.Source) {
				t.Helper()
				res, calls, _ := w.fitOnce(c, e, scale, src)
				if res.Hit || calls != rows/4 {
					t.Errorf("%s: hit=%v calls=%d; want a miss calling the slow step %d times", what, res.Hit, calls, rows/4)
				}
			}
			check("hyperparameter scale 2 -> 3", w, c, 3, w.data(rows, -1, 0))
			check("one input value changed", w, c, 2, w.data(rows, 17, 1e-9))
			check("module version changed", w, w.cache(dir, ModuleVersion("v1.0.1-test")), 2, w.data(rows, -1, 0))
			w2 := newWorld(t, 2)
			check("slow step version 1 -> 2", w2, w2.cache(dir), 2, w2.data(rows, -1, 0))
			// And the original still hits.
			if res, calls, _ := w.fitOnce(c, e, 2, w.data(rows, -1, 0)); !res.Hit || calls != 0 {
				t.Errorf("unchanged: hit=%v calls=%d; want a hit", res.Hit, calls)
			}
		})
	}
}

func TestCachingOff(t *testing.T) {
	for _, e := range engines {
		for _, how := range []string{"option", "env"} {
			t.Run(e.String()+"/"+how, func(t *testing.T) {
				dir := t.TempDir()
				w := newWorld(t, 1)
				var c *Cache
				if how == "env" {
					t.Setenv(EnvVar, "off")
					c = w.cache(dir)
				} else {
					c = w.cache(dir, Off())
				}
				if c.Enabled() {
					t.Fatal("Enabled() = true; want false")
				}
				for i := range 3 {
					res, calls, _ := w.fitOnce(c, e, 2, w.data(rows, -1, 0))
					if res.Hit || res.Stored || res.Uncached == "" || calls != rows/4 {
						t.Errorf("fit %d: hit=%v stored=%v uncached=%q calls=%d; want every fit to call the slow step %d times", i, res.Hit, res.Stored, res.Uncached, calls, rows/4)
					}
				}
				if n, _, _ := w.cache(dir).Entries(); n != 0 && how == "option" {
					t.Errorf("%d entries stored with caching off; want 0", n)
				}
			})
		}
	}
}

func TestRestoredTransformsNewData(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			w := newWorld(t, 1)
			c := w.cache(t.TempDir())
			ctx := deadline(t)
			_, _, p1 := w.fitOnce(c, e, 2, w.data(rows, -1, 0))
			want := w.transformAll(ctx, e, p1, w.data(12, 3, 7))
			res, _, p2 := w.fitOnce(c, e, 2, w.data(rows, -1, 0))
			if !res.Hit {
				t.Fatal("second fit missed")
			}
			before := w.calls.Load()
			got := w.transformAll(ctx, e, p2, w.data(12, 3, 7))
			if !sameFloats(got, want) {
				t.Errorf("transform after a hit: %v; after the miss: %v", got, want)
			}
			if w.calls.Load() == before {
				t.Error("the restored slow step did not transform the new data")
			}
		})
	}
}

func TestFingerprintAndUnreplayable(t *testing.T) {
	w := newWorld(t, 1)
	c := w.cache(t.TempDir())
	file := filepath.Join(t.TempDir(), "data.csv")
	if err := os.WriteFile(file, []byte("x\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fp := func() ([]byte, error) { return FileFingerprint(file) }
	res1, _, _ := w.fitOnce(c, flow.Sequential, 2, Fingerprinted(w.data(rows, -1, 0), fp))
	// Other batches, same fingerprint: the fingerprint alone decides.
	res2, calls, _ := w.fitOnce(c, flow.Sequential, 2, Fingerprinted(oneShot{w.data(rows, 5, 1)}, fp))
	if res1.Hit || !res2.Hit || calls != 0 {
		t.Errorf("fingerprinted: hits %v, %v, calls %d; want a miss then a hit on the fingerprint alone", res1.Hit, res2.Hit, calls)
	}
	if err := os.WriteFile(file, []byte("x\n2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, calls, _ := w.fitOnce(c, flow.Sequential, 2, Fingerprinted(w.data(rows, -1, 0), fp)); res.Hit || calls == 0 {
		t.Errorf("file content changed: hit=%v calls=%d; want a miss", res.Hit, calls)
	}
	if !flow.Replayable(Fingerprinted(w.data(rows, -1, 0), fp)) || flow.Replayable(Fingerprinted(oneShot{w.data(rows, -1, 0)}, fp)) {
		t.Error("Fingerprinted does not keep the source's replayability")
	}
}

func TestUnreplayableSourceIsSpilled(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			w := newWorld(t, 1)
			c := w.cache(t.TempDir())
			res1, calls1, p1 := w.fitOnce(c, e, 2, oneShot{w.data(rows, -1, 0)})
			if res1.Hit || !res1.Stored || calls1 != rows/4 {
				t.Fatalf("one-shot source, first fit: hit=%v stored=%v calls=%d; want a stored miss", res1.Hit, res1.Stored, calls1)
			}
			// The same data, one-shot again, and replayable: both hit.
			res2, calls2, p2 := w.fitOnce(c, e, 2, oneShot{w.data(rows, -1, 0)})
			res3, calls3, _ := w.fitOnce(c, e, 2, w.data(rows, -1, 0))
			if !res2.Hit || !res3.Hit || calls2+calls3 != 0 {
				t.Errorf("same data: hits %v (one-shot), %v (replayable), calls %d; want two hits", res2.Hit, res3.Hit, calls2+calls3)
			}
			if a, b := p1.Suffix().Step("cheap").(*cheapStep), p2.Suffix().Step("cheap").(*cheapStep); a.max != b.max || a.seen != b.seen {
				t.Errorf("suffix after hit max=%v seen=%d; after miss max=%v seen=%d", b.max, b.seen, a.max, a.seen)
			}
			if res4, calls4, _ := w.fitOnce(c, e, 2, oneShot{w.data(rows, 9, 1)}); res4.Hit || calls4 == 0 {
				t.Errorf("one-shot source with a changed value: hit=%v calls=%d; want a miss", res4.Hit, calls4)
			}
			// No spill is left behind.
			ents, _ := os.ReadDir(c.Dir())
			for _, en := range ents {
				if strings.HasPrefix(en.Name(), ".") {
					t.Errorf("left in the cache: %s", en.Name())
				}
			}
		})
	}
}

// oneShot hides the Rewinder of its source.
type oneShot struct{ flow.Source }

func TestEntryIsZstdArrowIPC(t *testing.T) {
	w := newWorld(t, 1)
	c := w.cache(t.TempDir())
	res, _, _ := w.fitOnce(c, flow.Sequential, 2, w.data(400, -1, 0))
	raw, err := os.ReadFile(filepath.Join(c.Dir(), res.Key, xFile))
	if err != nil {
		t.Fatal(err)
	}
	// Every compressed buffer is a zstd frame (magic 0xFD2FB528, little
	// endian).
	if frames := bytes.Count(raw, []byte{0x28, 0xb5, 0x2f, 0xfd}); frames < 100 {
		t.Errorf("x.arrows holds %d zstd frames; want one per batch buffer (100 batches)", frames)
	}
	r, err := ipc.NewReader(bytes.NewReader(raw), ipc.WithAllocator(w.mem))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var n int64
	for r.Next() {
		n += r.RecordBatch().NumRows()
	}
	if r.Err() != nil || n != 400 {
		t.Errorf("read %d rows (%v); want 400", n, r.Err())
	}
}

func TestLRUEviction(t *testing.T) {
	w := newWorld(t, 1)
	dir := t.TempDir()
	c := w.cache(dir)
	clock := time.Unix(1_000_000, 0)
	c.now = func() time.Time { clock = clock.Add(time.Minute); return clock }
	// Measure one entry, then allow two and a half.
	res, _, _ := w.fitOnce(c, flow.Sequential, 1, w.data(rows, -1, 0))
	_, size, err := c.Entries()
	if err != nil || size == 0 {
		t.Fatalf("Entries: size %d, %v", size, err)
	}
	c.budget = size*5/2 + 1
	keys := []string{res.Key}
	for _, s := range []float64{2, 3} {
		res, _, _ := w.fitOnce(c, flow.Sequential, s, w.data(rows, -1, 0))
		keys = append(keys, res.Key)
		if s == 2 {
			// Use the first entry again: the second becomes the oldest.
			if r, _, _ := w.fitOnce(c, flow.Sequential, 1, w.data(rows, -1, 0)); !r.Hit {
				t.Fatal("scale 1 missed before eviction")
			}
		}
	}
	exists := func(k string) bool { _, err := os.Stat(filepath.Join(c.Dir(), k)); return err == nil }
	if got := []bool{exists(keys[0]), exists(keys[1]), exists(keys[2])}; !got[0] || got[1] || !got[2] {
		t.Errorf("entries present (scale 1, 2, 3) = %v; want [true false true]: the least recently used (scale 2) evicted", got)
	}
	if n, total, _ := c.Entries(); n != 2 || total > c.budget {
		t.Errorf("after eviction: %d entries, %d bytes; want 2 within %d", n, total, c.budget)
	}
	if r, calls, _ := w.fitOnce(c, flow.Sequential, 2, w.data(rows, -1, 0)); r.Hit || calls == 0 {
		t.Errorf("evicted entry: hit=%v calls=%d; want a miss", r.Hit, calls)
	}
}

func TestIncompleteEntriesAreMisses(t *testing.T) {
	w := newWorld(t, 1)
	c := w.cache(t.TempDir())
	p := w.pipeline(c, 2, 0)
	key, _, err := p.Key(deadline(t), w.data(rows, -1, 0), w.mem)
	if err != nil {
		t.Fatal(err)
	}
	// A half-written entry under its final name (as a non-atomic writer
	// would leave it): no meta, a truncated stream.
	dir := filepath.Join(c.Dir(), key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, xFile), []byte("ARROW1\x00\x00trunc"), 0o644)
	res, calls, _ := w.fitOnce(c, flow.Sequential, 2, w.data(rows, -1, 0))
	if res.Hit || calls == 0 {
		t.Fatalf("half-written entry: hit=%v calls=%d; want a miss", res.Hit, calls)
	}
	// A damaged complete entry (model bytes corrupted): a miss, replaced.
	os.WriteFile(filepath.Join(dir, modelFile), []byte("garbage"), 0o644)
	res, calls, _ = w.fitOnce(c, flow.Sequential, 2, w.data(rows, -1, 0))
	if res.Hit || calls == 0 || !res.Stored {
		t.Fatalf("damaged entry: hit=%v stored=%v calls=%d; want a miss that stores again", res.Hit, res.Stored, calls)
	}
	if res, calls, _ = w.fitOnce(c, flow.Sequential, 2, w.data(rows, -1, 0)); !res.Hit || calls != 0 {
		t.Fatalf("after repair: hit=%v calls=%d; want a hit", res.Hit, calls)
	}
}

func TestConcurrentRunsShareADirectory(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			w := newWorld(t, 1)
			dir := t.TempDir()
			ctx := deadline(t)
			// The expected suffix state for each scale, from an uncached fit.
			want := map[float64]float64{}
			for _, s := range []float64{1, 2, 3} {
				_, _, p := w.fitOnce(w.cache(dir, Off()), e, s, w.data(rows, -1, 0))
				want[s] = p.Suffix().Step("cheap").(*cheapStep).max
			}
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for g := range 4 {
				wg.Go(func() {
					c := w.cache(dir, Budget(1)) // evicts all but the newest: maximal churn
					for i := range 6 {
						s := float64(1 + (g+i)%3)
						p := w.pipeline(c, s, 0)
						src := w.data(rows, -1, 0)
						if _, err := p.Fit(ctx, w.runner(e), src); err != nil {
							errs <- err
							return
						}
						if got := p.Suffix().Step("cheap").(*cheapStep).max; got != want[s] {
							errs <- errors.New("a concurrent fit read a wrong or partial entry")
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestExperimentsAreSeparate(t *testing.T) {
	w := newWorld(t, 1)
	dir := t.TempDir()
	a := w.cache(dir, Experiment("a"))
	b := w.cache(dir, Experiment("b"))
	w.fitOnce(a, flow.Sequential, 2, w.data(rows, -1, 0))
	if res, _, _ := w.fitOnce(b, flow.Sequential, 2, w.data(rows, -1, 0)); res.Hit {
		t.Error("experiment b hit experiment a's entry")
	}
	if res, _, _ := w.fitOnce(a, flow.Sequential, 2, w.data(rows, -1, 0)); !res.Hit {
		t.Error("experiment a missed its own entry")
	}
	if _, err := Open(dir, Experiment("../x")); err == nil {
		t.Error(`Experiment("../x") accepted`)
	}
}

func TestEnvVarReadAtEveryFit(t *testing.T) {
	w := newWorld(t, 1)
	c := w.cache(t.TempDir())
	if res, _, _ := w.fitOnce(c, flow.Sequential, 2, w.data(rows, -1, 0)); !res.Stored {
		t.Fatal("first fit did not store")
	}
	t.Setenv(EnvVar, "off")
	if res, calls, _ := w.fitOnce(c, flow.Sequential, 2, w.data(rows, -1, 0)); res.Hit || calls != rows/4 {
		t.Errorf("PENSTOCK_CACHE=off set after Open: hit=%v calls=%d; want the slow step called %d times", res.Hit, calls, rows/4)
	}
}

func TestCrashLeftoversAreRemoved(t *testing.T) {
	w := newWorld(t, 1)
	c := w.cache(t.TempDir())
	old := filepath.Join(c.Dir(), ".tmp-crashed")
	fresh := filepath.Join(c.Dir(), ".tmp-running")
	for _, d := range []string{old, fresh} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-2 * StaleAfter)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	w.fitOnce(c, flow.Sequential, 2, w.data(rows, -1, 0))
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("a crashed run's temporary directory is still there (%v)", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a running store's temporary directory was removed: %v", err)
	}
}

func TestSplit(t *testing.T) {
	w := newWorld(t, 1)
	c := w.cache(t.TempDir())
	build := func() *flow.Pipeline {
		p, err := flow.NewPipeline([]flow.Node{
			flow.Named("slow", &slowStep{scale: 2, calls: w.calls}),
			flow.Named("cheap", &cheapStep{}),
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for i, wantHit := range []bool{false, true} {
		p, err := Split(c, build(), "cheap")
		if err != nil {
			t.Fatal(err)
		}
		if got := len(p.Prefix().Nodes()); got != 1 || p.Prefix().Nodes()[0].Name != "slow" || p.Suffix().Nodes()[0].Name != "cheap" {
			t.Fatalf("Split: prefix %v, suffix %v; want [slow], [cheap]", p.Prefix().Nodes(), p.Suffix().Nodes())
		}
		res, err := p.Fit(deadline(t), w.runner(flow.Sequential), w.data(rows, -1, 0))
		if err != nil || res.Hit != wantHit {
			t.Errorf("fit %d: hit=%v, %v; want hit=%v", i, res.Hit, err, wantHit)
		}
	}
	for _, bad := range []string{"slow", "nope"} {
		if _, err := Split(c, build(), bad); err == nil || !strings.Contains(err.Error(), "[slow cheap]") {
			t.Errorf("Split before %q: %v; want an error listing the nodes", bad, err)
		}
	}
}

// An entry whose outputs were damaged on disk (truncated) does not pass
// its check (meta.Files) and is a miss, fitted and stored again; one
// damaged while it is read, after the check, fails the read with
// ErrDamaged.
func TestDamagedOutputsAreDropped(t *testing.T) {
	w := newWorld(t, 1)
	c := w.cache(t.TempDir())
	res, _, _ := w.fitOnce(c, flow.Sequential, 2, w.data(400, -1, 0))
	x := filepath.Join(c.Dir(), res.Key, xFile)
	raw, err := os.ReadFile(x)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(x, raw[:len(raw)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if res, calls, _ := w.fitOnce(c, flow.Sequential, 2, w.data(400, -1, 0)); res.Hit || !res.Stored || calls == 0 {
		t.Errorf("fit on a truncated entry: hit=%v stored=%v calls=%d; want a miss that stores", res.Hit, res.Stored, calls)
	}
	if res, calls, _ := w.fitOnce(c, flow.Sequential, 2, w.data(400, -1, 0)); !res.Hit || calls != 0 {
		t.Errorf("the fit after: hit=%v calls=%d; want a hit of the entry stored again", res.Hit, calls)
	}
	e, ok, err := openEntry(c.entryDir(res.Key), w.mem)
	if err != nil || !ok {
		t.Fatalf("openEntry: %v, %v", ok, err)
	}
	defer e.close()
	if err := os.Truncate(x, int64(len(raw)/2)); err != nil {
		t.Fatal(err)
	}
	for {
		b, err := e.Next(deadline(t))
		if err == nil {
			b.Release()
			continue
		}
		if !errors.Is(err, ErrDamaged) {
			t.Errorf("reading an entry truncated after its check: %v; want ErrDamaged", err)
		}
		break
	}
}
