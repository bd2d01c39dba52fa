package minibatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// Shuffler is a bounded shuffle buffer over any source, like tf.data's
// shuffle(buffer_size): see Shuffle. It implements flow.Source, and
// flow.Rewinder when its source does.
//
// Ownership: the Shuffler borrows its source (it never releases it) and
// holds references to the input batches whose rows are in the buffer;
// Close drops them. Every batch that Next returns is owned by the caller.
// A Shuffler is read by one goroutine.
type Shuffler struct {
	src     flow.Source
	mem     memory.Allocator
	bufRows int
	seed    uint64
	pass    uint64
	rng     *rand.Rand

	held     []*heldBatch // input batches with rows in the buffer; nil once all used
	heldN    int          // non-nil entries of held
	heldRows int64        // rows of the non-nil entries of held, used or not
	live     []rowRef     // rows in the buffer, not yet returned
	sizes    []int        // rows of the output batches owed, in order; they sum to len(live)
	maxBatch int          // largest input batch seen

	stash    flow.Batch // first batch of the next epoch, read while the buffer held the previous one
	hasStash bool
	epoch    int
	eof      bool

	schemas batchSchemas
	outSeq  int64
	closed  bool
}

type heldBatch struct {
	b    flow.Batch
	live int
}

var (
	_ flow.Source   = (*Shuffler)(nil)
	_ flow.Rewinder = (*Shuffler)(nil)
	_ io.Closer     = (*Shuffler)(nil)
)

// Shuffle returns a source that returns the rows of src in a random order
// drawn through a buffer of bufferRows rows, like tf.data's shuffle: before
// each output batch the buffer is filled from src to at least bufferRows rows
// (or to the end of the epoch), then the batch's rows are drawn uniformly at
// random, without replacement, from the whole buffer. A buffer at least as
// large as the stream gives a uniform permutation; a smaller one only mixes
// rows that are close in the stream.
//
// Output batches have the sizes of the input batches, in order (the k-th
// output batch has as many rows as the k-th input batch that has rows:
// input batches of zero rows are dropped), Seq 0, 1, 2, …,
// and the Epoch of their rows: epochs are never mixed, the buffer is emptied
// at the end of each epoch before rows of the next are taken in. X and Y
// rows stay paired.
//
// The order depends only on the seed (WithSeed, default 0) and on the input: the same seed and input
// give the same order in every run (math/rand/v2 PCG). Rewind, when src is a
// flow.Rewinder, rewinds src and draws a new order (the seed is mixed with
// the number of rewinds), as tf.data reshuffles each iteration.
//
// Memory is O(bufferRows + largest input batch) rows whatever the length of
// the stream: the buffer keeps input batches by reference, and when batches
// pinned by a few unreturned rows exceed twice that bound, the remaining rows
// are copied into one compact batch (an amortized copy of at most one row per
// input row). Each output batch is gathered into new buffers from
// WithAllocator (default memory.DefaultAllocator): O(rows × row width).
// Options: WithSeed, WithAllocator.
func Shuffle(src flow.Source, bufferRows int, opts ...Option) (*Shuffler, error) {
	if src == nil {
		return nil, errors.New("minibatch: shuffle: source is nil")
	}
	if bufferRows < 1 {
		return nil, fmt.Errorf("minibatch: shuffle: bufferRows is %d, want at least 1", bufferRows)
	}
	cfg, err := newStageConfig("shuffle", opts, "WithSeed")
	if err != nil {
		return nil, err
	}
	s := &Shuffler{src: src, mem: cfg.mem, bufRows: bufferRows, seed: cfg.seed}
	s.rng = seededRand(s.seed, 0)
	return s, nil
}

// Next returns the next shuffled batch, which the caller owns, or io.EOF
// after the last one. Errors from the source are returned wrapped.
func (s *Shuffler) Next(ctx context.Context) (flow.Batch, error) {
	if s.closed {
		return flow.Batch{}, errors.New("minibatch: shuffle: Next after Close")
	}
	for {
		if ctx.Err() != nil {
			return flow.Batch{}, context.Cause(ctx)
		}
		epochDone := s.eof || s.hasStash
		if len(s.sizes) > 0 && (epochDone || len(s.live) >= max(s.bufRows, s.sizes[0])) {
			return s.emit()
		}
		if epochDone {
			if !s.hasStash {
				return flow.Batch{}, io.EOF
			}
			b := s.stash
			s.stash, s.hasStash = flow.Batch{}, false
			s.add(b)
			continue
		}
		b, err := s.src.Next(ctx)
		if err == io.EOF {
			s.eof = true
			continue
		}
		if err != nil {
			return flow.Batch{}, fmt.Errorf("minibatch: shuffle: reading input batch %d: %w", s.schemas.batches, err)
		}
		if err := s.schemas.check(b); err != nil {
			b.Release()
			return flow.Batch{}, fmt.Errorf("minibatch: shuffle: %w", err)
		}
		if b.Rows() == 0 {
			b.Release()
			continue
		}
		if len(s.live) > 0 && b.Epoch != s.epoch {
			s.stash, s.hasStash = b, true
			continue
		}
		s.add(b)
	}
}

// add puts the rows of b into the buffer and owes an output batch of as many
// rows.
func (s *Shuffler) add(b flow.Batch) {
	n := int(b.Rows())
	s.epoch = b.Epoch
	k := int32(len(s.held))
	s.held = append(s.held, &heldBatch{b: b, live: n})
	s.heldN++
	s.heldRows += int64(n)
	for r := range n {
		s.live = append(s.live, rowRef{src: k, row: int32(r)})
	}
	s.sizes = append(s.sizes, n)
	s.maxBatch = max(s.maxBatch, n)
}

// emit draws the next output batch from the buffer.
func (s *Shuffler) emit() (flow.Batch, error) {
	r := s.sizes[0]
	L := len(s.live)
	pick := make([]rowRef, r)
	for i := range r {
		j := s.rng.IntN(L - i)
		pick[i] = s.live[j]
		s.live[j] = s.live[L-i-1]
	}
	s.live = s.live[:L-r]
	s.sizes = s.sizes[1:]

	out, err := takeBatch(s.mem, s.heldBatches(), pick, s.schemas.hasY)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("minibatch: shuffle: %w", err)
	}
	out.Seq, out.Epoch = s.outSeq, s.epoch
	s.outSeq++
	for _, ref := range pick {
		h := s.held[ref.src]
		if h.live--; h.live == 0 {
			s.heldRows -= h.b.Rows()
			h.b.Release()
			s.held[ref.src] = nil
			s.heldN--
		}
	}
	if err := s.compact(); err != nil {
		out.Release()
		return flow.Batch{}, fmt.Errorf("minibatch: shuffle: %w", err)
	}
	return out, nil
}

func (s *Shuffler) heldBatches() []flow.Batch {
	bs := make([]flow.Batch, len(s.held))
	for i, h := range s.held {
		if h != nil {
			bs[i] = h.b
		}
	}
	return bs
}

// compact bounds what the buffer holds: it copies the rows left in the
// buffer into one batch when the input batches that they pin hold too many
// rows, and drops the empty entries of held when they outnumber the others.
func (s *Shuffler) compact() error {
	bound := int64(s.bufRows + 2*s.maxBatch)
	switch {
	case s.heldRows > 2*bound && len(s.live) > 0:
		b, err := takeBatch(s.mem, s.heldBatches(), s.live, s.schemas.hasY)
		if err != nil {
			return err
		}
		b.Epoch = s.epoch
		s.dropHeld()
		s.held = append(s.held, &heldBatch{b: b, live: len(s.live)})
		s.heldN, s.heldRows = 1, b.Rows()
		for i := range s.live {
			s.live[i] = rowRef{src: 0, row: int32(i)}
		}
	case len(s.held) > 2*s.heldN+16:
		index := make([]int32, len(s.held))
		kept := s.held[:0]
		for i, h := range s.held {
			if h != nil {
				index[i] = int32(len(kept))
				kept = append(kept, h)
			}
		}
		clear(s.held[len(kept):])
		s.held = kept
		for i, ref := range s.live {
			s.live[i].src = index[ref.src]
		}
	}
	return nil
}

func (s *Shuffler) dropHeld() {
	for _, h := range s.held {
		if h != nil {
			h.b.Release()
		}
	}
	clear(s.held)
	s.held = s.held[:0]
	s.heldN, s.heldRows = 0, 0
}

// Rewind rewinds the source, empties the buffer and starts a new pass with a
// new random order (seed mixed with the pass number); Seq starts again at 0.
// It returns an error wrapping ErrNotReplayable if the source does not
// implement flow.Rewinder.
func (s *Shuffler) Rewind() error {
	if s.closed {
		return errors.New("minibatch: shuffle: Rewind after Close")
	}
	rw, ok := s.src.(flow.Rewinder)
	if !ok {
		return fmt.Errorf("minibatch: shuffle: cannot rewind: source %T does not implement flow.Rewinder: %w", s.src, ErrNotReplayable)
	}
	if err := rw.Rewind(); err != nil {
		return fmt.Errorf("minibatch: shuffle: rewind source: %w", err)
	}
	s.reset()
	s.pass++
	s.rng = seededRand(s.seed, s.pass)
	return nil
}

// Replayable reports whether Rewind can succeed: whether the Shuffler is
// open and its source is replayable (see Repeat).
func (s *Shuffler) Replayable() bool { return !s.closed && replayable(s.src) }

// Schema returns the schema of X: that of the source where it reports one
// (a Schema method), else that of the first batch read (nil before it).
// Rows are shuffled, columns never change.
func (s *Shuffler) Schema() *arrow.Schema {
	if sch := sourceSchema(s.src); sch != nil {
		return sch
	}
	return s.schemas.x
}

func (s *Shuffler) reset() {
	s.dropHeld()
	s.live, s.sizes = s.live[:0], s.sizes[:0]
	if s.hasStash {
		s.stash.Release()
	}
	s.stash, s.hasStash = flow.Batch{}, false
	s.eof, s.epoch, s.outSeq, s.maxBatch = false, 0, 0, 0
	s.schemas = batchSchemas{}
}

// Close drops the batches held in the buffer. It does not close the
// source, which the caller closes after the Shuffler. Calling it more than
// once is safe; Next and Rewind fail afterwards.
func (s *Shuffler) Close() error {
	if s.closed {
		return nil
	}
	s.reset()
	s.closed = true
	return nil
}

// Permute returns a source that returns every row of the replayable source
// src exactly once per pass, in a random order, in batches of batchRows rows
// (the last batch of a pass has the rows left). The order is a uniform
// permutation drawn from WithSeed (default 0) and the pass number (math/rand/v2 PCG):
// reproducible from run to run, different from one pass to the next. Rewind
// starts the next pass; wrapped in Repeat, each epoch is a new permutation.
// Output batches have Seq 0, 1, 2, … and Epoch equal to the pass number.
//
// src must be a *Memory or implement flow.Rewinder. Permute is Curriculum
// with an order that is a permutation; the cost depends on the source (see
// Ordered). In short: from a *Memory, each output batch is gathered
// straight from its records (O(batchRows × row width) and nothing else
// held); from any other replayable source, one counting pass, then one
// partial pass over src per window of output rows (WithWindowRows, default
// DefaultWindowRows), holding at most a window of rows. Both hold the
// permutation: one int per row. Options: WithSeed, WithWindowRows,
// WithAllocator (default memory.DefaultAllocator) for the output batches.
func Permute(src flow.Source, batchRows int, opts ...Option) (*Ordered, error) {
	order := func(cfg *sourceConfig) OrderFunc {
		return func(epoch, n int) ([]int, error) {
			return seededRand(cfg.seed, uint64(epoch)).Perm(n), nil
		}
	}
	return newOrdered("permute", src, batchRows, order, opts, "WithSeed")
}

// batchSchemas checks that the batches of a stream have the columns of its
// first batch.
type batchSchemas struct {
	x, y    *arrow.Schema
	hasY    bool
	batches int64 // batches checked so far
}

func (c *batchSchemas) check(b flow.Batch) error {
	defer func() { c.batches++ }()
	if b.X == nil {
		return fmt.Errorf("input batch %d has no X", c.batches)
	}
	if b.Y != nil && b.Y.NumRows() != b.X.NumRows() {
		return fmt.Errorf("input batch %d has %d Y rows and %d X rows, want equal", c.batches, b.Y.NumRows(), b.X.NumRows())
	}
	if c.x == nil {
		c.x, c.hasY = b.X.Schema(), b.Y != nil
		if c.hasY {
			c.y = b.Y.Schema()
		}
		return nil
	}
	if (b.Y != nil) != c.hasY {
		return fmt.Errorf("input batch %d has Y: %t, but the first batch has Y: %t", c.batches, b.Y != nil, c.hasY)
	}
	if err := sameColumns("X", c.x, b.X.Schema(), c.batches); err != nil {
		return err
	}
	if c.hasY {
		return sameColumns("Y", c.y, b.Y.Schema(), c.batches)
	}
	return nil
}
