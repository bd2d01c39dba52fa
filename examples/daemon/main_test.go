package main

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The daemon learns the digits from files dropped in its inbox and serves
// a model that classifies the held-out rows; it drains leaving nothing.
func TestDaemonLearnsDigits(t *testing.T) {
	defer goleak.VerifyNone(t)
	defer http.DefaultClient.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	acc, err := run(ctx, filepath.Join("..", "data", "digits.csv.gz"), t.TempDir(), 20)
	if err != nil {
		t.Fatal(err)
	}
	if acc < 0.93 {
		t.Errorf("test accuracy %.3f; want at least 0.93", acc)
	}
	t.Logf("test accuracy %.3f", acc)
}
