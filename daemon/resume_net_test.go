package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// bodies makes n IPC stream bodies of 5 batches of 100 rows.
func bodies(t testing.TB, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		recs := records(memory.DefaultAllocator, uint64(1000+i), 5, 100)
		out[i] = ipcStream(t, recs)
		for _, r := range recs {
			r.Release()
		}
	}
	return out
}

// referenceFitBodies fits a fresh pipeline on the bodies, in order.
func referenceFitBodies(t testing.TB, bs [][]byte) *flow.Pipeline {
	t.Helper()
	p := newPipeline(t)
	var srcs []flow.Source
	for _, b := range bs {
		s, err := minibatch.NewIPCStream(bytes.NewReader(b), minibatch.WithInputs(featureNames()...), minibatch.WithLabels("label"))
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, s)
	}
	if _, err := (flow.Runner{}).Fit(t.Context(), p, &chain{srcs: srcs}); err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitFitted waits until the newest checkpoint has fitted batches batches.
func waitFitted(t testing.TB, c *child, dir string, batches int64) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if fittedBatches(dir) >= batches {
			return
		}
		if time.Now().After(deadline) {
			c.kill(t)
			t.Fatalf("never checkpointed %d batches\n%s", batches, tail(c.logs(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killLoop restarts the daemon 10 times, killing it at seeded random
// moments, then starts it once more and returns that run.
func killLoop(t *testing.T, cfg, ckptDir string, seed uint64, env ...string) *child {
	rng := rand.New(rand.NewPCG(seed, 0))
	for k := range 10 {
		c := startChild(t, cfg, env...)
		select {
		case <-c.addr:
		case err := <-c.done:
			t.Fatalf("run %d exited early: %v\n%s", k, err, tail(c.logs(), 30))
		case <-time.After(30 * time.Second):
			t.Fatal("child did not start")
		}
		time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond)
		c.kill(t)
		t.Logf("run %d killed; the newest checkpoint has %d batches", k, fittedBatches(ckptDir))
	}
	return startChild(t, cfg)
}

// Exact resume over HTTP: a client posts 200 bodies with idempotency keys
// and re-posts each unanswered one with its key while the daemon is killed
// and restarted; the final fit equals the uninterrupted fit of the bodies
// in order, every row fitted once.
func TestKillResumeHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes")
	}
	e := newEnv(t)
	bs := bodies(t, 200)
	want := referenceFitBodies(t, bs)
	addr := freePort(t)
	cfg := e.config(t, []map[string]any{{"name": "http", "type": "http", "wal_dir": e.wal}}, map[string]any{"address": addr})

	posted := make(chan error, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	go func() { posted <- postAll(ctx, "http://"+addr+"/v1/ingest", bs) }()
	c := killLoop(t, cfg, e.ckpt, 7, "PENSTOCK_BATCH_DELAY=1ms")
	if err := <-posted; err != nil {
		c.kill(t)
		t.Fatal(err)
	}
	waitFitted(t, c, e.ckpt, 1000)
	c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.wait(t, 30*time.Second); err != nil {
		t.Fatalf("drain: %v\n%s", err, tail(c.logs(), 30))
	}
	checkFinal(t, e.ckpt, want)
}

// postAll posts each body until it is acknowledged (202), with its key,
// retrying through connection errors and 503s.
func postAll(ctx context.Context, url string, bs [][]byte) error {
	client := &http.Client{Timeout: 5 * time.Second}
	for i, b := range bs {
		for {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("post %d never acknowledged: %w", i, err)
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/vnd.apache.arrow.stream")
			req.Header.Set("Idempotency-Key", "post-"+strconv.Itoa(i))
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					break
				}
				if resp.StatusCode != http.StatusServiceUnavailable {
					return fmt.Errorf("post %d: status %d", i, resp.StatusCode)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

func checkFinal(t *testing.T, dir string, want *flow.Pipeline) {
	t.Helper()
	got := loadLatest(t, dir)
	p, err := got.Model.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	if n := countedRows(t, p); n != 100_000 {
		t.Errorf("rows fitted %d; want exactly 100000", n)
	}
	if string(marshalModel(t, p)) != string(marshalModel(t, want)) {
		t.Error("the resumed fit's parameters differ from the uninterrupted fit's")
	}
}

// natsServer starts an embedded NATS server with JetStream.
func natsServer(t testing.TB) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// Exact resume over JetStream: 200 messages in a stream, the daemon killed
// 10 times; the final fit equals the uninterrupted one.
func TestKillResumeJetStream(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes")
	}
	ns := natsServer(t)
	e := newEnv(t)
	bs := bodies(t, 200)
	want := referenceFitBodies(t, bs)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TRAIN", Subjects: []string{"train"}}); err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if _, err := js.Publish(ctx, "train", b); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.config(t, []map[string]any{{"name": "bus", "type": "nats", "url": ns.ClientURL(), "stream": "TRAIN", "subject": "train"}}, nil)
	c := killLoop(t, cfg, e.ckpt, 11, "PENSTOCK_BATCH_DELAY=1ms")
	waitFitted(t, c, e.ckpt, 1000)
	c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.wait(t, 30*time.Second); err != nil {
		t.Fatalf("drain: %v\n%s", err, tail(c.logs(), 30))
	}
	checkFinal(t, e.ckpt, want)
}
