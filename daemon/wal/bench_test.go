package wal

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// BenchmarkIngestHTTP: 64-row bodies (32 float32 columns and an int64
// label, about 9 kB of IPC) posted by 32 concurrent clients over loopback,
// each with an Idempotency-Key, to the log (appended, group commit, 202
// after the fsync; Run reads them as the daemon would, with the daemon's
// default allocator, a minibatch.Pool, and releases the batches) and, in the same run, to a handler that reads and discards the
// body. x-vs-bare-http is the log's posts/s over the bare handler's
// (target ≥ 0.6); posts/fsync is the size of the groups; cpu-µs/post and
// bare-cpu-µs/post the process's CPU time per post (clients included).
func BenchmarkIngestHTTP(b *testing.B) {
	const clients = 32
	sc := testSchema(32)
	payload := body(b, sc.Fields, 1, 64)

	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer bare.Close()

	l, err := Open(Options{Dir: b.TempDir(), Schema: sc, Alloc: minibatch.NewPool(), Log: slog.New(slog.DiscardHandler),
		Reporter: source.LogReporter{Log: slog.New(slog.DiscardHandler)}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler())
	ctx, cancel := context.WithCancel(b.Context())
	out := make(chan source.Input, 64)
	drain := make(chan struct{})
	runDone := make(chan error, 1)
	go func() { runDone <- l.Run(ctx, nil, drain, out) }()
	var consumed sync.WaitGroup
	consumed.Go(func() {
		for in := range out {
			in.Batch.Release()
		}
	})
	defer func() {
		srv.Close()
		close(drain)
		if err := <-runDone; err != nil {
			b.Errorf("Run: %v", err)
		}
		cancel()
		close(out)
		consumed.Wait()
		if err := l.Close(); err != nil {
			b.Error(err)
		}
	}()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	var keys atomic.Int64
	postAll := func(url string, n int) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range clients {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
					req.Header.Set("Content-Type", ContentType)
					req.Header.Set(KeyHeader, "post-"+strconv.FormatInt(keys.Add(1), 10))
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						b.Errorf("status %d; want 202", resp.StatusCode)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	postAll(bare.URL, 2*clients) // connections up
	postAll(srv.URL+Path, 2*clients)
	before, syncBefore, fastBefore := l.Stats(), l.syncNanos.Load(), l.fastPosts.Load()

	b.ReportAllocs()
	b.ResetTimer()
	// Alternate rounds of both, so that a change in the machine's load
	// during the run weighs on both alike.
	var tBare, tLog, cBare, cLog time.Duration
	for done := 0; done < b.N; {
		n := min(b.N-done, max(b.N/4, 1))
		c0 := cpuTime()
		tBare += postAll(bare.URL, n)
		c1 := cpuTime()
		tLog += postAll(srv.URL+Path, n)
		c2 := cpuTime()
		cBare, cLog = cBare+c1-c0, cLog+c2-c1
		done += n
	}
	b.StopTimer()

	after := l.Stats()
	b.ReportMetric(tBare.Seconds()/tLog.Seconds(), "x-vs-bare-http")
	b.ReportMetric(float64(b.N)/tLog.Seconds(), "posts/s")
	b.ReportMetric(float64(b.N)/tBare.Seconds(), "bare-posts/s")
	if cLog > 0 { // CPU per post, clients included: how much of the gap is work rather than waiting
		b.ReportMetric(float64(cBare.Microseconds())/float64(b.N), "bare-cpu-µs/post")
		b.ReportMetric(float64(cLog.Microseconds())/float64(b.N), "cpu-µs/post")
	}
	if n := after.Records - before.Records; n > 0 {
		b.ReportMetric(float64(l.fastPosts.Load()-fastBefore)/float64(n), "fast-share")
	}
	if f := after.Fsyncs - before.Fsyncs; f > 0 {
		b.ReportMetric(float64(after.Records-before.Records)/float64(f), "posts/fsync")
		// wall time of one group's write and fsync, and the share of the
		// log's rounds that the writer spent in them
		b.ReportMetric(float64(l.syncNanos.Load()-syncBefore)/1e3/float64(f), "fsync-µs")
		b.ReportMetric(float64(l.syncNanos.Load()-syncBefore)/float64(tLog.Nanoseconds()), "fsync-busy")
	}
}

// BenchmarkDecodePost: the decode and validation of one post's body (the
// same 64-row body): the part of a post's CPU that a discarding handler
// does not spend. full is minibatch's IPC reader (a post whose schema
// message the log has not seen), fast the fast path (check and build),
// check the handler's part of the fast path (Run builds the batches).
func BenchmarkDecodePost(b *testing.B) {
	sc := testSchema(32)
	payload := body(b, sc.Fields, 1, 64)
	o, err := Options{Dir: "unused", Schema: sc, Alloc: memory.NewGoAllocator()}.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	d := newDecoder(&o)
	release := func(_ int, bt flow.Batch) error { bt.Release(); return nil }
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"full", func() error { return d.decodeFull(b.Context(), payload, release) }},
		{"fast", func() error { return d.decode(b.Context(), payload, release) }},
		{"check", func() error {
			if _, ok := d.checkFast(payload); !ok {
				return errNotFast
			}
			return nil
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/post")
		})
	}
}
