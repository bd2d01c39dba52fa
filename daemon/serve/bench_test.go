package serve

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

// benchModel is the benchmark's model: 32 float32 inputs packed, a fitted
// standard scaler, and a step holding 100 KB of state that adds the
// version.
type benchModel struct {
	in     source.Schema
	cols   []string
	scaler *steps.StandardScaler
}

func newBenchModel(b *testing.B, rows int) (*benchModel, []byte) {
	b.Helper()
	const width = 32
	cols := make([]string, width)
	fields := make([]arrow.Field, width)
	for i := range cols {
		cols[i] = fmt.Sprintf("x%d", i)
		fields[i] = arrow.Field{Name: cols[i], Type: arrow.PrimitiveTypes.Float32}
	}
	schema := arrow.NewSchema(fields, nil)
	mem := memory.NewGoAllocator()
	rng := rand.New(rand.NewPCG(1, 2))
	bld := array.NewRecordBuilder(mem, schema)
	defer bld.Release()
	for c := range width {
		fb := bld.Field(c).(*array.Float32Builder)
		for range rows {
			fb.Append(rng.Float32()*10 - 5)
		}
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()

	scaler, err := steps.NewStandardScaler()
	if err != nil {
		b.Fatal(err)
	}
	fit, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: cols}),
		flow.Named("scale", scaler),
	})
	if err != nil {
		b.Fatal(err)
	}
	rec.Retain()
	batch := flow.Batch{X: rec}
	if err := fit.Fit(b.Context(), batch); err != nil {
		b.Fatal(err)
	}
	batch.Release()
	var body bytes.Buffer
	if err := writeIPC(&body, rec); err != nil {
		b.Fatal(err)
	}
	return &benchModel{in: source.Schema{Fields: schema, Inputs: cols}, cols: cols, scaler: scaler}, body.Bytes()
}

// version is a fresh pipeline of the model, as the daemon publishes at a
// cut: a copy of the fitted steps.
func (m *benchModel) version(b *testing.B, v int64) *flow.Pipeline {
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: m.cols}),
		flow.Named("scale", m.scaler.Copy()),
		flow.Named("add", newAddStep(nil, v, 25_000)),
	})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func p99(lat []time.Duration) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	i := (len(lat)*99+99)/100 - 1
	return lat[i]
}

// BenchmarkPredictDuringSwap measures the p99 latency of prediction
// requests (64 rows of 32 float32, Arrow IPC, 8 concurrent clients over
// loopback HTTP) with a new version published every 100 ms, and with none,
// in 20 alternating rounds of the same run. It reports p99-ratio (the p99
// of all requests with swaps over that of all without; target ≤ 1.25),
// both p99s in µs, the swaps made, and p99-ratio-median-round, the median
// over the rounds of each round's ratio (robust to a burst of load from
// elsewhere on a shared machine). b.N is the number of requests of each
// kind; for a figure with many swaps, run with -benchtime=40000x or more.
func BenchmarkPredictDuringSwap(b *testing.B) {
	const (
		clients = 8
		rounds  = 20
		every   = 100 * time.Millisecond
	)
	model, body := newBenchModel(b, 64)
	m := NewModels(ModelOptions{Log: quiet})
	defer m.Close()
	srv := httptest.NewServer(NewPredictor(m, model.in, PredictOptions{Log: quiet}))
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxIdleConns: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ctx := b.Context()
	version := int64(1)
	if err := m.Publish(model.version(b, version), version); err != nil {
		b.Fatal(err)
	}
	// Warm the connections and the pool.
	for range clients * 4 {
		if r, err := post(ctx, client, srv.URL, ContentTypeIPC, body); err != nil || r.code != 200 {
			b.Fatalf("warm-up: %v %d %s", err, r.code, r.body)
		}
	}

	// phase runs n requests over the clients and returns their latencies.
	phase := func(n int) []time.Duration {
		lat := make([][]time.Duration, clients)
		var wg sync.WaitGroup
		for c := range clients {
			k := n / clients
			if c < n%clients {
				k++
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				own := make([]time.Duration, 0, k)
				for range k {
					start := time.Now()
					r, err := post(ctx, client, srv.URL, ContentTypeIPC, body)
					d := time.Since(start)
					if err != nil || r.code != http.StatusOK {
						b.Errorf("predict: %v %d %s", err, r.code, r.body)
						return
					}
					own = append(own, d)
				}
				lat[c] = own
			}()
		}
		wg.Wait()
		var all []time.Duration
		for _, l := range lat {
			all = append(all, l...)
		}
		return all
	}

	var none, swapped []time.Duration
	var ratios []float64 // per round: p99 with swaps over p99 without
	swaps := 0
	b.ReportAllocs()
	b.ResetTimer()
	for r := range rounds {
		n := b.N / rounds
		if r < b.N%rounds {
			n++
		}
		quiet := phase(n)
		none = append(none, quiet...)

		stop := make(chan struct{})
		done := make(chan int)
		go func() {
			t := time.NewTicker(every)
			defer t.Stop()
			made := 0
			for {
				select {
				case <-stop:
					done <- made
					return
				case <-t.C:
					version++
					if err := m.PublishContext(ctx, model.version(b, version), version); err != nil {
						b.Error(err)
					}
					made++
				}
			}
		}()
		busy := phase(n)
		swapped = append(swapped, busy...)
		close(stop)
		swaps += <-done
		if q := p99(quiet); q > 0 {
			ratios = append(ratios, float64(p99(busy))/float64(q))
		}
	}
	b.StopTimer()
	pn, ps := p99(none), p99(swapped)
	if pn > 0 {
		b.ReportMetric(float64(ps)/float64(pn), "p99-ratio")
	}
	b.ReportMetric(float64(pn)/1e3, "p99-none-µs")
	b.ReportMetric(float64(ps)/1e3, "p99-swap-µs")
	b.ReportMetric(float64(swaps), "swaps")
	if len(ratios) > 0 {
		slices.Sort(ratios)
		b.ReportMetric(ratios[len(ratios)/2], "p99-ratio-median-round")
	}
}
