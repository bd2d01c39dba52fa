package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
)

var digitsPath = filepath.Join("..", "data", "digits.csv.gz")

func TestPretrainThenFineTune(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	start := time.Now()
	res, err := run(ctx, mem, digitsPath, 5, 20)
	if err != nil {
		t.Fatal(err)
	}
	// Measured: reconstruction error 1.665 → 0.199, accuracy 0.967.
	if res.lossAfter > res.lossBefore/4 {
		t.Errorf("pre-training brought the reconstruction error from %.3f to %.3f; want at most a quarter", res.lossBefore, res.lossAfter)
	}
	if res.accuracy < 0.93 {
		t.Errorf("test accuracy %.3f; want at least 0.93", res.accuracy)
	}
	// The classifier fine-tuned a copy of the encoder: the autoencoder's
	// stays as pre-training left it.
	if len(res.clf.enc.w) != res.ae.code || slices.Equal(res.clf.enc.w[0], res.ae.enc.w[0]) {
		t.Error("the classifier's encoder is not a fine-tuned copy of the autoencoder's")
	}
	t.Logf("reconstruction %.3f → %.3f, test accuracy %.3f in %v", res.lossBefore, res.lossAfter, res.accuracy, time.Since(start).Round(time.Millisecond))
}

func TestMutateKeepsEncoder(t *testing.T) {
	ae := &autoencoder{code: 3, rate: 0.1, seed: 1}
	if _, err := flow.Become(ae); err == nil || !strings.Contains(err.Error(), "before pre-training") {
		t.Errorf("mutate before pre-training: got %v", err)
	}
	ae.init(4)
	s, err := flow.Become(ae)
	if err != nil {
		t.Fatal(err)
	}
	c := s.(*classifier)
	for k := range ae.enc.w {
		if !slices.Equal(c.enc.w[k], ae.enc.w[k]) {
			t.Fatalf("encoder row %d: %v; want the autoencoder's %v", k, c.enc.w[k], ae.enc.w[k])
		}
	}
	c.enc.w[0][0]++
	if c.enc.w[0][0] == ae.enc.w[0][0] {
		t.Error("the classifier shares the autoencoder's weights; want a copy")
	}
	if len(c.head.w) != 10 || len(c.head.w[0]) != 3 {
		t.Errorf("head is %d × %d; want 10 × 3", len(c.head.w), len(c.head.w[0]))
	}
}

func TestMutateErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := run(ctx, mem, "no/such/digits.csv.gz", 1, 1); err == nil || !strings.Contains(err.Error(), "no/such/digits.csv.gz") {
		t.Errorf("missing file: got %v; want an error naming the path", err)
	}
	cancelled, stop := context.WithCancel(ctx)
	stop()
	if _, err := run(cancelled, mem, digitsPath, 1, 1); err == nil {
		t.Error("cancelled: no error")
	}
}
