package daemon_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/daemon"
	"github.com/penstock-ml/penstock/daemon/ckpt"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
)

// doneSignal closes done once it has been fitted on target rows: how a
// benchmark knows that the daemon has fitted everything.
type doneSignal struct {
	rowCount
	target int64
	done   chan struct{}
	closed atomic.Bool
}

func (s *doneSignal) Fit(ctx context.Context, b flow.Batch) error {
	s.rowCount.Fit(ctx, b)
	if s.n >= s.target && s.closed.CompareAndSwap(false, true) {
		close(s.done)
	}
	return nil
}

func (s *doneSignal) Copy() flow.Step { return &rowCount{n: s.n} }

// ballast is 1 MB of state that every batch touches: the model that
// BenchmarkCheckpointOverhead checkpoints.
type ballast struct{ w []float32 }

func (b *ballast) Fit(_ context.Context, in flow.Batch) error {
	for i := 0; i < len(b.w); i += 4096 {
		b.w[i] += float32(in.Rows())
	}
	return nil
}

func (b *ballast) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

func (b *ballast) Copy() flow.Step { return &ballast{w: append([]float32(nil), b.w...)} }

func (b *ballast) MarshalState(w *persist.StateWriter) error {
	w.Float32s("w", b.w)
	return w.Err()
}

func (b *ballast) UnmarshalState(r *persist.StateReader) error {
	w, err := r.Float32s("w")
	b.w = w
	return err
}

// benchEnv saves a pipeline of signal (and, with heavy, ballast) before
// the test pipeline's steps, in a registry that rebuilds them.
func benchEnv(b *testing.B, target int64, heavy bool) (testEnv, *persist.Registry, chan struct{}) {
	e := newEnv(b)
	done := make(chan struct{})
	reg := testRegistry()
	must(b, reg.Register(persist.Type{Name: "test.Signal", Version: 1, Of: (*doneSignal)(nil),
		New: func(persist.Spec) (flow.Step, error) { return &doneSignal{target: target, done: done}, nil }}))
	must(b, reg.Register(persist.Type{Name: "test.Ballast", Version: 1, Of: (*ballast)(nil),
		New: func(persist.Spec) (flow.Step, error) { return &ballast{}, nil }}))
	nodes := []flow.Node{flow.Named("signal", &doneSignal{target: target, done: done})}
	if heavy {
		nodes = append(nodes, flow.Named("ballast", &ballast{w: make([]float32, 1<<18)}))
	}
	p, err := flow.NewPipeline(append(nodes, newPipeline(b).Nodes()...))
	must(b, err)
	must(b, persist.SaveFile(e.pipeline, p, persist.WithRegistry(reg)))
	return e, reg, done
}

func must(b testing.TB, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// runToDone runs the daemon until signal has seen every row, then drains
// it; it returns the time to the last row.
func runToDone(b *testing.B, cfgPath string, reg *persist.Registry, done chan struct{}, opts ...daemon.Option) time.Duration {
	cfg, err := daemon.LoadConfig(cfgPath)
	must(b, err)
	ctx, cancel := context.WithCancelCause(context.Background())
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		errc <- daemon.Run(ctx, cfg, reg, append(opts, daemon.WithLogger(slog.New(slog.DiscardHandler)))...)
	}()
	select {
	case <-done:
	case err := <-errc:
		b.Fatalf("daemon: %v", err)
	case <-time.After(5 * time.Minute):
		b.Fatal("the daemon never fitted every row")
	}
	took := time.Since(start)
	cancel(errors.New("done"))
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return took
}

// BenchmarkIngestDir: rows per second that the daemon fits from a
// directory of IPC files, against the same files through Runner.Fit
// (x-vs-library, target ≥ 0.9).
func BenchmarkIngestDir(b *testing.B) {
	const files, batches, rows = 40, 10, 1000
	var lib, own time.Duration
	for b.Loop() {
		b.StopTimer()
		e, reg, done := benchEnv(b, files*batches*rows, false)
		paths := writeFiles(b, e.inbox, files, batches, rows)
		b.StartTimer()
		start := time.Now()
		referenceFit(b, paths)
		lib += time.Since(start)
		cfg := e.config(b, []map[string]any{{"name": "files", "type": "dir", "dir": e.inbox, "glob": "*.arrow", "settle": "-1s", "poll": "1ms"}},
			map[string]any{"checkpoint": map[string]any{"dir": e.ckpt, "every": "1h"}})
		own += runToDone(b, cfg, reg, done)
	}
	b.ReportMetric(float64(files*batches*rows*b.N)/own.Seconds(), "rows/s")
	b.ReportMetric(lib.Seconds()/own.Seconds(), "x-vs-library")
}

// BenchmarkCheckpointOverhead: rows per second with a 1 MB model
// checkpointed every 250 ms (every 5 s with PENSTOCK_BENCH_LONG=1, on a
// longer stream) against no checkpoint until the end (x-vs-none, target
// ≥ 0.95 at 5 s; 250 ms is twenty times harsher).
func BenchmarkCheckpointOverhead(b *testing.B) {
	files, every := 40, "250ms"
	if os.Getenv("PENSTOCK_BENCH_LONG") != "" {
		files, every = 400, "5s"
	}
	const batches, rows = 10, 1000
	var none, own time.Duration
	var saves atomic.Int64
	count := daemon.WithCheckpointed(func(ckpt.Info) { saves.Add(1) })
	for b.Loop() {
		for _, arm := range []string{"1h", every} {
			b.StopTimer()
			e, reg, done := benchEnv(b, int64(files*batches*rows), true)
			writeFiles(b, e.inbox, files, batches, rows)
			cfg := e.config(b, []map[string]any{{"name": "files", "type": "dir", "dir": e.inbox, "glob": "*.arrow", "settle": "-1s", "poll": "1ms"}},
				map[string]any{"checkpoint": map[string]any{"dir": e.ckpt, "every": arm}})
			b.StartTimer()
			if arm == "1h" {
				none += runToDone(b, cfg, reg, done)
				continue
			}
			before := saves.Load()
			own += runToDone(b, cfg, reg, done, count)
			if saves.Load()-before < 2 {
				b.Logf("only %d checkpoints while fitting (the final one included)", saves.Load()-before)
			}
		}
	}
	b.ReportMetric(float64(files*batches*rows*b.N)/own.Seconds(), "rows/s")
	b.ReportMetric(none.Seconds()/own.Seconds(), "x-vs-none")
	b.ReportMetric(float64(saves.Load())/float64(b.N), "checkpoints/op")
}
