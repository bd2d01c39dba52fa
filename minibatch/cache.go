package minibatch

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// Cache reads a source once into memory and replays it: the first pass
// reads the source batch by batch, passing each batch on and keeping a
// reference to it; at io.EOF the source is done with, and every later pass
// (Rewind) returns the kept batches again without touching the source. So
// epochs over a gzipped CSV parse the file once. See NewCache.
//
// Ownership: the Cache borrows its source, which the caller closes after
// the Cache (it may do so as soon as the first pass has ended, see
// Filled). It holds one reference to every batch of the first pass until
// Close; every batch that Next returns carries its own references, which
// the caller releases, and stays valid after Close. A Cache is read by one
// goroutine.
type Cache struct {
	src      flow.Source
	maxBytes int64

	batches []flow.Batch // kept so far; all of them once filled
	bytes   int64        // bytes of the buffers of batches, each buffer once
	filled  bool         // the source reached io.EOF: passes replay batches
	started bool         // the source has been read since the Cache was at its start
	catchUp bool         // rewound mid first pass: read the rest of the source first
	pos     int          // next batch of the current pass, once filled
	seq     int64
	schema  *arrow.Schema
	err     error // a failed first pass: the Cache is unusable
	closed  bool

	// counted: the buffers counted in bytes. Batches may share buffers
	// (zero-copy slices of one batch, a dictionary), held once.
	counted map[*memory.Buffer]struct{}
}

var (
	_ flow.Source   = (*Cache)(nil)
	_ flow.Rewinder = (*Cache)(nil)
	_ io.Closer     = (*Cache)(nil)
)

// ErrCacheFull is wrapped by the error of a Cache whose source holds more
// than its limit (WithMaxBytes). Test with errors.Is.
var ErrCacheFull = errors.New("minibatch: cache: source larger than the cache limit")

// NewCache returns a Cache over src: any source, replayable or not, that
// must be at its start. The first pass returns src's batches as they come
// (Seq 0, 1, 2, …; Epoch as src sets it) while keeping them; later passes
// return the same batches, with the same Seq and Epoch, in the same order.
//
// Memory: the Cache holds the whole stream — the bytes of its Arrow
// buffers, counted as they are read, at most WithMaxBytes (default
// DefaultCacheBytes, 1 GiB). A batch that would take it past the limit is
// an error wrapping ErrCacheFull that says the limit and how to raise it;
// the Cache then releases every batch it kept and fails from then on.
// A buffer shared by several batches (zero-copy slices of one record, a
// dictionary) is counted once, as it is held once. Options: WithMaxBytes.
// Cost: O(buffers) per batch of the first pass, O(1) per batch of later
// passes; nothing is copied.
func NewCache(src flow.Source, opts ...Option) (*Cache, error) {
	if src == nil {
		return nil, errors.New("minibatch: cache: source is nil")
	}
	cfg, err := newStageConfig("cache", opts, "WithMaxBytes")
	if err != nil {
		return nil, err
	}
	return &Cache{src: src, maxBytes: cfg.maxBytes}, nil
}

// Next returns the next batch, which the caller owns, or io.EOF at the end
// of the pass. During the first pass it reads the source; errors from it
// are returned wrapped, and a source larger than the limit is an error
// wrapping ErrCacheFull, after which the Cache holds nothing. The first
// Next after a Rewind in the middle of the first pass over a source that
// is not replayable first reads the rest of the source into the Cache (see
// Rewind).
func (c *Cache) Next(ctx context.Context) (flow.Batch, error) {
	switch {
	case c.closed:
		return flow.Batch{}, errors.New("minibatch: cache: Next after Close")
	case c.err != nil:
		return flow.Batch{}, c.err
	}
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	for c.catchUp && !c.filled {
		b, err := c.read(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return flow.Batch{}, err // the next call reads on
		}
		b.Release()
	}
	if c.catchUp {
		c.catchUp, c.pos = false, 0
	}
	if c.filled {
		if c.pos >= len(c.batches) {
			return flow.Batch{}, io.EOF
		}
		b := c.batches[c.pos]
		c.pos++
		b.Retain()
		return b, nil
	}
	return c.read(ctx)
}

// read reads the source's next batch into the Cache and returns it with a
// reference for the caller, or io.EOF at its end (the Cache is then
// filled).
func (c *Cache) read(ctx context.Context) (flow.Batch, error) {
	c.started = true
	b, err := c.src.Next(ctx)
	if errors.Is(err, io.EOF) {
		c.filled, c.pos = true, len(c.batches)
		return flow.Batch{}, io.EOF
	}
	if err != nil {
		// The source may fail for good or for now (a cancelled context):
		// the batches kept so far stay, and the next call reads on.
		return flow.Batch{}, fmt.Errorf("minibatch: cache: reading batch %d: %w", len(c.batches), err)
	}
	fresh := newBuffers(b, c.counted)
	var size int64
	for buf := range fresh {
		size += int64(buf.Len())
	}
	if c.bytes+size > c.maxBytes {
		b.Release()
		n, held := len(c.batches), c.bytes
		c.drop()
		c.err = fmt.Errorf("minibatch: cache: batch %d (%d bytes) would bring the cache to %d bytes, past its limit of %d bytes after %d batches (%d bytes); raise the limit with WithMaxBytes, or do not cache this source: %w",
			n, size, held+size, c.maxBytes, n, held, ErrCacheFull)
		return flow.Batch{}, c.err
	}
	if c.schema == nil && b.X != nil {
		c.schema = b.X.Schema()
	}
	b.Seq = c.seq
	c.seq++
	c.bytes += size
	if c.counted == nil {
		c.counted = make(map[*memory.Buffer]struct{}, len(fresh))
	}
	for buf := range fresh {
		c.counted[buf] = struct{}{}
	}
	b.Retain() // one reference kept, one handed over
	c.batches = append(c.batches, b)
	return b, nil
}

// newBuffers returns the Arrow buffers of b's X and Y that are not in
// seen.
func newBuffers(b flow.Batch, seen map[*memory.Buffer]struct{}) map[*memory.Buffer]struct{} {
	out := map[*memory.Buffer]struct{}{}
	for _, rec := range []arrow.RecordBatch{b.X, b.Y} {
		if rec == nil {
			continue
		}
		for _, col := range rec.Columns() {
			eachBuffer(col.Data(), func(buf *memory.Buffer) {
				if _, ok := seen[buf]; !ok {
					out[buf] = struct{}{}
				}
			})
		}
	}
	return out
}

// Rewind starts the next pass. It fails only after Close or a failure
// (ErrCacheFull), or when a replayable source's own Rewind fails. Once the first pass has reached io.EOF it costs O(1) and never touches
// the source; before the first read it does nothing, the Cache being at
// its start. In between, a replayable source is rewound and the batches
// kept so far are dropped (the next pass fills the cache anew); a source
// that is not replayable cannot start again, so the next Next first reads
// the rest of it into the Cache (honouring its ctx, and blocking as the
// source does), then returns the first batch.
func (c *Cache) Rewind() error {
	switch {
	case c.closed:
		return errors.New("minibatch: cache: Rewind after Close")
	case c.err != nil:
		return c.err
	case c.filled:
		c.pos = 0
		return nil
	case !c.started:
		return nil
	case !replayable(c.src):
		c.catchUp = true
		return nil
	}
	if err := c.src.(flow.Rewinder).Rewind(); err != nil {
		return fmt.Errorf("minibatch: cache: rewind source: %w", err)
	}
	c.drop()
	return nil
}

// Replayable reports whether Rewind will succeed: until Close or a failure
// (ErrCacheFull), always, whatever the source. So a Cache of any source is taken by what needs a replayable
// source (Repeat, Epochs, Permute, Curriculum, the splits, a runner's
// extra passes).
func (c *Cache) Replayable() bool {
	return !c.closed && c.err == nil
}

// Filled reports whether the first pass has ended, so that the Cache holds
// the whole stream and the source may be closed.
func (c *Cache) Filled() bool { return c.filled }

// Bytes returns the bytes of Arrow buffers that the Cache holds.
func (c *Cache) Bytes() int64 { return c.bytes }

// Schema returns the schema of X: that of the source where it reports one
// (a Schema method), else that of the first batch read (nil before it).
func (c *Cache) Schema() *arrow.Schema {
	if c.schema != nil {
		return c.schema
	}
	return sourceSchema(c.src)
}

// drop releases the batches kept.
func (c *Cache) drop() {
	for _, b := range c.batches {
		b.Release()
	}
	clear(c.batches)
	c.batches, c.bytes, c.pos, c.seq, c.filled, c.started, c.catchUp = c.batches[:0], 0, 0, 0, false, false, false
	c.counted = nil
}

// Close releases the batches that the Cache keeps. It does not close the
// source. Calling it twice is safe; Next and Rewind fail afterwards.
func (c *Cache) Close() error {
	if c.closed {
		return nil
	}
	c.drop()
	c.batches = nil
	c.closed = true
	return nil
}
