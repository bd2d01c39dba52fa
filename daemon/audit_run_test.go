package daemon_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/daemon"
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
