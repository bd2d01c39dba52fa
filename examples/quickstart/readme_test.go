package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// The code between the README markers below is the code of README.md's
// "In one screen" section, byte for byte: TestReadmeShowsThisCode fails
// when the two differ, and TestReadme compiles and runs it. Change both
// together.

// README: begin

// Clip is a step: it limits every feature to [-Max, Max].
type Clip struct{ Max float32 }

func (c Clip) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	x, err := minibatch.Features(b, "x") // X's float32 tensor column, a view: no copy
	if err != nil {
		return flow.Batch{}, err
	}
	out := minibatch.NewMatrix(flow.Allocator(ctx), x.Rows, x.Cols) // the run's allocator
	defer out.Release()
	for i, v := range x.Data {
		out.Data[i] = min(max(v, -c.Max), c.Max)
	}
	return b.WithX(out.Record("x")), nil // Y, Seq and Epoch pass through
}

// fitPredict fits standardize → clip → model on train, then predicts valid.
func fitPredict(ctx context.Context, mem memory.Allocator, standardize, model flow.Step, train, valid flow.Source) ([]float32, error) {
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("standardize", standardize, flow.Barrier(barrier.Joiner)), // fitted on the whole stream first
		flow.Named("clip", Clip{Max: 3}, flow.Replicas(2)),                   // two goroutines, order restored
		flow.Named("model", model),                                           // partial fit, batch by batch
	}, flow.QueueCapacity(8))
	if err != nil {
		return nil, err
	}
	runner := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	stats, err := runner.Fit(ctx, p, train) // fit on a stream
	if err != nil {
		return nil, err
	}
	fmt.Println(stats) // per stage: batches, busy %, waits; the bottleneck

	out, err := runner.Transform(ctx, p, valid) // a *flow.Stream, itself a flow.Source
	if err != nil {
		return nil, err
	}
	var pred []float32
	err = out.Each(ctx, func(b flow.Batch) error { // Each releases every batch, then closes the stream
		y, err := minibatch.Features(b, "pred")
		if err != nil {
			return err
		}
		pred = append(pred, y.Data...) // a copy: y is valid only while b is
		return nil
	})
	return pred, err
}

// README: end

// TestReadme runs the README's code with this example's steps and data.
func TestReadme(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	const validRows = 2000
	pred, err := fitPredict(ctx, mem, &standardize{}, &regress{lr: 0.05}, generate(mem, 10_000, 1), generate(mem, validRows, 2))
	if err != nil {
		t.Fatal(err)
	}
	if len(pred) != validRows {
		t.Fatalf("got %d predictions; want %d", len(pred), validRows)
	}
	// The targets of the same rows: the generator replays them.
	valid := generate(mem, validRows, 2)
	var y []float32
	for {
		b, err := valid.Next(ctx)
		if err != nil {
			break
		}
		ys, err := minibatch.LabelsFloat32(b, "y")
		if err != nil {
			t.Fatal(err)
		}
		y = append(y, ys...)
		b.Release()
	}
	var sse, sum, sumSq float64
	for i, p := range pred {
		d := float64(p - y[i])
		sse += d * d
		sum += float64(y[i])
		sumSq += float64(y[i]) * float64(y[i])
	}
	n := float64(len(y))
	mse, variance := sse/n, sumSq/n-(sum/n)*(sum/n)
	// A linear model on the clipped standardized features, without the
	// squares of quickstart's expand step, leaves the z2² term (variance 2
	// of about 15) unexplained.
	if mse > variance/4 {
		t.Errorf("got validation MSE %.3f; want under a quarter of the variance %.3f", mse, variance)
	}
}

// TestReadmeShowsThisCode checks that README.md's "In one screen" code is
// the code between the markers in this file.
func TestReadmeShowsThisCode(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, found := strings.Cut(string(readme), "\n## In one screen\n")
	_, block, opened := strings.Cut(section, "```go\n")
	block, _, closed := strings.Cut(block, "\n```\n")
	if !found || !opened || !closed {
		t.Fatal(`README.md has no "## In one screen" section with a complete go code block`)
	}
	self, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, code, _ := strings.Cut(string(self), "// README: begin\n\n")
	code, _, _ = strings.Cut(code, "\n\n// README: end\n")
	if block != code {
		t.Errorf("README.md's code differs from readme_test.go's; make them equal.\nREADME.md:\n%s\nreadme_test.go:\n%s", block, code)
	}
}
