package daemon_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Soak: posts and predictions for 30 s (PENSTOCK_SOAK=10m for longer),
// with checkpoints and swaps every 100 ms: the live heap of the quiet
// daemon (clients paused, what it took fitted) after a collection stays
// flat, within 10 % of what it was early on.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	d := 30 * time.Second
	if v, err := time.ParseDuration(os.Getenv("PENSTOCK_SOAK")); err == nil {
		d = v
	}
	defer verifyNoLeaks(t)
	e := newEnv(t)
	cfg := e.config(t, []map[string]any{{"name": "http", "type": "http", "wal_dir": e.wal}},
		map[string]any{"publish_every": "100ms", "checkpoint": map[string]any{"dir": e.ckpt, "every": "100ms", "keep": 3}})
	dm := startInproc(t, cfg, testRegistry())
	bs := bodies(t, 16)
	predict := predictBody(t)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var pause sync.RWMutex // the sampler pauses the clients to measure a quiet daemon
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				url, body := dm.addr+"/v1/predict", predict
				if w == 0 {
					url, body = dm.addr+"/v1/ingest", bs[i%len(bs)]
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", arrowStream)
				pause.RLock()
				resp, err := client.Do(req)
				pause.RUnlock()
				if err != nil {
					continue
				}
				resp.Body.Close()
				if w == 0 && resp.StatusCode == http.StatusServiceUnavailable {
					time.Sleep(10 * time.Millisecond) // the log is full: back off
				}
			}
		}()
	}
	var samples []uint64
	start := time.Now()
	for time.Since(start) < d {
		time.Sleep(d / 20)
		pause.Lock()
		time.Sleep(300 * time.Millisecond) // the daemon fits what it took, checkpoints, swaps
		samples = append(samples, liveHeap())
		pause.Unlock()
	}
	cancel()
	wg.Wait()
	client.CloseIdleConnections()
	if err := dm.stop(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(samples) < 6 {
		t.Skipf("a soak of %v takes %d samples; it needs 6 (PENSTOCK_SOAK ≥ 5s)", d, len(samples))
	}
	early := median(samples[3:6]) // after the warm-up
	late := median(samples[len(samples)-3:])
	t.Logf("live heap: early %d KiB, late %d KiB (samples %v)", early>>10, late>>10, kib(samples))
	if float64(late) > 1.1*float64(early) {
		t.Errorf("live heap grew from %d KiB to %d KiB (more than 10 %%)", early>>10, late>>10)
	}
}

func median(v []uint64) uint64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func kib(v []uint64) []uint64 {
	out := make([]uint64, len(v))
	for i, x := range v {
		out[i] = x >> 10
	}
	return out
}
