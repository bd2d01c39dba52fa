package daemon_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// The newest checkpoint truncated, or a byte of it flipped: the daemon
// starts from the one before and logs why.
func TestCorruptNewestCheckpoint(t *testing.T) {
	defer verifyNoLeaks(t)
	for _, damage := range []string{"truncated", "flipped"} {
		t.Run(damage, func(t *testing.T) {
			e := newEnv(t)
			cfg := e.config(t, []map[string]any{{"name": "http", "type": "http", "wal_dir": e.wal}},
				map[string]any{"checkpoint": map[string]any{"dir": e.ckpt, "every": "20ms", "keep": 3}})
			d := startInproc(t, cfg, testRegistry())
			for i, b := range bodies(t, 3) {
				if code, _ := post(t, d.addr+"/v1/ingest", arrowStream, b, "Idempotency-Key", string(rune('a'+i))); code != http.StatusAccepted {
					t.Fatalf("post: %d", code)
				}
				waitCheckpoint(t, e.ckpt, i+1) // a checkpoint after each
			}
			if err := d.stop(t, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(e.ckpt, "ckpt-*.pst"))
			sort.Strings(files)
			if len(files) < 2 {
				t.Fatalf("%d checkpoints; want at least 2", len(files))
			}
			newest, previous := files[len(files)-1], files[len(files)-2]
			data, err := os.ReadFile(newest)
			if err != nil {
				t.Fatal(err)
			}
			if damage == "truncated" {
				data = data[:len(data)/2]
			} else {
				data[len(data)/3] ^= 0x10
			}
			if err := os.WriteFile(newest, data, 0o644); err != nil {
				t.Fatal(err)
			}
			d = startInproc(t, cfg, testRegistry())
			if err := d.stop(t, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			logs := d.logs.String()
			if !strings.Contains(logs, `"msg":"ckpt: checkpoint skipped","path":"`+newest) {
				t.Errorf("no log line for the skipped checkpoint %s:\n%s", newest, tail(logs, 10))
			}
			if !strings.Contains(logs, `"msg":"resume","checkpoint":"`+previous) {
				t.Errorf("did not resume from %s:\n%s", previous, tail(logs, 10))
			}
		})
	}
}

// When the newest checkpoint does not load, the inputs that only it
// covered are fitted again from the one before, none lost and none twice:
// the directory's files already moved to done/ come back, the log keeps
// the segments.
func TestCorruptNewestRefits(t *testing.T) {
	defer verifyNoLeaks(t)
	for _, kind := range []string{"dir", "http"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t)
			src := map[string]any{"name": "files", "type": "dir", "dir": e.inbox, "glob": "*.arrow", "settle": "10ms", "poll": "5ms"}
			if kind == "http" {
				src = map[string]any{"name": "http", "type": "http", "wal_dir": e.wal}
			}
			cfg := e.config(t, []map[string]any{src},
				map[string]any{"checkpoint": map[string]any{"dir": e.ckpt, "every": "20ms", "keep": 3}})
			d := startInproc(t, cfg, testRegistry())
			stage := t.TempDir()
			for i, b := range bodies(t, 4) {
				if kind == "http" {
					if code, _ := post(t, d.addr+"/v1/ingest", arrowStream, b, "Idempotency-Key", fmt.Sprint(i)); code != http.StatusAccepted {
						t.Fatalf("post: %d", code)
					}
				} else {
					f := writeFiles(t, stage, 1, 5, 100)[0]
					if err := os.Rename(f, filepath.Join(e.inbox, fmt.Sprintf("f-%d.arrow", i))); err != nil {
						t.Fatal(err)
					}
				}
				waitCheckpoint(t, e.ckpt, i+1) // a checkpoint after each
			}
			if err := d.stop(t, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(e.ckpt, "ckpt-*.pst"))
			sort.Strings(files)
			newest := files[len(files)-1]
			data, err := os.ReadFile(newest)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(newest, data[:len(data)-7], 0o644); err != nil {
				t.Fatal(err)
			}
			d = startInproc(t, cfg, testRegistry())
			deadline := time.Now().Add(20 * time.Second)
			for kind == "dir" && remaining(t, e.inbox) > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // the log's records, fitted again
			if err := d.stop(t, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			l := loadLatest(t, e.ckpt)
			p, _ := l.Model.Pipeline()
			if n := countedRows(t, p); n != 2000 {
				t.Errorf("rows fitted %d after the fallback; want exactly 2000", n)
			}
		})
	}
}

// waitCheckpoint waits until dir holds the checkpoint of sequence number
// seq or a later one.
func waitCheckpoint(t *testing.T, dir string, seq int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(dir, "ckpt-*.pst"))
		for _, f := range files {
			var n int
			if _, err := fmt.Sscanf(filepath.Base(f), "ckpt-%d.pst", &n); err == nil && n >= seq {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint %d in %s", seq, dir)
		}
	}
}
