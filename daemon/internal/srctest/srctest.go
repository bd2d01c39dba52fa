package srctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon/source"
)

// Schema is the tests' schema: x0, x1 (float32) as X and y (int64) as Y;
// row r of the tests' data has x0 = r, x1 = -r, y = r.
func Schema() source.Schema {
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

// Run is a source's Run in its own goroutine.
type Run struct {
	Out    chan source.Input
	Drain  chan struct{}
	Done   chan error
	Cancel context.CancelCauseFunc
	within time.Duration // how long Recv waits
}

// Start runs src from position from; Run's context ends after limit, and
// Recv waits at most within.
func Start(t *testing.T, src source.Source, from []byte, limit, within time.Duration) *Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	ctx, cancelCause := context.WithCancelCause(ctx)
	r := &Run{Out: make(chan source.Input), Drain: make(chan struct{}), Done: make(chan error, 1),
		Cancel: func(err error) { cancelCause(err); cancel() }, within: within}
	go func() { r.Done <- src.Run(ctx, from, r.Drain, r.Out) }()
	return r
}

// Got is a received input, read out and released.
type Got struct {
	Pos  string // "" where the source gives no position
	Rows []int64
	X0   []float32
}

// Read checks that in is a batch of Schema whose rows hold x0 = y = -x1,
// and releases it.
func Read(t *testing.T, in source.Input) Got {
	t.Helper()
	defer in.Batch.Release()
	g := Got{Pos: string(in.Pos)}
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
		g.Rows = append(g.Rows, y.Value(i))
		g.X0 = append(g.X0, x0.Value(i))
	}
	return g
}

// Recv receives n inputs (failing the test after the Run's deadline), and
// reads them (see Read).
func (r *Run) Recv(t *testing.T, n int) []Got {
	t.Helper()
	var res []Got
	timeout := time.After(r.within)
	for range n {
		select {
		case in := <-r.Out:
			res = append(res, Read(t, in))
		case err := <-r.Done:
			t.Fatalf("Run returned %v after %d of %d inputs", err, len(res), n)
		case <-timeout:
			t.Fatalf("got %d inputs in %v; want %d", len(res), r.within, n)
		}
	}
	return res
}

// TryRecv receives one input, or reports false when none comes for 200 ms.
func (r *Run) TryRecv(t *testing.T) (Got, bool) {
	t.Helper()
	select {
	case in := <-r.Out:
		return Read(t, in), true
	case err := <-r.Done:
		t.Fatalf("Run returned %v; want it running", err)
	case <-time.After(200 * time.Millisecond):
	}
	return Got{}, false
}

// Quiet checks that nothing is sent for d and that Run goes on.
func (r *Run) Quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case in := <-r.Out:
		g := Read(t, in)
		t.Fatalf("got an input at %s (rows %v); want none", g.Pos, g.Rows)
	case err := <-r.Done:
		t.Fatalf("Run returned %v; want it still running", err)
	case <-time.After(d):
	}
}

// Stop cancels Run with cause (nil: context.Canceled) and returns its
// error.
func (r *Run) Stop(t *testing.T, cause error) error {
	t.Helper()
	r.Cancel(cause)
	select {
	case err := <-r.Done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10 s after cancel")
		return nil
	}
}

// Recorder is a Reporter that keeps what it hears; Seen gets a value for
// each rejection (the first 100 not received).
type Recorder struct {
	mu   sync.Mutex
	got  []string // "reason: error"
	Seen chan struct{}
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{Seen: make(chan struct{}, 100)} }

// Rejected records the rejection.
func (r *Recorder) Rejected(_ string, reason source.Reason, err error) {
	r.mu.Lock()
	r.got = append(r.got, fmt.Sprintf("%s: %v", reason, err))
	r.mu.Unlock()
	select {
	case r.Seen <- struct{}{}:
	default:
	}
}

// List returns the rejections heard so far, "reason: error" each.
func (r *Recorder) List() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// Checked returns a checked allocator that must be back at zero when the
// test ends.
func Checked(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// RowsOf concatenates the rows of gs.
func RowsOf(gs []Got) []int64 {
	var rows []int64
	for _, g := range gs {
		rows = append(rows, g.Rows...)
	}
	return rows
}

// Seq is from, from+1, …, to-1.
func Seq(from, to int) []int64 {
	var s []int64
	for i := from; i < to; i++ {
		s = append(s, int64(i))
	}
	return s
}

// RowsMismatch returns the IPC stream body written again with every record
// batch claiming one row fewer than its columns hold: a stream that
// arrow-go's reader reads without an error (it checks only that no column
// is shorter than the batch) and that minibatch's IPC readers refuse.
func RowsMismatch(t testing.TB, body []byte) []byte {
	t.Helper()
	rd, err := ipc.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("RowsMismatch: %v", err)
	}
	defer rd.Release()
	var out bytes.Buffer
	w := ipc.NewWriter(&out, ipc.WithSchema(rd.Schema()))
	for rd.Next() {
		rec := rd.RecordBatch()
		if rec.NumRows() < 1 {
			t.Fatal("RowsMismatch: a batch of no rows")
		}
		short := array.NewRecordBatch(rec.Schema(), rec.Columns(), rec.NumRows()-1)
		err := w.Write(short)
		short.Release()
		if err != nil {
			t.Fatalf("RowsMismatch: %v", err)
		}
	}
	if err := errors.Join(rd.Err(), w.Close()); err != nil {
		t.Fatalf("RowsMismatch: %v", err)
	}
	return out.Bytes()
}

// LogBuffer collects what a logger writes, from any goroutine: give it to
// slog.NewTextHandler or slog.NewJSONHandler, read it with String.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
