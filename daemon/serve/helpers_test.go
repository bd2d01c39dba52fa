package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// deadline is the context of a test that can block.
func deadline(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// tracker watches the life of every addStep value: Setup and Teardown once
// each, Transform only between them, Teardown never while a Transform runs.
type tracker struct {
	mu       sync.Mutex
	steps    []*addStep
	problems []string
}

func (tr *tracker) problem(format string, args ...any) {
	tr.mu.Lock()
	tr.problems = append(tr.problems, fmt.Sprintf(format, args...))
	tr.mu.Unlock()
}

func (tr *tracker) add(s *addStep) {
	tr.mu.Lock()
	tr.steps = append(tr.steps, s)
	tr.mu.Unlock()
}

// check reports every problem, and every step value not set up and torn
// down exactly once.
func (tr *tracker) check(t *testing.T) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, p := range tr.problems {
		t.Error(p)
	}
	for _, s := range tr.steps {
		if s.setups.Load() != 1 || s.teardowns.Load() != 1 {
			t.Errorf("version %v step %p: %d setups, %d teardowns; want 1 and 1", s.Add, s, s.setups.Load(), s.teardowns.Load())
		}
	}
}

// teardowns counts the teardowns of the step values of version v.
func (tr *tracker) teardowns(v float32) (values, downs int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, s := range tr.steps {
		if s.Add == v {
			values++
			downs += int(s.teardowns.Load())
		}
	}
	return values, downs
}

// addStep adds Add, its version, to every value of the tensor column "x":
// every value of an answer to zero inputs is the version that answered.
// State is a few hundred kilobytes of learned state, copied with the step,
// so that a version that is never dropped shows in the heap.
type addStep struct {
	Add   float32
	State []float32
	tr    *tracker

	setups, teardowns, active atomic.Int64
	failSetup                 bool
}

var (
	_ flow.Copier     = (*addStep)(nil)
	_ flow.Setupper   = (*addStep)(nil)
	_ flow.Teardowner = (*addStep)(nil)
)

func newAddStep(tr *tracker, version int64, stateFloats int) *addStep {
	s := &addStep{Add: float32(version), State: make([]float32, stateFloats), tr: tr}
	for i := range s.State {
		s.State[i] = float32(i)
	}
	if tr != nil {
		tr.add(s)
	}
	return s
}

func (s *addStep) Copy() flow.Step {
	c := &addStep{Add: s.Add, State: append([]float32(nil), s.State...), tr: s.tr, failSetup: s.failSetup}
	if s.tr != nil {
		s.tr.add(c)
	}
	return c
}

func (s *addStep) Setup(ctx context.Context) error {
	if s.failSetup {
		return errors.New("no device")
	}
	if n := s.setups.Add(1); n != 1 && s.tr != nil {
		s.tr.problem("version %v step %p: setup %d", s.Add, s, n)
	}
	return nil
}

func (s *addStep) Teardown(ctx context.Context) error {
	if n := s.teardowns.Add(1); n != 1 && s.tr != nil {
		s.tr.problem("version %v step %p: teardown %d", s.Add, s, n)
	}
	if a := s.active.Load(); a != 0 && s.tr != nil {
		s.tr.problem("version %v step %p: teardown while %d transforms run", s.Add, s, a)
	}
	return nil
}

func (s *addStep) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if n := s.active.Add(1); n != 1 && s.tr != nil {
		s.tr.problem("version %v step %p: %d transforms at once on one set-up copy", s.Add, s, n)
	}
	defer s.active.Add(-1)
	if s.setups.Load() != 1 || s.teardowns.Load() != 0 {
		return flow.Batch{}, fmt.Errorf("version %v: transform on a step not set up (%d setups, %d teardowns)", s.Add, s.setups.Load(), s.teardowns.Load())
	}
	vals, rows, width, err := minibatch.Float32View(in.X.Column(0))
	if err != nil {
		return flow.Batch{}, err
	}
	col, out := minibatch.AllocTensor(flow.Allocator(ctx), rows, width)
	for i, v := range vals {
		out[i] = v + s.Add
	}
	rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "x", Type: col.DataType()}}, nil), []arrow.Array{col}, int64(rows))
	col.Release()
	return in.WithX(rec), nil
}

// inSchema is the predictions' input: two float32 columns.
var inSchema = source.Schema{
	Fields: arrow.NewSchema([]arrow.Field{
		{Name: "x0", Type: arrow.PrimitiveTypes.Float32},
		{Name: "x1", Type: arrow.PrimitiveTypes.Float32},
	}, nil),
	Inputs: []string{"x0", "x1"},
}

// newPipe is version's pipeline: pack x0, x1 into "x", then add version.
func newPipe(t testing.TB, tr *tracker, version int64, stateFloats int) *flow.Pipeline {
	t.Helper()
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: []string{"x0", "x1"}}),
		flow.Named("add", newAddStep(tr, version, stateFloats)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ipcBody is an IPC stream of one batch per entry of batches, each with
// rows rows of x0 and x1 from vals (cycled).
func ipcBody(t testing.TB, schema *arrow.Schema, batches, rows int, vals ...float32) []byte {
	t.Helper()
	mem := memory.NewGoAllocator()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	for b := 0; b < batches; b++ {
		bld := array.NewRecordBuilder(mem, schema)
		for c := range schema.NumFields() {
			fb, ok := bld.Field(c).(*array.Float32Builder)
			if !ok {
				t.Fatalf("ipcBody: column %d is %s, want float32", c, schema.Field(c).Type)
			}
			for r := range rows {
				fb.Append(vals[(b*rows+r)%len(vals)])
			}
		}
		rec := bld.NewRecordBatch()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		bld.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// reply is what a prediction answered.
type reply struct {
	code    int
	version int64
	ctype   string
	body    []byte
}

func post(ctx context.Context, c *http.Client, url, ctype string, body []byte) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	h := resp.Header.Get(VersionHeader)
	v, err := strconv.ParseInt(h, 10, 64)
	if err != nil {
		return reply{}, fmt.Errorf("header %s = %q: %v", VersionHeader, h, err)
	}
	return reply{code: resp.StatusCode, version: v, ctype: resp.Header.Get("Content-Type"), body: b}, nil
}

// tensorValues reads the values of column "x" (FixedSizeList<float32>)
// of every batch of an IPC stream answer.
func tensorValues(body []byte) ([]float32, error) {
	r, err := ipc.NewReader(bytes.NewReader(body), ipc.WithAllocator(memory.NewGoAllocator()))
	if err != nil {
		return nil, err
	}
	defer r.Release()
	var out []float32
	for r.Next() {
		rec := r.RecordBatch()
		idx := rec.Schema().FieldIndices("x")
		if len(idx) != 1 {
			return nil, fmt.Errorf("answer schema %v: no column x", rec.Schema())
		}
		vals, _, _, err := minibatch.Float32View(rec.Column(idx[0]))
		if err != nil {
			return nil, err
		}
		out = append(out, vals...)
	}
	return out, r.Err()
}

// writeIPC writes rec as a one-batch IPC stream.
func writeIPC(w io.Writer, rec arrow.RecordBatch) error {
	wr := ipc.NewWriter(w, ipc.WithSchema(rec.Schema()))
	if err := wr.Write(rec); err != nil {
		return err
	}
	return wr.Close()
}

// newTextLog logs text lines to w, from Debug up.
func newTextLog(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// closeWithin closes m, failing the test if Close does not return before
// ctx ends (a version never released).
func closeWithin(t testing.TB, ctx context.Context, m *Models) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- m.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-ctx.Done():
		t.Fatalf("Models.Close did not return: %v", context.Cause(ctx))
	}
}
