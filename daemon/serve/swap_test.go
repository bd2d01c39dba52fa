package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// jsonValues reads every number of the "x" arrays of a JSON rows answer.
func jsonValues(body []byte) ([]float32, error) {
	var rows []struct{ X []float32 }
	if err := json.Unmarshal(body, &rows); err != nil {
		return nil, err
	}
	var out []float32
	for _, r := range rows {
		if len(r.X) != 2 {
			return nil, fmt.Errorf("row %v: want 2 values", r.X)
		}
		out = append(out, r.X...)
	}
	return out, nil
}

// 8 clients predict, alternately in IPC and JSON, through 200 swaps: every
// answer comes from one whole version (every value is its version, the
// header's), never older than one the client saw before, nor than the one
// current when the request was sent; every version is torn down once,
// after its last request.
func TestHotSwap(t *testing.T) {
	ctx := deadline(t)
	const (
		clients = 8
		swaps   = 200
		rows    = 4
	)
	tr := &tracker{}
	m := NewModels(ModelOptions{Log: quiet})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	met := NewMetrics()
	srv := httptest.NewServer(NewPredictor(m, inSchema, PredictOptions{Alloc: mem, Log: quiet, Metrics: met}))
	if err := m.Publish(newPipe(t, tr, 1, 64), 1); err != nil {
		t.Fatal(err)
	}
	ipcZeros := ipcBody(t, inSchema.Fields, 1, rows, 0)
	jsonZeros := []byte("[" + strings.TrimSuffix(strings.Repeat(`{"x0":0,"x1":0},`, rows), ",") + "]")

	var (
		maxSeen  atomic.Int64 // the newest version any client saw
		answers  atomic.Int64
		done     = make(chan struct{})
		wg       sync.WaitGroup
		mu       sync.Mutex
		versions = map[int64]int{} // answers per version
	)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := int64(0)
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				case <-ctx.Done():
					t.Errorf("client %d: %v", c, context.Cause(ctx))
					return
				default:
				}
				current := m.Version()
				ctype, body := ContentTypeIPC, ipcZeros
				if (i+c)%2 == 1 {
					ctype, body = ContentTypeJSON, jsonZeros
				}
				r, err := post(ctx, srv.Client(), srv.URL, ctype, body)
				if err != nil {
					t.Errorf("client %d request %d: %v", c, i, err)
					return
				}
				if r.code != http.StatusOK {
					t.Errorf("client %d request %d: %d %s", c, i, r.code, r.body)
					return
				}
				var vals []float32
				if ctype == ContentTypeIPC {
					vals, err = tensorValues(r.body)
				} else {
					vals, err = jsonValues(r.body)
				}
				if err != nil {
					t.Errorf("client %d request %d (%s): %v", c, i, ctype, err)
					return
				}
				if len(vals) != 2*rows {
					t.Errorf("client %d request %d: %d values; want %d", c, i, len(vals), 2*rows)
					return
				}
				for j, v := range vals {
					if v != float32(r.version) {
						t.Errorf("client %d request %d: value %d is %v, header says version %d: not one whole version (%v)", c, i, j, v, r.version, vals)
						return
					}
				}
				if r.version < last {
					t.Errorf("client %d request %d: version %d after version %d", c, i, r.version, last)
					return
				}
				if r.version < current {
					t.Errorf("client %d request %d: version %d, older than %d, current when it was sent", c, i, r.version, current)
					return
				}
				last = r.version
				for {
					s := maxSeen.Load()
					if r.version <= s || maxSeen.CompareAndSwap(s, r.version) {
						break
					}
				}
				answers.Add(1)
				mu.Lock()
				versions[r.version]++
				mu.Unlock()
			}
		}()
	}
	for v := int64(2); v <= swaps+1; v++ {
		if err := m.Publish(newPipe(t, tr, v, 64), v); err != nil {
			t.Fatal(err)
		}
		// Wait until some client has seen v, so that swaps and requests
		// interleave.
		for maxSeen.Load() < v && ctx.Err() == nil && !t.Failed() {
			runtime.Gosched()
		}
		if t.Failed() || ctx.Err() != nil {
			break
		}
	}
	close(done)
	wg.Wait()
	srv.Close()
	closeWithin(t, ctx, m)
	mem.AssertSize(t, 0)
	tr.check(t)
	if len(versions) < swaps {
		t.Errorf("answers came from %d versions; want every one of the %d published after the first", len(versions), swaps)
	}
	for v := int64(1); v <= swaps+1; v++ {
		values, downs := tr.teardowns(float32(v))
		if values < 1 || downs != values {
			t.Errorf("version %d: %d step values, %d teardowns; want each value torn down once", v, values, downs)
		}
	}
	if got := testutil.ToFloat64(met.predictRequests.WithLabelValues("200")); got != float64(answers.Load()) {
		t.Errorf("penstock_predict_requests_total{code=\"200\"} = %v; want %d, the answers", got, answers.Load())
	}
	t.Logf("%d answers from %d versions", answers.Load(), len(versions))
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Memory does not grow with swaps: the heap after 1000 is within 10 % of
// the heap after 10, each version holding 100 KB of state (a version never
// dropped would add 99 MB).
func TestSwapMemory(t *testing.T) {
	ctx := deadline(t)
	const stateFloats = 25_000 // 100 KB
	m := NewModels(ModelOptions{Pool: 2, Log: quiet})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer closeWithin(t, ctx, m)
	h := NewPredictor(m, inSchema, PredictOptions{Alloc: mem, Log: quiet})
	body := ipcBody(t, inSchema.Fields, 1, 8, 0)
	predict := func(v int64) {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/predict", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", ContentTypeIPC)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK || w.Header().Get(VersionHeader) != fmt.Sprint(v) {
			t.Fatalf("version %d: %d %s %s", v, w.Code, w.Header().Get(VersionHeader), w.Body)
		}
	}
	swap := func(v int64) {
		held, err := m.Acquire() // a request in flight across the swap
		if err != nil && v > 1 {
			t.Fatal(err)
		}
		if err := m.Publish(newPipe(t, nil, v, stateFloats), v); err != nil {
			t.Fatal(err)
		}
		predict(v)
		if held != nil {
			held.Release(ctx)
		}
	}
	v := int64(1)
	for ; v <= 10; v++ {
		swap(v)
	}
	after10 := liveHeap()
	for ; v <= 1000; v++ {
		swap(v)
	}
	after1000 := liveHeap()
	t.Logf("live heap after 10 swaps %d B, after 1000 %d B (%+.1f %%)", after10, after1000, 100*(float64(after1000)/float64(after10)-1))
	if float64(after1000) > 1.10*float64(after10) {
		t.Fatalf("live heap after 1000 swaps %d B; want within 10 %% of %d B, after 10", after1000, after10)
	}
}
