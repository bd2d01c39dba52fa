package flow_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
)

// mapX returns a copy of in whose float64 column "x" is replaced by fn(x);
// the other columns and Y are passed through (retained).
func mapX(mem memory.Allocator, in flow.Batch, fn func(float64) float64) (flow.Batch, error) {
	idx := in.X.Schema().FieldIndices("x")
	if len(idx) != 1 {
		return flow.Batch{}, errors.New(`no column "x"`)
	}
	xs, ok := in.X.Column(idx[0]).(*array.Float64)
	if !ok {
		return flow.Batch{}, fmt.Errorf(`column "x" is %v, want float64`, in.X.Column(idx[0]).DataType())
	}
	bld := array.NewFloat64Builder(mem)
	defer bld.Release()
	bld.Reserve(xs.Len())
	for _, v := range xs.Float64Values() {
		bld.UnsafeAppend(fn(v))
	}
	col := bld.NewArray()
	defer col.Release()
	cols := append([]arrow.Array(nil), in.X.Columns()...)
	cols[idx[0]] = col
	out := flow.Batch{X: array.NewRecordBatch(in.X.Schema(), cols, in.X.NumRows()), Y: in.Y}
	if out.Y != nil {
		out.Y.Retain()
	}
	return out, nil
}

// column returns the values of a float64 or int64 column of rec.
func column(rec arrow.RecordBatch, name string) []float64 {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) != 1 {
		panic(fmt.Sprintf("no column %q in %v", name, rec.Schema()))
	}
	switch c := rec.Column(idx[0]).(type) {
	case *array.Float64:
		return append([]float64(nil), c.Float64Values()...)
	case *array.Int64:
		out := make([]float64, c.Len())
		for i, v := range c.Int64Values() {
			out[i] = float64(v)
		}
		return out
	}
	panic(fmt.Sprintf("column %q is %v", name, rec.Column(idx[0]).DataType()))
}

// scale multiplies x by f.
type scale struct {
	mem memory.Allocator
	f   float64
}

func (s scale) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	return mapX(s.mem, in, func(v float64) float64 { return v * s.f })
}

// jitter multiplies x by f after sleeping up to max, at random.
type jitter struct {
	scale
	max time.Duration
}

func (j jitter) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	select {
	case <-time.After(time.Duration(rand.Int64N(int64(j.max)))):
	case <-ctx.Done():
		return flow.Batch{}, context.Cause(ctx)
	}
	return j.scale.Transform(ctx, in)
}

// failing fails (or panics) on the batch with sequence number at.
type failing struct {
	scale
	at    int64
	panic bool
}

var errBoom = errors.New("boom")

func (f failing) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if in.Seq == f.at {
		if f.panic {
			panic("kaboom")
		}
		return flow.Batch{}, errBoom
	}
	return f.scale.Transform(ctx, in)
}

// blocking never returns until ctx is done.
type blocking struct{ started chan struct{} }

func (b blocking) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	select {
	case b.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return flow.Batch{}, context.Cause(ctx)
}

// center learns the mean of x and subtracts it. Its replicas learn sums
// of their own share, which Merge adds up.
type center struct {
	mem      memory.Allocator
	sum      float64
	n        int64
	setups   int
	teardown int
}

var (
	_ flow.Fitter = (*center)(nil)
	_ flow.Merger = (*center)(nil)
)

func (c *center) Fit(_ context.Context, in flow.Batch) error {
	for _, v := range column(in.X, "x") {
		c.sum += v
		c.n++
	}
	return nil
}

func (c *center) mean() float64 {
	if c.n == 0 {
		return 0
	}
	return c.sum / float64(c.n)
}

func (c *center) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	m := c.mean()
	return mapX(c.mem, in, func(v float64) float64 { return v - m })
}

func (c *center) Replica() flow.Step { return &center{mem: c.mem} }

func (c *center) Merge(reps []flow.Step) error {
	for _, r := range reps {
		rc := r.(*center)
		c.sum += rc.sum
		c.n += rc.n
	}
	return nil
}

func (c *center) Setup(context.Context) error    { c.setups++; return nil }
func (c *center) Teardown(context.Context) error { c.teardown++; return nil }

// record remembers every x it is fitted on.
type record struct {
	mu   sync.Mutex
	seen []float64
}

func (r *record) Fit(_ context.Context, in flow.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, column(in.X, "x")...)
	return nil
}

func (r *record) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

// sumFit learns a sum but cannot merge replicas.
type sumFit struct{ sum float64 }

func (s *sumFit) Fit(_ context.Context, in flow.Batch) error {
	for _, v := range column(in.X, "x") {
		s.sum += v
	}
	return nil
}

func (s *sumFit) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}
