package serve

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// everySeries calls every method once, so that every metric has a series.
func everySeries(m *Metrics) {
	m.Rejected("http", source.ReasonSchema, errors.New("column x"))
	m.IngestRows("http", 64)
	m.FittedBatches(1)
	m.StageBusy(flow.Stats{Elapsed: time.Second, Stages: []flow.StageStats{
		{Source: true, Replicas: 1, Busy: 100 * time.Millisecond},
		{Path: flow.Path{"scale"}, Replicas: 2, Busy: 200 * time.Millisecond},
	}})
	m.CheckpointDone(nil, 20*time.Millisecond)
	m.ModelVersion(3)
	m.Predicted(200, time.Millisecond)
}

func TestMetricsLint(t *testing.T) {
	m := NewMetrics()
	m.Log = quiet
	everySeries(m)
	problems, err := testutil.GatherAndLint(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// The lint finds what it should: a counter without _total.
	bad := prometheus.NewRegistry()
	bad.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "penstock_rows", Help: "Rows."}))
	if problems, err := testutil.GatherAndLint(bad); err != nil || len(problems) == 0 {
		t.Errorf("lint of a counter named penstock_rows: %v, %v; want a problem", problems, err)
	}
	// The registry is our own, with the three collectors.
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{
		"go_goroutines", "process_start_time_seconds", "go_build_info",
		"penstock_stage_busy_seconds_total", "penstock_ingest_rows_total", "penstock_ingest_rejected_total",
		"penstock_checkpoint_last_success_timestamp_seconds", "penstock_checkpoint_duration_seconds",
		"penstock_checkpoints_total", "penstock_model_version", "penstock_model_publishes_total",
		"penstock_predict_duration_seconds", "penstock_predict_requests_total",
		"penstock_predict_in_flight_requests", "penstock_fitted_batches_total",
	} {
		if !names[want] {
			t.Errorf("metric %s not gathered", want)
		}
	}
}

func TestMetricsMethods(t *testing.T) {
	m := NewMetrics()
	var logs bytes.Buffer
	m.Log = newTextLog(&logs)

	m.Rejected("http", source.ReasonTooBig, errors.New("body over 8 MiB"))
	m.Rejected("http", source.ReasonTooBig, errors.New("body over 8 MiB"))
	m.Rejected("dir", source.ReasonDecode, errors.New("a.arrow: bad magic"))
	for _, tc := range []struct {
		src    string
		reason source.Reason
		want   float64
	}{{"http", source.ReasonTooBig, 2}, {"dir", source.ReasonDecode, 1}, {"http", source.ReasonDecode, 0}} {
		if got := testutil.ToFloat64(m.ingestRejected.WithLabelValues(tc.src, string(tc.reason))); got != tc.want {
			t.Errorf("penstock_ingest_rejected_total{source=%q,reason=%q} = %v; want %v", tc.src, tc.reason, got, tc.want)
		}
	}
	if n := strings.Count(logs.String(), "\n"); n != 3 || !contains(logs.String(), "source=dir", "reason=decode", "bad magic") {
		t.Errorf("%d log lines %q; want 3, one per rejection, with source, reason and error", n, logs.String())
	}

	m.IngestRows("http", 64)
	m.IngestRows("http", 36)
	m.IngestRows("http", 0)
	if got := testutil.ToFloat64(m.ingestRows.WithLabelValues("http")); got != 100 {
		t.Errorf("penstock_ingest_rows_total{source=\"http\"} = %v; want 100", got)
	}

	m.FittedBatches(3)
	m.FittedBatches(4)
	if got := testutil.ToFloat64(m.fittedBatches); got != 7 {
		t.Errorf("penstock_fitted_batches_total = %v; want 7", got)
	}

	before := time.Now()
	m.CheckpointDone(nil, 40*time.Millisecond)
	ts := testutil.ToFloat64(m.ckptLastSuccess)
	if ts < float64(before.Unix()) || ts > float64(time.Now().Unix()+1) {
		t.Errorf("penstock_checkpoint_last_success_timestamp_seconds = %v; want about %d", ts, before.Unix())
	}
	m.CheckpointDone(errors.New("disk full"), 2*time.Second)
	if got := testutil.ToFloat64(m.ckptLastSuccess); got != ts {
		t.Errorf("a failed checkpoint moved the last success to %v from %v", got, ts)
	}
	if ok, bad := testutil.ToFloat64(m.ckptTotal.WithLabelValues(ResultOK)), testutil.ToFloat64(m.ckptTotal.WithLabelValues(ResultError)); ok != 1 || bad != 1 {
		t.Errorf("penstock_checkpoints_total ok=%v error=%v; want 1, 1", ok, bad)
	}
	if err := testutil.CollectAndCompare(m.ckptDuration, strings.NewReader(`
# HELP penstock_checkpoint_duration_seconds Time to save a checkpoint (write, fsync, rename, fsync of the directory), failed ones included.
# TYPE penstock_checkpoint_duration_seconds histogram
penstock_checkpoint_duration_seconds_bucket{le="0.001"} 0
penstock_checkpoint_duration_seconds_bucket{le="0.004"} 0
penstock_checkpoint_duration_seconds_bucket{le="0.016"} 0
penstock_checkpoint_duration_seconds_bucket{le="0.064"} 1
penstock_checkpoint_duration_seconds_bucket{le="0.256"} 1
penstock_checkpoint_duration_seconds_bucket{le="1.024"} 1
penstock_checkpoint_duration_seconds_bucket{le="4.096"} 2
penstock_checkpoint_duration_seconds_bucket{le="16.384"} 2
penstock_checkpoint_duration_seconds_bucket{le="65.536"} 2
penstock_checkpoint_duration_seconds_bucket{le="262.144"} 2
penstock_checkpoint_duration_seconds_bucket{le="+Inf"} 2
penstock_checkpoint_duration_seconds_sum 2.04
penstock_checkpoint_duration_seconds_count 2
`)); err != nil {
		t.Error(err)
	}

	m.ModelVersion(41)
	m.ModelVersion(42)
	if v, n := testutil.ToFloat64(m.modelVersion), testutil.ToFloat64(m.modelPublishes); v != 42 || n != 2 {
		t.Errorf("penstock_model_version %v, penstock_model_publishes_total %v; want 42, 2", v, n)
	}

	m.Predicted(200, time.Millisecond)
	m.Predicted(200, time.Millisecond)
	m.Predicted(422, time.Millisecond)
	if ok, bad := testutil.ToFloat64(m.predictRequests.WithLabelValues("200")), testutil.ToFloat64(m.predictRequests.WithLabelValues("422")); ok != 2 || bad != 1 {
		t.Errorf("penstock_predict_requests_total 200=%v 422=%v; want 2, 1", ok, bad)
	}
	if n := histCount(t, m.Registry, "penstock_predict_duration_seconds"); n != 3 {
		t.Errorf("penstock_predict_duration_seconds: %d observations; want 3", n)
	}
}

func TestMetricsStageBusy(t *testing.T) {
	m := NewMetrics()
	run := func(elapsed, src, scale time.Duration) flow.Stats {
		return flow.Stats{Elapsed: elapsed, Stages: []flow.StageStats{
			{Source: true, Replicas: 1, Busy: src},
			{Path: flow.Path{"pipe", "scale"}, Replicas: 2, Busy: scale},
		}}
	}
	want := func(src, scale float64) string {
		return `
# HELP penstock_stage_busy_seconds_total Time spent inside each stage of the fit (its step; the source's Next for stage="source"), summed over the stage's replicas.
# TYPE penstock_stage_busy_seconds_total counter
penstock_stage_busy_seconds_total{stage="pipe/scale"} ` + ftoa(scale) + `
penstock_stage_busy_seconds_total{stage="source"} ` + ftoa(src) + `
`
	}
	m.StageBusy(run(time.Second, 250*time.Millisecond, 500*time.Millisecond))
	if err := testutil.CollectAndCompare(m.stageBusy, strings.NewReader(want(0.25, 1))); err != nil {
		t.Errorf("first stats: %v", err)
	}
	// The same run, later: the counters are its cumulative figures.
	m.StageBusy(run(2*time.Second, 500*time.Millisecond, 750*time.Millisecond))
	if err := testutil.CollectAndCompare(m.stageBusy, strings.NewReader(want(0.5, 1.5))); err != nil {
		t.Errorf("later stats: %v", err)
	}
	// A new run starts at 0: its figures add to the counters.
	m.StageBusy(run(time.Second, 1500*time.Millisecond, 250*time.Millisecond))
	if err := testutil.CollectAndCompare(m.stageBusy, strings.NewReader(want(2, 2))); err != nil {
		t.Errorf("a new run: %v", err)
	}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// histCount is the number of observations of histogram name in reg.
func histCount(t *testing.T, reg prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestMetricsHandler(t *testing.T) {
	m := NewMetrics()
	m.Log = quiet
	everySeries(m)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{
		"penstock_model_version 3\n",
		`penstock_ingest_rejected_total{reason="schema",source="http"} 1`,
		`penstock_predict_requests_total{code="200"} 1`,
		"go_goroutines ", "process_start_time_seconds ", "go_build_info{",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	srv.Client().CloseIdleConnections()
}

// The Predictor counts its answers.
func TestMetricsOfPredictor(t *testing.T) {
	ctx := deadline(t)
	met := NewMetrics()
	models := NewModels(ModelOptions{Log: quiet})
	srv := server(t, models, PredictOptions{Metrics: met, Log: quiet})
	if _, err := post(ctx, srv.Client(), srv.URL, ContentTypeJSON, []byte(`[{"x0":1,"x1":1}]`)); err != nil {
		t.Fatal(err)
	}
	if err := models.Publish(newPipe(t, nil, 1, 8), 1); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`[{"x0":1,"x1":1}]`, `[{"x0":1,"x1":1}]`, `[{"x0":1}]`} {
		if _, err := post(ctx, srv.Client(), srv.URL, ContentTypeJSON, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	for code, want := range map[string]float64{"200": 2, "422": 1, "503": 1} {
		if got := testutil.ToFloat64(met.predictRequests.WithLabelValues(code)); got != want {
			t.Errorf("penstock_predict_requests_total{code=%q} = %v; want %v", code, got, want)
		}
	}
	if got := testutil.ToFloat64(met.predictInFlight); got != 0 {
		t.Errorf("penstock_predict_in_flight_requests = %v after every answer; want 0", got)
	}
	if n := histCount(t, met.Registry, "penstock_predict_duration_seconds"); n != 4 {
		t.Errorf("penstock_predict_duration_seconds: %d observations; want 4", n)
	}
}
