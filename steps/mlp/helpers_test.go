package mlp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

var digitsPath = filepath.Join("..", "..", "examples", "data", "digits.csv.gz")

// deadline returns the test's context with a timeout.
func deadline(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// checked returns a checked allocator that must be back at zero when the
// test ends.
func checked(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// digits is the UCI digits split as in the scikit-learn reference: a
// stratified holdout of 25%, seed 0, standardized with the training
// rows' mean and standard deviation (a constant pixel is only centred).
type digits struct {
	trainX, testX []float32 // rows × 64
	trainY, testY []int64
}

var digitsCache *digits

func loadDigits(t testing.TB) *digits {
	t.Helper()
	if digitsCache != nil {
		return digitsCache
	}
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	pixels := make([]string, 64)
	for i := range pixels {
		pixels[i] = fmt.Sprint("px", i)
	}
	src, err := minibatch.OpenCSV(digitsPath, minibatch.WithAllocator(mem), minibatch.WithHeader(false),
		minibatch.WithColumnNames(append(pixels, "digit")...), minibatch.WithLabels("digit"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	train, test, err := minibatch.Holdout(ctx, src, 0.25, minibatch.WithSeed(0), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	read := func(side flow.Source) (xs []float32, ys []int64) {
		for {
			b, err := side.Next(ctx)
			if errors.Is(err, io.EOF) {
				return xs, ys
			}
			if err != nil {
				t.Fatal(err)
			}
			rec, err := minibatch.Pack(b.X, mem, "pixels", pixels...)
			if err != nil {
				t.Fatal(err)
			}
			x, err := minibatch.Features(flow.Batch{X: rec}, "pixels")
			if err != nil {
				t.Fatal(err)
			}
			xs = append(xs, x.Data...)
			y, err := minibatch.LabelsInt64(b, "digit")
			if err != nil {
				t.Fatal(err)
			}
			ys = append(ys, y...)
			rec.Release()
			b.Release()
		}
	}
	d := &digits{}
	d.trainX, d.trainY = read(train)
	d.testX, d.testY = read(test)
	if err := errors.Join(train.Close(), test.Close()); err != nil {
		t.Fatal(err)
	}
	// Standardize with the training statistics.
	const w = 64
	n := len(d.trainY)
	for j := range w {
		var sum, sq float64
		for r := range n {
			v := float64(d.trainX[r*w+j])
			sum, sq = sum+v, sq+v*v
		}
		mean := sum / float64(n)
		sd := math.Sqrt(max(sq/float64(n)-mean*mean, 0))
		if sd == 0 {
			sd = 1
		}
		for _, xs := range [][]float32{d.trainX, d.testX} {
			for r := range len(xs) / w {
				xs[r*w+j] = float32((float64(xs[r*w+j]) - mean) / sd)
			}
		}
	}
	digitsCache = d
	return d
}

// memorySource returns a Memory of one record: X the tensor column "x"
// of the rows xs (width 64), Y the int64 column "y" of ys. The caller
// closes it.
func memorySource(t testing.TB, mem memory.Allocator, xs []float32, ys []int64) *minibatch.Memory {
	t.Helper()
	x := minibatch.NewMatrix(mem, len(ys), len(xs)/len(ys))
	defer x.Release()
	copy(x.Data, xs)
	xr := x.Record("x")
	defer xr.Release()
	yr := int64Record(mem, "y", ys)
	defer yr.Release()
	m, err := minibatch.FromRecords([]arrow.RecordBatch{xr}, []arrow.RecordBatch{yr})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func int64Record(mem memory.Allocator, name string, v []int64) arrow.RecordBatch {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.AppendValues(v, nil)
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: name, Type: col.DataType()}}, nil), []arrow.Array{col}, int64(len(v)))
}

func float32Record(mem memory.Allocator, name string, v []float32) arrow.RecordBatch {
	b := array.NewFloat32Builder(mem)
	defer b.Release()
	b.AppendValues(v, nil)
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: name, Type: col.DataType()}}, nil), []arrow.Array{col}, int64(len(v)))
}

// epochs returns epochs passes over the rows of src in batches of rows,
// each pass a new permutation (seed 0). The caller closes both.
func epochs(t testing.TB, src *minibatch.Memory, rows, n int) (*minibatch.Ordered, *minibatch.Repeater) {
	t.Helper()
	perm, err := minibatch.Permute(src, rows, minibatch.WithSeed(0))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := minibatch.Repeat(perm, n)
	if err != nil {
		t.Fatal(err)
	}
	return perm, rep
}

// batch returns a batch of X "x" (rows of xs, width cols) and Y "y".
func batch(mem memory.Allocator, cols int, xs []float32, y arrow.RecordBatch) flow.Batch {
	x := minibatch.NewMatrix(mem, len(xs)/cols, cols)
	defer x.Release()
	copy(x.Data, xs)
	return flow.Batch{X: x.Record("x"), Y: y}
}

// column returns the float32 values of a tensor or float32 column of b's X.
func outputs(t *testing.T, b flow.Batch, name string) []float32 {
	t.Helper()
	idx := b.X.Schema().FieldIndices(name)
	if len(idx) != 1 {
		t.Fatalf("output has no column %q: %v", name, b.X.Schema())
	}
	switch c := b.X.Column(idx[0]).(type) {
	case *array.Float32:
		return append([]float32(nil), c.Float32Values()...)
	default:
		v, _, _, err := minibatch.Float32View(c)
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), v...)
	}
}

func minibatchPermute(src flow.Source) (*minibatch.Ordered, error) {
	return minibatch.Permute(src, 32, minibatch.WithSeed(0))
}

func repeat(src flow.Source, n int) (*minibatch.Repeater, error) { return minibatch.Repeat(src, n) }
