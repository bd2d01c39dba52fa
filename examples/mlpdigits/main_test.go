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

func TestMLPDigits(t *testing.T) {
	if testing.Short() {
		t.Skip("fits 50 epochs")
	}
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	res, err := run(ctx, &out, mem, digitsPath, 50)
	if err != nil {
		t.Fatal(err)
	}
	if res.accuracy < 0.963 {
		t.Errorf("test accuracy %.3f; want at least 0.963 (scikit-learn: 0.973)", res.accuracy)
	}
	if len(res.perClass) != 10 {
		t.Errorf("F1 of %d classes; want 10", len(res.perClass))
	}
	for _, c := range res.perClass {
		if c.F1 < 0.85 {
			t.Errorf("digit %d: F1 %.3f; want at least 0.85", c.Class, c.F1)
		}
	}
	for _, want := range []string{"test accuracy", "macro F1", "digit  precision"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}

func TestMLPDigitsErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if _, err := run(ctx, &out, mem, "no/such/digits.csv.gz", 1); err == nil || !strings.Contains(err.Error(), "no/such/digits.csv.gz") {
		t.Errorf("missing file: got %v; want an error naming the path", err)
	}
	cancelled, stop := context.WithCancel(ctx)
	stop()
	if _, err := run(cancelled, &out, mem, digitsPath, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v; want context.Canceled", err)
	}
}
