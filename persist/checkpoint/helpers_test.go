package checkpoint

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// slowStep stands for an expensive step: it counts its calls, learns the
// running mean of column "x" and outputs x*scale - mean.
type slowStep struct {
	scale float64
	calls *atomic.Int64
	sum   float64
	n     int64
}

var (
	_ flow.FitTransformer = (*slowStep)(nil)
	_ hparams.Tunable     = (*slowStep)(nil)
	_ persist.Stater      = (*slowStep)(nil)
)

func (s *slowStep) Params() hparams.Values { return hparams.Values{"scale": s.scale} }

func (s *slowStep) SetParams(v hparams.Values) error {
	for k, x := range v {
		f, ok := x.(float64)
		if k != "scale" || !ok {
			return fmt.Errorf("slowStep: unknown or non-float hyperparameter %q=%v", k, x)
		}
		s.scale = f
	}
	return nil
}

func (s *slowStep) MarshalState(w *persist.StateWriter) error {
	w.Float64("sum", s.sum)
	w.Int64("n", s.n)
	return w.Err()
}

func (s *slowStep) UnmarshalState(r *persist.StateReader) (err error) {
	if s.sum, err = r.Float64("sum"); err != nil {
		return err
	}
	s.n, err = r.Int64("n")
	return err
}

func (s *slowStep) mean() float64 {
	if s.n == 0 {
		return 0
	}
	return s.sum / float64(s.n)
}

func (s *slowStep) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	s.calls.Add(1)
	for _, v := range column(in) {
		s.sum += v
		s.n++
	}
	return mapX(ctx, in, func(v float64) float64 { return v*s.scale - s.mean() })
}

func (s *slowStep) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	s.calls.Add(1)
	return mapX(ctx, in, func(v float64) float64 { return v*s.scale - s.mean() })
}

// cheapStep learns the running maximum of "x" and outputs x + shift - max.
type cheapStep struct {
	shift float64
	max   float64
	seen  int64
}

func (c *cheapStep) Params() hparams.Values { return hparams.Values{"shift": c.shift} }
func (c *cheapStep) SetParams(v hparams.Values) error {
	if f, ok := v["shift"].(float64); ok {
		c.shift = f
	}
	return nil
}

func (c *cheapStep) Fit(ctx context.Context, in flow.Batch) error {
	for _, v := range column(in) {
		if c.seen == 0 || v > c.max {
			c.max = v
		}
		c.seen++
	}
	return nil
}

func (c *cheapStep) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return mapX(ctx, in, func(v float64) float64 { return v + c.shift - c.max })
}

func column(b flow.Batch) []float64 {
	return b.X.Column(0).(*array.Float64).Float64Values()
}

func mapX(ctx context.Context, in flow.Batch, fn func(float64) float64) (flow.Batch, error) {
	bld := array.NewFloat64Builder(flow.Allocator(ctx))
	defer bld.Release()
	for _, v := range column(in) {
		bld.Append(fn(v))
	}
	arr := bld.NewFloat64Array()
	defer arr.Release()
	out := flow.Batch{X: array.NewRecordBatch(in.X.Schema(), []arrow.Array{arr}, in.X.NumRows()), Y: in.Y}
	if in.Y != nil {
		in.Y.Retain()
	}
	return out, nil
}

// world is one test's setting: a checked allocator, a registry with the
// slow step at a version, a call counter.
type world struct {
	t     *testing.T
	mem   *memory.CheckedAllocator
	reg   *persist.Registry
	calls *atomic.Int64
}

func newWorld(t *testing.T, version int) *world {
	w := &world{t: t, mem: memory.NewCheckedAllocator(memory.NewGoAllocator()), calls: new(atomic.Int64)}
	w.reg = persist.NewRegistry()
	err := w.reg.Register(persist.Type{Name: "checkpointtest.Slow", Version: version, Of: (*slowStep)(nil),
		New: func(persist.Spec) (flow.Step, error) { return &slowStep{scale: 1, calls: w.calls}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.mem.AssertSize(t, 0) })
	return w
}

func (w *world) runner(e flow.Engine) flow.Runner { return flow.Runner{Engine: e, Allocator: w.mem} }

// pipeline returns slow(scale) → checkpoint → cheap(shift).
func (w *world) pipeline(c *Cache, scale, shift float64) *Pipeline {
	w.t.Helper()
	pre, err := flow.NewPipeline([]flow.Node{flow.Named("slow", &slowStep{scale: scale, calls: w.calls})})
	if err != nil {
		w.t.Fatal(err)
	}
	suf, err := flow.NewPipeline([]flow.Node{flow.Named("cheap", &cheapStep{shift: shift})})
	if err != nil {
		w.t.Fatal(err)
	}
	p, err := New(c, pre, suf)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// data returns a replayable source of n values (value i is i*0.5+bump at
// the index bumpAt), in batches of 4, with labels.
func (w *world) data(n, bumpAt int, bump float64) *minibatch.Memory {
	w.t.Helper()
	x := make([]float64, n)
	y := make([]float64, n)
	for i := range x {
		x[i] = float64(i) * 0.5
		y[i] = float64(i % 3)
	}
	if bumpAt >= 0 {
		x[bumpAt] += bump
	}
	m, err := minibatch.FromSlices(4, []minibatch.Column{minibatch.Float64s("x", x)}, []minibatch.Column{minibatch.Float64s("y", y)}, minibatch.WithAllocator(w.mem))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { m.Close() })
	return m
}

func (w *world) cache(dir string, opts ...Option) *Cache {
	w.t.Helper()
	c, err := Open(dir, append([]Option{Registry(w.reg), ModuleVersion("v1.0.0-test")}, opts...)...)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// transformAll transforms src through p.Full() and returns column x.
func (w *world) transformAll(ctx context.Context, e flow.Engine, p *Pipeline, src flow.Source) []float64 {
	w.t.Helper()
	full, err := p.Full()
	if err != nil {
		w.t.Fatal(err)
	}
	s, err := w.runner(e).Transform(ctx, full, src)
	if err != nil {
		w.t.Fatal(err)
	}
	defer s.Close()
	var out []float64
	for b, err := range s.All(ctx) {
		if err != nil {
			w.t.Fatal(err)
		}
		out = append(out, column(b)...)
		b.Release()
	}
	return out
}

func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

var engines = []flow.Engine{flow.Sequential, flow.Streaming}
