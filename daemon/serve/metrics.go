package serve

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the daemon's Prometheus metrics, in a registry of their own
// (never the global one), with the Go runtime, process and build-info
// collectors. Its methods may be called from any goroutine.
type Metrics struct {
	// Registry holds every metric below and the three collectors.
	Registry *prometheus.Registry
	// Log hears of each rejection (one line each); nil means slog.Default().
	Log *slog.Logger

	stageBusy        *stageBusy
	ingestRows       *prometheus.CounterVec
	ingestRejected   *prometheus.CounterVec
	ckptLastSuccess  prometheus.Gauge
	ckptDuration     prometheus.Histogram
	ckptTotal        *prometheus.CounterVec
	modelVersion     prometheus.Gauge
	predictDuration  prometheus.Histogram
	predictRequests  *prometheus.CounterVec
	fittedBatches    prometheus.Counter
	predictInFlight  prometheus.Gauge
	modelPublishes   prometheus.Counter
	predictCodesSeen sync.Map // int → prometheus.Counter, a cache of predictRequests' children
}

var _ source.Reporter = (*Metrics)(nil)

// The values of the "result" label of penstock_checkpoints_total.
const (
	ResultOK    = "ok"
	ResultError = "error"
)

// NewMetrics returns the metrics, registered in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry:  prometheus.NewRegistry(),
		stageBusy: newStageBusy(),
		ingestRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "penstock_ingest_rows_total",
			Help: "Rows taken by each source and handed to the fit.",
		}, []string{"source"}),
		ingestRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "penstock_ingest_rejected_total",
			Help: "Inputs rejected by each source, by reason (schema, decode, too_large, type, io, duplicate, draining, full).",
		}, []string{"source", "reason"}),
		ckptLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "penstock_checkpoint_last_success_timestamp_seconds",
			Help: "Unix time of the last checkpoint saved durably; 0 before the first.",
		}),
		ckptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "penstock_checkpoint_duration_seconds",
			Help:    "Time to save a checkpoint (write, fsync, rename, fsync of the directory), failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1 ms … 262 s
		}),
		ckptTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "penstock_checkpoints_total",
			Help: "Checkpoints attempted, by result (ok, error).",
		}, []string{"result"}),
		modelVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "penstock_model_version",
			Help: "Version of the model that predictions are served from; 0 before the first.",
		}),
		predictDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "penstock_predict_duration_seconds",
			Help:    "Time to answer a prediction request, from its start until its answer is written.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2.5, 12), // 50 µs … 2.9 s
		}),
		predictRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "penstock_predict_requests_total",
			Help: "Prediction requests answered, by HTTP status code.",
		}, []string{"code"}),
		fittedBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "penstock_fitted_batches_total",
			Help: "Batches fitted by the pipeline in training.",
		}),
		predictInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "penstock_predict_in_flight_requests",
			Help: "Prediction requests being answered now.",
		}),
		modelPublishes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "penstock_model_publishes_total",
			Help: "Model versions published for predictions.",
		}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
		m.stageBusy,
		m.ingestRows, m.ingestRejected,
		m.ckptLastSuccess, m.ckptDuration, m.ckptTotal,
		m.modelVersion, m.modelPublishes,
		m.predictDuration, m.predictRequests, m.predictInFlight,
		m.fittedBatches,
	)
	// Series that exist from the start, so that a rate is defined before
	// the first event.
	m.ckptTotal.WithLabelValues(ResultOK)
	m.ckptTotal.WithLabelValues(ResultError)
	return m
}

// Handler serves the registry in the Prometheus text (or OpenMetrics)
// format: mount it at /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Rejected counts a rejected input in
// penstock_ingest_rejected_total{source,reason} and logs it (one line).
func (m *Metrics) Rejected(src string, reason source.Reason, err error) {
	m.ingestRejected.WithLabelValues(src, string(reason)).Inc()
	source.LogReporter{Log: m.Log}.Rejected(src, reason, err)
}

// IngestRows adds n rows taken by source src to
// penstock_ingest_rows_total{source}.
func (m *Metrics) IngestRows(src string, n int64) {
	if n > 0 {
		m.ingestRows.WithLabelValues(src).Add(float64(n))
	}
}

// FittedBatches adds n batches fitted to penstock_fitted_batches_total.
func (m *Metrics) FittedBatches(n int64) {
	if n > 0 {
		m.fittedBatches.Add(float64(n))
	}
}

// StageBusy sets penstock_stage_busy_seconds_total{stage} from the
// cumulative statistics of a run (flow.Runner's Stats, read at any time):
// the time spent inside each stage's step (the source's Next for
// stage="source"), summed over its replicas. A run that starts over (a new
// Runner, whose times begin at 0 again) adds to the counters, which never
// go down.
func (m *Metrics) StageBusy(stats flow.Stats) {
	m.stageBusy.set(stats)
}

// CheckpointDone records a checkpoint attempt that took took: counted in
// penstock_checkpoints_total{result} and timed in
// penstock_checkpoint_duration_seconds; when err is nil,
// penstock_checkpoint_last_success_timestamp_seconds becomes now.
func (m *Metrics) CheckpointDone(err error, took time.Duration) {
	m.ckptDuration.Observe(took.Seconds())
	if err != nil {
		m.ckptTotal.WithLabelValues(ResultError).Inc()
		return
	}
	m.ckptTotal.WithLabelValues(ResultOK).Inc()
	m.ckptLastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
}

// ModelVersion sets penstock_model_version to v and counts a publish in
// penstock_model_publishes_total.
func (m *Metrics) ModelVersion(v int64) {
	m.modelVersion.Set(float64(v))
	m.modelPublishes.Inc()
}

// Predicted records one prediction answered with code after took: the
// Predictor calls it.
func (m *Metrics) Predicted(code int, took time.Duration) {
	m.predictDuration.Observe(took.Seconds())
	c, ok := m.predictCodesSeen.Load(code)
	if !ok {
		c, _ = m.predictCodesSeen.LoadOrStore(code, m.predictRequests.WithLabelValues(strconv.Itoa(code)))
	}
	c.(prometheus.Counter).Inc()
}

// stageBusy is the collector of penstock_stage_busy_seconds_total: the
// flow statistics are cumulative figures of a run, so the collector keeps
// the last ones seen and the totals of earlier runs.
type stageBusy struct {
	desc *prometheus.Desc

	mu      sync.Mutex
	elapsed time.Duration      // Stats.Elapsed of the current run, as last seen
	last    map[string]float64 // per stage: busy seconds of the current run, as last seen
	total   map[string]float64 // per stage: the counter
}

func newStageBusy() *stageBusy {
	return &stageBusy{
		desc: prometheus.NewDesc("penstock_stage_busy_seconds_total",
			"Time spent inside each stage of the fit (its step; the source's Next for stage=\"source\"), summed over the stage's replicas.",
			[]string{"stage"}, nil),
		last:  map[string]float64{},
		total: map[string]float64{},
	}
}

func (s *stageBusy) set(stats flow.Stats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stats.Elapsed < s.elapsed { // a new run: its times start at 0
		clear(s.last)
	}
	s.elapsed = stats.Elapsed
	for _, st := range stats.Stages {
		name := "source"
		if !st.Source {
			name = st.Path.String()
		}
		reps := st.Replicas
		if reps < 1 {
			reps = 1
		}
		busy := st.Busy.Seconds() * float64(reps)
		prev := s.last[name]
		if busy >= prev {
			s.total[name] += busy - prev
		} else { // a new run not told by Elapsed: its times start at 0
			s.total[name] += busy
		}
		s.last[name] = busy
	}
}

func (s *stageBusy) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s *stageBusy) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, v := range s.total {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.CounterValue, v, name)
	}
}
