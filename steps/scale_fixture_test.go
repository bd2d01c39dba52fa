package steps_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// Fixtures of the preprocessing and linear-model tests (the "pre" prefix
// keeps their names apart from the other tests of package steps).

// preEngines are the two engines every run is tried with.
var preEngines = []flow.Engine{flow.Sequential, flow.Streaming}

// preContext returns a context with a deadline, so that a bug fails the
// test instead of hanging it.
func preContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// preTensor returns a record of one tensor column name holding rows.
func preTensor(mem memory.Allocator, name string, rows [][]float32) arrow.RecordBatch {
	cols := 0
	if len(rows) > 0 {
		cols = len(rows[0])
	}
	m := minibatch.NewMatrix(mem, len(rows), cols)
	defer m.Release()
	for r, row := range rows {
		copy(m.Row(r), row)
	}
	return m.Record(name)
}

// preInt64s returns a record of one int64 column name.
func preInt64s(mem memory.Allocator, name string, v []int64) arrow.RecordBatch {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.AppendValues(v, nil)
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: name, Type: col.DataType()}}, nil), []arrow.Array{col}, int64(len(v)))
}

// preFloat32s returns a record of one float32 column name.
func preFloat32s(mem memory.Allocator, name string, v []float32) arrow.RecordBatch {
	b := array.NewFloat32Builder(mem)
	defer b.Release()
	b.AppendValues(v, nil)
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: name, Type: col.DataType()}}, nil), []arrow.Array{col}, int64(len(v)))
}

// preSource returns a Memory source of batches of batchRows rows of the
// tensor "x" holding rows, with Y made by y (given the rows of a batch) or
// no Y when y is nil. The source is closed at the end of the test.
func preSource(t *testing.T, mem memory.Allocator, rows [][]float32, batchRows int, y func(lo, hi int) arrow.RecordBatch) *minibatch.Memory {
	t.Helper()
	var xs, ys []arrow.RecordBatch
	for lo := 0; lo < len(rows); lo += batchRows {
		hi := min(lo+batchRows, len(rows))
		xs = append(xs, preTensor(mem, "x", rows[lo:hi]))
		if y != nil {
			ys = append(ys, y(lo, hi))
		}
	}
	src, err := minibatch.FromRecords(xs, ys)
	for _, r := range append(xs, ys...) {
		r.Release()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// preRows returns n rows of width w drawn deterministically: column j of
// row r is offset[j] + spread[j] × a pseudo-random value in [-1, 1).
func preRows(n, w int, seed uint64) [][]float32 {
	state := seed*2862933555777941757 + 3037000493
	next := func() float64 {
		state = state*6364136223846793005 + 1442695040888963407
		return float64(state>>11)/float64(1<<53)*2 - 1
	}
	rows := make([][]float32, n)
	for r := range rows {
		rows[r] = make([]float32, w)
		for j := range rows[r] {
			rows[r][j] = float32(float64(j*10-7) + float64(j+1)*3*next())
		}
	}
	return rows
}

// prePipeline returns a pipeline of the given nodes or fails the test.
func prePipeline(t *testing.T, nodes ...flow.Node) *flow.Pipeline {
	t.Helper()
	p, err := flow.NewPipeline(nodes)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// preCollect transforms src with p and returns the tensor column name of
// the output batches' X, concatenated.
func preCollect(t *testing.T, ctx context.Context, r flow.Runner, p *flow.Pipeline, src flow.Source, name string) [][]float32 {
	t.Helper()
	s, err := r.Transform(ctx, p, src)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float32
	err = s.Each(ctx, func(b flow.Batch) error {
		m, err := minibatch.Features(b, name)
		if err != nil {
			return err
		}
		for r := range m.Rows {
			out = append(out, append([]float32(nil), m.Row(r)...))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// preClose reports whether a and b agree to tol, relative to max(1, |a|).
func preClose(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Abs(a))
}

// preAllClose fails the test where got and want differ beyond tol.
func preAllClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values; want %d", what, len(got), len(want))
	}
	for i := range got {
		if !preClose(got[i], want[i], tol) {
			t.Errorf("%s[%d]: got %.9g; want %.9g (tolerance %g)", what, i, got[i], want[i], tol)
		}
	}
}

// preMem returns a checked allocator that must be back at zero at the end
// of the test, after the sources of preSource are closed (cleanups run
// last registered first, so register it before them).
func preMem(t *testing.T) *memory.CheckedAllocator {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}
