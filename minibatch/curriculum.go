package minibatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// OrderFunc gives the rows of one epoch (pass) in the order they are to be
// read: indices into the n rows of the source, each in [0, n). It may return
// a subset (rows left out this epoch), repeat rows (to weight them) or
// return no rows (an empty epoch). It is called once at the start of each
// pass, from the goroutine that reads the source; it may keep state between
// calls. An error ends the stream.
type OrderFunc func(epoch, n int) ([]int, error)

// DefaultWindowRows is the default number of output rows that an Ordered
// source over a non-*Memory source gathers per pass over its source.
const DefaultWindowRows = 1 << 16

// Ordered is a source that returns the rows of a replayable source in an
// order chosen for each pass: a seeded permutation (Permute) or a
// user-defined curriculum (Curriculum). It implements flow.Source and
// flow.Rewinder: Rewind starts the next pass, whose order is drawn for the
// next epoch number. Output batches have batchRows rows (the last of a pass
// has the rows left), Seq 0, 1, 2, … within a pass and Epoch equal to the
// pass number (0 for the first; Repeat overrides it with its own count,
// which is the same when Repeat owns the Ordered from its start).
//
// Cost, by kind of source:
//
//   - *Memory: each output batch is gathered straight from the Memory's
//     records, O(batchRows × row width) copied into new buffers from mem;
//     nothing else is held. The Memory must not be closed before the
//     Ordered is done with it.
//   - any other source, which must implement flow.Rewinder, be at its
//     start and return the same rows in the same order on every pass (a
//     Shuffler, a Permute or a Curriculum, also under a Rebatcher or
//     Repeat, is refused: cache it with NewCache): the first pass reads
//     it once to count its rows; then each pass gathers its output window
//     by window (WithWindowRows): one partial pass over the source per
//     window (rewinding it first), keeping only the rows of that window,
//     so at most window rows plus one input batch are held.
//     A pass therefore reads the source about len(order)/window times: pick
//     the window as large as memory allows.
//
// Both hold the order of the pass: one int per output row.
//
// Ownership: the Ordered borrows its source (it never releases it); every
// batch that Next returns is owned by the caller; Close drops the rows of
// the current window. An Ordered is read by one goroutine.
type Ordered struct {
	op        string
	src       flow.Source
	memSrc    *Memory
	mem       memory.Allocator
	batchRows int
	window    int
	order     OrderFunc

	n       int // rows of the source; -1 until counted
	pass    int
	started bool
	idx     []int // order of the current pass
	pos     int   // next output position in idx
	outSeq  int64
	schemas batchSchemas

	memBatches []flow.Batch // the Memory's records, for takeBatch

	winStart, winEnd int
	pieces           []flow.Batch // rows of the window, gathered from the source
	winRefs          []rowRef     // winRefs[p-winStart]: where output position p lies in pieces
	srcUsed          bool         // the source has been read since it was last at its start
	closed           bool
}

var (
	_ flow.Source   = (*Ordered)(nil)
	_ flow.Rewinder = (*Ordered)(nil)
	_ io.Closer     = (*Ordered)(nil)
)

// Curriculum returns a source that returns, for each pass (epoch) over the
// replayable source src, the rows that order gives for that epoch, in that
// order, in batches of batchRows rows. Use it for curriculum learning (easy
// rows first, harder ones added as epochs go: see EasyFirst) or to weight
// rows (repeat them: see Weighted). See Ordered for the cost, which depends
// on the kind of src. Options: WithWindowRows, and WithAllocator (default
// memory.DefaultAllocator) for the output batches.
func Curriculum(src flow.Source, batchRows int, order OrderFunc, opts ...Option) (*Ordered, error) {
	if order == nil {
		return nil, errors.New("minibatch: curriculum: order function is nil")
	}
	return newOrdered("curriculum", src, batchRows, func(*sourceConfig) OrderFunc {
		return func(epoch, n int) ([]int, error) {
			idx, err := order(epoch, n)
			if err != nil {
				return nil, fmt.Errorf("order for epoch %d: %w", epoch, err)
			}
			return idx, nil
		}
	}, opts)
}

// newOrdered makes an Ordered whose order is made from the options.
func newOrdered(op string, src flow.Source, batchRows int, order func(*sourceConfig) OrderFunc, opts []Option, reads ...string) (*Ordered, error) {
	if src == nil {
		return nil, fmt.Errorf("minibatch: %s: source is nil", op)
	}
	if batchRows < 1 {
		return nil, fmt.Errorf("minibatch: %s: batchRows is %d, want at least 1", op, batchRows)
	}
	cfg, err := newStageConfig(op, opts, append(reads, "WithWindowRows")...)
	if err != nil {
		return nil, err
	}
	o := &Ordered{op: op, src: src, mem: cfg.mem, batchRows: batchRows, order: order(cfg), n: -1}
	o.window = (max(cfg.windowRows, batchRows) + batchRows - 1) / batchRows * batchRows
	if m, ok := src.(*Memory); ok {
		o.memSrc = m
		return o, nil
	}
	if what := reshuffles(src); what != "" {
		return nil, fmt.Errorf("minibatch: %s: source %T returns its rows in a new order on every pass (through %s); %s re-reads its source window by window and needs the same order on every pass: cache one pass of it (NewCache), or give it a *Memory",
			op, src, what, op)
	}
	if !replayable(src) {
		return nil, fmt.Errorf("minibatch: %s: source %T is not replayable (it does not implement flow.Rewinder, or its Replayable method says no); an order over all rows needs a replayable source (a *Memory, or one that can Rewind): %w", op, src, ErrNotReplayable)
	}
	return o, nil
}

// Replayable reports true until Close: an Ordered is made only over
// replayable sources.
func (o *Ordered) Replayable() bool { return !o.closed }

// Schema returns the schema of X: that of the source where it reports one
// (a Schema method), else that of the first batch read (nil before the
// first Next). Rows are reordered, columns never change.
func (o *Ordered) Schema() *arrow.Schema {
	if o.memSrc != nil {
		return o.memSrc.Schema()
	}
	if s := sourceSchema(o.src); s != nil {
		return s
	}
	return o.schemas.x
}

// Next returns the next batch of the pass, which the caller owns, or io.EOF
// at the end of the pass (call Rewind for the next one).
func (o *Ordered) Next(ctx context.Context) (flow.Batch, error) {
	if o.closed {
		return flow.Batch{}, fmt.Errorf("minibatch: %s: Next after Close", o.op)
	}
	if ctx.Err() != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	if !o.started {
		if err := o.startPass(ctx); err != nil {
			return flow.Batch{}, fmt.Errorf("minibatch: %s: %w", o.op, err)
		}
	}
	if o.pos >= len(o.idx) {
		return flow.Batch{}, io.EOF
	}
	k := min(o.batchRows, len(o.idx)-o.pos)
	var out flow.Batch
	var err error
	if o.memSrc != nil {
		if o.memSrc.closed {
			return flow.Batch{}, fmt.Errorf("minibatch: %s: the *Memory source was closed", o.op)
		}
		refs := make([]rowRef, k)
		starts := o.memSrc.starts
		for q := range refs {
			g := int64(o.idx[o.pos+q])
			rec := sort.Search(len(starts)-1, func(r int) bool { return starts[r+1] > g })
			refs[q] = rowRef{src: int32(rec), row: int32(g - starts[rec])}
		}
		out, err = takeBatch(o.mem, o.memBatches, refs, o.schemas.hasY)
	} else {
		if o.pos >= o.winEnd {
			if err := o.loadWindow(ctx); err != nil {
				return flow.Batch{}, fmt.Errorf("minibatch: %s: %w", o.op, err)
			}
		}
		at := o.pos - o.winStart
		out, err = takeBatch(o.mem, o.pieces, o.winRefs[at:at+k], o.schemas.hasY)
	}
	if err != nil {
		return flow.Batch{}, fmt.Errorf("minibatch: %s: %w", o.op, err)
	}
	o.pos += k
	out.Seq, out.Epoch = o.outSeq, o.pass
	o.outSeq++
	return out, nil
}

// startPass counts the source's rows if needed and draws the pass's order.
func (o *Ordered) startPass(ctx context.Context) error {
	if o.memSrc != nil {
		m := o.memSrc
		if m.closed {
			return errors.New("the *Memory source was closed")
		}
		o.n = int(m.Rows())
		o.memBatches = make([]flow.Batch, len(m.x))
		for i := range m.x {
			o.memBatches[i].X = m.x[i]
			if m.y != nil {
				o.memBatches[i].Y = m.y[i]
			}
		}
		o.schemas.hasY = m.y != nil
	} else if o.n < 0 {
		if err := o.count(ctx); err != nil {
			return err
		}
	}
	idx, err := o.order(o.pass, o.n)
	if err != nil {
		return err
	}
	for p, row := range idx {
		if row < 0 || row >= o.n {
			return fmt.Errorf("order for epoch %d has row %d at position %d, want 0 ≤ row < %d (the rows of the source)", o.pass, row, p, o.n)
		}
	}
	o.idx, o.pos, o.outSeq, o.started = idx, 0, 0, true
	o.winStart, o.winEnd = 0, 0
	return nil
}

// count reads the source once to count its rows.
func (o *Ordered) count(ctx context.Context) error {
	if err := o.rewindSource(); err != nil {
		return err
	}
	n := 0
	for {
		b, err := o.src.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("counting rows: reading input batch %d: %w", o.schemas.batches, err)
		}
		err = o.schemas.check(b)
		n += int(b.Rows())
		b.Release()
		if err != nil {
			return err
		}
	}
	o.n = n
	return nil
}

// rewindSource rewinds the source unless it is still at its start.
func (o *Ordered) rewindSource() error {
	o.schemas.batches = 0
	if !o.srcUsed {
		o.srcUsed = true
		return nil
	}
	if err := o.src.(flow.Rewinder).Rewind(); err != nil {
		return fmt.Errorf("rewind source: %w", err)
	}
	return nil
}

// loadWindow reads the source from its start and keeps the rows of output
// positions [pos, pos+window).
func (o *Ordered) loadWindow(ctx context.Context) error {
	o.dropPieces()
	start, end := o.pos, min(o.pos+o.window, len(o.idx))
	type want struct{ row, pos int }
	wants := make([]want, end-start)
	for p := start; p < end; p++ {
		wants[p-start] = want{o.idx[p], p}
	}
	slices.SortFunc(wants, func(a, b want) int { return cmp.Compare(a.row, b.row) })
	if err := o.rewindSource(); err != nil {
		return err
	}
	o.winRefs = slices.Grow(o.winRefs[:0], end-start)[:end-start]
	g, j := 0, 0
	for j < len(wants) {
		b, err := o.src.Next(ctx)
		if err == io.EOF {
			return fmt.Errorf("source ended after %d rows, want %d (its length changed between passes)", g, o.n)
		}
		if err != nil {
			return fmt.Errorf("reading input batch %d: %w", o.schemas.batches, err)
		}
		if err := o.schemas.check(b); err != nil {
			b.Release()
			return err
		}
		n := int(b.Rows())
		lo := j
		for j < len(wants) && wants[j].row < g+n {
			j++
		}
		if j > lo {
			refs := make([]rowRef, j-lo)
			for q := range refs {
				refs[q] = rowRef{src: 0, row: int32(wants[lo+q].row - g)}
			}
			piece, err := takeBatch(o.mem, []flow.Batch{b}, refs, o.schemas.hasY)
			if err != nil {
				b.Release()
				return err
			}
			pi := int32(len(o.pieces))
			o.pieces = append(o.pieces, piece)
			for q := range refs {
				o.winRefs[wants[lo+q].pos-start] = rowRef{src: pi, row: int32(q)}
			}
		}
		b.Release()
		g += n
	}
	o.winStart, o.winEnd = start, end
	return nil
}

func (o *Ordered) dropPieces() {
	for _, p := range o.pieces {
		p.Release()
	}
	clear(o.pieces)
	o.pieces = o.pieces[:0]
	o.winStart, o.winEnd = 0, 0
}

// Rewind ends the current pass and starts the next, whose order is drawn
// for the next epoch number; Seq starts again at 0. The rows of the current
// window are released; the source itself is rewound when the next window is
// read (never for a *Memory), so its errors surface from Next.
func (o *Ordered) Rewind() error {
	if o.closed {
		return fmt.Errorf("minibatch: %s: Rewind after Close", o.op)
	}
	o.dropPieces()
	o.started, o.idx, o.pos, o.outSeq = false, nil, 0, 0
	o.pass++
	return nil
}

// Close drops the rows of the current window. It does not close the
// source, which the caller closes after the Ordered. Calling it more than
// once is safe; Next and Rewind fail afterwards.
func (o *Ordered) Close() error {
	if o.closed {
		return nil
	}
	o.dropPieces()
	o.memBatches = nil
	o.closed = true
	return nil
}

// Epoch returns the number of the current pass (0 for the first).
func (o *Ordered) Epoch() int { return o.pass }

// EasyFirst returns an OrderFunc for curriculum learning by pacing: rows are
// ranked by difficulty (lower is easier, ties by row index), and epoch e
// reads the easiest fraction start + (1 − start) × e / epochsToAll of them,
// rounded up (at least one row; every row from epoch epochsToAll on),
// shuffled in an order drawn from seed and e. difficulty has one value per
// row of the source; the OrderFunc returns an error if the source has
// another number of rows. Cost per epoch: O(n) plus the shuffle; the
// ranking, O(n log n), is computed once.
func EasyFirst(difficulty []float64, start float64, epochsToAll int, seed uint64) (OrderFunc, error) {
	if !(start > 0 && start <= 1) {
		return nil, fmt.Errorf("minibatch: easy first: start is %v, want 0 < start ≤ 1", start)
	}
	if epochsToAll < 0 {
		return nil, fmt.Errorf("minibatch: easy first: epochsToAll is %d, want ≥ 0", epochsToAll)
	}
	for i, d := range difficulty {
		if math.IsNaN(d) {
			return nil, fmt.Errorf("minibatch: easy first: difficulty of row %d is NaN", i)
		}
	}
	rank := make([]int, len(difficulty))
	for i := range rank {
		rank[i] = i
	}
	slices.SortStableFunc(rank, func(a, b int) int { return cmp.Compare(difficulty[a], difficulty[b]) })
	return func(epoch, n int) ([]int, error) {
		if n != len(difficulty) {
			return nil, fmt.Errorf("easy first: source has %d rows, want %d (one per difficulty)", n, len(difficulty))
		}
		if n == 0 {
			return nil, nil
		}
		frac := 1.0
		if epoch < epochsToAll {
			frac = start + (1-start)*float64(epoch)/float64(epochsToAll)
		}
		// The fraction of n rows, rounded up; the product's rounding error
		// (0.07 × 100 is 7.000000000000001) must not add a row.
		q := frac * float64(n)
		k := min(n, max(1, int(math.Ceil(q-q*1e-12))))
		out := slices.Clone(rank[:k])
		rng := seededRand(seed, uint64(epoch))
		rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out, nil
	}, nil
}

// Weighted returns an OrderFunc that draws, each epoch, as many rows as the
// source has, with replacement, row i with probability weights[i] / Σ
// weights: rows of weight 0 are never read, a row of twice the weight is read
// about twice as often. Use it to balance classes (weight = 1 / class
// frequency) or to emphasize hard rows. The draw depends only on seed and the
// epoch. weights has one non-negative, finite value per row, with a positive
// sum; the OrderFunc returns an error if the source has another number of
// rows. Cost per epoch: O(n log n).
func Weighted(weights []float64, seed uint64) (OrderFunc, error) {
	cum := make([]float64, len(weights))
	total := 0.0
	for i, w := range weights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("minibatch: weighted: weight of row %d is %v, want a finite value ≥ 0", i, w)
		}
		total += w
		cum[i] = total
	}
	if len(weights) > 0 && !(total > 0) {
		return nil, errors.New("minibatch: weighted: weights sum to 0, want a positive sum")
	}
	return func(epoch, n int) ([]int, error) {
		if n != len(weights) {
			return nil, fmt.Errorf("weighted: source has %d rows, want %d (one per weight)", n, len(weights))
		}
		rng := seededRand(seed, uint64(epoch))
		out := make([]int, n)
		for i := range out {
			u := rng.Float64() * total
			// The first row whose cumulative weight exceeds u; rows of
			// weight 0 have an empty interval and are never found.
			r := min(n-1, sort.Search(n, func(i int) bool { return cum[i] > u }))
			out[i] = r
		}
		return out, nil
	}, nil
}
