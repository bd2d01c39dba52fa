// Command quickstart trains a small model on a generated stream with
// Penstock's streaming runner and prints what it learned and the stage
// statistics.
//
// The data: 8 features x with different means and scales, and a target
// y = 3·z₀ − 2·z₁ + z₂² + noise, where z is x standardised. The pipeline:
//
//	standardize  learns each feature's mean and spread. A Joiner: the steps
//	             after it are fitted on data standardised with the whole
//	             stream's statistics, not a running estimate.
//	expand       appends the squares of the features (CPU work, 2 replicas).
//	regress      a linear model fitted by mini-batch gradient descent.
//
// Usage:
//
//	go run ./examples/quickstart [-rows 100000]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

const (
	width     = 8
	batchRows = 64
	noise     = 0.1
)

func main() {
	rows := flag.Int("rows", 100_000, "rows to train on (validation is a fifth of that)")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *rows, memory.DefaultAllocator); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// run trains on rows generated rows and validates on a fifth as many,
// writing the report to w. mem is the allocator of the sources and of the
// run (flow.Runner.Allocator), which the steps allocate from through
// flow.Allocator(ctx): tests pass a checked one.
func run(ctx context.Context, w io.Writer, rows int, mem memory.Allocator) error {
	model := &regress{lr: 0.05}
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("standardize", &standardize{}, flow.Barrier(barrier.Joiner)),
		flow.Named("expand", expand{}, flow.Replicas(2)),
		flow.Named("regress", model),
	}, flow.QueueCapacity(8))
	if err != nil {
		return err
	}
	runner := flow.Runner{Engine: flow.Streaming, Allocator: mem}

	train := generate(mem, rows, 1)
	stats, err := runner.Fit(ctx, p, train)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "fitted on %d rows × %d features in batches of %d (%v)\n", rows, width, batchRows, stats.Elapsed.Round(1e6))
	fmt.Fprintf(w, "fit stages:\n%v\n", stats)

	valid := generate(mem, rows/5, 2)
	out, err := runner.Transform(ctx, p, valid)
	if err != nil {
		return err
	}
	var n int
	var sse, sum, sumSq float64
	err = out.Each(ctx, func(b flow.Batch) error {
		pred, err := minibatch.Features(b, "pred")
		if err != nil {
			return err
		}
		y, err := minibatch.LabelsFloat32(b, "y")
		if err != nil {
			return err
		}
		for i, p := range pred.Data {
			d := float64(p - y[i])
			sse += d * d
			sum += float64(y[i])
			sumSq += float64(y[i]) * float64(y[i])
			n++
		}
		return nil
	})
	if err != nil {
		return err
	}
	variance := sumSq/float64(n) - (sum/float64(n))*(sum/float64(n))
	fmt.Fprintf(w, "validation: %d rows, mean squared error %.4f (variance of y %.2f, noise floor %.4f)\n", n, sse/float64(n), variance, noise*noise)
	fmt.Fprintf(w, "learned: z0 %.2f (true 3), z1 %.2f (true -2), z2² %.2f (true 1)\n", model.w[0], model.w[1], model.w[width+2])
	fmt.Fprintf(w, "transform stages:\n%v\n", out.Stats())
	return nil
}

// generate returns a replayable source of rows rows: features in a
// FixedSizeList<float32> column "x", the target in Y column "y", allocated
// from mem. Batch k is drawn from a generator seeded with (seed, k), so a
// replay gives the same data.
func generate(mem memory.Allocator, rows, seed int) flow.Source {
	ySchema := arrow.NewSchema([]arrow.Field{{Name: "y", Type: arrow.PrimitiveTypes.Float32}}, nil)
	return minibatch.Generate(func(ctx context.Context, seq int64) (flow.Batch, error) {
		lo := int(seq) * batchRows
		if lo >= rows {
			return flow.Batch{}, io.EOF
		}
		n := min(batchRows, rows-lo)
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(seq)))
		x := minibatch.NewMatrix(mem, n, width)
		defer x.Release()
		yb := array.NewFloat32Builder(mem)
		defer yb.Release()
		z := make([]float64, width)
		for r := range n {
			for j := range width {
				z[j] = rng.NormFloat64()
				x.Row(r)[j] = float32(float64(j) + float64(j+1)*z[j]) // mean j, spread j+1
			}
			yb.Append(float32(3*z[0] - 2*z[1] + z[2]*z[2] + noise*rng.NormFloat64()))
		}
		yc := yb.NewArray()
		defer yc.Release()
		return flow.Batch{X: x.Record("x"), Y: array.NewRecordBatch(ySchema, []arrow.Array{yc}, int64(n))}, nil
	})
}

// standardize learns each feature's mean and standard deviation and
// rescales to mean 0, spread 1. Its state is sums, so replicas merge by
// adding them.
type standardize struct {
	n          float64
	sum, sumSq [width]float64
	mean, std  [width]float32
}

var (
	_ flow.Fitter = (*standardize)(nil)
	_ flow.Merger = (*standardize)(nil)
)

func (s *standardize) Fit(_ context.Context, b flow.Batch) error {
	x, err := minibatch.Features(b, "x")
	if err != nil {
		return err
	}
	if x.Cols != width {
		return fmt.Errorf("standardize: %d features, want %d", x.Cols, width)
	}
	for r := range x.Rows {
		for j, v := range x.Row(r) {
			s.sum[j] += float64(v)
			s.sumSq[j] += float64(v) * float64(v)
		}
	}
	s.n += float64(x.Rows)
	s.finish()
	return nil
}

func (s *standardize) finish() {
	for j := range width {
		m := s.sum[j] / s.n
		s.mean[j] = float32(m)
		s.std[j] = float32(math.Sqrt(max(s.sumSq[j]/s.n-m*m, 1e-12)))
	}
}

// Transform maps each row to its standardized values with the run's
// allocator (see minibatch.MapRows).
func (s *standardize) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	return minibatch.MapRows(ctx, b, "x", "x", width, func(x, z []float32) {
		for j, v := range x {
			z[j] = (v - s.mean[j]) / s.std[j]
		}
	})
}

func (s *standardize) Replica() flow.Step { return &standardize{} }

func (s *standardize) Merge(reps []flow.Step) error {
	for _, r := range reps {
		o := r.(*standardize)
		s.n += o.n
		for j := range width {
			s.sum[j] += o.sum[j]
			s.sumSq[j] += o.sumSq[j]
		}
	}
	s.finish()
	return nil
}

// expand appends the square of every feature: width → 2·width. It shows
// the helpers that MapRows combines: a view of the input, a matrix from the
// run's allocator, and the batch with that matrix as X.
type expand struct{}

func (expand) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	x, err := minibatch.Features(b, "x")
	if err != nil {
		return flow.Batch{}, err
	}
	out := minibatch.NewMatrix(flow.Allocator(ctx), x.Rows, 2*x.Cols)
	defer out.Release()
	for r := range x.Rows {
		row := out.Row(r)
		for j, v := range x.Row(r) {
			row[j], row[x.Cols+j] = v, v*v
		}
	}
	return b.WithX(out.Record("x")), nil
}

// regress is a linear model fitted by mini-batch gradient descent on the
// squared error. It cannot merge replicas: it runs as one.
type regress struct {
	lr   float64
	w    []float64
	bias float64
}

var _ flow.Fitter = (*regress)(nil)

func (m *regress) Fit(_ context.Context, b flow.Batch) error {
	x, err := minibatch.Features(b, "x")
	if err != nil {
		return err
	}
	y, err := minibatch.LabelsFloat32(b, "y")
	if err != nil {
		return err
	}
	if m.w == nil {
		m.w = make([]float64, x.Cols)
	}
	if len(m.w) != x.Cols {
		return fmt.Errorf("regress: fitted on %d features, got %d", len(m.w), x.Cols)
	}
	grad := make([]float64, x.Cols)
	var gb float64
	for r := range x.Rows {
		d := m.predict(x.Row(r)) - float64(y[r])
		for j, v := range x.Row(r) {
			grad[j] += d * float64(v)
		}
		gb += d
	}
	for j := range grad {
		m.w[j] -= m.lr * grad[j] / float64(x.Rows)
	}
	m.bias -= m.lr * gb / float64(x.Rows)
	return nil
}

func (m *regress) predict(x []float32) float64 {
	p := m.bias
	for j, v := range x {
		p += m.w[j] * float64(v)
	}
	return p
}

// Transform returns the predictions as X, a one-column tensor "pred".
func (m *regress) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	x, err := minibatch.Features(b, "x")
	if err != nil {
		return flow.Batch{}, err
	}
	if len(m.w) != x.Cols {
		return flow.Batch{}, fmt.Errorf("regress: fitted on %d features, got %d", len(m.w), x.Cols)
	}
	return minibatch.MapRows(ctx, b, "x", "pred", 1, func(x, pred []float32) {
		pred[0] = float32(m.predict(x))
	})
}
