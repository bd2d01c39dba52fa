package natsource_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/penstock-ml/penstock/daemon/natsource"
	"github.com/penstock-ml/penstock/daemon/source"
)

// startServer starts an embedded NATS server with JetStream, shut down
// (and waited for) when the test ends.
func startServer(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready in 10 s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// publisher is a connection to publish with, closed when the test ends.
type publisher struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// newPublisher connects to s and makes the stream "S" on subjects "in.>".
func newPublisher(t testing.TB, s *server.Server) *publisher {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"in.>"}}); err != nil {
		t.Fatal(err)
	}
	return &publisher{nc: nc, js: js}
}

// publish publishes body on subject to the stream and returns its sequence.
func (p *publisher) publish(t testing.TB, subject string, body []byte) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := p.js.Publish(ctx, subject, body)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

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

// body is an Arrow IPC stream of batches record batches of rows rows of
// sc, row r (from start) x0 = r, x1 = -r, y = r; a column of another
// type than float32/int64 is filled with zeros.
func body(t testing.TB, sc *arrow.Schema, start, batches, rows int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sc))
	for b := range batches {
		bld := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		for i := range rows {
			r := start + b*rows + i
			for c, f := range sc.Fields() {
				switch bb := bld.Field(c).(type) {
				case *array.Float32Builder:
					v := float32(r)
					if f.Name == "x1" {
						v = -v
					}
					bb.Append(v)
				case *array.Int64Builder:
					bb.Append(int64(r))
				case *array.Int32Builder:
					bb.Append(0)
				}
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

// recorder is a Reporter that keeps what it hears.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) Rejected(_ string, reason source.Reason, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, fmt.Sprintf("%s: %v", reason, err))
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func newSource(t *testing.T, o natsource.Options) *natsource.Source {
	t.Helper()
	if o.Schema.Fields == nil {
		o.Schema = testSchema()
	}
	src, err := natsource.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// running is a Run in its own goroutine.
type running struct {
	out    chan source.Input
	drain  chan struct{}
	cancel context.CancelCauseFunc
	done   chan error
}

func start(t *testing.T, src source.Source, from []byte) *running {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	ctx, cancelCause := context.WithCancelCause(ctx)
	r := &running{out: make(chan source.Input), drain: make(chan struct{}), done: make(chan error, 1),
		cancel: func(err error) { cancelCause(err); cancel() }}
	go func() { r.done <- src.Run(ctx, from, r.drain, r.out) }()
	return r
}

// got is one input, read and released.
type got struct {
	pos  []byte
	rows []int64
}

func read(t *testing.T, in source.Input) got {
	t.Helper()
	defer in.Batch.Release()
	x0 := in.Batch.X.Column(0).(*array.Float32)
	x1 := in.Batch.X.Column(1).(*array.Float32)
	y := in.Batch.Y.Column(0).(*array.Int64)
	g := got{pos: in.Pos}
	for i := range y.Len() {
		if x0.Value(i) != float32(y.Value(i)) || x1.Value(i) != -float32(y.Value(i)) {
			t.Fatalf("input at %s row %d: x0 %v x1 %v y %v; want x0 = y = -x1", in.Pos, i, x0.Value(i), x1.Value(i), y.Value(i))
		}
		g.rows = append(g.rows, y.Value(i))
	}
	return g
}

func (r *running) recv(t *testing.T, n int) []got {
	t.Helper()
	var res []got
	timeout := time.After(20 * time.Second)
	for range n {
		select {
		case in := <-r.out:
			res = append(res, read(t, in))
		case err := <-r.done:
			t.Fatalf("Run returned %v after %d of %d inputs", err, len(res), n)
		case <-timeout:
			t.Fatalf("got %d inputs in 20 s; want %d", len(res), n)
		}
	}
	return res
}

func (r *running) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case in := <-r.out:
		g := read(t, in)
		t.Fatalf("got an input at %s (rows %v); want none", g.pos, g.rows)
	case err := <-r.done:
		t.Fatalf("Run returned %v; want it still running", err)
	case <-time.After(d):
	}
}

func (r *running) stop(t *testing.T, cause error) error {
	t.Helper()
	r.cancel(cause)
	select {
	case err := <-r.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10 s after cancel")
		return nil
	}
}

func pos(seq uint64, batch int, last bool) string {
	b, _ := json.Marshal(struct {
		Stream string `json:"stream"`
		Seq    uint64 `json:"seq"`
		Batch  int    `json:"batch"`
		Last   bool   `json:"last,omitempty"`
	}{"S", seq, batch, last})
	return string(b)
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

func checked(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}
