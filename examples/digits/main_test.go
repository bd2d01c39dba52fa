package main

import (
	"bytes"
	"context"
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
)

func digitsCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// classCounts parses the "<side> classes: 0=142 1=146 …" line of out.
func classCounts(t *testing.T, out, side string) map[string]int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + side + ` classes: (.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q classes line in:\n%s", side, out)
	}
	counts := map[string]int{}
	for _, kv := range strings.Fields(m[1]) {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			t.Fatalf("bad class count %q in:\n%s", kv, out)
		}
		counts[k] = n
	}
	return counts
}

// TestDigits runs the example with a checked allocator for the sources and
// the run (flow.Runner.Allocator, which the packing step allocates from).
func TestDigits(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	path, err := findData()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := runWith(digitsCtx(t), &buf, path, 1, mem); err != nil {
		t.Fatalf("run: %v", err)
	}
	out := buf.String()

	if want := "total: 1797 rows, 10 classes\n"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	train, val := classCounts(t, out, "train"), classCounts(t, out, "validation")
	if len(train) != 10 || len(val) != 10 {
		t.Errorf("got %d train and %d validation classes; want 10 each", len(train), len(val))
	}
	var trainRows, valRows int
	for d := range 10 {
		k := strconv.Itoa(d)
		all := train[k] + val[k]
		trainRows += train[k]
		valRows += val[k]
		// Stratified: each digit's validation share is within one row of
		// a fifth.
		if exact := float64(all) * 0.2; math.Abs(float64(val[k])-exact) >= 1 {
			t.Errorf("digit %s: %d of %d rows in validation; want within one row of %.1f", k, val[k], all, exact)
		}
	}
	if trainRows+valRows != 1797 || valRows != 359 {
		t.Errorf("got %d train + %d validation rows; want 1438 + 359 = 1797", trainRows, valRows)
	}
	for _, want := range []string{
		"train: 1438 rows in 23 batches: 22 × 64 rows, 1 × 30 rows\n",
		"validation: 359 rows in 6 batches: 5 × 64 rows, 1 × 39 rows\n",
		"train: X 64 rows × [pixels fixed_size_list<item: float32, nullable>[64]], Y 64 rows × [digit int64]\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// run, with the default allocator and seed, reports the same.
	var again bytes.Buffer
	if err := run(digitsCtx(t), &again, path); err != nil {
		t.Fatalf("run: %v", err)
	}
	if again.String() != out {
		t.Errorf("run and runWith with seed 1 differ:\n%s\n---\n%s", again.String(), out)
	}
}

func TestDigitsErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var buf bytes.Buffer
	if err := runWith(digitsCtx(t), &buf, "no/such/digits.csv.gz", 1, mem); err == nil || !strings.Contains(err.Error(), "no/such/digits.csv.gz") {
		t.Errorf("missing file: got %v; want an error naming the path", err)
	}
	path, err := findData()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(digitsCtx(t))
	cancel()
	if err := runWith(ctx, &buf, path, 1, mem); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v; want context.Canceled", err)
	}
}
