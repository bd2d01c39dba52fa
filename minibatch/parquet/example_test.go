package parquet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/minibatch/parquet"
)

// Write a small Parquet file with pqarrow, then read it back as batches of
// 2 rows with the label column as Y.
func Example() {
	dir, err := os.MkdirTemp("", "parquet-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "data.parquet")

	schema := arrow.NewSchema([]arrow.Field{
		{Name: "x", Type: arrow.PrimitiveTypes.Float64},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	b.Field(0).(*array.Float64Builder).AppendValues([]float64{0.5, 1.5, 2.5, 3.5, 4.5}, nil)
	b.Field(1).(*array.Int64Builder).AppendValues([]int64{0, 1, 0, 1, 1}, nil)
	rec := b.NewRecordBatch()
	b.Release()
	f, err := os.Create(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	w, err := pqarrow.NewFileWriter(schema, f, pq.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err == nil {
		err = w.Write(rec)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	rec.Release()
	if err != nil {
		fmt.Println(err)
		return
	}

	src, err := parquet.Open(path, minibatch.WithLabels("label"), minibatch.WithBatchRows(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	fmt.Println("rows:", src.NumRows(), "X:", src.Schema().Field(0).Name)
	for {
		batch, err := src.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(batch.Seq, batch.X.Column(0), batch.Y.Column(0))
		batch.Release()
	}
	// Output:
	// rows: 5 X: x
	// 0 [0.5 1.5] [0 1]
	// 1 [2.5 3.5] [0 1]
	// 2 [4.5] [1]
}
