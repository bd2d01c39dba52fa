package bench_test

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

const (
	shuffleRows     = 100_000
	shuffleWidth    = 32
	shuffleBatch    = 64
	shuffleInBatch  = 1000 // rows per record of the in-memory data
	shuffleBufRows  = 10_000
	shuffleWindowed = 16_384 // window of the permutation over a non-Memory source
)

// shuffleData builds 100 000 rows × 32 float32 features in one
// FixedSizeList<float32> column plus a float64 label, in records of 1 000
// rows.
func shuffleData(b *testing.B, mem memory.Allocator) *minibatch.Memory {
	b.Helper()
	cols := make([]minibatch.Column, shuffleWidth)
	names := make([]string, shuffleWidth)
	for j := range cols {
		v := make([]float32, shuffleRows)
		for i := range v {
			v[i] = float32(i*shuffleWidth + j)
		}
		names[j] = string(rune('a'+j%26)) + string(rune('a'+j/26))
		cols[j] = minibatch.Float32s(names[j], v)
	}
	label := make([]float64, shuffleRows)
	for i := range label {
		label[i] = float64(i % 10)
	}
	tab, err := minibatch.FromSlices(shuffleInBatch, cols, []minibatch.Column{minibatch.Float64s("label", label)}, minibatch.WithAllocator(mem))
	if err != nil {
		b.Fatal(err)
	}
	defer tab.Close()
	ctx := b.Context()
	var xs, ys []arrow.RecordBatch
	for {
		bt, err := tab.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		packed, err := minibatch.Pack(bt.X, mem, "features", names...)
		if err != nil {
			b.Fatal(err)
		}
		// Pack keeps the source columns; keep only the packed one.
		last := int(packed.NumCols()) - 1
		x := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{packed.Schema().Field(last)}, nil),
			[]arrow.Array{packed.Column(last)}, packed.NumRows())
		packed.Release()
		xs, ys = append(xs, x), append(ys, bt.Y)
		bt.Y.Retain()
		bt.Release()
	}
	m, err := minibatch.FromRecords(xs, ys)
	if err != nil {
		b.Fatal(err)
	}
	for i := range xs {
		xs[i].Release()
		ys[i].Release()
	}
	return m
}

// hidden hides the *Memory type of a source so that Permute takes its
// general, windowed path.
type hidden struct{ *minibatch.Memory }

// drainRows reads src to io.EOF, releasing every batch, and returns the rows
// read.
func drainRows(ctx context.Context, src flow.Source) (int64, error) {
	var rows int64
	for {
		bt, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		rows += bt.Rows()
		bt.Release()
	}
}

// BenchmarkShuffle measures the rows/s of the shuffles over 100 000 rows ×
// 32 float32 features (batches of 64) and, as x-vs-rebatch, their
// throughput relative to plain re-batching of the same data, measured in
// the same run: each iteration times one pass of re-batching (timer
// stopped) then one pass of the shuffle (timed). x-vs-rebatch = 1 means as
// fast as re-batching, 0.5 twice as slow.
func BenchmarkShuffle(b *testing.B) {
	mem := memory.NewGoAllocator()
	data := shuffleData(b, mem)
	defer data.Close()
	ctx := b.Context()

	rebatch := func() (flow.Source, func(), error) {
		if err := data.Rewind(); err != nil {
			return nil, nil, err
		}
		rb, err := minibatch.NewRebatcher(data, shuffleBatch, minibatch.Keep, minibatch.WithAllocator(mem))
		if err != nil {
			return nil, nil, err
		}
		return rb, func() { rb.Close() }, nil
	}
	cases := []struct {
		name string
		make func() (flow.Source, func(), error)
	}{
		{"rebatch", rebatch},
		{"buffer-10000", func() (flow.Source, func(), error) {
			rb, release, err := rebatch()
			if err != nil {
				return nil, nil, err
			}
			s, err := minibatch.Shuffle(rb, shuffleBufRows, minibatch.WithSeed(1), minibatch.WithAllocator(mem))
			if err != nil {
				release()
				return nil, nil, err
			}
			return s, func() { s.Close(); release() }, nil
		}},
		{"permute-memory", func() (flow.Source, func(), error) {
			p, err := minibatch.Permute(data, shuffleBatch, minibatch.WithSeed(1), minibatch.WithAllocator(mem))
			if err != nil {
				return nil, nil, err
			}
			return p, func() { p.Close() }, nil
		}},
		{"permute-windowed", func() (flow.Source, func(), error) {
			if err := data.Rewind(); err != nil {
				return nil, nil, err
			}
			p, err := minibatch.Permute(hidden{data}, shuffleBatch, minibatch.WithSeed(1), minibatch.WithAllocator(mem), minibatch.WithWindowRows(shuffleWindowed))
			if err != nil {
				return nil, nil, err
			}
			return p, func() { p.Close() }, nil
		}},
	}
	pass := func(b *testing.B, make func() (flow.Source, func(), error)) int64 {
		src, release, err := make()
		if err != nil {
			b.Fatal(err)
		}
		defer release()
		rows, err := drainRows(ctx, src)
		if err != nil {
			b.Fatal(err)
		}
		if rows != shuffleRows {
			b.Fatalf("got %d rows; want %d", rows, shuffleRows)
		}
		return rows
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var baseline time.Duration
			var rows int64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				start := time.Now()
				pass(b, rebatch)
				baseline += time.Since(start)
				b.StartTimer()
				rows += pass(b, c.make)
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(baseline.Seconds()/b.Elapsed().Seconds(), "x-vs-rebatch")
		})
	}
}
