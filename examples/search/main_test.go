package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
)

var digitsPath = filepath.Join("..", "data", "digits.csv.gz")

// A search of 20 trials, 3-fold, finds a configuration whose refit scores
// at least 0.95 on the held-out digits (the MLP's target is 0.963; the
// logistic regression reaches about 0.95-0.97).
func TestSearchDigits(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var log bytes.Buffer
	start := time.Now()
	out, err := run(ctx, options{mem: mem, path: digitsPath, dir: t.TempDir(), trials: 20, folds: 3, parallel: 2, progress: &log})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("best %v: cv %.4f ± %.4f, test %.4f, in %v", out.result.Best.Params, out.result.Best.Score, out.result.Best.Spread, out.test, time.Since(start).Round(time.Millisecond))
	if len(out.result.Trials) != 20 {
		t.Errorf("%d trials; want 20", len(out.result.Trials))
	}
	if out.test < 0.95 {
		t.Errorf("test accuracy %.4f; want at least 0.95", out.test)
	}
	if !strings.Contains(log.String(), "best: trial ") {
		t.Errorf("no summary in the progress output:\n%s", log.String())
	}
}

func TestSearchErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := run(ctx, options{mem: mem, path: "no/such/digits.csv.gz", trials: 1, folds: 2, parallel: 1}); err == nil || !strings.Contains(err.Error(), "no/such/digits.csv.gz") {
		t.Errorf("missing file: got %v; want an error naming the path", err)
	}
	cancelled, stop := context.WithCancel(ctx)
	stop()
	if _, err := run(cancelled, options{mem: mem, path: digitsPath, trials: 2, folds: 2, parallel: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v; want context.Canceled", err)
	}
}
