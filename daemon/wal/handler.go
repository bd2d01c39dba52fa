package wal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/penstock-ml/penstock/daemon/internal/httpx"
	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
)

// The HTTP protocol of the ingest endpoint.
const (
	// Path is where Handler serves (other paths are 404).
	Path = "/v1/ingest"
	// ContentType is the media type of a post's body (parameters ignored).
	ContentType = "application/vnd.apache.arrow.stream"
	// KeyHeader carries the idempotency key of a post.
	KeyHeader = "Idempotency-Key"
	// ReplayedHeader is "true" on the 202 answer to a post whose key was
	// already appended: the post was not appended again.
	ReplayedHeader = "Idempotent-Replayed"
	// RetryAfter is the Retry-After of a 503, in seconds.
	RetryAfter = "1"
)

// Answer is the JSON body of every answer of the handler.
type Answer struct {
	Status string `json:"status"`           // "accepted", "duplicate" or "error"
	Record int64  `json:"record,omitempty"` // sequence number of the post's record (accepted, duplicate)
	Error  string `json:"error,omitempty"`  // what is wrong (error)
	Column string `json:"column,omitempty"` // the column that does not match (422)
}

// Handler returns the HTTP handler of POST /v1/ingest. See the package
// documentation for its statuses.
func (l *Log) Handler() http.Handler { return http.HandlerFunc(l.serve) }

func (l *Log) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	key := r.Header.Get(KeyHeader)
	where := requestName{l.o.Name, r, key} // formatted only in errors
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		l.fail(w, http.StatusMethodNotAllowed, "", fmt.Errorf("%s: method %s, want POST", where, r.Method), "")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != ContentType && !isContentType(ct) {
		l.fail(w, http.StatusUnsupportedMediaType, source.ReasonType,
			fmt.Errorf("%s: Content-Type %q, want %s", where, r.Header.Get("Content-Type"), ContentType), "")
		return
	}
	if ce := r.Header.Get("Content-Encoding"); !httpx.NoCoding(ce) {
		l.fail(w, http.StatusUnsupportedMediaType, source.ReasonType,
			fmt.Errorf("%s: Content-Encoding %q, want none: bodies are not decompressed", where, ce), "")
		return
	}
	if len(key) > MaxKeyBytes {
		l.fail(w, http.StatusBadRequest, source.ReasonDecode,
			fmt.Errorf("%s: %s of %d bytes, want at most %d", where, KeyHeader, len(key), MaxKeyBytes), "")
		return
	}
	if r.ContentLength > l.o.MaxBody {
		l.fail(w, http.StatusRequestEntityTooLarge, source.ReasonTooBig,
			fmt.Errorf("%s: body of %d bytes, want at most %d (MaxBody)", where, r.ContentLength, l.o.MaxBody), "")
		return
	}
	if key != "" { // a retry of an appended post is answered also while draining
		if seq, ok := l.appended(key); ok {
			l.duplicate(w, where, seq)
			return
		}
	}
	if code, reason, err := l.startRead(w); err != nil {
		l.fail(w, code, reason, fmt.Errorf("%s: %w", where, err), "")
		return
	}
	rec, err := readBody(http.MaxBytesReader(w, r.Body, l.o.MaxBody), r.ContentLength, key)
	l.endRead(w)
	if err != nil {
		putRecordBuf(rec)
		if code, reason, rerr := l.refusal(); rerr != nil { // cut off by the drain (see startRead)
			l.fail(w, code, reason, fmt.Errorf("%s: reading the body: %w", where, rerr), "")
			return
		}
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			l.fail(w, http.StatusRequestEntityTooLarge, source.ReasonTooBig,
				fmt.Errorf("%s: body over %d bytes (MaxBody)", where, l.o.MaxBody), "")
			return
		}
		l.fail(w, http.StatusBadRequest, source.ReasonIO, fmt.Errorf("%s: reading the body: %w", where, err), "")
		return
	}
	if key != "" { // appended while the body was read
		if seq, ok := l.appended(key); ok {
			putRecordBuf(rec)
			l.duplicate(w, where, seq)
			return
		}
	}
	// A post for the fast path is only checked here: Run makes its
	// batches from the record buffer, off the post's way to its fsync.
	// Any other is decoded now, and its batches kept for Run, which then
	// need not decode the post again.
	body := rec[recHeader+payloadFixed+len(key):]
	fp, fast := l.dec.checkFast(body)
	var batches []flow.Batch
	if !fast {
		// Not cancelled with the request: the body is in memory and its
		// decode bounded, and a client that half-closed its connection
		// (which ends the context) would otherwise get a 400 "bad
		// stream: context canceled" for a good post.
		err = l.dec.decodeFull(context.WithoutCancel(r.Context()), body, func(_ int, b flow.Batch) error {
			batches = append(batches, b)
			return nil
		})
	}
	if err != nil {
		releaseAll(batches)
		putRecordBuf(rec)
	}
	if se, ok := errors.AsType[*source.SchemaError](err); ok {
		l.fail(w, http.StatusUnprocessableEntity, source.ReasonSchema, fmt.Errorf("%s: %w", where, err), se.Column)
		return
	}
	if err != nil {
		l.fail(w, http.StatusBadRequest, source.ReasonDecode, fmt.Errorf("%s: bad Arrow IPC stream: %w", where, err), "")
		return
	}
	req, dup, code, reason, err := l.admit(r, key, rec)
	if req == nil {
		releaseAll(batches)
		putRecordBuf(rec)
	} else {
		req.batches = batches
		if fast {
			req.fast = &fp
			l.fastPosts.Add(1)
		}
	}
	switch {
	case err != nil:
		l.fail(w, code, reason, fmt.Errorf("%s: %w", where, err), "")
		return
	case req == nil:
		l.duplicate(w, where, dup)
		return
	}
	l.appendc <- req
	// The outcome is awaited even when the request's context is done: the
	// post is appended all the same, and a client that only half-closed
	// its connection (which ends the context) still reads the answer;
	// returning without one would answer an empty 200. The wait is one
	// group commit: the writer answers every admitted post.
	res := <-req.done
	if res.err != nil {
		l.fail(w, http.StatusInternalServerError, source.ReasonIO, fmt.Errorf("%s: %w", where, res.err), "")
		return
	}
	accepted(w, res.seq)
}

// isContentType reports whether the media type of ct is ContentType.
func isContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == ContentType
}

// requestName names a request in errors: the source, method, path,
// client and key.
type requestName struct {
	source string
	r      *http.Request
	key    string
}

func (n requestName) String() string {
	s := fmt.Sprintf("wal %q: %s %s from %s", n.source, n.r.Method, n.r.URL.Path, n.r.RemoteAddr)
	if n.key != "" {
		s += fmt.Sprintf(" (%s %q)", KeyHeader, n.key)
	}
	return s
}

// readBody reads the body into a record buffer (newRecordBuf): exactly
// its Content-Length n when known (n ≥ 0), else growing as it reads.
func readBody(body io.Reader, n int64, key string) ([]byte, error) {
	if n >= 0 {
		rec := getRecordBuf(key, int(n))
		head := len(rec)
		rec = rec[:head+int(n)]
		_, err := io.ReadFull(body, rec[head:])
		return rec, err
	}
	buf := bytes.NewBuffer(newRecordBuf(key, 16<<10))
	_, err := buf.ReadFrom(body)
	return buf.Bytes(), err
}

// startRead says why no post is taken now, as refusal does, or else
// registers w as reading its body, until endRead. When the drain begins,
// every body still being read is cut off (its connection's read deadline
// set to now): such a post would be refused once read all the same, and
// a client that stalls its body would otherwise hold the server's
// Shutdown, and so the drain, until the server's read timeout.
func (l *Log) startRead(w http.ResponseWriter) (int, source.Reason, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if code, reason, err := l.refusalLocked(); err != nil {
		return code, reason, err
	}
	l.reading[w] = struct{}{}
	return 0, "", nil
}

// endRead ends what startRead began.
func (l *Log) endRead(w http.ResponseWriter) {
	l.mu.Lock()
	delete(l.reading, w)
	l.mu.Unlock()
}

// cutReadsLocked cuts off the bodies being read (see startRead). Under mu,
// so that no handler has moved on from its read, which its connection's
// next request would then pay for.
func (l *Log) cutReadsLocked() {
	now := time.Now()
	for w := range l.reading {
		if err := http.NewResponseController(w).SetReadDeadline(now); err != nil {
			l.o.Log.Warn("wal drain: cannot cut off a post being read", "source", l.o.Name, "err", err)
		}
	}
}

// refusal says why no post is taken now: draining (after Run's drain
// closed), closed, or the writer failed.
func (l *Log) refusal() (int, source.Reason, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refusalLocked()
}

func (l *Log) refusalLocked() (int, source.Reason, error) {
	switch {
	case l.failed != nil:
		return http.StatusServiceUnavailable, source.ReasonIO, l.failed
	case l.closed:
		return http.StatusServiceUnavailable, source.ReasonDrained, errors.New("the log is closed")
	case l.draining:
		return http.StatusServiceUnavailable, source.ReasonDrained, errors.New("draining: no new posts are taken")
	}
	return 0, "", nil
}

// appended returns the seq of the record of key, if it was committed.
func (l *Log) appended(key string) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq, ok := l.keys.seqs[key]
	return seq, ok
}

// admit takes the post (rec, with key) for the writer, or says why not:
// a duplicate of a committed key (req nil, its seq), or a refusal. A post
// whose key is being appended by another waits for that one's outcome.
func (l *Log) admit(r *http.Request, key string, rec []byte) (req *appendReq, dup int64, code int, reason source.Reason, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if code, reason, err := l.refusalLocked(); err != nil {
			return nil, 0, code, reason, err
		}
		if key == "" {
			break
		}
		if seq, ok := l.keys.seqs[key]; ok {
			return nil, seq, 0, "", nil
		}
		ch, busy := l.inflight[key]
		if !busy {
			break
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-r.Context().Done():
			l.mu.Lock()
			return nil, 0, http.StatusServiceUnavailable, source.ReasonIO, fmt.Errorf("gave up waiting for a post with the same key: %w", context.Cause(r.Context()))
		}
		l.mu.Lock()
	}
	size := int64(len(rec))
	if p := l.pendingLocked(); p > 0 && p+size > l.o.MaxPending {
		return nil, 0, http.StatusServiceUnavailable, source.ReasonFull,
			fmt.Errorf("full: %d bytes pending, %d more would exceed MaxPending (%d)", p, size, l.o.MaxPending)
	}
	if key != "" {
		l.inflight[key] = make(chan struct{})
	}
	l.admitted++
	l.queued += size
	return &appendReq{rec: rec, key: key, done: make(chan appendResult, 1)}, 0, 0, "", nil
}

func (l *Log) duplicate(w http.ResponseWriter, where requestName, seq int64) {
	l.o.Reporter.Rejected(l.o.Name, source.ReasonDup, fmt.Errorf("%s: already appended as record %d: not appended again", where, seq))
	w.Header().Set(ReplayedHeader, "true")
	answer(w, http.StatusAccepted, Answer{Status: "duplicate", Record: seq})
}

// fail answers an error (reported as reason, unless it is empty).
func (l *Log) fail(w http.ResponseWriter, code int, reason source.Reason, err error, column string) {
	if reason != "" {
		l.o.Reporter.Rejected(l.o.Name, reason, err)
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", RetryAfter)
	}
	answer(w, code, Answer{Status: "error", Error: err.Error(), Column: column})
}

// accepted answers 202 with Answer{Status: "accepted", Record: seq}, as
// answer does, without its allocations.
func accepted(w http.ResponseWriter, seq int64) {
	var buf [64]byte
	body := append(buf[:0], `{"status":"accepted","record":`...)
	body = strconv.AppendInt(body, seq, 10)
	body = append(body, "}\n"...)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusAccepted)
	w.Write(body)
}

func answer(w http.ResponseWriter, code int, a Answer) {
	body, _ := json.Marshal(a)
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body)
}
