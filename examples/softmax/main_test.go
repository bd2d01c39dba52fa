package main

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

var digitsPath = filepath.Join("..", "data", "digits.csv.gz")

func TestSoftmaxLearnsDigits(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	start := time.Now()
	acc, err := run(ctx, mem, digitsPath, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Softmax regression on the 64 standardized pixels reaches about 0.95.
	if acc < 0.9 {
		t.Errorf("test accuracy %.3f; want at least 0.9", acc)
	}
	t.Logf("test accuracy %.3f in %v", acc, time.Since(start).Round(time.Millisecond))
}

func TestSoftmaxErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	if _, err := run(ctx, mem, "no/such/digits.csv.gz", 1); err == nil || !strings.Contains(err.Error(), "no/such/digits.csv.gz") {
		t.Errorf("missing file: got %v; want an error naming the path", err)
	}
	// A cancelled run returns its context's error and releases everything.
	cancelled, stop := context.WithCancel(ctx)
	stop()
	if _, err := run(cancelled, mem, digitsPath, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v; want context.Canceled", err)
	}
}

// pixelBatch returns a batch of rows × 2 features, X "pixels" holding
// (r, 5) for row r, and Y the digit labels.
func pixelBatch(mem memory.Allocator, labels ...int64) flow.Batch {
	x := minibatch.NewMatrix(mem, len(labels), 2)
	defer x.Release()
	for r := range x.Rows {
		x.Row(r)[0], x.Row(r)[1] = float32(r), 5
	}
	lb := array.NewInt64Builder(mem)
	defer lb.Release()
	lb.AppendValues(labels, nil)
	col := lb.NewArray()
	defer col.Release()
	y := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: digit, Type: col.DataType()}}, nil), []arrow.Array{col}, int64(len(labels)))
	return flow.Batch{X: x.Record("pixels"), Y: y}
}

func TestScaler(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := flow.WithAllocator(t.Context(), mem)
	b := pixelBatch(mem, 0, 1, 2, 3)
	defer b.Release()
	s := &scaler{}
	// Fitted on the batch in two halves: the sums carry over.
	for _, half := range []flow.Batch{{X: b.X.NewSlice(0, 2)}, {X: b.X.NewSlice(2, 4)}} {
		err := s.Fit(ctx, half)
		half.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	out, err := s.Transform(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	z, err := minibatch.Features(out, "pixels")
	if err != nil {
		t.Fatal(err)
	}
	// Column 0 is 0, 1, 2, 3: mean 1.5, standard deviation √1.25. Column 1
	// is constant: centred to 0, not divided by zero.
	for r := range z.Rows {
		want := (float64(r) - 1.5) / math.Sqrt(1.25)
		if got := z.Row(r); math.Abs(float64(got[0])-want) > 1e-6 || got[1] != 0 {
			t.Errorf("row %d: got %v; want [%.4f 0]", r, got, want)
		}
	}
	if out.Y != b.Y {
		t.Error("Y was not passed through")
	}
}

func TestSoftmaxLabelOutOfRange(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := pixelBatch(mem, 1, 12)
	defer b.Release()
	err := (&softmax{classes: 10, rate: 0.1}).Fit(t.Context(), b)
	if want := `minibatch: labels: column "c64" of Y, row 1, holds 12; want 0 to 9 (classes is 10)`; err == nil || err.Error() != want {
		t.Errorf("got %v; want %q", err, want)
	}
}
