package natsource_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/daemon/internal/srctest"
	"github.com/penstock-ml/penstock/daemon/natsource"
)

// A message whose record batch claims other rows than its columns hold
// reads without an error in arrow-go: it is rejected (decode), naming the
// column, and the next message is sent.
func TestAuditRowsMismatchRejected(t *testing.T) {
	mem := checked(t)
	srv := startServer(t)
	p := newPublisher(t, srv)
	p.publish(t, "in.a", srctest.RowsMismatch(t, body(t, testSchema().Fields, 0, 2, 3)))
	p.publish(t, "in.a", body(t, testSchema().Fields, 10, 1, 2))
	rec := newRecorder()
	r := start(t, newSource(t, natsource.Options{URL: srv.ClientURL(), Stream: "S", Alloc: mem, Reporter: rec}), nil)
	gs := r.Recv(t, 1)
	r.Stop(t, nil)
	if !slices.Equal(gs[0].Rows, seq(10, 12)) || gs[0].Pos != pos(2, 0, true) {
		t.Fatalf("first input %+v; want message 2's rows 10, 11", gs[0])
	}
	got := rec.List()
	if len(got) != 1 || !strings.HasPrefix(got[0], `decode: natsource "nats": stream "S" seq 1: `) || !strings.Contains(got[0], "holds 3 values") {
		t.Fatalf("rejections %q; want one decode rejection of seq 1 naming the column's 3 values", got)
	}
}

// Durable checks its position and does nothing else: garbage and another
// stream's positions are errors, old and future positions of the stream
// are not (the consumer acknowledges nothing). Close from several
// goroutines at once, then Run, refuses without connecting.
func TestAuditDurableAndConcurrentClose(t *testing.T) {
	src := newSource(t, natsource.Options{URL: "nats://127.0.0.1:1", Stream: "S"})
	for _, p := range []string{``, `{}`, `{"stream":"S"`, `{"stream":"T","seq":1,"batch":0}`, `[1]`, strings.Repeat("[", 10000)} {
		if err := src.Durable([]byte(p)); err == nil {
			t.Errorf("Durable(%.20q): nil; want an error", p)
		}
	}
	for _, p := range []string{pos(1, 0, true), pos(1<<60, 7, false)} {
		if err := src.Durable([]byte(p)); err != nil {
			t.Errorf("Durable(%s): %v; want nil", p, err)
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { src.Close() })
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := src.Run(ctx, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Fatalf("Run after concurrent Closes: %v; want an error saying after Close", err)
	}
}

// Run cancelled before it could connect (the server is not there) returns
// the cause promptly instead of reconnecting forever.
func TestAuditCancelWhileConnecting(t *testing.T) {
	src := newSource(t, natsource.Options{URL: "nats://127.0.0.1:1", Stream: "S"})
	ctx, cancel := context.WithCancelCause(t.Context())
	stop := errors.New("stop")
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, nil, nil, nil) }()
	time.Sleep(50 * time.Millisecond)
	cancel(stop)
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run cancelled while connecting: nil; want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10 s after cancel while connecting")
	}
}
