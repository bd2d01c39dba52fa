package minibatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// Shuffler is a bounded shuffle buffer over any source, like tf.data's
// shuffle(buffer_size): see Shuffle. It implements flow.Source, and
// flow.Rewinder when its source does.
//
// Ownership: the Shuffler borrows its source (it never releases it) and
// holds references to the input batches whose rows are in the buffer;
// Release drops them. Every batch that Next returns is owned by the caller.
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

	schemas  batchSchemas
	outSeq   int64
	released bool
}

type heldBatch struct {
	b    flow.Batch
	live int
}

var _ flow.Source = (*Shuffler)(nil)
var _ flow.Rewinder = (*Shuffler)(nil)

// Shuffle returns a source that returns the rows of src in a random order
// drawn through a buffer of bufferRows rows, like tf.data's shuffle: before
// each output batch the buffer is filled from src to at least bufferRows rows
// (or to the end of the epoch), then the batch's rows are drawn uniformly at
// random, without replacement, from the whole buffer. A buffer at least as
// large as the stream gives a uniform permutation; a smaller one only mixes
// rows that are close in the stream.
//
// Output batches have the sizes of the input batches, in order (the k-th
// output batch has as many rows as the k-th input batch), Seq 0, 1, 2, …,
// and the Epoch of their rows: epochs are never mixed, the buffer is emptied
// at the end of each epoch before rows of the next are taken in. X and Y
// rows stay paired.
//
// The order depends only on seed and on the input: the same seed and input
// give the same order in every run (math/rand/v2 PCG). Rewind, when src is a
// flow.Rewinder, rewinds src and draws a new order (the seed is mixed with
// the number of rewinds), as tf.data reshuffles each iteration.
//
// Memory is O(bufferRows + largest input batch) rows whatever the length of
// the stream: the buffer keeps input batches by reference, and when batches
// pinned by a few unreturned rows exceed twice that bound, the remaining rows
// are copied into one compact batch (an amortized copy of at most one row per
// input row). Each output batch is gathered into new buffers from mem (nil
// means memory.DefaultAllocator): O(rows × row width).
func Shuffle(src flow.Source, mem memory.Allocator, bufferRows int, seed uint64) (*Shuffler, error) {
	if src == nil {
		return nil, errors.New("minibatch: shuffle: source is nil")
	}
	if bufferRows < 1 {
		return nil, fmt.Errorf("minibatch: shuffle: bufferRows is %d, want at least 1", bufferRows)
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	s := &Shuffler{src: src, mem: mem, bufRows: bufferRows, seed: seed}
	s.rng = rand.New(rand.NewPCG(seed, passStream(0)))
	return s, nil
}

// passStream returns the second PCG seed word for pass p of a seeded
// source, so that every pass has its own reproducible stream.
func passStream(p uint64) uint64 {
	return (p+1)*0x9e3779b97f4a7c15 ^ 0xda942042e4dd58b5
}

// Next returns the next shuffled batch, which the caller owns, or io.EOF
// after the last one. Errors from the source are returned wrapped.
func (s *Shuffler) Next(ctx context.Context) (flow.Batch, error) {
	if s.released {
		return flow.Batch{}, errors.New("minibatch: shuffle: Next after Release")
	}
	for {
		if err := ctx.Err(); err != nil {
			return flow.Batch{}, err
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
	if s.released {
		return errors.New("minibatch: shuffle: Rewind after Release")
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
	s.rng = rand.New(rand.NewPCG(s.seed, passStream(s.pass)))
	return nil
}

// Replayable reports whether Rewind can succeed: whether the source is
// replayable (see Repeat).
func (s *Shuffler) Replayable() bool { return replayable(s.src) }

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

// Release drops the batches held in the buffer, for a stream abandoned
// before io.EOF. It does not release the source. Calling it more than once
// is safe; Next and Rewind fail afterwards.
func (s *Shuffler) Release() {
	if s.released {
		return
	}
	s.reset()
	s.released = true
}

// Permute returns a source that returns every row of the replayable source
// src exactly once per pass, in a random order, in batches of batchRows rows
// (the last batch of a pass has the rows left). The order is a uniform
// permutation drawn from seed and the pass number (math/rand/v2 PCG):
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
// permutation: one int per row.
func Permute(src flow.Source, mem memory.Allocator, batchRows int, seed uint64, opts ...OrderOption) (*Ordered, error) {
	order := func(epoch, n int) ([]int, error) {
		rng := rand.New(rand.NewPCG(seed, passStream(uint64(epoch))))
		return rng.Perm(n), nil
	}
	return newOrdered("permute", src, mem, batchRows, order, opts)
}

// rowRef names row row of batch src of a list of batches.
type rowRef struct{ src, row int32 }

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

// takeBatch gathers the rows refs of the batches srcs (entries not named by
// refs may be zero) into a new batch of new buffers from mem, which the
// caller owns. All named batches must have the same columns.
func takeBatch(mem memory.Allocator, srcs []flow.Batch, refs []rowRef, hasY bool) (flow.Batch, error) {
	recs := make([]arrow.RecordBatch, len(srcs))
	for i, b := range srcs {
		recs[i] = b.X
	}
	var out flow.Batch
	var err error
	if out.X, err = takeRecord(mem, recs, refs); err != nil {
		return flow.Batch{}, err
	}
	if hasY {
		for i, b := range srcs {
			recs[i] = b.Y
		}
		if out.Y, err = takeRecord(mem, recs, refs); err != nil {
			out.Release()
			return flow.Batch{}, err
		}
	}
	return out, nil
}

func takeRecord(mem memory.Allocator, recs []arrow.RecordBatch, refs []rowRef) (arrow.RecordBatch, error) {
	var first arrow.RecordBatch
	if len(refs) > 0 {
		first = recs[refs[0].src]
	} else {
		for _, r := range recs {
			if r != nil {
				first = r
				break
			}
		}
	}
	if first == nil {
		return nil, errors.New("take: no batch to take rows from")
	}
	schema := first.Schema()
	cols := make([]arrow.Array, schema.NumFields())
	parts := make([]arrow.Array, len(recs))
	for c := range cols {
		for i, r := range recs {
			if r != nil {
				parts[i] = r.Column(c)
			} else {
				parts[i] = nil
			}
		}
		col, err := takeArray(mem, schema.Field(c).Type, parts, refs)
		if err != nil {
			releaseArrays(cols[:c])
			return nil, fmt.Errorf("take: column %q: %w", schema.Field(c).Name, err)
		}
		cols[c] = col
	}
	out := array.NewRecordBatch(schema, cols, int64(len(refs)))
	releaseArrays(cols)
	return out, nil
}

// takeArray gathers rows refs of the arrays srcs (all of type dt) into a
// new array. Fixed-width types and FixedSizeLists of them are copied row by
// row with one memmove each; other types are sliced and concatenated.
func takeArray(mem memory.Allocator, dt arrow.DataType, srcs []arrow.Array, refs []rowRef) (arrow.Array, error) {
	if w := fixedByteWidth(dt); w > 0 {
		return takeFixed(mem, dt, srcs, refs, w, 1), nil
	}
	if t, ok := dt.(*arrow.FixedSizeListType); ok {
		if w := fixedByteWidth(t.Elem()); w > 0 && !childNulls(srcs, refs) {
			return takeFixed(mem, dt, srcs, refs, w, int(t.Len())), nil
		}
	}
	return takeBySlices(mem, srcs, refs)
}

// fixedByteWidth returns the bytes per value of a fixed-width type whose
// values live in buffer 1, or 0 for any other type.
func fixedByteWidth(dt arrow.DataType) int {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64,
		arrow.DATE32, arrow.DATE64, arrow.TIME32, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION,
		arrow.INTERVAL_MONTHS, arrow.INTERVAL_DAY_TIME, arrow.INTERVAL_MONTH_DAY_NANO,
		arrow.DECIMAL32, arrow.DECIMAL64, arrow.DECIMAL128, arrow.DECIMAL256, arrow.FIXED_SIZE_BINARY:
		if fw, ok := dt.(arrow.FixedWidthDataType); ok {
			return fw.Bytes()
		}
	}
	return 0
}

func childNulls(srcs []arrow.Array, refs []rowRef) bool {
	seen := make([]bool, len(srcs))
	for _, ref := range refs {
		if seen[ref.src] {
			continue
		}
		seen[ref.src] = true
		if srcs[ref.src].(*array.FixedSizeList).ListValues().NullN() > 0 {
			return true
		}
	}
	return false
}

// takeFixed copies rows of per values of elem bytes each: plain fixed-width
// arrays (per = 1) or FixedSizeLists of them (per = list width).
func takeFixed(mem memory.Allocator, dt arrow.DataType, srcs []arrow.Array, refs []rowRef, elem, per int) arrow.Array {
	n := len(refs)
	size := elem * per
	bytes := make([][]byte, len(srcs))
	base := make([]int, len(srcs))
	nulls := false
	for i, a := range srcs {
		if a == nil {
			continue
		}
		d := a.Data()
		if dt.ID() == arrow.FIXED_SIZE_LIST {
			child := d.Children()[0]
			base[i] = child.Offset()*elem + d.Offset()*size
			d = child
		} else {
			base[i] = d.Offset() * size
		}
		if buf := d.Buffers()[1]; buf != nil {
			bytes[i] = buf.Bytes()
		}
		nulls = nulls || a.NullN() > 0
	}
	values := memory.NewResizableBuffer(mem)
	values.Resize(n * size)
	dst := values.Bytes()
	for i, ref := range refs {
		at := base[ref.src] + int(ref.row)*size
		copy(dst[i*size:(i+1)*size], bytes[ref.src][at:at+size])
	}
	var validity *memory.Buffer
	nullN := 0
	if nulls {
		validity = memory.NewResizableBuffer(mem)
		validity.Resize(int(bitutil.BytesForBits(int64(n))))
		bm := validity.Bytes()
		for i, ref := range refs {
			ok := srcs[ref.src].IsValid(int(ref.row))
			bitutil.SetBitTo(bm, i, ok)
			if !ok {
				nullN++
			}
		}
	}
	var data *array.Data
	if t, ok := dt.(*arrow.FixedSizeListType); ok {
		child := array.NewData(t.Elem(), n*per, []*memory.Buffer{nil, values}, nil, 0, 0)
		data = array.NewData(dt, n, []*memory.Buffer{validity}, []arrow.ArrayData{child}, nullN, 0)
		child.Release()
	} else {
		data = array.NewData(dt, n, []*memory.Buffer{validity, values}, nil, nullN, 0)
	}
	values.Release()
	if validity != nil {
		validity.Release()
	}
	defer data.Release()
	return array.MakeFromData(data)
}

// takeBySlices gathers rows of any type by slicing runs of consecutive rows
// and concatenating the slices.
func takeBySlices(mem memory.Allocator, srcs []arrow.Array, refs []rowRef) (arrow.Array, error) {
	var parts []arrow.Array
	defer func() { releaseArrays(parts) }()
	for i := 0; i < len(refs); {
		j := i + 1
		for j < len(refs) && refs[j].src == refs[i].src && refs[j].row == refs[j-1].row+1 {
			j++
		}
		parts = append(parts, array.NewSlice(srcs[refs[i].src], int64(refs[i].row), int64(refs[j-1].row)+1))
		i = j
	}
	if len(parts) == 0 {
		for _, a := range srcs {
			if a != nil {
				return array.NewSlice(a, 0, 0), nil
			}
		}
	}
	return array.Concatenate(parts, mem)
}
