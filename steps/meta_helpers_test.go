package steps_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// The helpers of the metastep, wrapper and label tests (prefixed meta so
// that they do not collide with the other tests of the package).

func metaCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func metaMem(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func metaRunners(mem memory.Allocator) []flow.Runner {
	return []flow.Runner{{Engine: flow.Sequential, Allocator: mem}, {Engine: flow.Streaming, Allocator: mem}}
}

func metaPipeline(t *testing.T, nodes ...flow.Node) *flow.Pipeline {
	t.Helper()
	p, err := flow.NewPipeline(nodes)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func metaMust[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// metaTensors is a replayable source of n rows of X "x", a tensor of
// width 1 holding the row number r, and Y "y" (float64 r), in batches of
// size rows.
func metaTensors(t *testing.T, mem memory.Allocator, n, size int) *minibatch.Memory {
	t.Helper()
	var xs, ys []arrow.RecordBatch
	for lo := 0; lo < n; lo += size {
		hi := min(lo+size, n)
		m := minibatch.NewMatrix(mem, hi-lo, 1)
		vals := make([]float64, hi-lo)
		for r := range m.Rows {
			m.Data[r] = float32(lo + r)
			vals[r] = float64(lo + r)
		}
		xs = append(xs, m.Record("x"))
		m.Release()
		b := array.NewFloat64Builder(mem)
		b.AppendValues(vals, nil)
		col := b.NewArray()
		b.Release()
		ys = append(ys, array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "y", Type: col.DataType()}}, nil), []arrow.Array{col}, int64(hi-lo)))
		col.Release()
	}
	src, err := minibatch.FromRecords(xs, ys)
	for i := range xs {
		xs[i].Release()
		ys[i].Release()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// metaRewind rewinds src for another run.
func metaRewind(t *testing.T, src flow.Rewinder) flow.Source {
	t.Helper()
	if err := src.Rewind(); err != nil {
		t.Fatal(err)
	}
	return src
}

// metaValues returns the values of column name of rec, flattened (a
// tensor's rows one after the other), as float64.
func metaValues(t *testing.T, rec arrow.RecordBatch, name string) []float64 {
	t.Helper()
	if rec == nil {
		t.Fatalf("no record for column %q", name)
	}
	idx := rec.Schema().FieldIndices(name)
	if len(idx) != 1 {
		t.Fatalf("no column %q in %v", name, rec.Schema())
	}
	return metaFlat(t, rec.Column(idx[0]))
}

func metaFlat(t *testing.T, a arrow.Array) []float64 {
	t.Helper()
	var out []float64
	switch c := a.(type) {
	case *array.Float32:
		for _, v := range c.Float32Values() {
			out = append(out, float64(v))
		}
	case *array.Float64:
		out = append(out, c.Float64Values()...)
	case *array.FixedSizeList:
		vals, _, _, err := minibatch.Float32View(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			out = append(out, float64(v))
		}
	case *array.List:
		for r := range c.Len() {
			s, e := c.ValueOffsets(r)
			sl := array.NewSlice(c.ListValues(), s, e)
			out = append(out, metaFlat(t, sl)...)
			sl.Release()
		}
	default:
		t.Fatalf("column of type %s", a.DataType())
	}
	return out
}

// metaOut is what a run produced: the values of chosen columns of X and
// Y, concatenated over the batches, and the rows of each batch.
type metaOut struct {
	x, y []float64
	rows []int64
}

func (o metaOut) equal(p metaOut) bool {
	return slices.Equal(o.x, p.x) && slices.Equal(o.y, p.y) && slices.Equal(o.rows, p.rows)
}

// metaCollect reads s to its end: column xcol of X, and ycol of Y where
// not "".
func metaCollect(ctx context.Context, t *testing.T, s *flow.Stream, xcol, ycol string) metaOut {
	t.Helper()
	bs, err := flow.Collect(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	var out metaOut
	for _, b := range bs {
		out.rows = append(out.rows, b.Rows())
		out.x = append(out.x, metaValues(t, b.X, xcol)...)
		if ycol != "" {
			out.y = append(out.y, metaValues(t, b.Y, ycol)...)
		}
		b.Release()
	}
	return out
}

func metaTransform(ctx context.Context, t *testing.T, r flow.Runner, p *flow.Pipeline, src flow.Source, xcol, ycol string) metaOut {
	t.Helper()
	s, err := r.Transform(ctx, p, src)
	if err != nil {
		t.Fatal(err)
	}
	return metaCollect(ctx, t, s, xcol, ycol)
}

func metaFitTransform(ctx context.Context, t *testing.T, r flow.Runner, p *flow.Pipeline, src flow.Source, xcol, ycol string) metaOut {
	t.Helper()
	s, err := r.FitTransform(ctx, p, src)
	if err != nil {
		t.Fatal(err)
	}
	return metaCollect(ctx, t, s, xcol, ycol)
}

// metaLife counts the lifecycle calls on one step value.
type metaLife struct{ setups, teardowns, fits, transforms atomic.Int64 }

func (l *metaLife) String() string {
	return fmt.Sprintf("setups %d, teardowns %d, fits %d, transforms %d", l.setups.Load(), l.teardowns.Load(), l.fits.Load(), l.transforms.Load())
}

func (l *metaLife) check(t *testing.T, what string, setups, fits, transforms int64) {
	t.Helper()
	if l.setups.Load() != setups || l.teardowns.Load() != setups || l.fits.Load() != fits || l.transforms.Load() != transforms {
		t.Errorf("%s: %v; want setups and teardowns %d, fits %d, transforms %d", what, l, setups, fits, transforms)
	}
}

// metaMean learns the mean of the tensor column col (every value) and
// subtracts it; it adds add on top, so branches can be told apart. It
// counts its calls, refuses to run unless set up, and is a Merger, Copier
// and Resetter.
type metaMean struct {
	col      string
	add      float32
	n, sum   float64
	up       atomic.Bool
	metaLife // counters
}

var (
	_ flow.Fitter     = (*metaMean)(nil)
	_ flow.Merger     = (*metaMean)(nil)
	_ flow.Copier     = (*metaMean)(nil)
	_ flow.Resetter   = (*metaMean)(nil)
	_ flow.Setupper   = (*metaMean)(nil)
	_ flow.Teardowner = (*metaMean)(nil)
)

func newMetaMean(col string, add float32) *metaMean { return &metaMean{col: col, add: add} }

func (m *metaMean) Setup(context.Context) error {
	m.setups.Add(1)
	if !m.up.CompareAndSwap(false, true) {
		return errors.New("metaMean: set up twice")
	}
	return nil
}

func (m *metaMean) Teardown(context.Context) error {
	m.teardowns.Add(1)
	m.up.Store(false)
	return nil
}

func (m *metaMean) Fit(_ context.Context, in flow.Batch) error {
	m.fits.Add(1)
	if !m.up.Load() {
		return errors.New("metaMean: fit before setup")
	}
	x, err := minibatch.Features(in, m.col)
	if err != nil {
		return err
	}
	for _, v := range x.Data {
		m.n++
		m.sum += float64(v)
	}
	return nil
}

func (m *metaMean) mean() float32 {
	if m.n == 0 {
		return 0
	}
	return float32(m.sum / m.n)
}

func (m *metaMean) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	m.transforms.Add(1)
	if !m.up.Load() {
		return flow.Batch{}, errors.New("metaMean: transform before setup")
	}
	x, err := minibatch.Features(in, m.col)
	if err != nil {
		return flow.Batch{}, err
	}
	mu := m.mean()
	return minibatch.MapRows(ctx, in, m.col, m.col, x.Cols, func(x, y []float32) {
		for j, v := range x {
			y[j] = v - mu + m.add
		}
	})
}

func (m *metaMean) Replica() flow.Step { return newMetaMean(m.col, m.add) }

func (m *metaMean) Merge(reps []flow.Step) error {
	for _, r := range reps {
		rm := r.(*metaMean)
		m.n += rm.n
		m.sum += rm.sum
	}
	return nil
}

func (m *metaMean) Copy() flow.Step {
	c := newMetaMean(m.col, m.add)
	c.n, c.sum = m.n, m.sum
	return c
}

func (m *metaMean) Reset() { m.n, m.sum = 0, 0 }

// metaTimes multiplies the tensor column col by f: a stateless step.
type metaTimes struct {
	col string
	f   float32
}

func (s metaTimes) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	x, err := minibatch.Features(in, s.col)
	if err != nil {
		return flow.Batch{}, err
	}
	return minibatch.MapRows(ctx, in, s.col, s.col, x.Cols, func(x, y []float32) {
		for j, v := range x {
			y[j] = v * s.f
		}
	})
}

// metaSwap swaps X and Y: a source's tensor goes to Y.
type metaSwap struct{}

func (metaSwap) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	in.X, in.Y = in.Y, in.X
	return in, nil
}
