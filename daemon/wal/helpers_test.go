package wal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/daemon/internal/srctest"
	"github.com/penstock-ml/penstock/daemon/source"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ctxT is the test's context with a deadline, so that a bug fails
// instead of hanging.
func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkedMem is a checked allocator that must be empty when the test and
// its cleanups (which close the logs) are done.
func checkedMem(t testing.TB) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// testSchema: cols float32 inputs x0.. and an int64 label "y".
func testSchema(cols int) source.Schema {
	fields := make([]arrow.Field, 0, cols+1)
	inputs := make([]string, 0, cols)
	for c := range cols {
		name := fmt.Sprintf("x%d", c)
		fields = append(fields, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float32})
		inputs = append(inputs, name)
	}
	fields = append(fields, arrow.Field{Name: "y", Type: arrow.PrimitiveTypes.Int64})
	return source.Schema{Fields: arrow.NewSchema(fields, nil), Inputs: inputs, Labels: []string{"y"}}
}

// label is the y of row r of batch b of post p: every row of a test is
// told apart by its label.
func label(p, b, r int) int64 { return int64(p)*1_000_000 + int64(b)*1_000 + int64(r) }

// body encodes post p as an IPC stream of batches of rows each, in sc.
func body(t testing.TB, sc *arrow.Schema, p int, rows ...int) []byte {
	t.Helper()
	return ipcBody(t, sc, nil, rows, func(bld array.Builder, f arrow.Field, b, r, c int) {
		switch bld := bld.(type) {
		case *array.Float32Builder:
			bld.Append(float32(c) + float32(r))
		case *array.Int64Builder:
			if f.Name == "y" {
				bld.Append(label(p, b, r))
			} else {
				bld.Append(int64(r))
			}
		default:
			t.Fatalf("body: no builder for %s", f.Type)
		}
	})
}

// ipcBody encodes batches of rows[b] rows in sc as an Arrow IPC stream
// written with opts: fill appends the value of column c (field f) of row
// r of batch b to bld, that column's builder.
func ipcBody(t testing.TB, sc *arrow.Schema, opts []ipc.Option, rows []int, fill func(bld array.Builder, f arrow.Field, b, r, c int)) []byte {
	t.Helper()
	mem := memory.NewGoAllocator()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, append([]ipc.Option{ipc.WithSchema(sc), ipc.WithAllocator(mem)}, opts...)...)
	for b, n := range rows {
		rb := array.NewRecordBuilder(mem, sc)
		for r := range n {
			for c, f := range sc.Fields() {
				fill(rb.Field(c), f, b, r, c)
			}
		}
		rec := rb.NewRecordBatch()
		err := w.Write(rec)
		rec.Release()
		rb.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// env is a log in a test directory with a server in front of it.
type env struct {
	t      testing.TB
	dir    string
	mem    *memory.CheckedAllocator
	opts   Options
	log    *Log
	srv    *httptest.Server
	client *http.Client
	rep    *recorder
	logBuf *srctest.LogBuffer
	closed bool
}

// newEnv opens a log in dir (a new temp dir when ""), with a checked
// allocator asserted empty at cleanup.
func newEnv(t testing.TB, dir string, mem *memory.CheckedAllocator, tweak func(*Options)) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	e := &env{t: t, dir: dir, mem: mem, rep: &recorder{}, logBuf: &srctest.LogBuffer{}}
	e.opts = Options{
		Dir: dir, Schema: testSchema(3), Alloc: mem, Reporter: e.rep,
		Log: slog.New(slog.NewTextHandler(e.logBuf, nil)),
	}
	if tweak != nil {
		tweak(&e.opts)
	}
	l, err := Open(e.opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	e.log = l
	e.srv = httptest.NewServer(l.Handler())
	e.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(e.close)
	return e
}

// close stops the server and closes the log (idempotent).
func (e *env) close() {
	if e.closed {
		return
	}
	e.closed = true
	e.srv.Close()
	e.client.CloseIdleConnections()
	if err := e.log.Close(); err != nil {
		e.t.Errorf("Close: %v", err)
	}
}

type reply struct {
	code   int
	answer Answer
	header http.Header
}

// post sends body with key ("" for none) and content type ct.
func (e *env) post(ctx context.Context, b []byte, key, ct string) reply {
	e.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+Path, bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if key != "" {
		req.Header.Set(KeyHeader, key)
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) reply {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Errorf("post: %v", err)
		return reply{}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Errorf("post: reading the answer: %v", err)
	}
	var a Answer
	if err := json.Unmarshal(data, &a); err != nil {
		e.t.Errorf("post: answer %q is not JSON: %v", data, err)
	}
	return reply{code: resp.StatusCode, answer: a, header: resp.Header}
}

// run runs the log's Run in a goroutine; wait returns its error.
type runner struct {
	out   chan source.Input
	drain chan struct{}
	done  chan error
}

func (e *env) run(ctx context.Context, from []byte) *runner {
	r := &runner{out: make(chan source.Input), drain: make(chan struct{}), done: make(chan error, 1)}
	go func() { r.done <- e.log.Run(ctx, from, r.drain, r.out) }()
	return r
}

// got is one input received: its labels and position.
type got struct {
	labels []int64
	pos    Pos
}

// take receives n inputs, releasing their batches.
func (r *runner) take(t testing.TB, ctx context.Context, n int) []got {
	t.Helper()
	var gs []got
	for range n {
		select {
		case in := <-r.out:
			gs = append(gs, toGot(t, in))
		case err := <-r.done:
			t.Fatalf("Run returned %v after %d of %d inputs", err, len(gs), n)
		case <-ctx.Done():
			t.Fatalf("got %d of %d inputs before the deadline", len(gs), n)
		}
	}
	return gs
}

// drainAll closes drain and receives until Run returns; it returns the
// inputs and Run's error.
func (r *runner) drainAll(t testing.TB, ctx context.Context) ([]got, error) {
	t.Helper()
	close(r.drain)
	var gs []got
	for {
		select {
		case in := <-r.out:
			gs = append(gs, toGot(t, in))
		case err := <-r.done:
			return gs, err
		case <-ctx.Done():
			t.Fatalf("Run did not return after drain (%d inputs)", len(gs))
		}
	}
}

func toGot(t testing.TB, in source.Input) got {
	t.Helper()
	defer in.Batch.Release()
	if in.Batch.X.NumCols() != 3 || in.Batch.Y == nil || in.Batch.Y.NumCols() != 1 {
		t.Errorf("batch has %d X columns and Y %v; want 3 and one label", in.Batch.X.NumCols(), in.Batch.Y)
	}
	ys := in.Batch.Y.Column(0).(*array.Int64).Int64Values()
	p, err := ParsePos(in.Pos)
	if err != nil {
		t.Errorf("pos: %v", err)
	}
	return got{labels: append([]int64(nil), ys...), pos: p}
}

// labelsOf lists the labels of a post's batches.
func labelsOf(p int, rows ...int) [][]int64 {
	var out [][]int64
	for b, n := range rows {
		var ls []int64
		for r := range n {
			ls = append(ls, label(p, b, r))
		}
		out = append(out, ls)
	}
	return out
}

func gotLabels(gs []got) [][]int64 {
	out := make([][]int64, len(gs))
	for i, g := range gs {
		out[i] = g.labels
	}
	return out
}

// recorder is a source.Reporter that keeps the reasons.
type recorder struct {
	mu      sync.Mutex
	reasons []source.Reason
	errs    []string
}

func (r *recorder) Rejected(_ string, reason source.Reason, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, reason)
	r.errs = append(r.errs, err.Error())
}

func (r *recorder) last() (source.Reason, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reasons) == 0 {
		return "", ""
	}
	return r.reasons[len(r.reasons)-1], r.errs[len(r.errs)-1]
}
