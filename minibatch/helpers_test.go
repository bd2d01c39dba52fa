package minibatch_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// testCtx returns a context that ends the test instead of hanging it.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rowsSource is a replayable test source of batches of the given sizes: X
// has a float64 column "i" holding the global row index (0, 1, 2, … across
// batches), Y a float64 column "y" holding 10 × i. epochs, when set, gives
// each batch's Epoch.
type rowsSource struct {
	mem    memory.Allocator
	sizes  []int
	epochs []int
	noY    bool
	pos    int
	start  int
	reads  int // number of batches returned, over all passes
}

func (s *rowsSource) Next(ctx context.Context) (flow.Batch, error) {
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, err
	}
	if s.pos >= len(s.sizes) {
		return flow.Batch{}, io.EOF
	}
	n := s.sizes[s.pos]
	xs := make([]float64, n)
	ys := make([]float64, n)
	for k := range n {
		xs[k] = float64(s.start + k)
		ys[k] = 10 * float64(s.start+k)
	}
	b := flow.Batch{Seq: int64(s.pos), X: float64Record(s.mem, "i", xs)}
	if !s.noY {
		b.Y = float64Record(s.mem, "y", ys)
	}
	if s.epochs != nil {
		b.Epoch = s.epochs[s.pos]
	}
	s.pos++
	s.start += n
	s.reads++
	return b, nil
}

func (s *rowsSource) Replayable() bool { return true }

func (s *rowsSource) Rewind() error {
	s.pos, s.start = 0, 0
	return nil
}

// onceSource hides the Rewind method of the source it wraps.
type onceSource struct{ flow.Source }

func float64Record(mem memory.Allocator, name string, v []float64) arrow.RecordBatch {
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	b.AppendValues(v, nil)
	a := b.NewArray()
	defer a.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: name, Type: arrow.PrimitiveTypes.Float64}}, nil)
	return array.NewRecordBatch(schema, []arrow.Array{a}, int64(len(v)))
}

func repeatSizes(size, count int) []int {
	s := make([]int, count)
	for i := range s {
		s[i] = size
	}
	return s
}

// shape is what a test checks of one output batch.
type shape struct {
	Seq   int64
	Epoch int
	Rows  int64
}

// drain reads src to io.EOF and returns the shapes of its batches and the
// values of the first X and Y columns (float64) in stream order. It releases
// every batch.
func drain(t *testing.T, ctx context.Context, src flow.Source) (shapes []shape, xs, ys []float64) {
	t.Helper()
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return shapes, xs, ys
		}
		if err != nil {
			t.Fatalf("Next: got error %v; want a batch or io.EOF", err)
		}
		shapes = append(shapes, shape{b.Seq, b.Epoch, b.Rows()})
		xs = append(xs, float64Values(t, b.X)...)
		if b.Y != nil {
			ys = append(ys, float64Values(t, b.Y)...)
		}
		b.Release()
	}
}

func float64Values(t *testing.T, rec arrow.RecordBatch) []float64 {
	t.Helper()
	col, ok := rec.Column(0).(*array.Float64)
	if !ok {
		t.Fatalf("column 0 has type %s; want float64", rec.Column(0).DataType())
	}
	return append([]float64(nil), col.Float64Values()...)
}

func iota64(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i)
	}
	return v
}

// newMemory builds a minibatch.Memory of n rows ("i" = row index, Y "y" =
// 10 × i) in batches of per rows.
func newMemory(t *testing.T, mem memory.Allocator, n, per int) *minibatch.Memory {
	t.Helper()
	ys := iota64(n)
	for i := range ys {
		ys[i] *= 10
	}
	m, err := minibatch.FromSlices(per, []minibatch.Column{minibatch.Float64s("i", iota64(n))}, []minibatch.Column{minibatch.Float64s("y", ys)}, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatalf("FromSlices: %v", err)
	}
	return m
}
