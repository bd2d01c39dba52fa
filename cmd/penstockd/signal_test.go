package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/daemon/ckpt"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

// TestMain runs penstockd itself when the tests start it as a child.
func TestMain(m *testing.M) {
	if cfg := os.Getenv("PENSTOCKD_TEST_CONFIG"); cfg != "" {
		os.Exit(run([]string{"-config", cfg}, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// daemonConfig writes a pipeline of built-in steps and a configuration of
// one directory source, and returns the configuration's path.
func daemonConfig(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	scale, err := steps.NewStandardScaler()
	if err != nil {
		t.Fatal(err)
	}
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: []string{"x"}}),
		flow.Named("scale", scale),
	})
	if err != nil {
		t.Fatal(err)
	}
	pipe := filepath.Join(root, "model.pst")
	if err := persist.SaveFile(pipe, p); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"pipeline": pipe,
		"schema": map[string]any{"fields": []map[string]any{{"name": "x", "type": "float32"}, {"name": "y", "type": "int64"}},
			"inputs": []string{"x"}, "labels": []string{"y"}},
		"sources": []map[string]any{{"name": "files", "type": "dir", "dir": filepath.Join(root, "in")},
			{"name": "http", "type": "http", "wal_dir": filepath.Join(root, "wal")}},
		"checkpoint":    map[string]any{"dir": filepath.Join(root, "ckpt")},
		"address":       "127.0.0.1:0",
		"log":           "json",
		"drain_timeout": "2s",
	}
	for _, d := range []string{"in", "ckpt", "wal"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "penstockd.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startDaemon starts penstockd as a child and waits for its "listening"
// line; lines gets every line of its log after it; addr is where it
// listens.
func startDaemon(t *testing.T, cfg string) (cmd *exec.Cmd, lines chan string, addr string) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PENSTOCKD_TEST_CONFIG="+cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines = make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var ev struct{ Addr string }
	if err := json.Unmarshal([]byte(waitLine(t, lines, `"msg":"listening"`, 30*time.Second)), &ev); err != nil || ev.Addr == "" {
		t.Fatalf("listening line without addr: %v", err)
	}
	return cmd, lines, ev.Addr
}

// waitLine returns the first line of lines that contains want.
func waitLine(t *testing.T, lines chan string, want string, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	var seen []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("log ended without %s:\n%s", want, strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline:
			t.Fatalf("no %s within %v:\n%s", want, within, strings.Join(seen, "\n"))
		}
	}
}

// stall opens a post to path and sends only part of its body. The HTTP
// server's Shutdown waits for a prediction whose body stalls; the drain
// cuts off a post to /v1/ingest instead (it would be refused as draining).
func stall(t *testing.T, addr, path string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.apache.arrow.stream\r\nContent-Length: 1000\r\n\r\n0123456789", path)
}

func exitCode(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("penstockd did not exit within %v", within)
		return -1
	}
}

// SIGTERM or SIGINT drains: a post acknowledged just before is fitted and
// in the final checkpoint, then penstockd exits 0 within the drain
// timeout. A second signal during the drain (held up here by a
// prediction whose body stalls) is a hard stop, exit 2, at once; a drain
// that the stalled prediction holds past the drain timeout is a hard
// stop, exit 2, at the timeout. A post to /v1/ingest whose body stalls
// does not hold the drain. Every log line is one JSON object.
func TestSignals(t *testing.T) {
	for _, tc := range []struct {
		name        string
		signals     []syscall.Signal
		stall       string // the path of a post whose body stalls, if any
		code        int
		least, most time.Duration // from the first signal to the exit
		line        string
	}{
		{"SIGTERM", []syscall.Signal{syscall.SIGTERM}, "", 0, 0, 4 * time.Second, `"msg":"checkpoint"`},
		{"SIGINT", []syscall.Signal{syscall.SIGINT}, "", 0, 0, 4 * time.Second, `"msg":"checkpoint"`},
		{"stalled ingest post", []syscall.Signal{syscall.SIGTERM}, "/v1/ingest", 0, 0, 1500 * time.Millisecond, `"msg":"checkpoint"`},
		{"second signal", []syscall.Signal{syscall.SIGTERM, syscall.SIGTERM}, "/v1/predict", 2, 0, 3 * time.Second, `"reason":"second signal"`},
		{"drain timeout", []syscall.Signal{syscall.SIGTERM}, "/v1/predict", 2, 2 * time.Second, 8 * time.Second, `"msg":"hard stop"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := daemonConfig(t)
			cmd, lines, addr := startDaemon(t, cfg)
			if tc.stall == "" || tc.code == 0 {
				postRows(t, addr)
			}
			if tc.stall != "" {
				stall(t, addr, tc.stall)
				time.Sleep(50 * time.Millisecond) // the server has the request
			}
			start := time.Now()
			for i, s := range tc.signals {
				if err := cmd.Process.Signal(s); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					waitLine(t, lines, `"msg":"drain"`, 10*time.Second)
				}
			}
			waitLine(t, lines, tc.line, 15*time.Second)
			code := exitCode(t, cmd, 15*time.Second)
			took := time.Since(start)
			if code != tc.code {
				t.Errorf("exit %d; want %d", code, tc.code)
			}
			if took < tc.least || took > tc.most {
				t.Errorf("exit %v after the first signal; want %v to %v", took, tc.least, tc.most)
			}
			if tc.code == 0 {
				st, err := ckpt.Open(filepath.Join(filepath.Dir(cfg), "ckpt"), ckpt.Options{})
				if err != nil {
					t.Fatal(err)
				}
				l, err := st.Latest()
				if err != nil || l.Meta.Batches != 1 {
					t.Errorf("final checkpoint: %v, %+v; want one with the posted batch fitted", err, l)
				}
			}
			for l := range lines {
				if !json.Valid([]byte(l)) {
					t.Errorf("log line %q is not one JSON object", l)
				}
			}
		})
	}
}

// postRows posts 5 rows to /v1/ingest and checks the 202.
func postRows(t *testing.T, addr string) {
	t.Helper()
	sc := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float32}, {Name: "y", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for i := range 5 {
		b.Field(0).(*array.Float32Builder).Append(float32(i))
		b.Field(1).(*array.Int64Builder).Append(int64(i))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sc))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	resp, err := http.Post("http://"+addr+"/v1/ingest", "application/vnd.apache.arrow.stream", &buf)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %d; want 202", resp.StatusCode)
	}
}
