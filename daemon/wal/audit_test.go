package wal

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/penstock-ml/penstock/daemon/source"
)

// serveDirect answers one post through the handler without a network.
func serveDirect(t *testing.T, e *env, ctx context.Context, b []byte, hdr map[string]string) reply {
	t.Helper()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, Path, bytes.NewReader(b))
	req.Header.Set("Content-Type", ContentType)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.log.Handler().ServeHTTP(w, req)
	var a Answer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer %q is not JSON: %v", w.Body.Bytes(), err)
	}
	return reply{code: w.Code, answer: a, header: w.Header()}
}

// Every truncation and every flipped byte of a good post is answered 202,
// 400 or 422 (never 500, never a panic), leaks nothing, and whatever was
// accepted Run sends without an error: the handler may accept only what
// Run can decode.
func TestAuditHostileBodies(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, func(o *Options) { o.MaxPending = 1 << 30 })
	good := body(t, e.opts.Schema.Fields, 1, 3, 2)
	var bodies [][]byte
	for n := range len(good) {
		bodies = append(bodies, good[:n])
	}
	for i := range good {
		for _, x := range []byte{0x01, 0x80, 0xFF} {
			b := bytes.Clone(good)
			b[i] ^= x
			bodies = append(bodies, b)
		}
	}
	accepted := 0
	for i, b := range bodies {
		r := serveDirect(t, e, ctx, b, nil)
		switch r.code {
		case 202:
			accepted++
		case 400, 422:
			if r.answer.Status != "error" || r.answer.Error == "" {
				t.Errorf("body %d: %d %+v; want status error with a message", i, r.code, r.answer)
			}
		default:
			t.Fatalf("body %d: status %d %+v; want 202, 400 or 422", i, r.code, r.answer)
		}
	}
	run := e.run(ctx, nil)
	close(run.drain)
	sent := 0
	for done := false; !done; {
		select {
		case in := <-run.out:
			sent++
			checkLengths(t, in.Batch.X, "X", in.Pos)
			checkLengths(t, in.Batch.Y, "Y", in.Pos)
			in.Batch.Release()
		case err := <-run.done:
			if err != nil {
				t.Fatalf("Run after %d accepted hostile posts: %v; want nil", accepted, err)
			}
			done = true
		case <-ctx.Done():
			t.Fatal("Run did not return after drain")
		}
	}
	if accepted == 0 || sent == 0 {
		t.Errorf("%d accepted, %d inputs sent; want some of each (flipped data bytes are valid posts)", accepted, sent)
	}
}

// checkLengths fails the test unless every column of rec has rec's rows:
// a step may index a column by the record's row count, or the other way.
func checkLengths(t *testing.T, rec arrow.RecordBatch, what string, pos []byte) {
	t.Helper()
	if rec == nil {
		return
	}
	for c, col := range rec.Columns() {
		if int64(col.Len()) != rec.NumRows() {
			t.Errorf("input at %s: %s column %d has %d values, the batch %d rows; want equal", pos, what, c, col.Len(), rec.NumRows())
		}
	}
}

// Hand-made IPC messages: a schema message claiming a huge length, a
// negative one, a record batch whose buffers point far outside the body,
// a dictionary-encoded column. Each is refused with 400 or 422, and none
// allocates what it claims.
func TestAuditCraftedMessages(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, nil)
	msg := func(n uint32, rest []byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, 0xFFFFFFFF)
		b = binary.LittleEndian.AppendUint32(b, n)
		return append(b, rest...)
	}
	good := body(t, e.opts.Schema.Fields, 1, 3)
	// The schema message's length, for replacing the batch's body length.
	schemaLen := int(binary.LittleEndian.Uint32(good[4:8]))
	overBody := bytes.Clone(good)
	batchAt := 8 + schemaLen
	binary.LittleEndian.PutUint32(overBody[batchAt+4:], 0x7FFFFFF0) // the batch's metadata length

	dictSchema := arrow.NewSchema([]arrow.Field{
		{Name: "x0", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}},
		{Name: "x1", Type: arrow.PrimitiveTypes.Float32}, {Name: "x2", Type: arrow.PrimitiveTypes.Float32},
		{Name: "y", Type: arrow.PrimitiveTypes.Int64}}, nil)
	dict := ipcBody(t, dictSchema, nil, []int{2, 2}, func(bld array.Builder, f arrow.Field, b, r, c int) {
		switch bld := bld.(type) {
		case *array.BinaryDictionaryBuilder:
			if err := bld.AppendString(fmt.Sprint(b + r)); err != nil {
				t.Fatal(err)
			}
		case *array.Float32Builder:
			bld.Append(1)
		case *array.Int64Builder:
			bld.Append(1)
		}
	})
	r := serveDirect(t, e, ctx, dict, nil)
	if r.code != 422 || r.answer.Column != "x0" {
		t.Errorf("dictionary-encoded x0: %d %+v; want 422 naming x0", r.code, r.answer)
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"huge schema length", msg(0x7FFFFFFF, make([]byte, 64))},
		{"negative schema length", msg(0x80000000, make([]byte, 64))},
		{"length past the body", msg(1000, make([]byte, 10))},
		{"zero length, nothing else", msg(0, nil)},
		{"batch metadata past the body", overBody},
	} {
		r := serveDirect(t, e, ctx, c.b, nil)
		if r.code != 400 {
			t.Errorf("%s: %d %+v; want 400", c.name, r.code, r.answer)
		}
	}
}

// rawPost writes a request by hand (so that it can lie), closes the
// writing side after extra, and returns the status line's code.
func rawPost(t *testing.T, ctx context.Context, addr string, header string, b []byte) int {
	t.Helper()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n%s\r\n", Path, ContentType, header)
	c.Write(b)
	c.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 202 {
		msg, _ := io.ReadAll(resp.Body)
		t.Logf("%s: %d %s", header, resp.StatusCode, msg)
	}
	return resp.StatusCode
}

// A Content-Length larger than the body sent is a 400 once the body
// ends, appending nothing; one over MaxBody is a 413 before any of it is
// read.
func TestAuditContentLengthLies(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, func(o *Options) { o.MaxBody = 4096 })
	good := body(t, e.opts.Schema.Fields, 1, 3)
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	if code := rawPost(t, ctx, addr, fmt.Sprintf("Content-Length: %d\r\n", len(good)+100), good); code != 400 {
		t.Errorf("Content-Length 100 over the body: %d; want 400", code)
	}
	if code := rawPost(t, ctx, addr, "Content-Length: 4097\r\n", good); code != 413 {
		t.Errorf("Content-Length over MaxBody: %d; want 413", code)
	}
	if code := rawPost(t, ctx, addr, "Content-Length: 99999999999999999999\r\n", good); code != 400 {
		t.Errorf("Content-Length beyond int64: %d; want 400 (from net/http)", code)
	}
	if code := rawPost(t, ctx, addr, fmt.Sprintf("Content-Length: %d\r\n", len(good)), good); code != 202 {
		t.Errorf("honest Content-Length: %d; want 202", code)
	}
	if s := e.log.Stats(); s.Records != 1 {
		t.Errorf("%d records appended; want 1 (the honest post)", s.Records)
	}
}

// A Content-Encoding is not decoded: a gzip body (a bomb or not) is
// refused with 415 before it is read, never inflated.
func TestAuditContentEncodingRefused(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, nil)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(make([]byte, 64<<20)) // 64 MiB of zeros: 64 KiB compressed
	zw.Close()
	for _, enc := range []string{"gzip", "deflate", "br", "zstd"} {
		r := serveDirect(t, e, ctx, z.Bytes(), map[string]string{"Content-Encoding": enc})
		if r.code != 415 || !strings.Contains(r.answer.Error, "Content-Encoding") {
			t.Errorf("Content-Encoding %s: %d %+v; want 415 naming Content-Encoding", enc, r.code, r.answer)
		}
	}
	// Content codings are case-insensitive (RFC 9110, 8.4.1).
	for _, enc := range []string{"identity", "Identity", "IDENTITY", " identity "} {
		good := body(t, e.opts.Schema.Fields, 1, 3)
		if r := serveDirect(t, e, ctx, good, map[string]string{"Content-Encoding": enc}); r.code != 202 {
			t.Errorf("Content-Encoding %q: %d %+v; want 202", enc, r.code, r.answer)
		}
	}
}

// slowBody sends part of a post, then nothing until release closes.
type slowBody struct {
	part    []byte
	rest    []byte
	release chan struct{}
	sent    chan struct{}
	once    sync.Once
}

func (s *slowBody) Read(p []byte) (int, error) {
	if len(s.part) > 0 {
		n := copy(p, s.part)
		s.part = s.part[n:]
		return n, nil
	}
	s.once.Do(func() { close(s.sent) })
	<-s.release
	if len(s.rest) > 0 {
		n := copy(p, s.rest)
		s.rest = s.rest[n:]
		return n, nil
	}
	return 0, io.EOF
}

// A post whose body stalls (a slow loris within MaxBody) blocks neither
// the other posts nor the drain; once it goes on after the drain it is
// refused with 503, not appended.
func TestAuditSlowBodyBlocksNothing(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, nil)
	sc := e.opts.Schema.Fields
	slowB := body(t, sc, 9, 4)
	slow := &slowBody{part: slowB[:len(slowB)/2], rest: slowB[len(slowB)/2:], release: make(chan struct{}), sent: make(chan struct{})}
	slowDone := make(chan reply, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+Path, slow)
		req.ContentLength = int64(len(slowB))
		req.Header.Set("Content-Type", ContentType)
		slowDone <- e.do(req)
	}()
	select {
	case <-slow.sent:
	case <-ctx.Done():
		t.Fatal("the slow post never sent its first half")
	}
	run := e.run(ctx, nil)
	for p := range 5 {
		if r := e.post(ctx, body(t, sc, p, 2), "", ContentType); r.code != 202 {
			t.Fatalf("post %d behind a stalled one: %d %+v; want 202", p, r.code, r.answer)
		}
	}
	gs := run.take(t, ctx, 5)
	gs2, err := run.drainAll(t, ctx)
	if err != nil || len(gs)+len(gs2) != 5 {
		t.Fatalf("drain with a stalled post: %d inputs, %v; want 5, nil", len(gs)+len(gs2), err)
	}
	close(slow.release)
	select {
	case r := <-slowDone:
		if r.code != 503 || r.header.Get("Retry-After") == "" {
			t.Errorf("stalled post finished after the drain: %d %+v; want 503 with Retry-After", r.code, r.answer)
		}
	case <-ctx.Done():
		t.Fatal("the stalled post was never answered")
	}
	if s := e.log.Stats(); s.Records != 5 {
		t.Errorf("%d records; want 5", s.Records)
	}
}

// Idempotency keys: an empty one is no key (two posts, two records); one
// of MaxKeyBytes and one of non-ASCII UTF-8 dedupe, also after a restart;
// keys that differ only in case are different keys.
func TestAuditIdempotencyKeys(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	e := newEnv(t, dir, mem, nil)
	sc := e.opts.Schema.Fields
	b := body(t, sc, 1, 2)
	long := strings.Repeat("k", MaxKeyBytes)
	utf := "clé-ключ-鍵-🔑"
	for _, k := range []string{"", ""} {
		if r := serveDirect(t, e, ctx, b, map[string]string{KeyHeader: k}); r.code != 202 || r.answer.Status != "accepted" {
			t.Errorf("empty key: %d %+v; want accepted", r.code, r.answer)
		}
	}
	first := map[string]int64{}
	for _, k := range []string{long, utf, "Key-A", "key-a"} {
		r := serveDirect(t, e, ctx, b, map[string]string{KeyHeader: k})
		if r.code != 202 || r.answer.Status != "accepted" {
			t.Errorf("key %q: %d %+v; want accepted", k, r.code, r.answer)
		}
		first[k] = r.answer.Record
	}
	check := func(when string, e *env) {
		for k, rec := range first {
			r := serveDirect(t, e, ctx, []byte("not even IPC"), map[string]string{KeyHeader: k})
			if r.code != 202 || r.answer.Status != "duplicate" || r.answer.Record != rec {
				t.Errorf("%s: retry of key %.20q: %d %+v; want duplicate of record %d", when, k, r.code, r.answer, rec)
			}
		}
	}
	check("same log", e)
	if s := e.log.Stats(); s.Records != 6 {
		t.Errorf("%d records; want 6", s.Records)
	}
	e.close()
	e2 := newEnv(t, dir, mem, nil)
	check("after a restart", e2)
}

// Durable of a position the log has not reached (a record not yet
// appended: a garbage or foreign position) must not delete the segments
// of records Run has not sent: after three such calls, a Run from the
// start still sends every post.
func TestAuditDurableFuturePosition(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, func(o *Options) { o.SegmentBytes = 1 })
	sc := e.opts.Schema.Fields
	for p := range 4 {
		if r := e.post(ctx, body(t, sc, p, 2), "", ContentType); r.code != 202 {
			t.Fatalf("post %d: %d %+v", p, r.code, r.answer)
		}
	}
	future := Pos{Segment: 1000, Offset: 8, Record: 1000}.marshal()
	for range 3 {
		err := e.log.Durable(future)
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), "position") {
			t.Errorf("Durable(%s): %v; want nil or an error about the position", future, err)
		}
	}
	run := e.run(ctx, nil)
	gs := run.take(t, ctx, 4)
	if _, err := run.drainAll(t, ctx); err != nil {
		t.Fatal(err)
	}
	for p, g := range gs {
		if g.labels[0] != label(p, 0, 0) {
			t.Errorf("input %d: labels %v; want post %d's", p, g.labels, p)
		}
	}
}

// Close from several goroutines while posts are in flight: every post is
// answered 202 (then in the log) or 503 with Retry-After, nothing panics
// or leaks, and a Run after Close returns an error at once.
func TestAuditCloseDuringPosts(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	e := newEnv(t, dir, mem, nil)
	sc := e.opts.Schema.Fields
	const n = 32
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := serveDirect(t, e, ctx, body(t, sc, i, 2), map[string]string{KeyHeader: fmt.Sprint("k", i)})
			codes[i] = r.code
			if r.code == 503 && r.header.Get("Retry-After") == "" {
				t.Errorf("post %d: 503 without Retry-After", i)
			}
		})
	}
	var cwg sync.WaitGroup
	for range 8 {
		cwg.Go(func() {
			if err := e.log.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	cwg.Wait()
	wg.Wait()
	accepted := 0
	for i, c := range codes {
		switch c {
		case 202:
			accepted++
		case 503:
		default:
			t.Errorf("post %d: %d; want 202 or 503", i, c)
		}
	}
	quick, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.log.Run(quick, nil, make(chan struct{}), make(chan source.Input)); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v; want ErrClosed at once", err)
	}
	e.closed = true
	e.srv.Close()
	e2 := newEnv(t, dir, mem, nil)
	run := e2.run(ctx, nil)
	gs, err := run.drainAll(t, ctx)
	if err != nil || len(gs) != accepted {
		t.Errorf("the reopened log sent %d inputs, %v; want the %d accepted posts", len(gs), err, accepted)
	}
}

// FuzzIngest: any body posted to the handler is answered 202, 400 or 422
// (never 500 or a panic), and what was accepted Run sends without an
// error, every batch's columns as long as its rows; nothing leaks. One log
// and one Run serve every input of a worker (a log per input would spend
// the time in Open and fsync).
func FuzzIngest(f *testing.F) {
	sc := testSchema(3).Fields
	f.Add(body(f, sc, 1, 3, 2))
	f.Add(body(f, sc, 2, 0))
	f.Add(body(f, sc, 3))
	f.Add([]byte("\xff\xff\xff\xff\x10\x00\x00\x00not arrow"))
	mem := checkedMem(f)
	e := newEnv(f, "", mem, func(o *Options) { o.MaxPending = 1 << 40 })
	ctx, cancel := context.WithCancel(context.Background())
	run := e.run(ctx, nil)
	var mu sync.Mutex
	var problems []string
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for {
			select {
			case in := <-run.out:
				for _, rec := range []arrow.RecordBatch{in.Batch.X, in.Batch.Y} {
					if rec == nil {
						continue
					}
					for c, col := range rec.Columns() {
						if int64(col.Len()) != rec.NumRows() {
							mu.Lock()
							problems = append(problems, fmt.Sprintf("input at %s: column %d has %d values, the batch %d rows", in.Pos, c, col.Len(), rec.NumRows()))
							mu.Unlock()
						}
					}
				}
				in.Batch.Release()
			case err := <-run.done:
				if err != nil {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("Run: %v", err))
					mu.Unlock()
				}
				return
			}
		}
	}()
	// Registered after newEnv's, so it runs before the log is closed.
	f.Cleanup(func() {
		close(run.drain)
		select {
		case <-forwarded:
		case <-time.After(30 * time.Second):
			f.Error("Run did not return after drain")
		}
		cancel()
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		ctx := ctxT(t)
		r := serveDirect(t, e, ctx, b, nil)
		switch r.code {
		case 202, 400, 422:
		default:
			t.Fatalf("status %d %+v; want 202, 400 or 422", r.code, r.answer)
		}
		for e.log.Stats().Pending > 0 { // Run has sent it
			select {
			case <-forwarded:
			case <-ctx.Done():
				t.Fatal("Run did not send an accepted post")
			case <-time.After(time.Millisecond):
				continue
			}
			break
		}
		mu.Lock()
		defer mu.Unlock()
		if len(problems) > 0 {
			t.Fatalf("after a post answered %d: %s", r.code, strings.Join(problems, "; "))
		}
	})
}
