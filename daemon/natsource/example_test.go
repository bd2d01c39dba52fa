package natsource_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
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

// A JetStream stream of Arrow IPC messages, read, then resumed from a
// position after a restart. The example runs its own NATS server.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, _ := os.MkdirTemp("", "nats")
	defer os.RemoveAll(dir)
	srv, _ := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	srv.ReadyForConnections(10 * time.Second)

	schema := source.Schema{
		Fields: arrow.NewSchema([]arrow.Field{
			{Name: "x", Type: arrow.PrimitiveTypes.Float32},
			{Name: "y", Type: arrow.PrimitiveTypes.Int64},
		}, nil),
		Inputs: []string{"x"},
		Labels: []string{"y"},
	}
	// A producer publishes three messages of one record batch each.
	nc, _ := nats.Connect(srv.ClientURL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	js.CreateStream(ctx, jetstream.StreamConfig{Name: "TRAIN", Subjects: []string{"train.>"}})
	for i := range 3 {
		js.Publish(ctx, "train.Rows", message(schema.Fields, float32(i)+0.5, int64(i%2)))
	}

	read := func(from []byte, n int) []byte {
		src, _ := natsource.New(natsource.Options{URL: srv.ClientURL(), Stream: "TRAIN", Schema: schema, Log: slog.New(slog.DiscardHandler)})
		defer src.Close()
		runCtx, stop := context.WithCancel(ctx)
		out := make(chan source.Input)
		done := make(chan error, 1)
		go func() { done <- src.Run(runCtx, from, nil, out) }()
		var last []byte
		for range n {
			in := <-out
			fmt.Printf("x %v y %v at %s\n", in.Batch.X.Column(0), in.Batch.Y.Column(0), in.Pos)
			in.Batch.Release()
			last = in.Pos
		}
		stop()
		<-done
		return last
	}
	pos := read(nil, 2) // the daemon checkpoints pos, then is restarted
	fmt.Println("restart")
	read(pos, 1)
	// Output:
	// x [0.5] y [0] at {"stream":"TRAIN","seq":1,"batch":0,"last":true}
	// x [1.5] y [1] at {"stream":"TRAIN","seq":2,"batch":0,"last":true}
	// restart
	// x [2.5] y [0] at {"stream":"TRAIN","seq":3,"batch":0,"last":true}
}

// message is an Arrow IPC stream of one row.
func message(sc *arrow.Schema, x float32, y int64) []byte {
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	b.Field(0).(*array.Float32Builder).Append(x)
	b.Field(1).(*array.Int64Builder).Append(y)
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sc))
	w.Write(rec)
	w.Close()
	return buf.Bytes()
}
