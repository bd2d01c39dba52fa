package daemon_test

import (
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/daemon/ckpt"
	"github.com/penstock-ml/penstock/persist"
)

// loadLatest loads the newest checkpoint that verifies.
func loadLatest(t testing.TB, dir string) *ckpt.Loaded {
	t.Helper()
	l, err := tryLatest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// tryLatest loads the newest checkpoint, through the store, when no
// daemon runs on dir.
func tryLatest(dir string) (*ckpt.Loaded, error) {
	store, err := ckpt.Open(dir, ckpt.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	return store.Latest(persist.WithRegistry(testRegistry()))
}

// fittedBatches reads the newest checkpoint file's batch count while a
// daemon may be saving in dir (the store may not be opened then: it
// removes temporary files); checkpoint files appear whole, by rename.
func fittedBatches(dir string) int64 {
	files, _ := filepath.Glob(filepath.Join(dir, "ckpt-*.pst"))
	sort.Sort(sort.Reverse(sort.StringSlice(files)))
	for _, f := range files {
		m, err := persist.LoadFile(f, persist.WithRegistry(testRegistry()))
		if err != nil {
			continue // pruned while read
		}
		var meta struct {
			Batches int64 `json:"batches"`
		}
		if json.Unmarshal(m.Extra[ckpt.MetaName], &meta) == nil {
			return meta.Batches
		}
	}
	return 0
}

// remaining counts the inbox's files not yet moved to done/.
func remaining(t testing.TB, inbox string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(inbox, "*.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// Exact resume: the daemon, killed with SIGKILL at 10 seeded random
// moments (one of them between a checkpoint's write and its rename), ends
// with parameters identical to the bit to an uninterrupted fit of the same
// files, having fitted each of the 100 000 rows exactly once.
//
// The streaming engine too: its in-order barriers keep sequence order, so
// for these deterministic steps it ends with the same bits.
func TestKillResumeDir(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes")
	}
	for _, engine := range []string{"sequential", "streaming"} {
		t.Run(engine, func(t *testing.T) { killResumeDir(t, engine) })
	}
}

func killResumeDir(t *testing.T, engine string) {
	e := newEnv(t)
	paths := writeFiles(t, e.inbox, 200, 5, 100)
	want := referenceFit(t, paths)
	cfg := e.config(t, []map[string]any{{"name": "files", "type": "dir", "dir": e.inbox, "glob": "*.arrow", "settle": "10ms", "poll": "5ms"}},
		map[string]any{"engine": engine})

	rng := rand.New(rand.NewPCG(42, 0))
	delay := "PENSTOCK_BATCH_DELAY=1ms"
	for k := range 10 {
		env := []string{delay}
		if k == 3 {
			env = append(env, "PENSTOCK_KILL_BEFORE_RENAME=2")
		}
		c := startChild(t, cfg, env...)
		if k == 3 {
			err := c.wait(t, 60*time.Second) // it kills itself
			if ee, ok := err.(interface{ Sys() any }); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("run %d: %v; want death by SIGKILL before a rename\n%s", k, err, tail(c.logs(), 20))
			}
			continue
		}
		select {
		case <-c.addr:
		case err := <-c.done:
			t.Fatalf("run %d exited early: %v\n%s", k, err, tail(c.logs(), 30))
		case <-time.After(30 * time.Second):
			t.Fatal("child did not start")
		}
		time.Sleep(time.Duration(rng.IntN(250)) * time.Millisecond)
		c.kill(t)
		t.Logf("run %d killed; the newest checkpoint has %d batches", k, fittedBatches(e.ckpt))
	}
	c := startChild(t, cfg)
	deadline := time.Now().Add(60 * time.Second)
	for remaining(t, e.inbox) > 0 {
		if time.Now().After(deadline) {
			c.kill(t)
			t.Fatalf("%d files never reached done/\n%s", remaining(t, e.inbox), tail(c.logs(), 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.wait(t, 30*time.Second); err != nil {
		t.Fatalf("drain: %v\n%s", err, tail(c.logs(), 30))
	}
	got := loadLatest(t, e.ckpt)
	p, err := got.Model.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	if n := countedRows(t, p); n != 100_000 {
		t.Errorf("rows fitted %d; want exactly 100000", n)
	}
	if string(marshalModel(t, p)) != string(marshalModel(t, want)) {
		t.Error("the resumed fit's parameters differ from the uninterrupted fit's")
	}
	done, _ := filepath.Glob(filepath.Join(e.inbox, "done", "*.arrow"))
	if len(done) != 200 {
		t.Errorf("%d files in done/; want 200", len(done))
	}
	if _, err := os.Stat(filepath.Join(e.inbox, "rejected")); err == nil {
		if r, _ := os.ReadDir(filepath.Join(e.inbox, "rejected")); len(r) > 0 {
			t.Errorf("files rejected: %v", r)
		}
	}
}
