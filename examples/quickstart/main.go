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
	"errors"
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
	if err := run(context.Background(), os.Stdout, *rows); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer, rows int) error {
	mem := memory.NewGoAllocator()
	model := &regress{lr: 0.05}
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("standardize", &standardize{}, flow.Barrier(barrier.Joiner)),
		flow.Named("expand", expand{mem}, flow.Replicas(2)),
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
		pred := b.X.Column(0).(*array.Float32).Float32Values()
		y := b.Y.Column(0).(*array.Float32).Float32Values()
		for i := range pred {
			d := float64(pred[i] - y[i])
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
// FixedSizeList<float32> column "x", the target in Y column "y". Batch k is
// drawn from a generator seeded with (seed, k), so a replay gives the same
// data.
func generate(mem memory.Allocator, rows, seed int) flow.Source {
	ySchema := arrow.NewSchema([]arrow.Field{{Name: "y", Type: arrow.PrimitiveTypes.Float32}}, nil)
	xSchema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: minibatch.TensorType(width)}}, nil)
	return minibatch.Generate(func(ctx context.Context, seq int64) (flow.Batch, error) {
		lo := int(seq) * batchRows
		if lo >= rows {
			return flow.Batch{}, io.EOF
		}
		n := min(batchRows, rows-lo)
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(seq)))
		col, x := minibatch.AllocTensor(mem, n, width)
		yb := array.NewFloat32Builder(mem)
		defer yb.Release()
		for r := range n {
			z := make([]float64, width)
			for j := range width {
				z[j] = rng.NormFloat64()
				x[r*width+j] = float32(float64(j) + float64(j+1)*z[j]) // mean j, spread j+1
			}
			yb.Append(float32(3*z[0] - 2*z[1] + z[2]*z[2] + noise*rng.NormFloat64()))
		}
		yc := yb.NewArray()
		defer yc.Release()
		defer col.Release()
		return flow.Batch{
			X: array.NewRecordBatch(xSchema, []arrow.Array{col}, int64(n)),
			Y: array.NewRecordBatch(ySchema, []arrow.Array{yc}, int64(n)),
		}, nil
	})
}

// features returns the view of the batch's tensor column.
func features(b flow.Batch, step string) ([]float32, int, int, error) {
	vals, rows, w, err := minibatch.Float32View(b.X.Column(0))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: column %q: %w", step, b.X.Schema().Field(0).Name, err)
	}
	return vals, rows, w, nil
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
	x, rows, w, err := features(b, "standardize")
	if err != nil {
		return err
	}
	if w != width {
		return fmt.Errorf("standardize: width %d, want %d", w, width)
	}
	for r := range rows {
		for j := range width {
			v := float64(x[r*width+j])
			s.sum[j] += v
			s.sumSq[j] += v * v
		}
	}
	s.n += float64(rows)
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

func (s *standardize) Transform(_ context.Context, b flow.Batch) (flow.Batch, error) {
	x, rows, _, err := features(b, "standardize")
	if err != nil {
		return flow.Batch{}, err
	}
	col, z := minibatch.AllocTensor(memory.DefaultAllocator, rows, width)
	defer col.Release()
	for r := range rows {
		for j := range width {
			z[r*width+j] = (x[r*width+j] - s.mean[j]) / s.std[j]
		}
	}
	return withX(b, col), nil
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

// expand appends the square of every feature: width → 2·width.
type expand struct{ mem memory.Allocator }

func (e expand) Transform(_ context.Context, b flow.Batch) (flow.Batch, error) {
	x, rows, w, err := features(b, "expand")
	if err != nil {
		return flow.Batch{}, err
	}
	col, out := minibatch.AllocTensor(e.mem, rows, 2*w)
	defer col.Release()
	for r := range rows {
		copy(out[r*2*w:], x[r*w:(r+1)*w])
		for j := range w {
			v := x[r*w+j]
			out[r*2*w+w+j] = v * v
		}
	}
	return withX(b, col), nil
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
	x, rows, w, err := features(b, "regress")
	if err != nil {
		return err
	}
	if b.Y == nil {
		return errors.New("regress: fit needs Y (column \"y\")")
	}
	y := b.Y.Column(0).(*array.Float32).Float32Values()
	if m.w == nil {
		m.w = make([]float64, w)
	}
	grad := make([]float64, w)
	var gb float64
	for r := range rows {
		d := m.predict(x[r*w:(r+1)*w]) - float64(y[r])
		for j := range w {
			grad[j] += d * float64(x[r*w+j])
		}
		gb += d
	}
	for j := range w {
		m.w[j] -= m.lr * grad[j] / float64(rows)
	}
	m.bias -= m.lr * gb / float64(rows)
	return nil
}

func (m *regress) predict(x []float32) float64 {
	p := m.bias
	for j, v := range x {
		p += m.w[j] * float64(v)
	}
	return p
}

func (m *regress) Transform(_ context.Context, b flow.Batch) (flow.Batch, error) {
	x, rows, w, err := features(b, "regress")
	if err != nil {
		return flow.Batch{}, err
	}
	if len(m.w) != w {
		return flow.Batch{}, fmt.Errorf("regress: fitted on width %d, got %d", len(m.w), w)
	}
	pb := array.NewFloat32Builder(memory.DefaultAllocator)
	defer pb.Release()
	for r := range rows {
		pb.Append(float32(m.predict(x[r*w : (r+1)*w])))
	}
	pred := pb.NewArray()
	defer pred.Release()
	s := arrow.NewSchema([]arrow.Field{{Name: "pred", Type: arrow.PrimitiveTypes.Float32}}, nil)
	return withX(b, pred, s), nil
}

// withX returns b with X replaced by a one-column record of col (named as
// in schema, or "x"), Y passed through.
func withX(b flow.Batch, col arrow.Array, schema ...*arrow.Schema) flow.Batch {
	s := arrow.NewSchema([]arrow.Field{{Name: "x", Type: col.DataType()}}, nil)
	if len(schema) > 0 {
		s = schema[0]
	}
	out := flow.Batch{X: array.NewRecordBatch(s, []arrow.Array{col}, int64(col.Len())), Y: b.Y}
	if out.Y != nil {
		out.Y.Retain()
	}
	return out
}
