package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/daemon/ckpt"
	"github.com/penstock-ml/penstock/daemon/dirsource"
	"github.com/penstock-ml/penstock/daemon/natsource"
	"github.com/penstock-ml/penstock/daemon/serve"
	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/daemon/wal"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
)

// ErrHardStop is returned by Run when the drain did not finish within the
// drain timeout: the run was stopped where it was, and the last good
// checkpoint is what a restart resumes from.
var ErrHardStop = errors.New("daemon: drain timed out: hard stop")

// Option configures Run beyond its Config: what a program embedding the
// daemon, or a test, needs.
type Option func(*options)

type options struct {
	log          *slog.Logger
	alloc        memory.Allocator
	listening    func(net.Addr)
	beforeRename func(tmp, final string) error
	checkpointed func(ckpt.Info)
}

// WithLogger sets the logger (the default follows Config.Log on stderr).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithAllocator sets the allocator of every batch the daemon reads, and
// of what its steps allocate. The default is a minibatch.Pool for the run:
// an endless fit frees and allocates batches of the same few sizes, which
// the pool hands out again instead of leaving them to the garbage
// collector (about 10 µs less CPU per HTTP post in BenchmarkIngestHTTP).
func WithAllocator(mem memory.Allocator) Option { return func(o *options) { o.alloc = mem } }

// WithListening calls fn with the server's address once it listens.
func WithListening(fn func(net.Addr)) Option { return func(o *options) { o.listening = fn } }

// WithCheckpointed calls fn after each durable checkpoint, from the
// goroutine that saves checkpoints, one call at a time (keep it short).
func WithCheckpointed(fn func(ckpt.Info)) Option { return func(o *options) { o.checkpointed = fn } }

// WithBeforeRename is a fault hook for tests: fn runs after a checkpoint's
// temporary file is written and synced, before it is renamed into place.
func WithBeforeRename(fn func(tmp, final string) error) Option {
	return func(o *options) { o.beforeRename = fn }
}

// Run runs the daemon until ctx is done, then drains: /readyz answers 503,
// the sources take no new input, what they accepted is fitted, a final
// checkpoint is saved, the HTTP server shuts down (answering every request
// it started), and Run returns nil — all within cfg.DrainTimeout, or Run
// stops where it is and returns ErrHardStop (the last good checkpoint is
// kept). Any other failure (a source, a step, a checkpoint at the drain)
// is returned too. Steps are loaded through reg (persist.Default when nil).
//
// At start Run loads the newest checkpoint of cfg.Checkpoint.Dir that
// verifies (else the one before, logging why), or, when there is none,
// the pipeline cfg.Pipeline, and restarts every source from its position in
// that checkpoint, so that no input a source acknowledged is lost or fitted
// twice. A pipeline with a Joiner is refused: an endless fit has no end for
// it to wait for. The keys of cfg left zero take their defaults, as
// ParseConfig fills them in; then cfg is validated (Config.Validate).
func Run(ctx context.Context, cfg Config, reg *persist.Registry, opts ...Option) error {
	o := options{alloc: minibatch.NewPool()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = NewLogger(os.Stderr, cfg.Log)
	}
	if reg == nil {
		reg = persist.Default
	}
	cfg.defaults() // a Config built in code leaves them zero, as a file may
	if err := cfg.Validate(); err != nil {
		return err
	}
	d := &daemon{cfg: cfg, reg: reg, o: o, log: o.log, schema: cfg.InputSchema()}
	return d.run(ctx)
}

type daemon struct {
	cfg    Config
	reg    *persist.Registry
	o      options
	log    *slog.Logger
	schema source.Schema

	store   *ckpt.Store
	metrics *serve.Metrics
	health  *serve.Health
	models  *serve.Models
	p       *flow.Pipeline
	mux     *mux
	closers []io.Closer

	// The fitting goroutine's (OnCut's) own.
	batches     int64 // fitted in all, over restarts
	lastCkpt    time.Time
	lastPublish time.Time
	sinceCkpt   int64
	sincePub    int64
	started     map[string][]byte // the positions of the last save started
	saving      chan struct{}     // closed when the save in flight ends; nil: none
	fitCtx      context.Context

	mu        sync.Mutex // guards what the saver goroutine shares
	version   int64      // the last version reserved
	published int64      // the version published last
	saveErr   error      // the last save's error, nil after a success
}

func (d *daemon) run(ctx context.Context) (err error) {
	d.metrics = serve.NewMetrics()
	d.metrics.Log = d.log
	d.health = serve.NewHealth()
	d.health.Set(serve.CheckModel, errors.New("no model loaded yet"))
	defer func() {
		for i := len(d.closers) - 1; i >= 0; i-- {
			if cerr := d.closers[i].Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()

	unlock, err := lockDir(d.cfg.Checkpoint.Dir)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, closerFunc(unlock))
	from, err := d.load()
	if err != nil {
		return err
	}
	srcs, err := d.sources()
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", d.cfg.Address)
	if err != nil {
		return fmt.Errorf("daemon: listen on %s: %w", d.cfg.Address, err)
	}
	// Bounded reads: a client that sends its headers or body slowly, or
	// keeps an idle connection, does not hold a goroutine for ever.
	srv := &http.Server{Handler: d.routes(srcs), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	d.log.Info("listening", "addr", ln.Addr().String())
	if d.o.listening != nil {
		d.o.listening(ln.Addr())
	}

	if d.batches > 0 || d.cfg.PublishAtStart {
		if err := d.publish(); err != nil {
			srv.Close()
			<-srvDone
			return err
		}
	}

	fitCtx, cancelFit := context.WithCancelCause(context.Background())
	defer cancelFit(errors.New("daemon: stopped"))
	d.fitCtx = fitCtx
	drain := make(chan struct{})
	d.mux = newMux(srcs, d.cfg.Checkpoint.EveryBatches, d.metrics.IngestRows)
	d.lastCkpt, d.lastPublish = time.Now(), time.Now()
	d.scheduleCut()
	var wg sync.WaitGroup
	d.mux.start(fitCtx, from, drain, &wg)
	runner := flow.Runner{Allocator: d.o.alloc, OnCut: d.onCut}
	if d.cfg.Engine == "streaming" {
		runner.Engine = flow.Streaming
	}
	fitDone := make(chan error, 1)
	go func() {
		_, err := runner.Fit(fitCtx, d.p, d.mux)
		fitDone <- err
	}()

	stop := func(cause error) {
		cancelFit(cause)
		wg.Wait()
		d.mux.discard()
		d.waitSave()
	}
	select {
	case err := <-fitDone: // a source or a step failed: no drain
		stop(err)
		srv.Close()
		<-srvDone
		if err == nil {
			err = errors.New("daemon: the fit ended without a drain")
		}
		d.log.Error("fit failed", "err", err)
		return err
	case <-ctx.Done():
	}

	d.log.Info("drain", "cause", context.Cause(ctx).Error(), "timeout", d.cfg.DrainTimeout.D().String())
	deadline := time.Now().Add(d.cfg.DrainTimeout.D())
	dctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	d.health.Set(serve.CheckDraining, errors.New("draining"))
	close(drain)
	select {
	case err := <-fitDone:
		if err != nil {
			stop(err)
			srv.Close()
			<-srvDone
			d.log.Error("drain failed", "err", err)
			return fmt.Errorf("daemon: drain: %w", err)
		}
	case <-dctx.Done():
		d.log.Error("hard stop", "reason", "drain timeout", "timeout", d.cfg.DrainTimeout.D().String())
		cancelFit(ErrHardStop)
		srv.Close()
		return ErrHardStop // a hung step may still hold its goroutine: the process exits
	}
	stop(errors.New("daemon: drained"))
	if err := srv.Shutdown(dctx); err != nil {
		srv.Close()
		d.log.Error("hard stop", "reason", "requests did not finish", "err", err)
		return ErrHardStop
	}
	<-srvDone
	if err := d.models.Close(); err != nil {
		return err
	}
	d.log.Info("drained", "batches", d.batches, "version", d.published)
	return nil
}

// load opens the checkpoint store and loads what the daemon starts from;
// it returns the sources' positions.
func (d *daemon) load() (map[string][]byte, error) {
	store, err := ckpt.Open(d.cfg.Checkpoint.Dir, ckpt.Options{Keep: d.cfg.Checkpoint.Keep, Log: d.log, BeforeRename: d.o.beforeRename})
	if err != nil {
		return nil, fmt.Errorf("daemon: checkpoints: %w", err)
	}
	d.store = store
	var model *persist.Model
	var from map[string][]byte
	loaded, err := store.Latest(persist.WithRegistry(d.reg))
	switch {
	case err == nil:
		model, from = loaded.Model, loaded.Meta.Positions
		d.batches, d.version = loaded.Meta.Batches, loaded.Meta.Version
		d.started = from
		d.log.Info("resume", "checkpoint", loaded.Info.Path, "batches", d.batches, "version", d.version)
	case errors.Is(err, ckpt.ErrNoCheckpoint):
		model, err = loadPipeline(d.cfg.Pipeline, d.reg)
		if err != nil {
			return nil, err
		}
		d.log.Info("start", "pipeline", d.cfg.Pipeline)
	default:
		return nil, fmt.Errorf("daemon: checkpoints: %w", err)
	}
	p, err := model.Pipeline()
	if err != nil {
		return nil, fmt.Errorf("daemon: %s: %w", d.cfg.Pipeline, err)
	}
	if err := refuseJoiner(p); err != nil {
		return nil, err
	}
	d.p = p
	return from, nil
}

func loadPipeline(path string, reg *persist.Registry) (*persist.Model, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("daemon: pipeline: %w", err)
	}
	var m *persist.Model
	if fi.IsDir() {
		m, err = persist.LoadDir(path, persist.WithRegistry(reg))
	} else {
		m, err = persist.LoadFile(path, persist.WithRegistry(reg))
	}
	if err != nil {
		return nil, fmt.Errorf("daemon: pipeline %s: %w", path, err)
	}
	return m, nil
}

// refuseJoiner refuses a tree with a Joiner barrier anywhere.
func refuseJoiner(p *flow.Pipeline) error {
	return flow.Walk(p, func(v flow.Visit) error {
		if v.Parent == nil {
			return nil
		}
		s, err := v.Node.Settings()
		if err != nil {
			return err
		}
		if s.HasBarrier && s.Barrier == barrier.Joiner {
			return fmt.Errorf("daemon: step %s: a pipeline with a Joiner cannot be fitted endlessly (it waits for the end of the stream); remove the Joiner", v.Path)
		}
		return nil
	})
}

// sources builds the configured sources.
func (d *daemon) sources() ([]source.Source, error) {
	var srcs []source.Source
	for i, sc := range d.cfg.Sources {
		var s source.Source
		var c io.Closer
		var err error
		switch sc.Type {
		case "dir":
			var ds *dirsource.Dir
			ds, err = dirsource.New(dirsource.Options{
				Name: sc.Name, Dir: sc.Dir, Glob: sc.Glob, Format: sc.Format,
				Settle: sc.Settle.D(), Poll: sc.Poll.D(), BatchRows: sc.BatchRows, MaxFileBytes: sc.MaxFileBytes,
				Schema: d.schema, Alloc: d.o.alloc, Reporter: d.metrics, Log: d.log,
			})
			s, c = ds, ds
		case "http":
			var l *wal.Log
			l, err = wal.Open(wal.Options{
				Name: sc.Name, Dir: sc.WALDir, Schema: d.schema, MaxBody: sc.MaxBody, MaxPending: sc.MaxPending,
				KeepPositions: d.cfg.Checkpoint.Keep, // every kept checkpoint stays resumable
				Alloc:         d.o.alloc, Reporter: d.metrics, Log: d.log,
			})
			s, c = l, l
		case "nats":
			var ns *natsource.Source
			ns, err = natsource.New(natsource.Options{
				Name: sc.Name, URL: sc.URL, Stream: sc.Stream, Subject: sc.Subject, MaxMsgBytes: sc.MaxMsgBytes,
				Schema: d.schema, Alloc: d.o.alloc, Reporter: d.metrics, Log: d.log,
			})
			s, c = ns, ns
		}
		if err != nil {
			return nil, &ConfigError{Key: fmt.Sprintf("sources[%d]", i), Err: err}
		}
		d.closers = append(d.closers, c)
		srcs = append(srcs, s)
	}
	return srcs, nil
}

// routes is the HTTP API.
func (d *daemon) routes(srcs []source.Source) http.Handler {
	mux := http.NewServeMux()
	for _, s := range srcs {
		if l, ok := s.(*wal.Log); ok {
			mux.Handle("/v1/ingest", l.Handler())
			break
		}
	}
	d.models = serve.NewModels(serve.ModelOptions{Log: d.log})
	mux.Handle("/v1/predict", serve.NewPredictor(d.models, d.schema.InputsOnly(), serve.PredictOptions{
		MaxBody: d.cfg.MaxPredictBytes, Alloc: d.o.alloc, Metrics: d.metrics, Log: d.log,
	}))
	mux.Handle("/metrics", d.metrics.Handler())
	mux.Handle("/livez", d.health.Livez())
	mux.Handle("/readyz", d.health.Readyz())
	return mux
}

// scheduleCut tells the mux when the next cut is due.
func (d *daemon) scheduleCut() {
	due := d.lastCkpt.Add(d.cfg.Checkpoint.Every.D())
	if p := d.cfg.PublishEvery.D(); p > 0 {
		if at := d.lastPublish.Add(p); at.Before(due) {
			due = at
		}
	}
	d.mux.schedule(due)
}

// onCut is the runner's OnCut: at a consistent cut, it starts a
// checkpoint when one is due (and something changed), publishes when a
// publication is due, and schedules the next cut. At the final cut of a
// drain it waits for the save in flight, then saves synchronously.
func (d *daemon) onCut(ctx context.Context, c flow.Cut) error {
	now := time.Now()
	fitted := d.mux.batches
	d.mux.batches = 0
	d.batches += fitted
	d.sinceCkpt += fitted
	d.sincePub += fitted
	d.metrics.StageBusy(c.Stats)
	d.metrics.FittedBatches(fitted)
	final := d.mux.final
	due := final || !now.Before(d.lastCkpt.Add(d.cfg.Checkpoint.Every.D())) ||
		d.cfg.Checkpoint.EveryBatches > 0 && d.sinceCkpt >= d.cfg.Checkpoint.EveryBatches
	if final {
		d.waitSave()
	}
	switch {
	case due && d.saveRunning(): // the previous save is still running: retry soon
		d.mux.retry(now.Add(min(max(d.cfg.Checkpoint.Every.D()/10, 10*time.Millisecond), time.Second)))
		return nil
	case due:
		pos := d.mux.positions()
		if d.sinceCkpt == 0 && samePositions(pos, d.started) {
			d.lastCkpt = now
			break
		}
		if err := d.startSave(pos); err != nil {
			return err
		}
		if final {
			d.waitSave()
			d.mu.Lock()
			err := d.saveErr
			d.mu.Unlock()
			return err
		}
	case d.cfg.PublishEvery > 0 && !now.Before(d.lastPublish.Add(d.cfg.PublishEvery.D())) && d.sincePub > 0:
		if err := d.publish(); err != nil {
			d.log.Error("publish", "err", err)
		}
	}
	d.scheduleCut()
	return nil
}

// startSave copies the pipeline (the cut is quiet: the copy is the
// state of exactly the batches handed over) and saves the copy in the
// background, so that the fit goes on during the marshal and the fsyncs.
// Once the save is durable, the saver tells the sources so and publishes
// the copy. One save runs at a time.
func (d *daemon) startSave(pos map[string][]byte) error {
	cp, err := flow.Copy(d.p)
	if err != nil {
		return fmt.Errorf("daemon: checkpoint: %w", err)
	}
	d.mu.Lock()
	d.version++
	meta := ckpt.Meta{Batches: d.batches, Positions: pos, Version: d.version, Time: time.Now().UTC()}
	d.mu.Unlock()
	d.lastCkpt, d.started, d.sinceCkpt = time.Now(), pos, 0
	done := make(chan struct{})
	d.saving = done
	go func() {
		defer close(done)
		d.save(cp.(*flow.Pipeline), meta)
	}()
	return nil
}

// save is the saver goroutine's: the checkpoint, then Durable, then the
// publication of the saved copy (unless a newer version is out already).
func (d *daemon) save(cp *flow.Pipeline, meta ckpt.Meta) {
	start := time.Now()
	info, err := d.store.Save(d.fitCtx, cp, meta, persist.WithRegistry(d.reg))
	d.metrics.CheckpointDone(err, time.Since(start))
	d.mu.Lock()
	d.saveErr = err
	d.mu.Unlock()
	if err != nil {
		d.log.Error("checkpoint", "err", err, "batches", meta.Batches)
		return
	}
	d.log.Info("checkpoint", "path", info.Path, "seq", info.Seq, "bytes", info.Bytes,
		"batches", meta.Batches, "version", meta.Version, "took", time.Since(start).String())
	for _, s := range d.mux.srcs {
		if p := meta.Positions[s.Name()]; p != nil {
			if err := s.Durable(p); err != nil {
				d.log.Error("durable", "source", s.Name(), "err", err)
			}
		}
	}
	if d.o.checkpointed != nil {
		d.o.checkpointed(info)
	}
	if err := d.publishCopy(cp, meta.Version); err != nil {
		d.log.Error("publish", "err", err)
	}
}

// saveRunning reports whether a save is in flight.
func (d *daemon) saveRunning() bool {
	if d.saving == nil {
		return false
	}
	select {
	case <-d.saving:
		d.saving = nil
		return false
	default:
		return true
	}
}

// waitSave waits for the save in flight, if any.
func (d *daemon) waitSave() {
	if d.saving != nil {
		<-d.saving
		d.saving = nil
	}
}

// publish publishes a copy of the pipeline as a new version.
func (d *daemon) publish() error {
	cp, err := flow.Copy(d.p)
	if err != nil {
		return fmt.Errorf("daemon: publish: %w", err)
	}
	d.mu.Lock()
	d.version++
	v := d.version
	d.mu.Unlock()
	d.lastPublish, d.sincePub = time.Now(), 0
	return d.publishCopy(cp.(*flow.Pipeline), v)
}

// publishCopy publishes cp, which nothing else holds, as version v, unless
// a newer version is published already: the versions clients see only go
// up.
func (d *daemon) publishCopy(cp *flow.Pipeline, v int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v <= d.published {
		return nil
	}
	if err := d.models.Publish(cp, v); err != nil {
		return fmt.Errorf("daemon: publish version %d: %w", v, err)
	}
	d.published = v
	d.metrics.ModelVersion(v)
	d.health.Set(serve.CheckModel, nil)
	return nil
}

// closerFunc is a func as an io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func samePositions(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if string(b[k]) != string(v) {
			return false
		}
	}
	return true
}
