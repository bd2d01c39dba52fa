package wal

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/daemon/source"
)

// TestDrainCutsOffStalledBody: a post whose client stops sending its body
// halfway is answered 503 (draining) as soon as the drain begins, instead
// of holding the server's Shutdown until its read timeout; a post that is
// read whole meanwhile is refused as draining too, and the connection of
// neither is left with a deadline for a later request.
func TestDrainCutsOffStalledBody(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t, "", checkedMem(t), nil)
	good := body(t, e.opts.Schema.Fields, 1, 4)
	if r := e.post(ctx, good, "k0", ContentType); r.code != http.StatusAccepted {
		t.Fatalf("first post: %d %+v; want 202", r.code, r.answer)
	}
	run := e.run(ctx, nil)
	run.take(t, ctx, 1)

	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", Path, ContentType, len(good))
	conn.Write(good[:len(good)/2]) // and no more
	for deadline := time.Now().Add(5 * time.Second); ; {
		e.log.mu.Lock()
		n := len(e.log.reading)
		e.log.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d posts reading their body; want the stalled one", n)
		}
		time.Sleep(time.Millisecond)
	}

	start := time.Now()
	if gs, err := run.drainAll(t, ctx); err != nil || len(gs) != 0 {
		t.Fatalf("drain: %d more inputs, %v; want none, nil", len(gs), err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the stalled post got no answer after the drain: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the stalled post: %d (Retry-After %q); want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the stalled post was answered %v after the drain; want at once", d)
	}
	if reason, msg := e.rep.last(); reason != source.ReasonDrained || !strings.Contains(msg, "draining") {
		t.Errorf("reported %q %q; want the reason drained, naming the drain", reason, msg)
	}
	// Another post on a fresh connection is refused as draining, not
	// cut off by a deadline left on a reused connection.
	if r := e.post(ctx, good, "k1", ContentType); r.code != http.StatusServiceUnavailable || !strings.Contains(r.answer.Error, "draining") {
		t.Errorf("a post after the drain: %d %+v; want 503 draining", r.code, r.answer)
	}
}
