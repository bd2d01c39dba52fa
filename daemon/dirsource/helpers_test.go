package dirsource_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	"github.com/penstock-ml/penstock/daemon/source"
)

// testSchema is two float32 inputs and an int64 label.
func testSchema() source.Schema {
	return source.Schema{
		Fields: arrow.NewSchema([]arrow.Field{
			{Name: "x0", Type: arrow.PrimitiveTypes.Float32},
			{Name: "x1", Type: arrow.PrimitiveTypes.Float32},
			{Name: "y", Type: arrow.PrimitiveTypes.Int64},
		}, nil),
		Inputs: []string{"x0", "x1"},
		Labels: []string{"y"},
	}
}

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

// recorder is a Reporter that keeps what it hears.
type recorder struct {
	mu   sync.Mutex
	got  []string // "reason: error"
	seen chan struct{}
}

func newRecorder() *recorder { return &recorder{seen: make(chan struct{}, 100)} }

func (r *recorder) Rejected(_ string, reason source.Reason, err error) {
	r.mu.Lock()
	r.got = append(r.got, fmt.Sprintf("%s: %v", reason, err))
	r.mu.Unlock()
	r.seen <- struct{}{}
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
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

// running is a Run in its own goroutine.
type running struct {
	out    chan source.Input
	drain  chan struct{}
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, d *dirsource.Dir, from []byte) *running {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	r := &running{out: make(chan source.Input), drain: make(chan struct{}), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx, from, r.drain, r.out) }()
	return r
}

// got is a received input, read out and released.
type got struct {
	pos  string
	rows []int64 // the labels
	x0   []float32
}

// recv receives n inputs (failing the test after a deadline), checks that
// X and Y agree with the rows, and releases them.
func (r *running) recv(t *testing.T, n int) []got {
	t.Helper()
	var res []got
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case in := <-r.out:
			res = append(res, read(t, in))
		case err := <-r.done:
			t.Fatalf("Run returned %v after %d of %d inputs", err, len(res), n)
		case <-timeout:
			t.Fatalf("got %d inputs in 10 s; want %d", len(res), n)
		}
	}
	return res
}

func read(t *testing.T, in source.Input) got {
	t.Helper()
	defer in.Batch.Release()
	g := got{pos: string(in.Pos)}
	if in.Batch.X.NumCols() != 2 || in.Batch.X.Schema().Field(0).Name != "x0" || in.Batch.Y == nil || in.Batch.Y.NumCols() != 1 {
		t.Fatalf("batch at %s: X %v, Y %v; want X x0,x1 and Y y", in.Pos, in.Batch.X.Schema(), in.Batch.Y)
	}
	x0 := in.Batch.X.Column(0).(*array.Float32)
	x1 := in.Batch.X.Column(1).(*array.Float32)
	y := in.Batch.Y.Column(0).(*array.Int64)
	for i := range y.Len() {
		if x0.Value(i) != float32(y.Value(i)) || x1.Value(i) != -float32(y.Value(i)) {
			t.Fatalf("batch at %s row %d: x0 %v x1 %v y %v; want x0 = y = -x1", in.Pos, i, x0.Value(i), x1.Value(i), y.Value(i))
		}
		g.rows = append(g.rows, y.Value(i))
		g.x0 = append(g.x0, x0.Value(i))
	}
	return g
}

// quiet checks that nothing is sent for a while.
func (r *running) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case in := <-r.out:
		g := read(t, in)
		t.Fatalf("got an input at %s; want none yet", g.pos)
	case err := <-r.done:
		t.Fatalf("Run returned %v; want it still running", err)
	case <-time.After(d):
	}
}

// stop cancels Run and returns its error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10 s after cancel")
		return nil
	}
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

func checked(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func rowsOf(gs []got) []int64 {
	var rows []int64
	for _, g := range gs {
		rows = append(rows, g.rows...)
	}
	return rows
}

func seq(from, to int) []int64 {
	var s []int64
	for i := from; i < to; i++ {
		s = append(s, int64(i))
	}
	return s
}

var _ = filepath.Join

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

// tryRecv receives one input, or reports false when none comes for 200 ms.
func (r *running) tryRecv(t *testing.T) (got, bool) {
	t.Helper()
	select {
	case in := <-r.out:
		return read(t, in), true
	case err := <-r.done:
		t.Fatalf("Run returned %v; want it running", err)
	case <-time.After(200 * time.Millisecond):
	}
	return got{}, false
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
