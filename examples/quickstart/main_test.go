package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
)

func TestQuickstartLearns(t *testing.T) {
	defer goleak.VerifyNone(t)
	// The sources and the run share one checked allocator: every buffer
	// that the steps allocate through flow.Allocator(ctx) is counted too.
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, 20_000, mem); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`mean squared error ([0-9.]+) \(variance of y ([0-9.]+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no validation line in:\n%s", out.String())
	}
	mse, _ := strconv.ParseFloat(m[1], 64)
	variance, _ := strconv.ParseFloat(m[2], 64)
	if mse > variance/50 {
		t.Errorf("validation MSE %v; want under a fiftieth of the variance %v\n%s", mse, variance, out.String())
	}
	if !regexp.MustCompile(`validation: 4000 rows`).Match(out.Bytes()) {
		t.Errorf("output lacks the 4000 validation rows:\n%s", out.String())
	}
	// The statistics' tables: the source and each stage a row, the
	// replicated stage with its 2 replicas.
	for _, want := range []string{`(?m)^bottleneck: `, `(?m)^(\d+\s+)?\(source\)\s+1\s`, `(?m)^(\d+\s+)?standardize\s+1\s`, `(?m)^(\d+\s+)?expand\s+2\s`} {
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Errorf("output lacks %s:\n%s", want, out.String())
		}
	}
}

// A run that is cancelled returns the context's error, and leaves no
// buffer and no goroutine behind.
func TestQuickstartCancelled(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stop, cancelRun := context.WithCancel(ctx)
	cancelRun()
	var out bytes.Buffer
	if err := run(stop, &out, 20_000, mem); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v from a cancelled run; want context.Canceled\n%s", err, out.String())
	}
}
