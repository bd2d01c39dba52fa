package checkpoint

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
)

// Outputs is the output stream of Pipeline.Transform: a flow.Source of
// the suffix's outputs, read to io.EOF or abandoned, and closed either
// way.
type Outputs struct {
	// Key is the entry's key; "" where the transform was not cached.
	Key string
	// Hit is true when the prefix did not run: its outputs were read
	// from the cache.
	Hit bool

	out    *flow.Stream
	prefix *flow.Stream // on a miss
	tee    *tee
	entry  *entryReader // on a hit
	spill  *entryReader
	cache  *Cache
	dir    string
	model  []byte
	closed bool
	stored bool
}

// Next returns the suffix's next output batch, which the caller owns.
func (o *Outputs) Next(ctx context.Context) (flow.Batch, error) { return o.out.Next(ctx) }

// Stored reports whether Close stored a new entry.
func (o *Outputs) Stored() bool { return o.stored }

// Close ends the run and releases what it holds. After a miss whose
// prefix outputs were read to their end without an error, it stores them
// as a new entry (then evicts to keep the budget); a stream abandoned
// early stores nothing. Calling Close again returns nil.
func (o *Outputs) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	err := o.out.Close()
	if o.prefix != nil {
		err = errors.Join(err, o.prefix.Close())
	}
	if o.entry != nil {
		o.entry.close()
		if o.entry.damaged {
			removeEntry(o.dir)
		}
	}
	if o.spill != nil {
		o.spill.remove()
	}
	if o.tee != nil && o.tee.w != nil {
		o.tee.mu.Lock()
		eof := o.tee.eof
		o.tee.mu.Unlock()
		if err != nil || !eof {
			o.tee.w.abort()
			return err
		}
		if err := o.tee.w.commit(o.dir, o.model); err != nil {
			return err
		}
		o.cache.touch(o.dir)
		o.stored = true
		return o.cache.evict(o.dir)
	}
	return err
}

var _ flow.Source = (*Outputs)(nil)

// Transform runs src through the prefix and then the suffix on their
// transform paths and returns the suffix's outputs. The prefix's outputs
// are cached under a key that chains, as Fit's does, the module version,
// every active prefix step's type, version, hyperparameters and node
// options, and the data, plus the prefix's fitted state (the hash of
// persist.Marshal of it): transforming the same data with the same fitted
// prefix again reads its outputs from the cache and does not run the
// prefix; fitting the prefix again, or new data, misses. The stream is
// the caller's to read and Close (see Outputs).
func (p *Pipeline) Transform(ctx context.Context, r flow.Runner, src flow.Source) (*Outputs, error) {
	mem := memOf(r)
	if !p.cache.Enabled() {
		return p.transformThrough(ctx, r, src, nil, &Outputs{})
	}
	o := &Outputs{cache: p.cache}
	if _, ok := src.(Fingerprinter); !ok && !flow.Replayable(src) {
		sp, err := p.cache.spill(ctx, src, mem)
		if err != nil {
			return nil, err
		}
		o.spill, src = sp, sp
	}
	key, err := p.transformKey(ctx, src, mem)
	if err != nil {
		o.dropSpill()
		return nil, err
	}
	o.Key, o.dir = key, p.cache.entryDir(key)
	if e, ok, _ := openOutputs(o.dir, mem, false, true); ok {
		out, err := r.Transform(ctx, p.suffix, e)
		if err != nil {
			e.close()
			o.dropSpill()
			return nil, err
		}
		p.cache.touch(o.dir)
		o.Hit, o.entry, o.out = true, e, out
		return o, nil
	}
	w, err := p.cache.create(mem)
	if err != nil {
		o.dropSpill()
		return nil, err
	}
	return p.transformThrough(ctx, r, src, w, o)
}

func (o *Outputs) dropSpill() {
	if o.spill != nil {
		o.spill.remove()
		o.spill = nil
	}
}

func (p *Pipeline) transformKey(ctx context.Context, src flow.Source, mem memory.Allocator) (string, error) {
	c := newChain("penstock-checkpoint-transform", fmt.Sprint(formatVersion), p.cache.version)
	if err := stepsKey(c, p.prefix, p.cache.reg, false); err != nil {
		return "", err
	}
	model, err := persist.Marshal(p.prefix, persist.WithRegistry(p.cache.reg), persist.WithAllocator(mem))
	if err != nil {
		return "", fmt.Errorf("checkpoint: key: saving the fitted prefix: %w", err)
	}
	c.link("state", string(model))
	data, why, err := dataKey(ctx, src, mem)
	if err != nil {
		return "", err
	}
	if why != "" {
		return "", errors.New("checkpoint: " + why)
	}
	c.link("data", data)
	return c.hex(), nil
}

// transformThrough runs the prefix then the suffix, storing the prefix's
// outputs in w where it is not nil.
func (p *Pipeline) transformThrough(ctx context.Context, r flow.Runner, src flow.Source, w *entryWriter, o *Outputs) (*Outputs, error) {
	pre, err := r.Transform(ctx, p.prefix, src)
	if err != nil {
		if w != nil {
			w.abort()
		}
		o.dropSpill()
		return nil, err
	}
	o.prefix = pre
	o.tee = &tee{src: pre, w: w}
	out, err := r.Transform(ctx, p.suffix, o.tee)
	if err != nil {
		pre.Close()
		if w != nil {
			w.abort()
		}
		o.dropSpill()
		return nil, err
	}
	o.out = out
	return o, nil
}
