package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/penstock-ml/penstock/flow"
)

// ErrNoModel is returned by Acquire before the first Publish.
var ErrNoModel = errors.New("serve: no model published yet")

// ErrClosed is returned by Acquire and Publish after Close.
var ErrClosed = errors.New("serve: models closed")

// ModelOptions configure NewModels.
type ModelOptions struct {
	// Pool is the number of set-up copies of each version, the most
	// requests that run on one version at once; more wait for a copy.
	// Default (0) runtime.GOMAXPROCS(0).
	Pool int
	// Log hears of each publish and release (one line each); nil means
	// slog.Default().
	Log *slog.Logger
}

// Models holds the served versions of a model: the current one, behind an
// atomic pointer, and the superseded ones that requests still run on.
// Its methods may be called from any goroutine.
type Models struct {
	pool int
	log  *slog.Logger

	cur atomic.Pointer[Version]

	mu     sync.Mutex // serializes Publish and Close (never taken by a request)
	closed atomic.Bool
	live   sync.WaitGroup // one per version not yet released
}

// NewModels returns an empty Models: Acquire gives ErrNoModel until the
// first Publish.
func NewModels(o ModelOptions) *Models {
	if o.Pool <= 0 {
		o.Pool = runtime.GOMAXPROCS(0)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Models{pool: o.Pool, log: o.Log}
}

// Publish makes p, set up here, the current version; see PublishContext.
// It sets p up with context.Background(): call PublishContext to give the
// steps' Setup a context of your own (an allocator, a deadline).
func (m *Models) Publish(p *flow.Pipeline, version int64) error {
	return m.PublishContext(context.Background(), p, version)
}

// PublishContext sets p up (flow.Setup with ctx) and makes it the current
// version: requests that start after it returns run on p; those that
// started before finish on the version they started with, which is torn
// down (flow.Teardown, every set-up copy of it) and dropped after its last
// request. p becomes the Models' own: the caller passes a copy that no run
// changes (flow.Copy at a cut) and does not use it again. If Setup fails,
// PublishContext returns its error and the current version stays. Each
// publish is logged (one line), and so is an error of a version's
// Teardown, which no caller waits for.
//
// Versions are not checked for order: the caller numbers them (the daemon
// increases them). A version is at least 1: 0 is what Version and the
// predictor's VersionHeader say where no version runs, so PublishContext
// refuses 0 and negative numbers.
func (m *Models) PublishContext(ctx context.Context, p *flow.Pipeline, version int64) error {
	if p == nil {
		return fmt.Errorf("serve: publish version %d: nil pipeline", version)
	}
	if version < 1 {
		return fmt.Errorf("serve: publish version %d: want a version ≥ 1 (0 names no version in %s)", version, VersionHeader)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return fmt.Errorf("serve: publish version %d: %w", version, ErrClosed)
	}
	if err := flow.Setup(ctx, p); err != nil {
		return fmt.Errorf("serve: publish version %d: setup: %w; version %d stays", version, err, m.Version())
	}
	v := &Version{
		id:     version,
		models: m,
		base:   p,
		free:   make(chan *flow.Pipeline, m.pool),
		all:    []*flow.Pipeline{p},
	}
	v.refs.Store(1) // the reference of being current
	v.made.Store(1)
	v.ready.Store(1)
	v.free <- p
	m.live.Add(1)
	old := m.cur.Swap(v)
	if old == nil {
		m.log.Info("publish", "version", version)
		return nil
	}
	m.log.Info("publish", "version", version, "previous", old.id)
	_ = old.release(ctx) // a teardown error is logged there
	return nil
}

// Version is the number of the current version: 0 before the first
// Publish and after Close.
func (m *Models) Version() int64 {
	if v := m.cur.Load(); v != nil {
		return v.id
	}
	return 0
}

// Acquire returns the current version with a reference taken for the
// caller, who calls Release once done with it (and with every pipeline that
// it took). It costs one atomic load and one compare-and-swap (a few more
// when it races with Publish); it takes no lock. Before the first Publish it
// returns ErrNoModel, after Close ErrClosed.
func (m *Models) Acquire() (*Version, error) {
	for {
		v := m.cur.Load()
		if v == nil {
			if m.closed.Load() {
				return nil, ErrClosed
			}
			return nil, ErrNoModel
		}
		if v.tryRetain() {
			return v, nil
		}
		// v was released between the load and the retain: it is no longer
		// current, so the next load sees its successor (or nil).
	}
}

// Close stops taking requests (Acquire gives ErrClosed), releases the
// current version and waits until every version has been torn down, that
// is until the last request on each has released it. It returns the
// teardown errors of the current version. A second Close, also one called
// while the first waits, returns nil once every version has been torn
// down, as the first does.
func (m *Models) Close() error {
	m.mu.Lock()
	if m.closed.Swap(true) {
		m.mu.Unlock()
		m.live.Wait() // no Publish adds to it once closed (it checks under mu)
		return nil
	}
	old := m.cur.Swap(nil)
	m.mu.Unlock()
	var err error
	if old != nil {
		err = old.release(context.Background())
	}
	m.live.Wait()
	return err
}

// A Version is one published pipeline with its pool of set-up copies,
// reference counted: one reference while it is current, one per request
// that acquired it. When the last is released, every copy is torn down and
// the version is dropped.
type Version struct {
	id     int64
	models *Models
	refs   atomic.Int64

	base     *flow.Pipeline
	free     chan *flow.Pipeline // set-up copies not in use
	made     atomic.Int64        // copies made or being made, ≤ models.pool
	ready    atomic.Int64        // copies made and set up (Copies)
	noCopies atomic.Bool         // a copy failed: make no more

	mu  sync.Mutex
	all []*flow.Pipeline // every set-up copy, for Teardown
}

// ID is the version's number, as given to Publish.
func (v *Version) ID() int64 { return v.id }

func (v *Version) tryRetain() bool {
	for {
		r := v.refs.Load()
		if r <= 0 {
			return false
		}
		if v.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// Release gives back the reference that Acquire took. After the last
// reference of a superseded version, Release tears the version down.
func (v *Version) Release(ctx context.Context) {
	_ = v.release(ctx)
}

func (v *Version) release(ctx context.Context) error {
	r := v.refs.Add(-1)
	if r > 0 {
		return nil
	}
	if r < 0 {
		panic(fmt.Sprintf("serve: version %d released more often than acquired", v.id))
	}
	// The last reference: no request runs on v, none can acquire it.
	v.mu.Lock()
	all := v.all
	v.all = nil
	v.mu.Unlock()
	var errs []error
	for _, p := range all {
		if err := flow.Teardown(context.WithoutCancel(ctx), p); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		v.models.log.Warn("release", "version", v.id, "copies", len(all), "err", err)
	} else {
		v.models.log.Debug("release", "version", v.id, "copies", len(all))
	}
	v.base = nil
	v.models.live.Done()
	if err != nil {
		return fmt.Errorf("serve: release version %d: teardown: %w", v.id, err)
	}
	return nil
}

// Take returns a set-up copy of the version's pipeline that the caller
// alone runs (Transform) until it gives it back with Put: a free one, else
// a new one (flow.Copy and flow.Setup with ctx) while the version has fewer
// than Pool, else the first one given back. It waits at most until ctx is
// done. The caller holds a reference to v (Acquire) until after Put. If a
// copy cannot be made (a step that is not a flow.Copier but has state, a
// Setup that fails), Take logs it once and the version makes no more: its
// requests share the copies that exist, one at a time each.
func (v *Version) Take(ctx context.Context) (*flow.Pipeline, error) {
	select {
	case p := <-v.free:
		return p, nil
	default:
	}
	if !v.noCopies.Load() && v.reserve() {
		p, err := v.newCopy(ctx)
		if err == nil {
			return p, nil
		}
		v.made.Add(-1)
		if ctx.Err() != nil {
			return nil, err
		}
		// A pipeline that cannot be copied or set up twice is served
		// by the copies that exist (at least the published one).
		if !v.noCopies.Swap(true) {
			v.models.log.Warn("copy", "version", v.id, "copies", v.Copies(), "err", err)
		}
	}
	select {
	case p := <-v.free:
		return p, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("serve: version %d: waiting for a free copy of the pipeline: %w", v.id, context.Cause(ctx))
	}
}

// reserve counts one more copy in made, unless Pool are made or being
// made: made never exceeds Pool, even for a moment.
func (v *Version) reserve() bool {
	for {
		n := v.made.Load()
		if n >= int64(v.models.pool) {
			return false
		}
		if v.made.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (v *Version) newCopy(ctx context.Context) (*flow.Pipeline, error) {
	c, err := flow.Copy(v.base)
	if err != nil {
		return nil, fmt.Errorf("serve: version %d: copy: %w", v.id, err)
	}
	p, ok := c.(*flow.Pipeline)
	if !ok {
		return nil, fmt.Errorf("serve: version %d: copy is a %T, not a *flow.Pipeline", v.id, c)
	}
	if err := flow.Setup(ctx, p); err != nil {
		return nil, fmt.Errorf("serve: version %d: setup of a copy: %w", v.id, err)
	}
	v.mu.Lock()
	v.all = append(v.all, p)
	v.mu.Unlock()
	v.ready.Add(1)
	return p, nil
}

// Put gives back a copy that Take returned.
func (v *Version) Put(p *flow.Pipeline) {
	v.free <- p // never blocks: at most Pool copies exist, each in free or taken
}

// Copies is the number of set-up copies made so far (at least 1, at most
// Pool): those being copied or set up do not count yet.
func (v *Version) Copies() int {
	return int(v.ready.Load())
}
