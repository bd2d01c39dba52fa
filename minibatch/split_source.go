package minibatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// SplitSource is one side of a split (train or validation of a holdout or
// of a fold): a replayable source that reads the parent source from the
// start and returns, in the parent's order, only the rows assigned to this
// side. It implements flow.Source and flow.Rewinder.
//
// Batches follow the parent's batches: each output batch holds the selected
// rows of one parent batch (parent batches with none are skipped), so sizes
// vary; re-batch with NewRebatcher for fixed sizes. Seq counts 0, 1, 2, …
// from each Rewind; Epoch is the parent batch's.
//
// Ownership: a SplitSource borrows its parent, which the caller keeps, must
// keep alive while any side is read, and must not read itself in the
// meantime. Every batch Next returns is owned by the caller. Where a parent
// batch is kept whole it is passed on (retained); a contiguous run of it is
// a zero-copy slice; otherwise the selected rows are copied into new
// buffers from the allocator given to the split, O(selected rows × row
// width).
//
// Sides share the parent. Each side remembers where it is; when another
// side has moved the parent, the next read rewinds the parent and skips to
// this side's position. So any sequential use is correct — train fully then
// validation fully, or the reverse, or one fold after another — and is cheap
// when each side is read to the end before the next one starts. Switching
// sides in the middle of a pass is correct but re-reads the parent up to
// the switching side's position. Like any source, each side is read by one
// goroutine at a time; different sides of one split lock the parent while
// they read it, so reading them from different goroutines at once is safe,
// but slow for the same reason: read them one after another.
type SplitSource struct {
	name   string
	parent *splitParent
	mem    memory.Allocator
	sel    rowSelection
	rows   int64 // rows returned per pass
	end    int64 // one past the last selected parent row

	next   int64 // parent row at which this side continues
	seq    int64
	idx    []int32 // scratch for selected indices
	closed bool
}

var (
	_ flow.Source   = (*SplitSource)(nil)
	_ flow.Rewinder = (*SplitSource)(nil)
	_ io.Closer     = (*SplitSource)(nil)
)

// splitParent is the source shared by all the sides of one split.
type splitParent struct {
	mu     sync.Mutex
	src    flow.Source
	rw     flow.Rewinder
	rows   int64         // rows seen by the planning pass
	pos    int64         // parent row of the next batch the parent returns
	known  bool          // whether pos is known (false after a read error)
	schema *arrow.Schema // X's schema of the last batch read
}

// Rows returns the number of rows that one pass of this side returns, as
// planned from the parent's first pass. It costs O(1).
func (s *SplitSource) Rows() int64 { return s.rows }

// String returns the side's name, e.g. "holdout validation" or
// "k-fold 2/5 train".
func (s *SplitSource) String() string { return s.name }

// Rewind makes the next call to Next return this side's first batch again.
// It costs O(1); the parent is rewound lazily by the next Next. It fails
// only after Close.
func (s *SplitSource) Rewind() error {
	if s.closed {
		return fmt.Errorf("minibatch: split %s: Rewind after Close", s.name)
	}
	s.next, s.seq = 0, 0
	return nil
}

// Replayable reports true until Close: a split is made only over a
// replayable parent, which every side re-reads.
func (s *SplitSource) Replayable() bool { return !s.closed }

// Schema returns the schema of X: that of the parent source where it
// reports one (a Schema method), else that of the last batch read from the
// parent, nil before the first. Rows are selected, columns never change.
func (s *SplitSource) Schema() *arrow.Schema {
	if sch := sourceSchema(s.parent.src); sch != nil {
		return sch
	}
	s.parent.mu.Lock()
	defer s.parent.mu.Unlock()
	return s.parent.schema
}

// Close ends this side: Next and Rewind fail afterwards. It holds no
// batches and does not touch the parent, which the caller keeps (and
// closes after every side). Closing twice is safe.
func (s *SplitSource) Close() error {
	s.closed = true
	s.idx = nil
	return nil
}

// Next returns the next batch of this side's rows, which the caller owns,
// or io.EOF after the last one (without reading the rest of the parent).
// It may rewind the parent and skip batches (see SplitSource). Errors from
// the parent are returned wrapped; a parent that ends before the planned
// rows (its data changed since the split was planned) is an error.
func (s *SplitSource) Next(ctx context.Context) (flow.Batch, error) {
	if s.closed {
		return flow.Batch{}, fmt.Errorf("minibatch: split %s: Next after Close", s.name)
	}
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	if s.next >= s.end {
		return flow.Batch{}, io.EOF
	}
	p := s.parent
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.known || p.pos > s.next {
		if err := p.rw.Rewind(); err != nil {
			p.known = false
			return flow.Batch{}, fmt.Errorf("minibatch: split %s: rewind source: %w", s.name, err)
		}
		p.pos, p.known = 0, true
	}
	for {
		b, err := p.src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return flow.Batch{}, fmt.Errorf("minibatch: split %s: source ended after %d rows, want at least %d (the rows of the planning pass, %d); did the source change after the split?",
				s.name, p.pos, s.end, p.rows)
		}
		if err != nil {
			b.Release()
			p.known = false
			return flow.Batch{}, fmt.Errorf("minibatch: split %s: read source at row %d: %w", s.name, p.pos, err)
		}
		if err := checkSplitBatch(b); err != nil {
			b.Release()
			p.known = false
			return flow.Batch{}, fmt.Errorf("minibatch: split %s: source batch at row %d: %w", s.name, p.pos, err)
		}
		p.schema = b.X.Schema()
		base, n := p.pos, b.Rows()
		p.pos += n
		if base+n <= s.next {
			b.Release()
			continue
		}
		from := max(s.next-base, 0)
		s.next = base + n
		s.idx = s.sel.appendSelected(s.idx[:0], base, from, n)
		if len(s.idx) == 0 {
			b.Release()
			if s.next >= s.end {
				return flow.Batch{}, io.EOF
			}
			continue
		}
		out, err := takeBatchRows(s.mem, b, s.idx)
		b.Release()
		if err != nil {
			return flow.Batch{}, fmt.Errorf("minibatch: split %s: rows %d to %d: %w", s.name, base, base+n, err)
		}
		out.Seq = s.seq
		s.seq++
		return out, nil
	}
}

// checkSplitBatch reports a batch of the parent that a split cannot take
// rows of: one with no X, or with X and Y of different lengths.
func checkSplitBatch(b flow.Batch) error {
	switch {
	case b.X == nil:
		return errors.New("the batch has no X")
	case b.Y != nil && b.Y.NumRows() != b.X.NumRows():
		return fmt.Errorf("the batch has %d rows of X and %d of Y; want the same", b.X.NumRows(), b.Y.NumRows())
	}
	return nil
}

func newSplitSide(name string, p *splitParent, mem memory.Allocator, sel rowSelection, rows, end int64) *SplitSource {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	return &SplitSource{name: name, parent: p, mem: mem, sel: sel, rows: rows, end: end}
}

// rowSelection says which parent rows a side keeps.
type rowSelection interface {
	// appendSelected appends to dst the indices i in [from, n) of a parent
	// batch whose first row is parent row base, for which row base+i is
	// selected, in ascending order.
	appendSelected(dst []int32, base, from, n int64) []int32
}

// partSelection selects the rows whose part is part, or, when invert, the
// rows whose part is not.
type partSelection struct {
	parts  []int32
	part   int32
	invert bool
}

func (s partSelection) appendSelected(dst []int32, base, from, n int64) []int32 {
	hi := min(base+n, int64(len(s.parts)))
	for row := base + from; row < hi; row++ {
		if (s.parts[row] == s.part) != s.invert {
			dst = append(dst, int32(row-base))
		}
	}
	return dst
}

// rangeSelection selects the rows in [lo, hi).
type rangeSelection struct{ lo, hi int64 }

func (s rangeSelection) appendSelected(dst []int32, base, from, n int64) []int32 {
	lo, hi := max(s.lo, base+from), min(s.hi, base+n)
	for row := lo; row < hi; row++ {
		dst = append(dst, int32(row-base))
	}
	return dst
}
