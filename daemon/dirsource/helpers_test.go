package dirsource_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/penstock-ml/penstock/daemon/dirsource"
	"github.com/penstock-ml/penstock/daemon/internal/srctest"
	"github.com/penstock-ml/penstock/daemon/source"
)

// testSchema is two float32 inputs and an int64 label.
func testSchema() source.Schema { return srctest.Schema() }

// records makes batches records of rows rows of testSchema whose row r
// (counted from start) has x0 = r, x1 = -r, y = r.
func records(mem memory.Allocator, start, batches, rows int) []arrow.RecordBatch {
	sc := testSchema().Fields
	var recs []arrow.RecordBatch
	for b := range batches {
		bld := array.NewRecordBuilder(mem, sc)
		for i := range rows {
			r := start + b*rows + i
			bld.Field(0).(*array.Float32Builder).Append(float32(r))
			bld.Field(1).(*array.Float32Builder).Append(-float32(r))
			bld.Field(2).(*array.Int64Builder).Append(int64(r))
		}
		recs = append(recs, bld.NewRecordBatch())
		bld.Release()
	}
	return recs
}

func release(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// writeIPCFile writes an Arrow IPC file of the rows [start, start+batches*rows).
func writeIPCFile(t testing.TB, path string, start, batches, rows int) {
	t.Helper()
	recs := records(memory.DefaultAllocator, start, batches, rows)
	defer release(recs)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(recs[0].Schema()))
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

// ipcStream returns an Arrow IPC stream of recs.
func ipcStream(t testing.TB, recs []arrow.RecordBatch) []byte {
	t.Helper()
	var buf strings.Builder
	w := ipc.NewWriter(&buf, ipc.WithSchema(recs[0].Schema()))
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return []byte(buf.String())
}

func writeIPCStream(t testing.TB, path string, start, batches, rows int) {
	t.Helper()
	recs := records(memory.DefaultAllocator, start, batches, rows)
	defer release(recs)
	if err := os.WriteFile(path, ipcStream(t, recs), 0o644); err != nil {
		t.Fatal(err)
	}
}

// csvText is a CSV table of rows rows from start, columns in the order
// given by cols (of "x0", "x1", "y").
func csvText(start, rows int, cols ...string) string {
	var b strings.Builder
	b.WriteString(strings.Join(cols, ",") + "\n")
	for r := start; r < start+rows; r++ {
		vals := make([]string, len(cols))
		for i, c := range cols {
			switch c {
			case "x0", "y":
				vals[i] = fmt.Sprint(r)
			case "x1":
				vals[i] = fmt.Sprint(-r)
			default:
				vals[i] = "0"
			}
		}
		b.WriteString(strings.Join(vals, ",") + "\n")
	}
	return b.String()
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeParquet(t testing.TB, path string, start, rows int) {
	t.Helper()
	recs := records(memory.DefaultAllocator, start, 1, rows)
	defer release(recs)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pqarrow.NewFileWriter(recs[0].Schema(), f, pq.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(recs[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// newDir makes a Dir on dir with testSchema, taking files at once and
// polling every 5 ms, unless edit changes the options.
func newDir(t *testing.T, dir string, mem memory.Allocator, rep source.Reporter, edit func(*dirsource.Options)) *dirsource.Dir {
	t.Helper()
	o := dirsource.Options{
		Dir: dir, Schema: testSchema(), Settle: -1, Poll: 5 * time.Millisecond,
		Alloc: mem, Reporter: rep,
	}
	if edit != nil {
		edit(&o)
	}
	d, err := dirsource.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// The harness of a Run, shared with natsource's tests.
type (
	running = srctest.Run
	got     = srctest.Got
)

var (
	newRecorder = srctest.NewRecorder
	checked     = srctest.Checked
	rowsOf      = srctest.RowsOf
	seq         = srctest.Seq
	read        = srctest.Read
)

// start runs d from position from (Run's context ends after 20 s; Recv
// waits 10 s).
func start(t *testing.T, d source.Source, from []byte) *running {
	t.Helper()
	return srctest.Start(t, d, from, 20*time.Second, 10*time.Second)
}

func pos(file string, batch int, last bool) string {
	b, _ := json.Marshal(struct {
		File  string `json:"file"`
		Batch int    `json:"batch"`
		Last  bool   `json:"last,omitempty"`
	}{file, batch, last})
	return string(b)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeIPCWith writes an IPC file of testSchema's columns where column
// wrong is int32 instead.
func writeIPCWith(w io.Writer, wrong string) error {
	var fields []arrow.Field
	for _, f := range testSchema().Fields.Fields() {
		if f.Name == wrong {
			f.Type = arrow.PrimitiveTypes.Int32
		}
		fields = append(fields, f)
	}
	sc := arrow.NewSchema(fields, nil)
	bld := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer bld.Release()
	for i, f := range fields {
		switch f.Type.ID() {
		case arrow.FLOAT32:
			bld.Field(i).(*array.Float32Builder).Append(1)
		case arrow.INT32:
			bld.Field(i).(*array.Int32Builder).Append(1)
		case arrow.INT64:
			bld.Field(i).(*array.Int64Builder).Append(1)
		}
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()
	fw, err := ipc.NewFileWriter(w, ipc.WithSchema(sc))
	if err != nil {
		return err
	}
	if err := fw.Write(rec); err != nil {
		return err
	}
	return fw.Close()
}

// writeZerosParquet writes a Parquet file of rows rows of zeros.
func writeZerosParquet(t testing.TB, path string, rows int) {
	t.Helper()
	bld := array.NewRecordBuilder(memory.DefaultAllocator, testSchema().Fields)
	defer bld.Release()
	for range rows {
		bld.Field(0).(*array.Float32Builder).Append(0)
		bld.Field(1).(*array.Float32Builder).Append(0)
		bld.Field(2).(*array.Int64Builder).Append(0)
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pqarrow.NewFileWriter(rec.Schema(), f, pq.NewWriterProperties(pq.WithCompression(compress.Codecs.Snappy)), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
