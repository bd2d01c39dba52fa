package automl_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The synthetic regression: y = trueW·x + trueV·z + 1 + noise.
const (
	trueW = 2.5
	trueV = 0.8
)

// affine predicts "pred" = w·x + v·z + b, where w and v are
// hyperparameters and the bias b is learned: each Fit moves it by rate
// towards the batch's mean residual, so more epochs bring it closer.
type affine struct {
	w, v, rate float64
	b          float64
	fits       int64
	// hooks for tests
	onFit func(ctx context.Context, a *affine) error
}

var (
	_ flow.Fitter     = (*affine)(nil)
	_ flow.Copier     = (*affine)(nil)
	_ flow.Resetter   = (*affine)(nil)
	_ hparams.Tunable = (*affine)(nil)
	_ hparams.Spacer  = (*affine)(nil)
)

func newAffine() *affine { return &affine{w: 1, v: 0, rate: 1} }

func (a *affine) Params() hparams.Values {
	return hparams.Values{"w": a.w, "v": a.v, "rate": a.rate}
}

func (a *affine) SetParams(p hparams.Values) error {
	for k, x := range p {
		f, err := hparams.Convert(x, hparams.Float)
		if err != nil {
			return fmt.Errorf("affine: %q: %w", k, err)
		}
		switch k {
		case "w":
			a.w = f.(float64)
		case "v":
			a.v = f.(float64)
		case "rate":
			a.rate = f.(float64)
		default:
			return fmt.Errorf("affine: unknown parameter %q", k)
		}
	}
	return nil
}

func (a *affine) Space() hparams.Space {
	return hparams.Space{"w": hparams.Uniform(0, 10), "v": hparams.Uniform(-5, 5)}
}

func (a *affine) Copy() flow.Step { c := *a; return &c }
func (a *affine) Reset()          { a.b, a.fits = 0, 0 }

func columns(b flow.Batch) (x, z, y []float64, err error) {
	xs, ok1 := b.X.Column(0).(*array.Float64)
	zs, ok2 := b.X.Column(1).(*array.Float64)
	if !ok1 || !ok2 {
		return nil, nil, nil, errors.New("affine: want float64 columns x and z")
	}
	if b.Y != nil {
		if ys, ok := b.Y.Column(0).(*array.Float64); ok {
			y = ys.Float64Values()
		}
	}
	return xs.Float64Values(), zs.Float64Values(), y, nil
}

func (a *affine) Fit(ctx context.Context, in flow.Batch) error {
	if a.onFit != nil {
		if err := a.onFit(ctx, a); err != nil {
			return err
		}
	}
	x, z, y, err := columns(in)
	if err != nil {
		return err
	}
	if y == nil || len(x) == 0 {
		return errors.New("affine: fit without y")
	}
	var r float64
	for i := range x {
		r += y[i] - a.w*x[i] - a.v*z[i]
	}
	r /= float64(len(x))
	a.b += a.rate * (r - a.b)
	a.fits++
	return nil
}

func (a *affine) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	x, z, _, err := columns(in)
	if err != nil {
		return flow.Batch{}, err
	}
	bld := array.NewFloat64Builder(flow.Allocator(ctx))
	defer bld.Release()
	for i := range x {
		bld.Append(a.w*x[i] + a.v*z[i] + a.b)
	}
	pred := bld.NewArray()
	defer pred.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "pred", Type: arrow.PrimitiveTypes.Float64}}, nil)
	return in.WithX(array.NewRecordBatch(schema, []arrow.Array{pred}, int64(len(x)))), nil
}

// regression returns rows of the synthetic regression in batches of 25.
func regression(t testing.TB, mem memory.Allocator, rows int, seed uint64) *minibatch.Memory {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	x, z, y := make([]float64, rows), make([]float64, rows), make([]float64, rows)
	for i := range rows {
		x[i], z[i] = rng.Float64()*2-1, rng.Float64()*2-1
		y[i] = trueW*x[i] + trueV*z[i] + 1 + 0.05*rng.NormFloat64()
	}
	src, err := minibatch.FromSlices(25,
		[]minibatch.Column{minibatch.Float64s("x", x), minibatch.Float64s("z", z)},
		[]minibatch.Column{minibatch.Float64s("y", y)}, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// pipeline returns a one-step pipeline of a.
func pipeline(t testing.TB, a *affine) *flow.Pipeline {
	t.Helper()
	p, err := flow.NewPipeline([]flow.Node{flow.Named("model", a)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkedMem returns a checked allocator that must be back at zero when
// the test ends.
func checkedMem(t *testing.T) *memory.CheckedAllocator {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func deadline(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// config returns a search of the affine model on a holdout of the
// synthetic regression, scored by MSE.
func config(t testing.TB, mem memory.Allocator, a *affine) automl.Config {
	return automl.Config{
		Pipeline:   pipeline(t, a),
		Splitter:   automl.Holdout(0.25, minibatch.WithStratify(false), minibatch.WithSeed(3), minibatch.WithAllocator(mem)),
		Metric:     metrics.MSE,
		Prediction: "pred",
		Truth:      "y",
		Runner:     flow.Runner{Allocator: mem},
	}
}

// distance is the distance of a trial's (w, v) to the best, each
// coordinate over its range (10).
func distance(t automl.Trial) float64 {
	dw := (t.Params["model__w"].(float64) - trueW) / 10
	dv := (t.Params["model__v"].(float64) - trueV) / 10
	return math.Hypot(dw, dv)
}

// concurrency counts the fits running at once and the most seen.
type concurrency struct {
	mu       sync.Mutex
	now, max int
	total    atomic.Int64
}

func (c *concurrency) enter() {
	c.mu.Lock()
	c.now++
	c.max = max(c.max, c.now)
	c.mu.Unlock()
	c.total.Add(1)
}

func (c *concurrency) leave() {
	c.mu.Lock()
	c.now--
	c.mu.Unlock()
}

func (c *concurrency) peak() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max
}
