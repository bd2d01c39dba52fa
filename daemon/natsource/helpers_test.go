package natsource_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/penstock-ml/penstock/daemon/internal/srctest"
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
func testSchema() source.Schema { return srctest.Schema() }

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

// The harness of a Run, shared with dirsource's tests.
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

// start runs src from position from (Run's context ends after 30 s;
// Recv waits 20 s).
func start(t *testing.T, src source.Source, from []byte) *running {
	t.Helper()
	return srctest.Start(t, src, from, 30*time.Second, 20*time.Second)
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
