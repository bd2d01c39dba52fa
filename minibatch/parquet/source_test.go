package parquet_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/minibatch/parquet"
)

// writeParquet writes recs with pqarrow, rowGroup rows per row group.
func writeParquet(t testing.TB, path string, schema *arrow.Schema, recs []arrow.RecordBatch, rowGroup int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	props := pq.NewWriterProperties(pq.WithMaxRowGroupLength(rowGroup), pq.WithCompression(compress.Codecs.Snappy))
	w, err := pqarrow.NewFileWriter(schema, f, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// arrowReadParquet reads the given row groups (nil: all) of path with
// pqarrow alone.
func arrowReadParquet(t *testing.T, mem memory.Allocator, path string, groups []int) []arrow.RecordBatch {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pf, err := file.NewParquetReader(f, file.WithReadProps(pq.NewReaderProperties(mem)))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 333}, mem)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := fr.GetRecordReader(t.Context(), nil, groups)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var recs []arrow.RecordBatch
	for rr.Next() {
		rec := rr.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	if rr.Err() != nil {
		t.Fatal(rr.Err())
	}
	return recs
}

func TestParquetSameAsArrow(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	schema, recs := srcTable(mem, 1000, 250, 3)
	path := filepath.Join(t.TempDir(), "data.parquet")
	writeParquet(t, path, schema, recs, 400) // row groups of 400, 400, 200
	releaseAll(recs)

	for _, tc := range []struct {
		name   string
		groups []int
		inputs []string
	}{
		{"all", nil, nil},
		{"groups 2 and 0", []int{2, 0}, []string{"x2", "s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := arrowReadParquet(t, mem, path, tc.groups)
			defer releaseAll(want)
			opts := []minibatch.Option{minibatch.WithAllocator(mem), minibatch.WithLabels("y"), minibatch.WithBatchRows(128)}
			if tc.groups != nil {
				opts = append(opts, minibatch.WithRowGroups(tc.groups...))
			}
			inputs := []string{"x0", "x1", "x2", "s"}
			if tc.inputs != nil {
				opts = append(opts, minibatch.WithInputs(tc.inputs...))
				inputs = tc.inputs
			}
			src, err := parquet.Open(path, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var rows int64
			for _, r := range want {
				rows += r.NumRows()
			}
			if src.NumRows() != rows || rows == 0 || (tc.groups == nil && rows != 1000) {
				t.Errorf("NumRows() = %d; want %d (1000 for all groups)", src.NumRows(), rows)
			}
			for pass := range 2 {
				got := drainSource(t, ctx, src)
				for _, b := range got {
					if b.Rows() > 128 {
						t.Errorf("pass %d batch %d: %d rows; want at most 128", pass, b.Seq, b.Rows())
					}
					if tc.inputs != nil && b.X.NumCols() != int64(len(tc.inputs)) {
						t.Errorf("X has %d columns; want %d", b.X.NumCols(), len(tc.inputs))
					}
				}
				sameRows(t, mem, got, want, inputs, []string{"y"})
				releaseBatches(got)
				if err := src.Rewind(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestParquetFromReader(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema, recs := srcTable(mem, 100, 100, 1)
	path := filepath.Join(t.TempDir(), "data.parquet")
	writeParquet(t, path, schema, recs, 1000)
	releaseAll(recs)
	want := arrowReadParquet(t, mem, path, nil)
	defer releaseAll(want)
	data, _ := os.ReadFile(path)
	src, err := parquet.New(bytes.NewReader(data), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := drainSource(t, srcCtx(t), src)
	defer releaseBatches(got)
	sameRows(t, mem, got, want, []string{"x0", "y", "s"}, nil)
}

func TestParquetCorrupt(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	schema, recs := srcTable(mem, 2000, 2000, 2)
	dir := t.TempDir()
	path := filepath.Join(dir, "good.parquet")
	writeParquet(t, path, schema, recs, 1000)
	releaseAll(recs)
	data, _ := os.ReadFile(path)

	readAll := func(p string, opts ...minibatch.SourceOption) error {
		src, err := parquet.Open(p, append(opts, minibatch.WithAllocator(mem))...)
		if err != nil {
			return err
		}
		defer src.Close()
		if err := nextErr(ctx, src); !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}

	p := write("trunc.parquet", data[:len(data)/2])
	wantErr(t, readAll(p), "minibatch: parquet", `"`+p+`"`, "not a readable Parquet file")

	p = write("empty.parquet", nil)
	wantErr(t, readAll(p), `"`+p+`"`, "not a readable Parquet file")

	// Corrupt the column data in the middle of the file: either the page
	// decoding fails, or the values differ; it must not panic, and an
	// error names the file.
	bad := bytes.Clone(data)
	for i := 100; i < len(bad)/2; i += 7 {
		bad[i] ^= 0x5a
	}
	p = write("corrupt.parquet", bad)
	wantErr(t, readAll(p), `"`+p+`"`)

	wantErr(t, readAll(path, minibatch.WithLabels("nope")), `"`+path+`"`, `label column "nope" not found`)
	wantErr(t, readAll(path, minibatch.WithRowGroups(5)), `"`+path+`"`, "row group 5 does not exist; the file has 2")
}

// TestParquetLifecycle checks the lifecycle that every source of minibatch
// shares: Schema is X's, Close twice is fine, Next and Rewind fail after
// Close, Replayable turns false, and nothing stays allocated.
func TestParquetLifecycle(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	schema, recs := srcTable(mem, 300, 100, 2)
	path := filepath.Join(t.TempDir(), "data.parquet")
	writeParquet(t, path, schema, recs, 1000)
	releaseAll(recs)

	src, err := parquet.Open(path, minibatch.WithAllocator(mem), minibatch.WithLabels("y"), minibatch.WithInputs("x1", "s"), minibatch.WithBatchRows(64))
	if err != nil {
		t.Fatal(err)
	}
	if got := src.Schema(); got.NumFields() != 2 || got.Field(0).Name != "x1" || got.Field(1).Name != "s" {
		t.Errorf("Schema() = %v; want X's columns x1, s", got)
	}
	if got := src.FileSchema().NumFields(); got != 4 {
		t.Errorf("FileSchema() has %d fields; want 4 (x0, x1, y, s)", got)
	}
	b, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !b.X.Schema().Equal(src.Schema()) {
		t.Errorf("batch X schema %v; want Schema() %v", b.X.Schema(), src.Schema())
	}
	b.Release()
	if !src.Replayable() {
		t.Error("Replayable() = false before Close; want true")
	}
	for i := range 2 {
		if err := src.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if src.Replayable() {
		t.Error("Replayable() = true after Close; want false")
	}
	if _, err := src.Next(ctx); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Errorf("Next after Close: %v; want an error saying after Close", err)
	}
	if err := src.Rewind(); err == nil {
		t.Error("Rewind after Close: nil; want an error")
	}
}
