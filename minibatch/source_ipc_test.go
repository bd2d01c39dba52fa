package minibatch_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// writeIPC writes recs as an IPC file (stream false) or stream to path.
func writeIPC(t testing.TB, path string, stream bool, schema *arrow.Schema, recs []arrow.RecordBatch, opts ...ipc.Option) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts = append(opts, ipc.WithSchema(schema))
	var w interface {
		Write(arrow.RecordBatch) error
		Close() error
	}
	if stream {
		w = ipc.NewWriter(f, opts...)
	} else {
		fw, err := ipc.NewFileWriter(f, opts...)
		if err != nil {
			t.Fatal(err)
		}
		w = fw
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

// arrowReadIPC reads path with Arrow's own reader; the caller releases the
// records.
func arrowReadIPC(t *testing.T, mem memory.Allocator, path string, stream bool) []arrow.RecordBatch {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []arrow.RecordBatch
	if stream {
		r, err := ipc.NewReader(f, ipc.WithAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Release()
		for r.Next() {
			rec := r.RecordBatch()
			rec.Retain()
			recs = append(recs, rec)
		}
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
		return recs
	}
	r, err := ipc.NewFileReader(f, ipc.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range r.NumRecords() {
		rec, err := r.RecordBatchAt(i)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	return recs
}

type ipcSource interface {
	flow.Source
	flow.Rewinder
	Replayable() bool
	Close() error
}

func openIPC(path string, stream bool, opts ...minibatch.SourceOption) (ipcSource, error) {
	if stream {
		return minibatch.OpenIPCStream(path, opts...)
	}
	return minibatch.OpenIPCFile(path, opts...)
}

func TestIPCSameAsArrow(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct {
		name   string
		stream bool
		opts   []ipc.Option
	}{
		{"file", false, nil},
		{"file-lz4", false, []ipc.Option{ipc.WithLZ4()}},
		{"file-zstd", false, []ipc.Option{ipc.WithZstd()}},
		{"stream", true, nil},
		{"stream-lz4", true, []ipc.Option{ipc.WithLZ4()}},
		{"stream-zstd", true, []ipc.Option{ipc.WithZstd()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := srcCtx(t)
			schema, recs := srcTable(mem, 1000, 300, 3)
			path := filepath.Join(t.TempDir(), "data.arrow")
			writeIPC(t, path, tc.stream, schema, recs, tc.opts...)
			releaseAll(recs)
			want := arrowReadIPC(t, mem, path, tc.stream)
			defer releaseAll(want)

			src, err := openIPC(path, tc.stream, minibatch.WithAllocator(mem), minibatch.WithLabels("y"))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if !src.Replayable() {
				t.Errorf("Replayable() = false; want true when opened from a path")
			}
			for pass := range 2 {
				got := drainSource(t, ctx, src)
				if len(got) != 4 {
					t.Errorf("pass %d: %d batches; want 4 (as written)", pass, len(got))
				}
				sameRows(t, mem, got, want, []string{"x0", "x1", "x2", "s"}, []string{"y"})
				releaseBatches(got)
				if _, err := src.Next(ctx); !errors.Is(err, io.EOF) {
					t.Errorf("Next after the end = %v; want io.EOF", err)
				}
				if err := src.Rewind(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestIPCInputsSubset(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema, recs := srcTable(mem, 50, 20, 3)
	path := filepath.Join(t.TempDir(), "data.arrow")
	writeIPC(t, path, false, schema, recs)
	releaseAll(recs)
	want := arrowReadIPC(t, mem, path, false)
	defer releaseAll(want)
	src, err := minibatch.OpenIPCFile(path, minibatch.WithAllocator(mem), minibatch.WithInputs("x2", "x0"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := drainSource(t, srcCtx(t), src)
	defer releaseBatches(got)
	sameRows(t, mem, got, want, []string{"x2", "x0"}, nil)
}

func TestIPCStreamFromReader(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	schema, recs := srcTable(mem, 100, 40, 2)
	path := filepath.Join(t.TempDir(), "data.arrows")
	writeIPC(t, path, true, schema, recs)
	releaseAll(recs)
	want := arrowReadIPC(t, mem, path, true)
	defer releaseAll(want)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// An io.ReadSeeker: replayable.
	seekable, err := minibatch.NewIPCStream(bytes.NewReader(data), minibatch.WithAllocator(mem), minibatch.WithLabels("y"))
	if err != nil {
		t.Fatal(err)
	}
	defer seekable.Close()
	if !seekable.Replayable() {
		t.Error("Replayable() = false for a bytes.Reader; want true")
	}
	for range 2 {
		got := drainSource(t, ctx, seekable)
		sameRows(t, mem, got, want, []string{"x0", "x1", "s"}, []string{"y"})
		releaseBatches(got)
		if err := seekable.Rewind(); err != nil {
			t.Fatal(err)
		}
	}

	// A plain io.Reader: not replayable.
	plain, err := minibatch.NewIPCStream(struct{ io.Reader }{bytes.NewReader(data)}, minibatch.WithAllocator(mem), minibatch.WithName("pipe"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if plain.Replayable() {
		t.Error("Replayable() = true for a plain io.Reader; want false")
	}
	got := drainSource(t, ctx, plain)
	sameRows(t, mem, got, want, []string{"x0", "x1", "y", "s"}, nil)
	releaseBatches(got)
	err = plain.Rewind()
	if !errors.Is(err, minibatch.ErrNotReplayable) {
		t.Errorf("Rewind() = %v; want ErrNotReplayable", err)
	}
	wantErr(t, err, `"pipe"`)
}

func TestIPCFileFromReaderAt(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema, recs := srcTable(mem, 100, 30, 2)
	path := filepath.Join(t.TempDir(), "data.arrow")
	writeIPC(t, path, false, schema, recs, ipc.WithZstd())
	releaseAll(recs)
	want := arrowReadIPC(t, mem, path, false)
	defer releaseAll(want)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	src, err := minibatch.NewIPCFile(bytes.NewReader(data), int64(len(data)), minibatch.WithAllocator(mem), minibatch.WithLabels("y"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.NumBatches() != 4 {
		t.Errorf("NumBatches() = %d; want 4", src.NumBatches())
	}
	got := drainSource(t, srcCtx(t), src)
	defer releaseBatches(got)
	sameRows(t, mem, got, want, []string{"x0", "x1", "s"}, []string{"y"})
}

func TestIPCDictionaryColumn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{{Name: "c", Type: dt}, {Name: "v", Type: arrow.PrimitiveTypes.Float32}}, nil)
	b := array.NewRecordBuilder(mem, schema)
	db := b.Field(0).(*array.BinaryDictionaryBuilder)
	for i, s := range []string{"a", "b", "a", "c"} {
		if err := db.AppendString(s); err != nil {
			t.Fatal(err)
		}
		b.Field(1).(*array.Float32Builder).Append(float32(i))
	}
	rec := b.NewRecordBatch()
	b.Release()
	for _, stream := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "dict.arrow")
		writeIPC(t, path, stream, schema, []arrow.RecordBatch{rec})
		want := arrowReadIPC(t, mem, path, stream)
		src, err := openIPC(path, stream, minibatch.WithAllocator(mem), minibatch.WithLabels("c"))
		if err != nil {
			t.Fatal(err)
		}
		got := drainSource(t, srcCtx(t), src)
		sameRows(t, mem, got, want, []string{"v"}, []string{"c"})
		releaseBatches(got)
		releaseAll(want)
		src.Close()
	}
	rec.Release()
}

func TestIPCBounds(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	// 64 Ki zeros: 512 KiB of float64 that compress to almost nothing.
	schema := arrow.NewSchema([]arrow.Field{{Name: "z", Type: arrow.PrimitiveTypes.Float64}}, nil)
	bld := array.NewFloat64Builder(mem)
	bld.AppendValues(make([]float64, 1<<16), nil)
	col := bld.NewArray()
	bld.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
	col.Release()
	defer rec.Release()

	for _, stream := range []bool{false, true} {
		dir := t.TempDir()
		plain := filepath.Join(dir, "plain")
		writeIPC(t, plain, stream, schema, []arrow.RecordBatch{rec})
		zst := filepath.Join(dir, "zstd")
		writeIPC(t, zst, stream, schema, []arrow.RecordBatch{rec}, ipc.WithZstd())
		lz4 := filepath.Join(dir, "lz4")
		writeIPC(t, lz4, stream, schema, []arrow.RecordBatch{rec}, ipc.WithLZ4())

		// The body itself is over the bound.
		src, err := openIPC(plain, stream, minibatch.WithAllocator(mem), minibatch.WithMaxBatchBytes(100<<10))
		if err == nil {
			err = nextErr(ctx, src)
			src.Close()
		}
		wantErr(t, err, "minibatch: ipc", `"`+plain+`"`, "exceeds the limit of 102400 bytes", "WithMaxBatchBytes")

		// The compressed bodies are small, but decompress past the bound.
		for _, path := range []string{zst, lz4} {
			st, _ := os.Stat(path)
			if st.Size() > 100<<10 {
				t.Fatalf("%s: compressed file of %d bytes; want it small", path, st.Size())
			}
			src, err := openIPC(path, stream, minibatch.WithAllocator(mem), minibatch.WithMaxBatchBytes(100<<10))
			if err != nil {
				t.Fatal(err)
			}
			err = nextErr(ctx, src)
			src.Close()
			wantErr(t, err, `"`+path+`"`, "batch 0", "decompression of", "exceeds the limit of 102400 bytes", "WithMaxBatchBytes")

			// Within the bound it reads.
			src, err = openIPC(path, stream, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			got := drainSource(t, ctx, src)
			if len(got) != 1 || got[0].Rows() != 1<<16 {
				t.Errorf("%s: got %d batches; want 1 of %d rows", path, len(got), 1<<16)
			}
			releaseBatches(got)
			src.Close()
		}
	}
}

func TestIPCCorrupt(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	schema, recs := srcTable(mem, 200, 100, 2)
	dir := t.TempDir()
	filePath := filepath.Join(dir, "good.arrow")
	writeIPC(t, filePath, false, schema, recs)
	streamPath := filepath.Join(dir, "good.arrows")
	writeIPC(t, streamPath, true, schema, recs, ipc.WithLZ4())
	releaseAll(recs)
	fileData, _ := os.ReadFile(filePath)
	streamData, _ := os.ReadFile(streamPath)

	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// readAll opens and reads to the end, returning the first error.
	readAll := func(path string, stream bool, opts ...minibatch.SourceOption) error {
		src, err := openIPC(path, stream, append(opts, minibatch.WithAllocator(mem))...)
		if err != nil {
			return err
		}
		defer src.Close()
		err = nextErr(ctx, src)
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}

	// A truncated file loses its footer.
	p := write("trunc.arrow", fileData[:len(fileData)/2])
	wantErr(t, readAll(p, false), "minibatch: ipc file", `"`+p+`"`, "ARROW1")

	// A file whose footer points past the end.
	bad := bytes.Clone(fileData)
	bad[len(bad)-7] = 0x7f // the high byte of the footer length
	p = write("footer.arrow", bad)
	wantErr(t, readAll(p, false), `"`+p+`"`, "footer length")

	// A stream cut in the middle of a record batch.
	p = write("trunc.arrows", streamData[:len(streamData)-200])
	wantErr(t, readAll(p, true), "minibatch: ipc stream", `"`+p+`"`, "at byte", "unexpected EOF")

	// A stream file read as a file, and a file read as a stream.
	p = write("stream-as-file.arrow", streamData)
	wantErr(t, readAll(p, false), `"`+p+`"`, "not an Arrow IPC file")

	// Garbage.
	p = write("garbage", bytes.Repeat([]byte{0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0}, 8))
	wantErr(t, readAll(p, true), `"`+p+`"`)

	// A missing column.
	wantErr(t, readAll(filePath, false, minibatch.WithLabels("nope")), `"`+filePath+`"`, `label column "nope" not found`, `"x0"`)
	// A schema mismatch with the file: the named input does not exist.
	wantErr(t, readAll(streamPath, true, minibatch.WithInputs("x0", "x9")), `"`+streamPath+`"`, `input column "x9" not found`)
	// A missing file.
	wantErr(t, readAll(filepath.Join(dir, "none.arrow"), false), "none.arrow", "no such file")
}

func TestIPCCancelled(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema, recs := srcTable(mem, 10, 5, 1)
	path := filepath.Join(t.TempDir(), "data.arrows")
	writeIPC(t, path, true, schema, recs)
	releaseAll(recs)
	src, err := minibatch.OpenIPCStream(path, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithCancelCause(srcCtx(t))
	stop := errors.New("stop")
	cancel(stop)
	if _, err := src.Next(ctx); !errors.Is(err, stop) {
		t.Errorf("Next on a cancelled ctx = %v; want the cause %v", err, stop)
	}
}
