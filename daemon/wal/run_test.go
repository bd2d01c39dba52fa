package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestResumeMidPost: Run from the position of any batch, also one in the
// middle of a post, sends exactly the batches after it.
func TestResumeMidPost(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	small := func(o *Options) { o.SegmentBytes = 1 } // positions in several segments
	e := newEnv(t, dir, mem, small)
	posts := [][]int{{2, 3, 1}, {2, 0, 2}, {4}}
	var want [][]int64
	for i, rows := range posts {
		if r := e.post(ctx, body(t, e.opts.Schema.Fields, i+1, rows...), "", ContentType); r.code != 202 {
			t.Fatalf("post %d: %d %+v", i+1, r.code, r.answer)
		}
		for b, ls := range labelsOf(i+1, rows...) {
			if rows[b] > 0 { // batches without rows are not sent
				want = append(want, ls)
			}
		}
	}
	all, err := e.run(ctx, nil).drainAll(t, ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := gotLabels(all); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Run from the start sent %v; want %v", got, want)
	}
	wantPos := []Pos{{1, 8, 1, 0}, {1, 8, 1, 1}, {1, 8, 1, 2}, {2, 8, 2, 0}, {2, 8, 2, 2}, {3, 8, 3, 0}}
	for i, g := range all {
		if g.pos != wantPos[i] {
			t.Errorf("input %d at %+v; want %+v", i, g.pos, wantPos[i])
		}
	}
	e.close()
	for k := range all {
		t.Run(fmt.Sprintf("after input %d", k), func(t *testing.T) {
			e := newEnv(t, dir, mem, small)
			defer e.close()
			gs, err := e.run(ctx, all[k].pos.marshal()).drainAll(t, ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := gotLabels(gs); !slices.EqualFunc(got, want[k+1:], slices.Equal) {
				t.Errorf("Run from %+v sent %v; want %v", all[k].pos, got, want[k+1:])
			}
		})
	}
}

// TestDrainSendsEverythingAccepted: posts race with drain; every post
// answered 202 is sent, none refused is, and Run returns nil.
func TestDrainSendsEverythingAccepted(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, nil)
	run := e.run(ctx, nil)
	const clients, each = 8, 10
	codes := make([]int, clients*each)
	var acked atomic.Int64
	var wg sync.WaitGroup
	started := make(chan struct{})
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				p := c*each + i
				if i == 2 && c == 0 {
					close(started)
				}
				r := e.post(ctx, body(t, e.opts.Schema.Fields, p, 2), "", ContentType)
				codes[p] = r.code
				if r.code == 202 {
					acked.Add(1)
				}
			}
		})
	}
	<-started
	var gs []got
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		gs, runErr = run.drainAll(t, ctx)
	}()
	wg.Wait()
	<-done
	if runErr != nil {
		t.Fatalf("Run after drain: %v; want nil", runErr)
	}
	sent := map[int64]bool{}
	for _, g := range gs {
		sent[g.labels[0]/1_000_000] = true
	}
	for p, code := range codes {
		switch {
		case code == 202 && !sent[int64(p)]:
			t.Errorf("post %d: answered 202 but not sent", p)
		case code == http.StatusServiceUnavailable && sent[int64(p)]:
			t.Errorf("post %d: refused but sent", p)
		case code != 202 && code != http.StatusServiceUnavailable:
			t.Errorf("post %d: status %d; want 202 or 503", p, code)
		}
	}
	if int64(len(gs)) != acked.Load() {
		t.Errorf("sent %d inputs; want %d (the acknowledged posts)", len(gs), acked.Load())
	}
	t.Logf("%d of %d posts acknowledged before the drain", acked.Load(), len(codes))
}

// TestConcurrentPosts: 32 clients; every acknowledged post is sent once,
// with the record its answer named, and a post acknowledged before
// another started comes first in the log.
func TestConcurrentPosts(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, nil)
	run := e.run(ctx, nil)
	const clients, each = 32, 8
	type span struct{ start, end, record int64 }
	spans := make([]span, clients*each)
	var clock atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				p := c*each + i
				b := body(t, e.opts.Schema.Fields, p, 2)
				start := clock.Add(1)
				r := e.post(ctx, b, fmt.Sprintf("c%d-%d", c, i), ContentType)
				spans[p] = span{start, clock.Add(1), r.answer.Record}
				if r.code != 202 || r.answer.Status != "accepted" {
					t.Errorf("post %d: %d %+v; want 202 accepted", p, r.code, r.answer)
				}
			}
		})
	}
	var gs []got
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		gs = run.take(t, ctx, clients*each)
	}()
	wg.Wait()
	<-collected
	if rest, err := run.drainAll(t, ctx); err != nil || len(rest) != 0 {
		t.Fatalf("drain: %d more inputs, %v; want none, nil", len(rest), err)
	}
	logIndex := map[int]int{}
	for i, g := range gs {
		p := int(g.labels[0] / 1_000_000)
		if _, dup := logIndex[p]; dup {
			t.Errorf("post %d sent twice", p)
		}
		logIndex[p] = i
		if g.pos.Record != spans[p].record {
			t.Errorf("post %d sent as record %d; its answer named %d", p, g.pos.Record, spans[p].record)
		}
	}
	if len(logIndex) != clients*each {
		t.Errorf("%d posts sent; want %d", len(logIndex), clients*each)
	}
	for a := range spans {
		for b := range spans {
			if spans[a].end < spans[b].start && logIndex[a] > logIndex[b] {
				t.Errorf("post %d was acknowledged before post %d started, but comes after it in the log", a, b)
			}
		}
	}
	s := e.log.Stats()
	t.Logf("%d posts, %d fsyncs: %.1f posts per fsync", s.Records, s.Fsyncs, float64(s.Records)/float64(s.Fsyncs))
}

func TestRunCancel(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, nil)
	if r := e.post(ctx, body(t, e.opts.Schema.Fields, 1, 3, 3), "", ContentType); r.code != 202 {
		t.Fatal(r.code)
	}
	cause := errors.New("stop now")
	rctx, cancel := context.WithCancelCause(ctx)
	run := e.run(rctx, nil)
	run.take(t, ctx, 1) // the second batch blocks in the send
	cancel(cause)
	select {
	case err := <-run.done:
		if !errors.Is(err, cause) {
			t.Errorf("Run: %v; want the cause %v", err, cause)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after cancel")
	}
	// A second Run is refused.
	if err := e.log.Run(ctx, nil, nil, nil); err == nil {
		t.Error("second Run: nil; want an error")
	}
}

func TestRunIdleCancelAndClose(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, nil)
	rctx, cancel := context.WithCancel(ctx)
	run := e.run(rctx, nil)
	r := e.post(ctx, body(t, e.opts.Schema.Fields, 1, 3), "", ContentType)
	if r.code != 202 {
		t.Fatal(r.code)
	}
	run.take(t, ctx, 1) // then Run waits for posts
	cancel()
	if err := <-run.done; !errors.Is(err, context.Canceled) {
		t.Errorf("idle Run after cancel: %v; want context.Canceled", err)
	}

	e2 := newEnv(t, "", mem, nil)
	run2 := e2.run(ctx, nil)
	e2.close()
	select {
	case err := <-run2.done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Run after Close: %v; want ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after Close")
	}
	if err := e2.log.Close(); err != nil {
		t.Errorf("second Close: %v; want nil", err)
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, Path, bytes.NewReader(body(t, e2.opts.Schema.Fields, 1, 1)))
	req.Header.Set("Content-Type", ContentType)
	rec := httptest.NewRecorder()
	e2.log.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "closed") {
		t.Errorf("post after Close: %d %s; want 503, closed", rec.Code, rec.Body)
	}
}

func TestDurableBadPositions(t *testing.T) {
	e := newEnv(t, "", checkedMem(t), nil)
	for _, pos := range []string{`nonsense`, `{"segment":0,"offset":8,"record":1,"batch":0}`, `{"segment":1,"offset":2,"record":1,"batch":0}`,
		`{"segment":5,"offset":8,"record":4,"batch":0}`, `{"segment":1,"offset":8,"record":1,"batch":-1}`} {
		if err := e.log.Durable([]byte(pos)); err == nil || !strings.Contains(err.Error(), "position") {
			t.Errorf("Durable(%s): %v; want an error about the position", pos, err)
		}
	}
}

// TestAppendFailure: when a write fails, the post in it gets 500, later
// posts 503, and Run sends what was committed, then returns the error.
func TestAppendFailure(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, nil)
	sc := e.opts.Schema.Fields
	if r := e.post(ctx, body(t, sc, 1, 2), "k1", ContentType); r.code != 202 {
		t.Fatalf("post 1: %d %+v", r.code, r.answer)
	}
	e.log.f.Close() // the next write fails
	r := e.post(ctx, body(t, sc, 2, 2), "k2", ContentType)
	if r.code != http.StatusInternalServerError || !strings.Contains(r.answer.Error, "restart to recover") {
		t.Errorf("post in the failed write: %d %q; want 500 saying what to do", r.code, r.answer.Error)
	}
	r = e.post(ctx, body(t, sc, 2, 2), "k2", ContentType)
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("post after the failure: %d %q; want 503 with Retry-After", r.code, r.answer.Error)
	}
	run := e.run(ctx, nil)
	gs := run.take(t, ctx, 1)
	if !slices.Equal(gs[0].labels, labelsOf(1, 2)[0]) {
		t.Errorf("sent %v; want post 1", gs[0].labels)
	}
	if err := <-run.done; err == nil || !strings.Contains(err.Error(), "appending to") {
		t.Errorf("Run: %v; want the append error", err)
	}
	e.srv.Close()
	e.client.CloseIdleConnections()
	e.closed = true
	if err := e.log.Close(); err == nil {
		t.Error("Close: nil; want the error of closing the closed segment")
	}
}

// TestDurableWhileRunning: posts roll segments while Run sends and the
// consumer calls Durable, as the daemon does; every post is sent once,
// old segments go, and a restart from the last durable position sends
// exactly the rest.
func TestDurableWhileRunning(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	tweak := func(o *Options) { o.SegmentBytes, o.KeepPositions = 4096, 2 }
	e := newEnv(t, dir, mem, tweak)
	run := e.run(ctx, nil)
	const clients, each = 4, 30
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				p := c*each + i
				if r := e.post(ctx, body(t, e.opts.Schema.Fields, p, 3), fmt.Sprintf("k%d", p), ContentType); r.code != 202 {
					t.Errorf("post %d: %d %+v", p, r.code, r.answer)
				}
			}
		})
	}
	var gs []got
	var lastDurable int
	for len(gs) < clients*each {
		gs = append(gs, run.take(t, ctx, 1)...)
		if len(gs)%10 == 0 {
			if err := e.log.Durable(gs[len(gs)-1].pos.marshal()); err != nil {
				t.Fatalf("Durable: %v", err)
			}
			lastDurable = len(gs) - 1
		}
	}
	wg.Wait()
	if rest, err := run.drainAll(t, ctx); err != nil || len(rest) != 0 {
		t.Fatalf("drain: %d more, %v; want none, nil", len(rest), err)
	}
	seen := map[int64]bool{}
	for _, g := range gs {
		p := g.labels[0] / 1_000_000
		if seen[p] {
			t.Errorf("post %d sent twice", p)
		}
		seen[p] = true
	}
	segs := segFiles(t, dir)
	if int64(len(segs)) >= e.log.Stats().Records {
		t.Errorf("%d segments left for %d records; want old ones deleted", len(segs), e.log.Stats().Records)
	}
	e.close()

	e2 := newEnv(t, dir, mem, tweak)
	rest, err := e2.run(ctx, gs[lastDurable].pos.marshal()).drainAll(t, ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := gotLabels(rest), gotLabels(gs[lastDurable+1:]); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("after restart from input %d: %d inputs; want the %d after it", lastDurable, len(got), len(want))
	}
	if r := e2.post(ctx, body(t, e.opts.Schema.Fields, 0, 3), "k0", ContentType); r.code != 202 || r.answer.Status != "duplicate" {
		t.Errorf("retry of post 0 after its segment was deleted: %d %+v; want a duplicate", r.code, r.answer)
	}
}
