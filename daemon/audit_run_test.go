package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/penstock-ml/penstock/daemon"
	"github.com/penstock-ml/penstock/daemon/ckpt"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
)

// A Config built in code (a program embedding the daemon) leaves the keys
// with defaults zero, as the file may: Run fills the defaults in (30s
// checkpoints, keep 3, 30s drain, …) instead of refusing the zero values.
func TestAuditRunFillsDefaults(t *testing.T) {
	defer verifyNoLeaks(t)
	e := newEnv(t)
	parsed, err := daemon.LoadConfig(e.config(t, []map[string]any{{"name": "files", "type": "dir", "dir": e.inbox}}, nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg := daemon.Config{
		Pipeline: e.pipeline, Schema: parsed.Schema, Address: "127.0.0.1:0", Log: "json",
		Sources:    []daemon.SourceConfig{{Name: "files", Type: "dir", Dir: e.inbox}},
		Checkpoint: daemon.CheckpointConfig{Dir: e.ckpt},
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, cfg, testRegistry(), daemon.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))))
	}()
	select {
	case err := <-done:
		if ce, ok := errors.AsType[*daemon.ConfigError](err); ok {
			t.Fatalf("Run of a Config without its defaults: %v; want the defaults filled in", ce)
		}
		if err != nil {
			t.Fatalf("Run: %v; want nil after the drain", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
}

// The operations endpoints of a running daemon, through its life:
// /readyz 503 before a model (?verbose naming the failing check), 200 once
// one is published; /metrics lint-clean with its labels bounded after
// rejections; and during a drain that a hung step holds up, /readyz 503
// naming draining and /v1/ingest 503 with Retry-After, until the hard
// stop, which leaves the last checkpoint loadable.
func TestAuditOpsEndpointsThroughDrain(t *testing.T) {
	defer verifyNoLeaks(t)
	e := newEnv(t)
	armed, release := &atomic.Bool{}, make(chan struct{})
	reg := testRegistry()
	if err := reg.Register(persist.Type{Name: "test.Hang", Version: 1, Of: (*hang)(nil),
		New: func(persist.Spec) (flow.Step, error) { return &hang{armed: armed, release: release}, nil }}); err != nil {
		t.Fatal(err)
	}
	nodes := append([]flow.Node{flow.Named("hang", &hang{armed: armed, release: release})}, newPipeline(t).Nodes()...)
	hp, err := flow.NewPipeline(nodes)
	if err != nil {
		t.Fatal(err)
	}
	if err := persist.SaveFile(e.pipeline, hp, persist.WithRegistry(reg)); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t, []map[string]any{{"name": "http", "type": "http", "wal_dir": e.wal}},
		map[string]any{"drain_timeout": "1500ms"})
	checkpointed := make(chan struct{}, 100)
	d := startInproc(t, cfg, reg, daemon.WithCheckpointed(func(ckpt.Info) { checkpointed <- struct{}{} }))
	defer close(release)

	if code, body := get(t, d.addr+"/readyz?verbose"); code != 503 || !strings.Contains(body, "[-]model") {
		t.Errorf("/readyz?verbose before a model: %d %q; want 503 naming the model check", code, body)
	}
	if code, _ := get(t, d.addr+"/livez"); code != 200 {
		t.Errorf("/livez: %d; want 200", code)
	}
	bs := bodies(t, 3)
	if code, body := post(t, d.addr+"/v1/ingest", arrowStream, bs[0]); code != 202 {
		t.Fatalf("post: %d %s", code, body)
	}
	for _, b := range [][]byte{[]byte("junk"), wrongSchema(t)} {
		post(t, d.addr+"/v1/ingest", arrowStream, b)
	}
	post(t, d.addr+"/v1/ingest", "text/csv", bs[1])
	select {
	case <-checkpointed:
	case <-time.After(20 * time.Second):
		t.Fatal("no checkpoint")
	}
	deadline := time.Now().Add(10 * time.Second)
	for code, _ := get(t, d.addr+"/readyz"); code != 200; code, _ = get(t, d.addr+"/readyz") {
		if time.Now().After(deadline) {
			t.Fatal("/readyz not 200 10 s after a checkpoint published a model")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, metrics := get(t, d.addr+"/metrics")
	problems, err := promlint.New(strings.NewReader(metrics)).Lint()
	if err != nil || len(problems) != 0 {
		t.Errorf("/metrics lint: %v, %v; want none", err, problems)
	}
	for _, want := range []string{`penstock_ingest_rejected_total{reason="decode",source="http"} 1`, `penstock_ingest_rejected_total{reason="schema",source="http"} 1`,
		`penstock_ingest_rejected_total{reason="type",source="http"} 1`, "penstock_checkpoint_last_success_timestamp_seconds", "go_goroutines", "process_"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	armed.Store(true)
	if code, body := post(t, d.addr+"/v1/ingest", arrowStream, bs[2]); code != 202 {
		t.Fatalf("post: %d %s", code, body)
	}
	time.Sleep(100 * time.Millisecond) // the step hangs on it
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- d.stop(t, 20*time.Second) }()
	sawReadyz, sawIngest := false, false
	for !(sawReadyz && sawIngest) && time.Since(start) < time.Second {
		if code, body := get(t, d.addr+"/readyz?verbose"); code == 503 && strings.Contains(body, "[-]draining") {
			sawReadyz = true
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, d.addr+"/v1/ingest", bytes.NewReader(bs[1]))
		req.Header.Set("Content-Type", arrowStream)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			if resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "" {
				sawIngest = true
			}
			resp.Body.Close()
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !sawReadyz || !sawIngest {
		t.Errorf("during the drain: /readyz 503 naming draining %v, /v1/ingest 503 with Retry-After %v; want both", sawReadyz, sawIngest)
	}
	if err := <-errc; !errors.Is(err, daemon.ErrHardStop) {
		t.Fatalf("Run: %v; want ErrHardStop", err)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("hard stop after %v with a 1.5 s drain timeout", took)
	}
	store, err := ckpt.Open(e.ckpt, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Latest(persist.WithRegistry(reg)); err != nil {
		t.Fatalf("after the hard stop the last checkpoint does not load: %v", err)
	}
	logs := d.logs.String()
	for _, msg := range []string{`"msg":"drain"`, `"msg":"hard stop"`, `"msg":"checkpoint"`} {
		if !strings.Contains(logs, msg) {
			t.Errorf("no %s log line", msg)
		}
	}
	for i, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line %d is not one JSON object: %q", i, line)
		}
	}
}
