package wal

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/penstock-ml/penstock/daemon/source"
)

func TestStatuses(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, func(o *Options) { o.MaxBody = 4096 })
	sc := e.opts.Schema.Fields
	good := body(t, sc, 1, 4, 2)

	// A column of another type, an extra column, a missing column.
	wrongType := arrow.NewSchema([]arrow.Field{
		{Name: "x0", Type: arrow.PrimitiveTypes.Float32}, {Name: "x1", Type: arrow.PrimitiveTypes.Int64},
		{Name: "x2", Type: arrow.PrimitiveTypes.Float32}, {Name: "y", Type: arrow.PrimitiveTypes.Int64}}, nil)
	extra := arrow.NewSchema(append(sc.Fields(), arrow.Field{Name: "z", Type: arrow.PrimitiveTypes.Float32}), nil)
	missing := arrow.NewSchema(sc.Fields()[1:], nil)
	corrupt := bytes.Clone(good)
	corrupt = corrupt[:len(corrupt)-40] // cut inside the last batch
	noBatch := body(t, sc, 1)

	for _, c := range []struct {
		name, ct, key string
		body          []byte
		code          int
		reason        source.Reason
		column, text  string
	}{
		{"accepted", ContentType, "", good, 202, "", "", ""},
		{"content type with parameters", ContentType + "; charset=binary", "", good, 202, "", "", ""},
		{"no content type", "", "", good, 415, source.ReasonType, "", "Content-Type"},
		{"json", "application/json", "", []byte("[]"), 415, source.ReasonType, "", "want application/vnd.apache.arrow.stream"},
		{"column of another type", ContentType, "", body(t, wrongType, 1, 3), 422, source.ReasonSchema, "x1", `column "x1": want float32, got int64`},
		{"extra column", ContentType, "", body(t, extra, 1, 3), 422, source.ReasonSchema, "z", "no such column"},
		{"missing column", ContentType, "", body(t, missing, 1, 3), 422, source.ReasonSchema, "x0", "missing"},
		{"not IPC", ContentType, "", []byte("hello, this is not an arrow stream at all"), 400, source.ReasonDecode, "", "bad Arrow IPC stream"},
		{"cut short", ContentType, "", corrupt, 400, source.ReasonDecode, "", "bad Arrow IPC stream"},
		{"no batch", ContentType, "", noBatch, 400, source.ReasonDecode, "", "no record batch"},
		{"too big", ContentType, "", make([]byte, 5000), 413, source.ReasonTooBig, "", "at most 4096"},
		{"key too long", ContentType, strings.Repeat("k", MaxKeyBytes+1), good, 400, source.ReasonDecode, "", "Idempotency-Key of 257 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.post(ctx, c.body, c.key, c.ct)
			if r.code != c.code {
				t.Fatalf("status %d (%+v); want %d", r.code, r.answer, c.code)
			}
			if r.answer.Column != c.column {
				t.Errorf("column %q; want %q", r.answer.Column, c.column)
			}
			if !strings.Contains(r.answer.Error, c.text) {
				t.Errorf("error %q; want it to contain %q", r.answer.Error, c.text)
			}
			if c.code == 202 {
				if r.answer.Status != "accepted" || r.answer.Record < 1 || r.header.Get(ReplayedHeader) != "" {
					t.Errorf("answer %+v, %s %q; want accepted, a record ≥ 1, no %s", r.answer, ReplayedHeader, r.header.Get(ReplayedHeader), ReplayedHeader)
				}
				return
			}
			reason, msg := e.rep.last()
			if reason != c.reason || !strings.Contains(msg, "/v1/ingest") {
				t.Errorf("reported %q %q; want %q naming the request", reason, msg, c.reason)
			}
		})
	}

	t.Run("too big without Content-Length", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			pw.Write(make([]byte, 5000))
			pw.Close()
		}()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+Path, pr)
		req.Header.Set("Content-Type", ContentType)
		r := e.do(req)
		if r.code != 413 || !strings.Contains(r.answer.Error, "over 4096") {
			t.Errorf("status %d %q; want 413 saying over 4096", r.code, r.answer.Error)
		}
	})
	t.Run("method", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+Path, nil)
		r := e.do(req)
		if r.code != 405 || r.header.Get("Allow") != "POST" {
			t.Errorf("GET: status %d, Allow %q; want 405, POST", r.code, r.header.Get("Allow"))
		}
	})
	t.Run("other path", func(t *testing.T) {
		resp, err := e.client.Post(e.srv.URL+"/v1/other", ContentType, bytes.NewReader(good))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("status %d; want 404", resp.StatusCode)
		}
	})
	if s := e.log.Stats(); s.Records != 2 {
		t.Errorf("%d records appended; want 2 (the accepted posts only)", s.Records)
	}
}

func TestFullAndDraining(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, func(o *Options) { o.MaxPending = 1000 })
	sc := e.opts.Schema.Fields
	b := body(t, sc, 1, 8)
	if len(b) < 500 {
		t.Fatalf("body of %d bytes; the test needs more than half of MaxPending", len(b))
	}
	if r := e.post(ctx, b, "", ContentType); r.code != 202 {
		t.Fatalf("first post: %d %q; want 202 (nothing pending: taken whatever its size)", r.code, r.answer.Error)
	}
	r := e.post(ctx, b, "", ContentType)
	if r.code != 503 || r.header.Get("Retry-After") != RetryAfter || !strings.Contains(r.answer.Error, "MaxPending") {
		t.Fatalf("second post: %d, Retry-After %q, %q; want 503, %s, naming MaxPending", r.code, r.header.Get("Retry-After"), r.answer.Error, RetryAfter)
	}
	if reason, _ := e.rep.last(); reason != source.ReasonFull {
		t.Errorf("reported %q; want %q", reason, source.ReasonFull)
	}
	if p := e.log.Stats().Pending; p < int64(len(b)) {
		t.Errorf("pending %d; want at least the first body (%d)", p, len(b))
	}
	// Run sends the first post: nothing pending, the next is taken.
	run := e.run(ctx, nil)
	run.take(t, ctx, 1)
	waitPending(t, e.log, 0)
	if r := e.post(ctx, b, "", ContentType); r.code != 202 {
		t.Fatalf("post after Run sent: %d %q; want 202", r.code, r.answer.Error)
	}
	gs, err := run.drainAll(t, ctx)
	if err != nil || len(gs) != 1 {
		t.Fatalf("drain: %d inputs, %v; want 1, nil", len(gs), err)
	}
	r = e.post(ctx, b, "", ContentType)
	if r.code != 503 || r.header.Get("Retry-After") != RetryAfter || !strings.Contains(r.answer.Error, "draining") {
		t.Errorf("post after drain: %d, Retry-After %q, %q; want 503, %s, draining", r.code, r.header.Get("Retry-After"), r.answer.Error, RetryAfter)
	}
	if reason, _ := e.rep.last(); reason != source.ReasonDrained {
		t.Errorf("reported %q; want %q", reason, source.ReasonDrained)
	}
}

// waitPending waits until the log's pending bytes are want (Run updates
// them after its send).
func waitPending(t *testing.T, l *Log, want int64) {
	t.Helper()
	ctx := ctxT(t)
	for l.Stats().Pending != want {
		select {
		case <-ctx.Done():
			t.Fatalf("pending %d; want %d", l.Stats().Pending, want)
		default:
		}
	}
}

func TestSameKeyConcurrent(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, nil)
	b := body(t, e.opts.Schema.Fields, 7, 5)
	const n = 16
	replies := make([]reply, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { replies[i] = e.post(ctx, b, "same-key", ContentType) })
	}
	wg.Wait()
	accepted, dups := 0, 0
	for _, r := range replies {
		switch {
		case r.code == 202 && r.answer.Status == "accepted" && r.header.Get(ReplayedHeader) == "":
			accepted++
		case r.code == 202 && r.answer.Status == "duplicate" && r.header.Get(ReplayedHeader) == "true":
			dups++
		default:
			t.Errorf("reply %d %+v; want 202, accepted or duplicate", r.code, r.answer)
		}
		if r.answer.Record != replies[0].answer.Record {
			t.Errorf("record %d; want every reply to name record %d", r.answer.Record, replies[0].answer.Record)
		}
	}
	if accepted != 1 || dups != n-1 {
		t.Errorf("%d accepted, %d duplicates; want 1 and %d", accepted, dups, n-1)
	}
	run := e.run(ctx, nil)
	gs, err := run.drainAll(t, ctx)
	if err != nil || len(gs) != 1 {
		t.Errorf("Run sent %d inputs, %v; want 1, nil", len(gs), err)
	}
}
