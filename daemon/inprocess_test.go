package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/daemon"
	"github.com/penstock-ml/penstock/daemon/ckpt"
	"github.com/penstock-ml/penstock/daemon/internal/srctest"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
	"go.uber.org/goleak"
)

// verifyNoLeaks closes the test clients' idle connections and checks that
// no goroutine is left.
func verifyNoLeaks(t *testing.T) {
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t)
}

// inproc is a daemon run in this process.
type inproc struct {
	addr   string
	cancel context.CancelCauseFunc
	done   chan error
	logs   *srctest.LogBuffer
}

func startInproc(t *testing.T, cfgPath string, reg *persist.Registry, opts ...daemon.Option) *inproc {
	t.Helper()
	cfg, err := daemon.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	d := &inproc{cancel: cancel, done: make(chan error, 1), logs: &srctest.LogBuffer{}}
	addr := make(chan net.Addr, 1)
	opts = append(opts, daemon.WithListening(func(a net.Addr) { addr <- a }),
		daemon.WithLogger(slog.New(slog.NewJSONHandler(d.logs, nil))))
	go func() { d.done <- daemon.Run(ctx, cfg, reg, opts...) }()
	select {
	case a := <-addr:
		d.addr = "http://" + a.String()
	case err := <-d.done:
		t.Fatalf("daemon: %v\n%s", err, d.logs)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not listen")
	}
	return d
}

// stop drains the daemon and returns Run's error.
func (d *inproc) stop(t *testing.T, within time.Duration) error {
	t.Helper()
	d.cancel(errors.New("test: stop"))
	select {
	case err := <-d.done:
		return err
	case <-time.After(within):
		t.Fatalf("Run did not return within %v\n%s", within, tail(d.logs.String(), 30))
		return nil
	}
}

func post(t *testing.T, url, ctype string, body []byte, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const arrowStream = "application/vnd.apache.arrow.stream"

// Bad inputs get a clear status or a rejection, counted in the metrics,
// and block nothing: a good file after a bad one is fitted.
func TestBadInputs(t *testing.T) {
	defer verifyNoLeaks(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	e := newEnv(t)
	cfg := e.config(t, []map[string]any{
		{"name": "http", "type": "http", "wal_dir": e.wal, "max_body": 256 << 10},
		{"name": "files", "type": "dir", "dir": e.inbox, "glob": "*.arrow", "settle": "10ms", "poll": "5ms"},
	}, nil)
	d := startInproc(t, cfg, testRegistry(), daemon.WithAllocator(mem))

	good := bodies(t, 1)[0]
	if code, _ := post(t, d.addr+"/v1/ingest", "text/csv", good); code != http.StatusUnsupportedMediaType {
		t.Errorf("wrong content type: %d; want 415", code)
	}
	if code, _ := post(t, d.addr+"/v1/ingest", arrowStream, bytes.Repeat(good, 4)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d; want 413", code)
	}
	if code, _ := post(t, d.addr+"/v1/ingest", arrowStream, []byte("not arrow at all")); code != http.StatusBadRequest {
		t.Errorf("bad body: %d; want 400", code)
	}
	mismatch := wrongSchema(t)
	code, msg := post(t, d.addr+"/v1/ingest", arrowStream, mismatch)
	if code != http.StatusUnprocessableEntity || !strings.Contains(msg, "x3") {
		t.Errorf("schema mismatch: %d %q; want 422 naming column x3", code, msg)
	}
	if code, _ := post(t, d.addr+"/v1/ingest", arrowStream, good, "Idempotency-Key", "k1"); code != http.StatusAccepted {
		t.Errorf("good post: %d; want 202", code)
	}
	// a bad file, then a good one
	if err := os.WriteFile(filepath.Join(e.inbox, "a-bad.arrow"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, e.inbox, 1, 2, 50)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, metrics := get(t, d.addr+"/metrics")
		if strings.Contains(metrics, `penstock_ingest_rejected_total{reason="decode",source="files"} 1`) &&
			strings.Contains(metrics, `penstock_ingest_rows_total{source="files"} 100`) &&
			strings.Contains(metrics, `penstock_ingest_rows_total{source="http"} 500`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed the rejection and the rows:\n%s", grep(metrics, "penstock_ingest"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(e.inbox, "rejected", "a-bad.arrow")); err != nil {
		t.Errorf("bad file not in rejected/: %v", err)
	}
	if err := d.stop(t, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	l := loadLatest(t, e.ckpt)
	p, _ := l.Model.Pipeline()
	if n := countedRows(t, p); n != 600 {
		t.Errorf("rows fitted %d; want 600 (the good post and the good file)", n)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// wrongSchema is a body whose column x3 is an int64.
func wrongSchema(t *testing.T) []byte {
	t.Helper()
	sc := fields()
	fs := sc.Fields()
	fs[3].Type = arrow.PrimitiveTypes.Int64
	sc = arrow.NewSchema(fs, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for i := range fs {
		switch fb := b.Field(i).(type) {
		case *array.Float32Builder:
			fb.Append(1)
		case *array.Int64Builder:
			fb.Append(1)
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sc))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

// Drain: with 50 posts and predictions in flight, a stop answers every
// started prediction, and every acknowledged post is in the final
// checkpoint.
// Both engines.
func TestDrain(t *testing.T) {
	for _, engine := range []string{"sequential", "streaming"} {
		t.Run(engine, func(t *testing.T) { drainTest(t, engine) })
	}
}

func drainTest(t *testing.T, engine string) {
	defer verifyNoLeaks(t)
	e := newEnv(t)
	cfg := e.config(t, []map[string]any{{"name": "http", "type": "http", "wal_dir": e.wal}},
		map[string]any{"publish_every": "20ms", "engine": engine})
	batchDelay = 2 * time.Millisecond
	defer func() { batchDelay = 0 }()
	d := startInproc(t, cfg, testRegistry())
	bs := bodies(t, 50)

	var acked atomic.Int64
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, d.addr+"/v1/ingest", bytes.NewReader(b))
			req.Header.Set("Content-Type", arrowStream)
			req.Header.Set("Idempotency-Key", strconv.Itoa(i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return // refused once the server has shut down
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				acked.Add(1)
			}
		}()
	}
	predict := predictBody(t)
	stopPredicting := make(chan struct{})
	var answered, started, ok atomic.Int64
	var pwg sync.WaitGroup
	for range 4 {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for {
				select {
				case <-stopPredicting:
					return
				default:
				}
				started.Add(1)
				resp, err := http.Post(d.addr+"/v1/predict", arrowStream, bytes.NewReader(predict))
				if err != nil {
					t.Errorf("a started prediction got no answer: %v", err)
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusServiceUnavailable: // no model fitted yet
				default:
					t.Errorf("prediction: %d %s", resp.StatusCode, msg)
					return
				}
				answered.Add(1)
			}
		}()
	}
	// Posts in the log, batches in flight, and a model served: the first
	// version is published once something is fitted.
	for deadline := time.Now().Add(20 * time.Second); ok.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	close(stopPredicting)
	errc := make(chan error, 1)
	go func() { errc <- d.stop(t, 30*time.Second) }()
	pwg.Wait()
	wg.Wait()
	if err := <-errc; err != nil {
		t.Fatalf("drain: %v\n%s", err, tail(d.logs.String(), 20))
	}
	if started.Load() != answered.Load() || ok.Load() == 0 {
		t.Errorf("%d predictions started, %d answered, %d from a model", started.Load(), answered.Load(), ok.Load())
	}
	l := loadLatest(t, e.ckpt)
	p, _ := l.Model.Pipeline()
	if n, want := countedRows(t, p), 500*acked.Load(); n != want || acked.Load() == 0 {
		t.Errorf("final checkpoint fitted %d rows; want %d (every acknowledged post, %d)", n, want, acked.Load())
	}
	t.Logf("%d of 50 posts acknowledged, %d predictions (%d from a model)", acked.Load(), answered.Load(), ok.Load())
	if !strings.Contains(d.logs.String(), `"msg":"drain"`) || !strings.Contains(d.logs.String(), `"msg":"checkpoint"`) {
		t.Errorf("no drain or checkpoint log line:\n%s", tail(d.logs.String(), 10))
	}
}

// predictBody is one batch of inputs, without labels.
func predictBody(t testing.TB) []byte {
	t.Helper()
	recs := records(memory.DefaultAllocator, 99, 1, 16)
	defer recs[0].Release()
	in := recs[0].Schema().Fields()[:features]
	cols := recs[0].Columns()[:features]
	rec := array.NewRecordBatch(arrow.NewSchema(in, nil), cols, 16)
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

// hang blocks its Fit, ignoring ctx, once armed: a hung step.
type hang struct {
	rowCount
	armed   *atomic.Bool
	release chan struct{}
}

func (h *hang) Fit(ctx context.Context, b flow.Batch) error {
	if h.armed.Load() {
		<-h.release
	}
	return h.rowCount.Fit(ctx, b)
}

func (h *hang) Copy() flow.Step {
	return &hang{rowCount: h.rowCount, armed: h.armed, release: h.release}
}

// A hung step: the drain times out, Run stops hard with ErrHardStop, and
// the last good checkpoint still loads.
func TestDrainHungStep(t *testing.T) {
	defer verifyNoLeaks(t)
	e := newEnv(t)
	armed, release := &atomic.Bool{}, make(chan struct{})
	reg := testRegistry()
	if err := reg.Register(persist.Type{Name: "test.Hang", Version: 1, Of: (*hang)(nil),
		New: func(persist.Spec) (flow.Step, error) { return &hang{armed: armed, release: release}, nil }}); err != nil {
		t.Fatal(err)
	}
	p := newPipeline(t)
	nodes := append([]flow.Node{flow.Named("hang", &hang{armed: armed, release: release})}, p.Nodes()...)
	hp, err := flow.NewPipeline(nodes)
	if err != nil {
		t.Fatal(err)
	}
	if err := persist.SaveFile(e.pipeline, hp, persist.WithRegistry(reg)); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t, []map[string]any{{"name": "files", "type": "dir", "dir": e.inbox, "glob": "*.arrow", "settle": "10ms", "poll": "5ms"}},
		map[string]any{"drain_timeout": "300ms"})
	checkpointed := make(chan struct{}, 100)
	d := startInproc(t, cfg, reg, daemon.WithCheckpointed(func(ckpt.Info) { checkpointed <- struct{}{} }))
	writeFiles(t, e.inbox, 2, 2, 50)
	select {
	case <-checkpointed:
	case <-time.After(20 * time.Second):
		t.Fatal("no checkpoint")
	}
	armed.Store(true)
	more := t.TempDir()
	for _, f := range writeFiles(t, more, 1, 1, 10) {
		os.Rename(f, filepath.Join(e.inbox, "z-"+filepath.Base(f)))
	}
	time.Sleep(100 * time.Millisecond) // the step hangs on the new file
	start := time.Now()
	err = d.stop(t, 10*time.Second)
	if !errors.Is(err, daemon.ErrHardStop) {
		t.Fatalf("got %v; want ErrHardStop", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("hard stop took %v with a 300ms drain timeout", took)
	}
	close(release)
	store, err := ckpt.Open(e.ckpt, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Latest(persist.WithRegistry(reg)); err != nil {
		t.Fatalf("after a hard stop the last checkpoint does not load: %v", err)
	}
}

// A pipeline with a Joiner is refused at start, with an error naming the
// step.
func TestJoinerRefused(t *testing.T) {
	defer verifyNoLeaks(t)
	e := newEnv(t)
	nodes := newPipeline(t).Nodes()
	nodes[2] = nodes[2].WithOptions(flow.Barrier(barrier.Joiner))
	p, err := flow.NewPipeline(nodes)
	if err != nil {
		t.Fatal(err)
	}
	if err := persist.SaveFile(e.pipeline, p, persist.WithRegistry(testRegistry())); err != nil {
		t.Fatal(err)
	}
	cfg, err := daemon.LoadConfig(e.config(t, []map[string]any{{"name": "http", "type": "http", "wal_dir": e.wal}}, nil))
	if err != nil {
		t.Fatal(err)
	}
	err = daemon.Run(t.Context(), cfg, testRegistry(), daemon.WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil || !strings.Contains(err.Error(), "Joiner") || !strings.Contains(err.Error(), "scale") {
		t.Fatalf("got %v; want a refusal naming the Joiner and the step", err)
	}
}

// A Run whose context is done from the start drains at once: it returns
// nil, logs the cause, and leaves nothing behind; so does one cancelled
// while it starts.
func TestRunCancelledAtOnce(t *testing.T) {
	defer verifyNoLeaks(t)
	for _, delay := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond} {
		e := newEnv(t)
		cfg, err := daemon.LoadConfig(e.config(t, []map[string]any{
			{"name": "http", "type": "http", "wal_dir": e.wal},
			{"name": "files", "type": "dir", "dir": e.inbox, "glob": "*.arrow", "settle": "10ms", "poll": "5ms"},
		}, nil))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancelCause(t.Context())
		cause := errors.New("operator says stop")
		if delay == 0 {
			cancel(cause)
		} else {
			time.AfterFunc(delay, func() { cancel(cause) })
		}
		var logs srctest.LogBuffer
		done := make(chan error, 1)
		go func() {
			done <- daemon.Run(ctx, cfg, testRegistry(), daemon.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("delay %v: %v", delay, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("delay %v: Run did not return", delay)
		}
		if !strings.Contains(logs.String(), "operator says stop") {
			t.Errorf("delay %v: the drain's log does not name the cause:\n%s", delay, logs.String())
		}
		cancel(nil)
	}
}

// Two daemons on one checkpoint directory: the second is refused, naming
// the directory; once the first has stopped, a new one starts.
func TestOneDaemonPerDirectory(t *testing.T) {
	defer verifyNoLeaks(t)
	e := newEnv(t)
	cfgPath := e.config(t, []map[string]any{{"name": "http", "type": "http", "wal_dir": e.wal}}, nil)
	d := startInproc(t, cfgPath, testRegistry())
	cfg, err := daemon.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	err = daemon.Run(t.Context(), cfg, testRegistry(), daemon.WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil || !strings.Contains(err.Error(), "in use by another daemon") || !strings.Contains(err.Error(), e.ckpt) {
		t.Errorf("second daemon: %v; want a refusal naming %s", err, e.ckpt)
	}
	if err := d.stop(t, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	d = startInproc(t, cfgPath, testRegistry())
	if err := d.stop(t, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}
