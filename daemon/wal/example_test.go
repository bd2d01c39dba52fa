package wal_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/daemon/wal"
)

// A post goes into the log (202 once it is fsynced), its retry with the
// same key is a duplicate, and Run sends the post's batches with their
// positions.
func Example() {
	dir, _ := os.MkdirTemp("", "wal-example")
	defer os.RemoveAll(dir)
	fields := arrow.NewSchema([]arrow.Field{
		{Name: "x", Type: arrow.PrimitiveTypes.Float32},
		{Name: "y", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	quiet := slog.New(slog.DiscardHandler)
	l, err := wal.Open(wal.Options{
		Dir:      dir,
		Schema:   source.Schema{Fields: fields, Inputs: []string{"x"}, Labels: []string{"y"}},
		Log:      quiet,
		Reporter: source.LogReporter{Log: quiet},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()

	// A post of two record batches, sent twice with one key.
	var body bytes.Buffer
	w := ipc.NewWriter(&body, ipc.WithSchema(fields))
	for _, rows := range []int{3, 2} {
		b := array.NewRecordBuilder(memory.DefaultAllocator, fields)
		for r := range rows {
			b.Field(0).(*array.Float32Builder).Append(float32(r))
			b.Field(1).(*array.Int64Builder).Append(int64(r % 2))
		}
		rec := b.NewRecordBatch()
		w.Write(rec)
		rec.Release()
		b.Release()
	}
	w.Close()
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+wal.Path, bytes.NewReader(body.Bytes()))
		req.Header.Set("Content-Type", wal.ContentType)
		req.Header.Set(wal.KeyHeader, "order-42")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode, "replayed:", resp.Header.Get(wal.ReplayedHeader) == "true")
	}

	// Run sends the post's batches; after drain it returns.
	out := make(chan source.Input)
	drain := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- l.Run(context.Background(), nil, drain, out) }()
	close(drain)
	for {
		select {
		case in := <-out:
			fmt.Println(in.Batch.X.NumRows(), "rows at", string(in.Pos))
			in.Batch.Release()
			continue
		case err := <-done:
			fmt.Println("run:", err)
		}
		break
	}
	// Output:
	// 202 replayed: false
	// 202 replayed: true
	// 3 rows at {"segment":1,"offset":8,"record":1,"batch":0}
	// 2 rows at {"segment":1,"offset":8,"record":1,"batch":1}
	// run: <nil>
}
