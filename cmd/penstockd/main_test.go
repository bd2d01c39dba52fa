package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const config = `{
  "pipeline": "model.pst",
  "schema": {"fields": [{"name": "x", "type": "float32"}, {"name": "y", "type": "int64"}], "inputs": ["x"], "labels": ["y"]},
  "sources": [{"name": "files", "type": "dir", "dir": "/in"}],
  "checkpoint": {"dir": "/ckpt"}
}`

func write(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "penstockd.json")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// -check-config prints the configuration with its defaults and the
// overrides of -set, and exits 0.
func TestCheckConfig(t *testing.T) {
	var out, errs bytes.Buffer
	code := run([]string{"-config", write(t, config), "-set", "checkpoint.every=10s", "-set", "address=:9090", "-check-config"}, &out, &errs)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	var c struct {
		Address    string
		Checkpoint struct{ Every string }
		Engine     string
	}
	if err := json.Unmarshal(out.Bytes(), &c); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if c.Address != ":9090" || c.Checkpoint.Every != "10s" || c.Engine != "sequential" {
		t.Errorf("printed %s", out.String())
	}
}

// A bad configuration exits 1 with an error that names the key.
func TestBadConfig(t *testing.T) {
	for _, tc := range []struct{ args []string }{
		{[]string{"-set", "checkpoint.keep=1"}},
		{[]string{"-set", `sources.0.colour="red"`}},
		{[]string{"-set", `drain_timeout="forever"`}},
	} {
		var out, errs bytes.Buffer
		code := run(append([]string{"-config", write(t, config), "-check-config"}, tc.args...), &out, &errs)
		key := strings.SplitN(strings.TrimPrefix(tc.args[1], "sources.0."), "=", 2)[0]
		if code != 1 || !strings.Contains(errs.String(), strings.TrimPrefix(key, "sources.0.")) {
			t.Errorf("%v: exit %d, %q; want 1 and an error naming %s", tc.args, code, errs.String(), key)
		}
	}
	var out, errs bytes.Buffer
	if code := run([]string{"-config", "/no/such/file.json"}, &out, &errs); code != 1 || !strings.Contains(errs.String(), "/no/such/file.json") {
		t.Errorf("missing file: exit %d, %q", code, errs.String())
	}
}
