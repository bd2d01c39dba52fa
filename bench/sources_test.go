package bench_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	arrowcsv "github.com/apache/arrow-go/v18/arrow/csv"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/minibatch/parquet"
)

const (
	sourceRows      = 200_000
	sourceFeatures  = 16
	sourceBatchRows = 4096
)

// sourceFiles writes the same table (16 float64 features and an int64
// label) as CSV, Parquet and an IPC file into dir.
func sourceFiles(b *testing.B, dir string) (schema *arrow.Schema, csvPath, pqPath, ipcPath string) {
	b.Helper()
	mem := memory.NewGoAllocator()
	fields := make([]arrow.Field, 0, sourceFeatures+1)
	for i := range sourceFeatures {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("f%d", i), Type: arrow.PrimitiveTypes.Float64, Nullable: true})
	}
	fields = append(fields, arrow.Field{Name: "label", Type: arrow.PrimitiveTypes.Int64, Nullable: true})
	schema = arrow.NewSchema(fields, nil)
	var recs []arrow.RecordBatch
	for lo := 0; lo < sourceRows; lo += sourceBatchRows {
		hi := min(lo+sourceBatchRows, sourceRows)
		bld := array.NewRecordBuilder(mem, schema)
		for r := lo; r < hi; r++ {
			for c := range sourceFeatures {
				bld.Field(c).(*array.Float64Builder).Append(float64(r%997)*0.25 + float64(c))
			}
			bld.Field(sourceFeatures).(*array.Int64Builder).Append(int64(r % 10))
		}
		recs = append(recs, bld.NewRecordBatch())
		bld.Release()
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()

	csvPath = filepath.Join(dir, "data.csv")
	var buf bytes.Buffer
	cw := arrowcsv.NewWriter(&buf, schema, arrowcsv.WithHeader(true))
	for _, r := range recs {
		if err := cw.Write(r); err != nil {
			b.Fatal(err)
		}
	}
	cw.Flush()
	if err := os.WriteFile(csvPath, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}

	pqPath = filepath.Join(dir, "data.parquet")
	f, err := os.Create(pqPath)
	if err != nil {
		b.Fatal(err)
	}
	pw, err := pqarrow.NewFileWriter(schema, f, pq.NewWriterProperties(pq.WithMaxRowGroupLength(64*1024)), pqarrow.DefaultWriterProps())
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range recs {
		if err := pw.Write(r); err != nil {
			b.Fatal(err)
		}
	}
	if err := pw.Close(); err != nil {
		b.Fatal(err)
	}
	f.Close()

	ipcPath = filepath.Join(dir, "data.arrow")
	f, err = os.Create(ipcPath)
	if err != nil {
		b.Fatal(err)
	}
	iw, err := ipc.NewFileWriter(f, ipc.WithSchema(schema))
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range recs {
		if err := iw.Write(r); err != nil {
			b.Fatal(err)
		}
	}
	if err := iw.Close(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return schema, csvPath, pqPath, ipcPath
}

// readArrowCSV, readArrowParquet and readArrowIPC read a file with Arrow's
// reader alone and return the number of rows.
func readArrowCSV(b *testing.B, path string, schema *arrow.Schema) int64 {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r := arrowcsv.NewReader(f, schema, arrowcsv.WithHeader(true), arrowcsv.WithChunk(sourceBatchRows))
	defer r.Release()
	var n int64
	for r.Next() {
		n += r.RecordBatch().NumRows()
	}
	if r.Err() != nil {
		b.Fatal(r.Err())
	}
	return n
}

func readArrowParquet(b *testing.B, path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		b.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: sourceBatchRows}, memory.DefaultAllocator)
	if err != nil {
		b.Fatal(err)
	}
	rr, err := fr.GetRecordReader(b.Context(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer rr.Release()
	var n int64
	for rr.Next() {
		n += rr.RecordBatch().NumRows()
	}
	if rr.Err() != nil {
		b.Fatal(rr.Err())
	}
	return n
}

func readArrowIPC(b *testing.B, path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r, err := ipc.NewFileReader(f)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var n int64
	for i := range r.NumRecords() {
		rec, err := r.RecordBatchAt(i)
		if err != nil {
			b.Fatal(err)
		}
		n += rec.NumRows()
		rec.Release()
	}
	return n
}

// readSource opens a minibatch source, reads it to the end and returns the
// number of rows.
func readSource(b *testing.B, open func() (flow.Source, io.Closer, error)) int64 {
	src, c, err := open()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	var n int64
	for {
		batch, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
		n += batch.Rows()
		batch.Release()
	}
}

// BenchmarkSources reads the same 200 000 × (16 features + label) table as
// CSV, Parquet and an Arrow IPC file, through minibatch and through Arrow's
// reader alone, alternating the two in each iteration. It reports the
// minibatch rate (rows/s) and its ratio to Arrow's (x-vs-arrow; 1 is par).
func BenchmarkSources(b *testing.B) {
	schema, csvPath, pqPath, ipcPath := sourceFiles(b, b.TempDir())
	opts := []minibatch.Option{minibatch.WithLabels("label"), minibatch.WithBatchRows(sourceBatchRows)}
	for _, tc := range []struct {
		name  string
		ours  func() (flow.Source, io.Closer, error)
		arrow func() int64
	}{
		{"csv", func() (flow.Source, io.Closer, error) {
			s, err := minibatch.OpenCSV(csvPath, append(opts, minibatch.WithSchema(schema))...)
			return s, s, err
		}, func() int64 { return readArrowCSV(b, csvPath, schema) }},
		{"parquet", func() (flow.Source, io.Closer, error) {
			s, err := parquet.Open(pqPath, opts...)
			return s, s, err
		}, func() int64 { return readArrowParquet(b, pqPath) }},
		{"ipc", func() (flow.Source, io.Closer, error) {
			s, err := minibatch.OpenIPCFile(ipcPath, opts...)
			return s, s, err
		}, func() int64 { return readArrowIPC(b, ipcPath) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			// Warm the page cache and both code paths, untimed.
			readSource(b, tc.ours)
			tc.arrow()
			var ours, theirs time.Duration
			var rows int64
			i := 0
			for b.Loop() {
				// Alternate which reader goes first, and start each
				// from a collected heap, so neither pays for the
				// other's garbage.
				runOurs := func() {
					b.StopTimer()
					runtime.GC()
					b.StartTimer()
					start := time.Now()
					n := readSource(b, tc.ours)
					ours += time.Since(start)
					if n != sourceRows {
						b.Fatalf("minibatch read %d rows; want %d", n, sourceRows)
					}
					rows += n
				}
				runArrow := func() {
					b.StopTimer()
					runtime.GC()
					start := time.Now()
					if n := tc.arrow(); n != sourceRows {
						b.Fatalf("arrow read %d rows; want %d", n, sourceRows)
					}
					theirs += time.Since(start)
					b.StartTimer()
				}
				if i%2 == 0 {
					runOurs()
					runArrow()
				} else {
					runArrow()
					runOurs()
				}
				i++
			}
			b.ReportMetric(float64(rows)/ours.Seconds(), "rows/s")
			b.ReportMetric(theirs.Seconds()/ours.Seconds(), "x-vs-arrow")
		})
	}
	b.Run("csv.gz-epochs-2-10", func(b *testing.B) { benchCachedEpochs(b, csvPath, schema) })
}

// benchCachedEpochs measures epochs 2 to 10 over a gzipped CSV: through a
// Cache (the first epoch, untimed, parsed the file; the others replay it)
// and by re-reading the file every epoch, alternating the two in each
// iteration. It reports the Cache's rate (rows/s) and its ratio to
// re-reading (x-vs-reread; 2 means twice as fast).
func benchCachedEpochs(b *testing.B, csvPath string, schema *arrow.Schema) {
	const epochs = 10
	gzPath := filepath.Join(filepath.Dir(csvPath), "data.csv.gz")
	raw, err := os.ReadFile(csvPath)
	if err != nil {
		b.Fatal(err)
	}
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	zw.Write(raw)
	zw.Close()
	if err := os.WriteFile(gzPath, zbuf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	open := func() *minibatch.CSVSource {
		src, err := minibatch.OpenCSV(gzPath, minibatch.WithSchema(schema), minibatch.WithLabels("label"), minibatch.WithBatchRows(sourceBatchRows))
		if err != nil {
			b.Fatal(err)
		}
		return src
	}
	// later reads epochs 2..epochs of src (already read once) and returns
	// the time they took.
	later := func(src flow.Source, rw flow.Rewinder) time.Duration {
		start := time.Now()
		for e := 2; e <= epochs; e++ {
			if err := rw.Rewind(); err != nil {
				b.Fatal(err)
			}
			if n, err := drainRows(ctx, src); err != nil || n != sourceRows {
				b.Fatalf("epoch %d: %d rows, error %v; want %d rows", e, n, err, sourceRows)
			}
		}
		return time.Since(start)
	}
	b.ReportAllocs()
	var cached, reread time.Duration
	var rows int64
	i := 0
	for b.Loop() {
		runCached := func() {
			b.StopTimer()
			src := open()
			c, err := minibatch.NewCache(src, minibatch.WithMaxBytes(1<<30))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := drainRows(ctx, c); err != nil { // epoch 1 fills the cache
				b.Fatal(err)
			}
			src.Close() // the Cache no longer needs it
			runtime.GC()
			b.StartTimer()
			cached += later(c, c)
			c.Close()
			rows += (epochs - 1) * sourceRows
		}
		runReread := func() {
			b.StopTimer()
			src := open()
			if _, err := drainRows(ctx, src); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			reread += later(src, src)
			src.Close()
			b.StartTimer()
		}
		if i%2 == 0 {
			runCached()
			runReread()
		} else {
			runReread()
			runCached()
		}
		i++
	}
	b.ReportMetric(float64(rows)/cached.Seconds(), "rows/s")
	b.ReportMetric(reread.Seconds()/cached.Seconds(), "x-vs-reread")
}
