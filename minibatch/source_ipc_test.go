package minibatch_test

import (
	"bytes"
	"context"
	"encoding/binary"
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

// ipcBytes writes recs of schema as an IPC stream (stream true) or file
// and returns the bytes.
func ipcBytes(t *testing.T, stream bool, schema *arrow.Schema, recs []arrow.RecordBatch, opts ...ipc.Option) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data")
	writeIPC(t, path, stream, schema, recs, opts...)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// readIPCBytes reads data as a stream or a file with a checked allocator
// and returns the first error (nil at a clean end); the allocator must end
// at zero.
func readIPCBytes(t *testing.T, stream bool, data []byte, opts ...minibatch.SourceOption) error {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	opts = append(opts, minibatch.WithAllocator(mem), minibatch.WithName("crafted"))
	var (
		src ipcSource
		err error
	)
	if stream {
		src, err = minibatch.NewIPCStream(bytes.NewReader(data), opts...)
	} else {
		src, err = minibatch.NewIPCFile(bytes.NewReader(data), int64(len(data)), opts...)
	}
	if err != nil {
		return err
	}
	defer src.Close()
	ctx := srcCtx(t)
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		touchBatch(b)
		b.Release()
	}
}

// touchBatch reads every value of b.
func touchBatch(b flow.Batch) {
	for _, rec := range []arrow.RecordBatch{b.X, b.Y} {
		if rec == nil {
			continue
		}
		for _, col := range rec.Columns() {
			for i := range col.Len() {
				_ = col.ValueStr(i)
			}
		}
	}
}

// TestIPCStringOffsetsPanicInArrow: arrow-go's ValidateFull panics on
// string offsets that are in bounds at both ends but not between; the
// sources report an error instead.
func TestIPCStringOffsetsPanicInArrow(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	offsets := memory.NewBufferBytes(arrow.Int32Traits.CastToBytes([]int32{0, 100, 5}))
	values := memory.NewBufferBytes([]byte("abcde"))
	data := array.NewData(arrow.BinaryTypes.String, 2, []*memory.Buffer{nil, offsets, values}, nil, 0, 0)
	col := array.MakeFromData(data)
	data.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 2)
	col.Release()
	defer rec.Release()

	// What arrow-go does with it.
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Errorf("array.ValidateRecordFull did not panic; the check in validateRecord may be redundant now")
			}
		}()
		err := array.ValidateRecordFull(rec)
		t.Errorf("array.ValidateRecordFull = %v; want a panic", err)
	}()

	for _, stream := range []bool{false, true} {
		err := readIPCBytes(t, stream, ipcBytes(t, stream, schema, []arrow.RecordBatch{rec}))
		wantErr(t, err, `"crafted"`, "batch 0", "validation panicked", "out of range")
	}
}

// TestIPCRowBound: a null array needs no buffers, so a few bytes can claim
// any number of rows, which arrow-go accepts; the sources bound rows by
// WithMaxBatchBytes.
func TestIPCRowBound(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.Null, Nullable: true}}, nil)
	col := array.NewNull(1 << 40)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 1<<40)
	col.Release()
	defer rec.Release()
	if err := array.ValidateRecordFull(rec); err != nil {
		t.Fatalf("array.ValidateRecordFull = %v; want arrow-go to accept 2^40 null rows", err)
	}
	for _, stream := range []bool{false, true} {
		data := ipcBytes(t, stream, schema, []arrow.RecordBatch{rec})
		if len(data) > 1024 {
			t.Fatalf("%d bytes; want a tiny input", len(data))
		}
		err := readIPCBytes(t, stream, data, minibatch.WithMaxBatchBytes(1<<20))
		wantErr(t, err, `"crafted"`, "batch 0", "1099511627776 rows", "limit of 1048576", "WithMaxBatchBytes")
	}
	// Within the bound, null rows read.
	small := array.NewNull(1000)
	recSmall := array.NewRecordBatch(schema, []arrow.Array{small}, 1000)
	small.Release()
	defer recSmall.Release()
	for _, stream := range []bool{false, true} {
		if err := readIPCBytes(t, stream, ipcBytes(t, stream, schema, []arrow.RecordBatch{recSmall})); err != nil {
			t.Errorf("stream %v: %v; want 1000 null rows to read", stream, err)
		}
	}
}

// TestIPCDecompressionBomb: arrow-go allocates the length written in front
// of a compressed buffer; here a body of a few hundred bytes says 16 TiB.
// Read with arrow-go alone, it kills the process; the sources refuse it
// before allocating.
func TestIPCDecompressionBomb(t *testing.T) {
	const rows = 1000
	schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	bld := array.NewInt64Builder(memory.NewGoAllocator())
	bld.AppendValues(make([]int64, rows), nil)
	col := bld.NewArray()
	bld.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, rows)
	col.Release()
	defer rec.Release()
	for _, stream := range []bool{false, true} {
		for _, codec := range []ipc.Option{ipc.WithLZ4(), ipc.WithZstd()} {
			data := ipcBytes(t, stream, schema, []arrow.RecordBatch{rec}, codec)
			// The values buffer's prefix: its uncompressed length.
			var want, bomb [8]byte
			binary.LittleEndian.PutUint64(want[:], rows*8)
			binary.LittleEndian.PutUint64(bomb[:], 16<<40)
			if bytes.Count(data, want[:]) != 1 {
				t.Fatalf("the uncompressed length %d occurs %d times; want once", rows*8, bytes.Count(data, want[:]))
			}
			data = bytes.Replace(data, want[:], bomb[:], 1)
			err := readIPCBytes(t, stream, data)
			wantErr(t, err, `"crafted"`, "batch 0", "decompression of 17592186044416 bytes exceeds the limit of 268435456 bytes", "WithMaxBatchBytes")
		}
	}
}

func TestIPCLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "file", true: "stream"}[stream], func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := srcCtx(t)
			schema, recs := srcTable(mem, 100, 30, 2)
			path := filepath.Join(t.TempDir(), "data")
			writeIPC(t, path, stream, schema, recs, ipc.WithZstd())
			releaseAll(recs)

			src, err := openIPC(path, stream, minibatch.WithAllocator(mem), minibatch.WithLabels("y"))
			if err != nil {
				t.Fatal(err)
			}
			if got := src.(interface{ TableSchema() *arrow.Schema }).TableSchema(); !got.Equal(schema) {
				t.Errorf("TableSchema() = %v; want %v", got, schema)
			}
			if got := src.(interface{ Schema() *arrow.Schema }).Schema(); got.HasField("y") || got.NumFields() != schema.NumFields()-1 {
				t.Errorf("Schema() = %v; want the inputs of %v (no label y)", got, schema)
			}
			// Close mid-stream, with a batch still held by the caller.
			b, err := src.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := src.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := src.Close(); err != nil {
				t.Errorf("second Close = %v; want nil", err)
			}
			if b.Rows() != 30 || b.X.Column(0).(*array.Float64).Value(0) != 0 {
				t.Errorf("batch held over Close: %d rows; want 30, still readable", b.Rows())
			}
			b.Release()
			if _, err := src.Next(ctx); err == nil || errors.Is(err, io.EOF) {
				t.Errorf("Next after Close = %v; want an error", err)
			} else {
				wantErr(t, err, "after Close")
			}
			if err := src.Rewind(); err == nil {
				t.Errorf("Rewind after Close = nil; want an error")
			}
		})
	}
}

// TestIPCErrorPathFreesAll: batches that arrow-go fails in the middle of
// leave nothing allocated, once the source is closed. Each corrupt input
// flips one byte of the second half (batch metadata and bodies) of a good
// lz4-compressed file or stream.
func TestIPCErrorPathFreesAll(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	schema, recs := srcTable(mem, 60, 20, 2)
	goods := [][]byte{ipcBytes(t, false, schema, recs, ipc.WithLZ4()), ipcBytes(t, true, schema, recs, ipc.WithLZ4())}
	releaseAll(recs)
	for _, stream := range []bool{false, true} {
		good := goods[map[bool]int{false: 0, true: 1}[stream]]
		var failures int
		for i := len(good) / 2; i < len(good); i += 3 {
			bad := bytes.Clone(good)
			bad[i] ^= 0xa5
			var (
				src ipcSource
				err error
			)
			if stream {
				src, err = minibatch.NewIPCStream(bytes.NewReader(bad), minibatch.WithAllocator(mem))
			} else {
				src, err = minibatch.NewIPCFile(bytes.NewReader(bad), int64(len(bad)), minibatch.WithAllocator(mem))
			}
			if err == nil {
				err = nextErr(ctx, src)
				if src.Rewind() == nil { // a second pass fails the same way
					nextErr(ctx, src)
				}
				src.Close()
			}
			if !errors.Is(err, io.EOF) {
				failures++
			}
			if n := mem.CurrentAlloc(); n != 0 {
				t.Fatalf("stream %v, byte %d flipped: %d bytes still allocated after Close; want 0 (error: %v)", stream, i, n, err)
			}
		}
		if failures == 0 {
			t.Errorf("stream %v: no corruption was detected; want some", stream)
		}
	}
}
