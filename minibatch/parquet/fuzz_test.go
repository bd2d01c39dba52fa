package parquet_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/minibatch/parquet"
)

// parquetSeed writes a small Parquet file (two row groups; float, int,
// nullable string and dictionary-encoded columns) compressed with codec.
func parquetSeed(tb testing.TB, codec compress.Compression) []byte {
	tb.Helper()
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "f", Type: arrow.PrimitiveTypes.Float64},
		{Name: "i", Type: arrow.PrimitiveTypes.Int64},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for r := range 12 {
		b.Field(0).(*array.Float64Builder).Append(float64(r) / 4)
		b.Field(1).(*array.Int64Builder).Append(int64(r % 3))
		if r%5 == 2 {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.StringBuilder).Append([]string{"a", "bb", "ccc"}[r%3])
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	props := pq.NewWriterProperties(pq.WithMaxRowGroupLength(6), pq.WithCompression(codec), pq.WithDictionaryDefault(true))
	w, err := pqarrow.NewFileWriter(schema, &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func drainParquet(ctx context.Context, src flow.Source) (rows int64, err error) {
	for {
		b, err := src.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return rows, nil
			}
			return rows, err
		}
		rows += b.Rows()
		for _, c := range b.X.Columns() {
			for i := range c.Len() {
				_ = c.ValueStr(i)
			}
		}
		b.Release()
	}
}

// FuzzParquet reads arbitrary bytes as a Parquet file: every input fails
// to open, or reads to an error or to the end, without a panic; nothing
// stays allocated; a replay (Rewind) gives the same outcome.
func FuzzParquet(f *testing.F) {
	for _, c := range []compress.Compression{compress.Codecs.Uncompressed, compress.Codecs.Snappy, compress.Codecs.Zstd} {
		f.Add(parquetSeed(f, c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		src, err := parquet.New(bytes.NewReader(data), minibatch.WithAllocator(mem), minibatch.WithBatchRows(5), minibatch.WithName("fuzz"))
		if err != nil {
			return
		}
		defer src.Close()
		ctx := t.Context()
		rows, first := drainParquet(ctx, src)
		if err := src.Rewind(); err != nil {
			t.Fatalf("Rewind: %v", err)
		}
		again, second := drainParquet(ctx, src)
		if rows != again || (first == nil) != (second == nil) || (first != nil && first.Error() != second.Error()) {
			t.Fatalf("replay differs: %d rows, %v; then %d rows, %v", rows, first, again, second)
		}
	})
}
