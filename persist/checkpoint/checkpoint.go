package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
)

// Pipeline is a pipeline with a checkpoint in it: the steps before the
// checkpoint (the prefix) and those after it (the suffix). Fit caches the
// prefix's fitted state and its fit outputs in a Cache, so that a fit of
// the same prefix on the same data skips the prefix and fits the suffix
// on the cached outputs.
//
// A Pipeline is used by one goroutine at a time; separate Pipelines may
// share a Cache, in one process or several.
type Pipeline struct {
	cache          *Cache
	prefix, suffix *flow.Pipeline
}

// New returns the pipeline prefix → checkpoint → suffix, caching in c.
// Every step of prefix must be registered in c's persist registry (see
// Registry), since its type name and version are part of the key and its
// state is stored.
func New(c *Cache, prefix, suffix *flow.Pipeline) (*Pipeline, error) {
	switch {
	case c == nil:
		return nil, errors.New("checkpoint: New: nil cache")
	case prefix == nil || suffix == nil:
		return nil, errors.New("checkpoint: New: nil prefix or suffix pipeline")
	}
	return &Pipeline{cache: c, prefix: prefix, suffix: suffix}, nil
}

// Prefix returns the prefix as it is now: after a Fit that hit the cache,
// the prefix restored from it (a new value; the one given to New is left
// as it was).
func (p *Pipeline) Prefix() *flow.Pipeline { return p.prefix }

// Suffix returns the suffix.
func (p *Pipeline) Suffix() *flow.Pipeline { return p.suffix }

// Full returns the prefix and the suffix as one pipeline, the nodes
// "prefix" and "suffix", to transform with a flow.Runner (hyperparameter
// keys "prefix__…" and "suffix__…").
func (p *Pipeline) Full() (*flow.Pipeline, error) {
	return flow.NewPipeline([]flow.Node{flow.Named("prefix", p.prefix), flow.Named("suffix", p.suffix)})
}

// Result says what a Fit did with the cache.
type Result struct {
	// Key is the entry's key (64 hex digits); "" where the fit was not
	// cached.
	Key string
	// Hit is true when the prefix was restored from the cache and did not
	// run.
	Hit bool
	// Stored is true when a miss stored a new entry.
	Stored bool
	// Uncached says why the cache was not used ("" where it was): caching
	// is off.
	Uncached string
	// Stats are the statistics of the suffix's fit.
	Stats flow.Stats
}

// Key returns the cache key of fitting the prefix on src: a hash chain
// over the module version, each active step of the prefix (path, type
// name and version from the registry, hyperparameters, node settings and,
// for a leaf, the hash of the state it starts from) and the data (src's Fingerprint, or the hash of its content: then src
// is read once and rewound). why is non-empty where src cannot be
// identified.
func (p *Pipeline) Key(ctx context.Context, src flow.Source, mem memory.Allocator) (key, why string, err error) {
	c := newChain("penstock-checkpoint", fmt.Sprint(formatVersion), p.cache.version)
	if err := stepsKey(c, p.prefix, p.cache.reg, true); err != nil {
		return "", "", err
	}
	data, why, err := dataKey(ctx, src, mem)
	if err != nil || why != "" {
		return "", why, err
	}
	c.link("data", data)
	return c.hex(), "", nil
}

// Fit fits the prefix and then the suffix on src with r, batch by batch:
// the suffix is fitted on the prefix's fit outputs (what r.FitTransform
// of the prefix yields), as r.Fit of Full would fit it.
//
// With the cache enabled, Fit first computes the key (see Key). On a hit
// the prefix does not run: it is restored from the entry (see Prefix) and
// the suffix is fitted on the cached outputs, read back batch by batch.
// On a miss the prefix runs, its outputs are written to a new entry as
// they stream to the suffix, and its fitted state is stored with them;
// then least recently used entries are evicted to keep the budget. A
// source that is neither a Fingerprinter nor replayable
// is first spilled to a temporary directory of the cache (Arrow IPC,
// zstd, batch by batch) and read from there: so it hits the entries of
// the same data read from a replayable source. The prefix is fitted to
// the end of src even where the suffix has nothing to fit.
func (p *Pipeline) Fit(ctx context.Context, r flow.Runner, src flow.Source) (Result, error) {
	mem := r.Allocator
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	if !p.cache.Enabled() {
		return p.fitThrough(ctx, r, src, nil, Result{Uncached: "caching is off"})
	}
	if _, ok := src.(Fingerprinter); !ok && !flow.Replayable(src) {
		sp, err := p.cache.spill(ctx, src, mem)
		if err != nil {
			return Result{}, err
		}
		defer sp.remove()
		src = sp
	}
	key, why, err := p.Key(ctx, src, mem)
	if err != nil {
		return Result{}, err
	}
	if why != "" {
		return p.fitThrough(ctx, r, src, nil, Result{Uncached: why})
	}
	dir := p.cache.entryDir(key)
	e, ok, err := openEntry(dir, mem)
	if err != nil {
		return Result{}, err
	}
	if ok {
		res, err := p.fitFromEntry(ctx, r, e, key)
		if err == nil || !errors.Is(err, errBadModel) {
			return res, err
		}
		// A damaged entry: drop it and fit as on a miss.
		removeEntry(dir)
	}
	w, err := p.cache.create(mem)
	if err != nil {
		return Result{}, err
	}
	res, err := p.fitThrough(ctx, r, src, w, Result{Key: key})
	if err != nil {
		w.abort()
		return res, err
	}
	model, err := persist.Marshal(p.prefix, persist.WithRegistry(p.cache.reg), persist.WithAllocator(mem))
	if err != nil {
		w.abort()
		return res, fmt.Errorf("checkpoint: saving the fitted prefix: %w", err)
	}
	if err := w.commit(dir, model); err != nil {
		return res, err
	}
	p.cache.touch(dir)
	res.Stored = true
	if err := p.cache.evict(dir); err != nil {
		return res, err
	}
	return res, nil
}

// ErrDamaged is wrapped by the error of a Fit or Transform that hit an
// entry whose outputs could not be read back after they passed their
// check (a disk error, a file changed while the run reads it). The suffix has then seen part of them, so the run
// fails rather than start over; the entry is removed, and the next run
// stores a good one.
var ErrDamaged = errors.New("checkpoint: damaged cache entry")

// errBadModel marks an entry whose prefix does not load: found before
// anything ran, so Fit drops the entry and fits as on a miss.
var errBadModel = errors.New("checkpoint: the cached prefix does not load")

func (p *Pipeline) fitFromEntry(ctx context.Context, r flow.Runner, e *entryReader, key string) (Result, error) {
	defer e.close()
	m, err := persist.Unmarshal(e.model, persist.WithRegistry(p.cache.reg), persist.WithAllocator(memOf(r)))
	if err != nil {
		return Result{}, fmt.Errorf("%w %s: %w", errBadModel, e.dir, err)
	}
	prefix, err := m.Pipeline()
	if err != nil {
		return Result{}, fmt.Errorf("%w %s: %w", errBadModel, e.dir, err)
	}
	p.cache.touch(e.dir)
	stats, err := r.Fit(ctx, p.suffix, e)
	if err != nil {
		if e.damaged {
			// The suffix has seen part of the outputs and cannot fit
			// again here; drop the entry so that the next fit stores a
			// good one.
			removeEntry(e.dir)
		}
		return Result{}, err
	}
	p.prefix = prefix
	return Result{Key: key, Hit: true, Stats: stats}, nil
}

func memOf(r flow.Runner) memory.Allocator {
	if r.Allocator == nil {
		return memory.DefaultAllocator
	}
	return r.Allocator
}

// fitThrough fits the prefix on src and the suffix on its outputs, which
// w, where not nil, stores as they pass.
func (p *Pipeline) fitThrough(ctx context.Context, r flow.Runner, src flow.Source, w *entryWriter, res Result) (Result, error) {
	out, err := r.FitTransform(ctx, p.prefix, src)
	if err != nil {
		return res, err
	}
	t := &tee{src: out, w: w}
	stats, err := r.Fit(ctx, p.suffix, t)
	if err == nil {
		err = t.drain(ctx)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	res.Stats = stats
	return res, err
}

// tee passes the prefix's outputs on to the suffix, storing each one
// first. It is read by one goroutine at a time (the runner's source
// reader), but drain may follow from the caller's: the mutex orders
// them.
type tee struct {
	mu  sync.Mutex
	src flow.Source
	w   *entryWriter
	eof bool
}

func (t *tee) Next(ctx context.Context) (flow.Batch, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.eof {
		return flow.Batch{}, io.EOF
	}
	b, err := t.src.Next(ctx)
	if errors.Is(err, io.EOF) {
		t.eof = true
		return b, err
	}
	if err != nil {
		return b, err
	}
	if t.w != nil {
		if err := t.w.write(b); err != nil {
			b.Release()
			return flow.Batch{}, err
		}
	}
	return b, nil
}

// drain reads what the suffix's fit left, so that the prefix is fitted
// on the whole source and the entry holds every output.
func (t *tee) drain(ctx context.Context) error {
	for {
		b, err := t.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		b.Release()
	}
}

// Split places a checkpoint in the pipeline p just before its top-level
// node called before: the nodes ahead of it become the prefix, it and
// those after it the suffix, both with p's defaults (NewPipeline's
// options) and every node its own options. It is New(c, prefix, suffix).
func Split(c *Cache, p *flow.Pipeline, before string) (*Pipeline, error) {
	if p == nil {
		return nil, errors.New("checkpoint: Split: nil pipeline")
	}
	nodes := p.Nodes()
	at := -1
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
		if n.Name == before {
			at = i
		}
	}
	if at < 1 {
		return nil, fmt.Errorf("checkpoint: Split before %q: want the name of a top-level node after the first; the pipeline has %v", before, names)
	}
	defaults := p.Defaults().Options()
	prefix, err := flow.NewPipeline(nodes[:at], defaults...)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: Split: prefix: %w", err)
	}
	suffix, err := flow.NewPipeline(nodes[at:], defaults...)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: Split: suffix: %w", err)
	}
	return New(c, prefix, suffix)
}
