package daemon_test

import (
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
				time.Sleep(60 * time.Millisecond) // a checkpoint after each
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
