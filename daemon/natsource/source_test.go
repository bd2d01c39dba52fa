package natsource_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/daemon/natsource"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Publish N messages, read some, take the position, restart a new Source
// from it: it sends exactly the rest — from the middle of a message, or
// from the message after one read wholly.
func TestResumeExactlyTheRest(t *testing.T) {
	srv := startServer(t)
	p := newPublisher(t, srv)
	const msgs, batches, rows = 10, 2, 3
	for m := range msgs {
		p.publish(t, "in.a", body(t, testSchema().Fields, m*batches*rows, batches, rows))
	}
	total := msgs * batches * rows
	for _, cut := range []int{7, 8, 1, 19} { // inputs read before the restart
		t.Run("", func(t *testing.T) {
			mem := checked(t)
			first := start(t, newSource(t, natsource.Options{URL: srv.ClientURL(), Stream: "S", Alloc: mem}), nil)
			before := first.Recv(t, cut)
			if err := first.Stop(t, nil); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run after cancel: %v; want context.Canceled", err)
			}
			last := before[len(before)-1].Pos
			m, b := (cut-1)/batches, (cut-1)%batches
			if want := pos(uint64(m+1), b, b == batches-1); string(last) != want {
				t.Fatalf("position after %d inputs %s; want %s", cut, last, want)
			}
			second := start(t, newSource(t, natsource.Options{URL: srv.ClientURL(), Stream: "S", Alloc: mem}), []byte(last))
			after := second.Recv(t, msgs*batches-cut)
			second.Quiet(t, 100*time.Millisecond)
			second.Stop(t, nil)
			if got, want := slices.Concat(rowsOf(before), rowsOf(after)), seq(0, total); !slices.Equal(got, want) {
				t.Fatalf("rows before and after the restart at %s:\n got %v\nwant %v", last, got, want)
			}
		})
	}
}

// A message that does not decode, or whose schema does not match, is
// rejected and skipped; the messages after it are read.
func TestRejectAndSkip(t *testing.T) {
	mem := checked(t)
	srv := startServer(t)
	p := newPublisher(t, srv)
	wrong := arrow.NewSchema([]arrow.Field{
		{Name: "x0", Type: arrow.PrimitiveTypes.Float32},
		{Name: "x1", Type: arrow.PrimitiveTypes.Int32},
		{Name: "y", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	extra := arrow.NewSchema(append(testSchema().Fields.Fields(), arrow.Field{Name: "z", Type: arrow.PrimitiveTypes.Int64}), nil)
	p.publish(t, "in.a", body(t, testSchema().Fields, 0, 1, 2))
	p.publish(t, "in.a", []byte("not arrow"))
	p.publish(t, "in.a", body(t, wrong, 0, 1, 2))
	p.publish(t, "in.a", body(t, extra, 0, 1, 2))
	p.publish(t, "in.a", body(t, testSchema().Fields, 2, 1, 200)) // over MaxMsgBytes
	p.publish(t, "in.a", body(t, testSchema().Fields, 2, 1, 2))
	rec := newRecorder()
	src := newSource(t, natsource.Options{URL: srv.ClientURL(), Stream: "S", Alloc: mem, Reporter: rec, MaxMsgBytes: 2000})
	r := start(t, src, nil)
	gs := r.Recv(t, 2)
	r.Stop(t, nil)
	if got := rowsOf(gs); !slices.Equal(got, seq(0, 4)) {
		t.Fatalf("rows %v; want %v (messages 1 and 6 only)", got, seq(0, 4))
	}
	if string(gs[1].Pos) != pos(6, 0, true) {
		t.Fatalf("position of the second good message %s; want %s: the rejected ones advance it", gs[1].Pos, pos(6, 0, true))
	}
	got := rec.List()
	want := []string{
		`decode: natsource "nats": stream "S" seq 2: `,
		`schema: natsource "nats": stream "S" seq 3: schema mismatch: column "x1": want float32, got int32`,
		`schema: natsource "nats": stream "S" seq 4: schema mismatch: column "z": want no such column`,
		`too_large: natsource "nats": stream "S" seq 5: `,
	}
	if len(got) != len(want) {
		t.Fatalf("rejections %q; want %d", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("rejection %d: %q; want it to start with %q", i, got[i], want[i])
		}
	}
}

// Drain: Run returns nil once no message is being sent, also while it
// waits for one; it takes no message after drain.
func TestDrain(t *testing.T) {
	mem := checked(t)
	srv := startServer(t)
	p := newPublisher(t, srv)
	p.publish(t, "in.a", body(t, testSchema().Fields, 0, 3, 2))
	p.publish(t, "in.a", body(t, testSchema().Fields, 6, 1, 2))
	r := start(t, newSource(t, natsource.Options{URL: srv.ClientURL(), Stream: "S", Alloc: mem}), nil)
	defer r.Cancel(nil)
	gs := r.Recv(t, 1)
	close(r.Drain)
	for done := false; !done; {
		select {
		case in := <-r.Out:
			gs = append(gs, read(t, in))
		case err := <-r.Done:
			if err != nil {
				t.Fatalf("Run after drain: %v; want nil", err)
			}
			done = true
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return 10 s after drain")
		}
	}
	if got := rowsOf(gs); !slices.Equal(got, seq(0, 6)) {
		t.Fatalf("rows after drain: %v; want the message being sent, whole (%v), and not the next", got, seq(0, 6))
	}
	// Waiting for a message: drain ends Run at once.
	r2 := start(t, newSource(t, natsource.Options{URL: srv.ClientURL(), Stream: "S", Subject: "in.none", Alloc: mem}), nil)
	defer r2.Cancel(nil)
	time.Sleep(50 * time.Millisecond)
	close(r2.Drain)
	select {
	case err := <-r2.Done:
		if err != nil {
			t.Fatalf("Run after drain while idle: %v; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("idle Run did not return 10 s after drain")
	}
}

// Cancel: Run returns the cause promptly, while it waits for a message or
// for its batch to be received, and every batch it held is released (the
// checked allocator ends at 0; goleak, after the server is shut down,
// finds no goroutine of the client left).
func TestCancel(t *testing.T) {
	mem := checked(t)
	srv := startServer(t)
	p := newPublisher(t, srv)
	p.publish(t, "in.a", body(t, testSchema().Fields, 0, 4, 2))
	cause := errors.New("stop now")
	r := start(t, newSource(t, natsource.Options{URL: srv.ClientURL(), Stream: "S", Alloc: mem}), nil)
	r.Recv(t, 1) // three batches held, waiting to be received
	began := time.Now()
	if err := r.Stop(t, cause); !errors.Is(err, cause) {
		t.Fatalf("Run after cancel: %v; want %v", err, cause)
	}
	if n := mem.CurrentAlloc(); n != 0 {
		t.Fatalf("%d bytes still allocated after Run returned; want 0", n)
	}
	idle := start(t, newSource(t, natsource.Options{URL: srv.ClientURL(), Stream: "S", Subject: "in.none", Alloc: mem}), nil)
	time.Sleep(50 * time.Millisecond)
	if err := idle.Stop(t, cause); !errors.Is(err, cause) {
		t.Fatalf("idle Run after cancel: %v; want %v", err, cause)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("cancel took %v; want it prompt", took)
	}
	p.nc.Close()
	srv.Shutdown()
	srv.WaitForShutdown()
	goleak.VerifyNone(t, goleak.IgnoreCurrent())
}

// Core NATS: a subject without a stream, at most once, no position.
func TestCoreNATS(t *testing.T) {
	mem := checked(t)
	srv := startServer(t)
	p := newPublisher(t, srv)
	r := start(t, newSource(t, natsource.Options{URL: srv.ClientURL(), Subject: "core.x", Alloc: mem}), nil)
	defer r.Stop(t, nil)
	msg := body(t, testSchema().Fields, 0, 1, 2)
	// What is published before the subscription is lost (at most once):
	// publish until the first message arrives.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var g got
	for done := false; !done; {
		select {
		case in := <-r.Out:
			g = read(t, in)
			done = true
		case <-tick.C:
			if err := p.nc.Publish("core.x", msg); err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no core message in 10 s")
		}
	}
	if g.Pos != "" || !slices.Equal(g.Rows, seq(0, 2)) {
		t.Fatalf("core message: pos %q rows %v; want no position and rows %v", g.Pos, g.Rows, seq(0, 2))
	}
}

// Bad options and positions are errors naming what is wrong.
func TestErrors(t *testing.T) {
	srv := startServer(t)
	newPublisher(t, srv)
	for _, c := range []struct {
		o    natsource.Options
		want string
	}{
		{natsource.Options{Schema: testSchema()}, "neither Stream nor Subject"},
		{natsource.Options{Stream: "S", MaxMsgBytes: -1, Schema: testSchema()}, "MaxMsgBytes"},
		{natsource.Options{Stream: "S"}, "schema: no fields"},
	} {
		if _, err := natsource.New(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v; want an error with %q", c.o, err, c.want)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, c := range []struct {
		o    natsource.Options
		from string
		want string
	}{
		{natsource.Options{URL: srv.ClientURL(), Stream: "S"}, `{"stream":"T","seq":3,"batch":0}`, `is of stream "T"`},
		{natsource.Options{URL: srv.ClientURL(), Stream: "S"}, `{"stream":"S"`, "position"},
		{natsource.Options{URL: srv.ClientURL(), Subject: "x"}, pos(1, 0, true), "core-NATS source has no position"},
		{natsource.Options{URL: srv.ClientURL(), Stream: "NOPE"}, "", `stream "NOPE"`},
		{natsource.Options{URL: "nats://127.0.0.1:1", Stream: "S"}, "", "connect nats://127.0.0.1:1"},
	} {
		src := newSource(t, c.o)
		var from []byte
		if c.from != "" {
			from = []byte(c.from)
		}
		if err := src.Run(ctx, from, nil, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%+v, %s): %v; want an error with %q", c.o, c.from, err, c.want)
		}
	}
}
