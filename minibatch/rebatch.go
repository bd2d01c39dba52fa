package minibatch

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// Remainder is the policy for an incomplete batch: the rows left at the end
// of a stream, or at the end of an epoch, when they do not fill a batch. Its
// zero value is Keep.
type Remainder struct {
	kind remainderKind
	pad  float64
}

type remainderKind uint8

const (
	remainderKeep remainderKind = iota
	remainderDrop
	remainderPad
)

var (
	// Keep returns the incomplete batch as it is, with fewer rows.
	Keep = Remainder{kind: remainderKeep}
	// Drop discards the incomplete batch; its rows are never seen.
	Drop = Remainder{kind: remainderDrop}
)

// Pad returns the policy that fills the incomplete batch up to the full
// number of rows with value, in X and in Y alike. The padded rows are the
// last rows of the batch. Numeric columns (integers take value truncated
// toward zero; unsigned integers take 0 for a negative value) hold value; FixedSizeList columns of
// a numeric type hold value in every element; columns of any other type
// (strings, booleans, …) hold nulls. A padded batch is marked: the
// metadata of its X and Y schemas holds RealRowsKey, the number of real
// rows, which RealRows reads, so that a loss can ignore the padding.
// Batches that needed no padding carry no mark.
func Pad(value float64) Remainder { return Remainder{kind: remainderPad, pad: value} }

// String returns "keep", "drop" or "pad(value)".
func (r Remainder) String() string {
	switch r.kind {
	case remainderDrop:
		return "drop"
	case remainderPad:
		return fmt.Sprintf("pad(%g)", r.pad)
	}
	return "keep"
}

// Rebatcher re-batches a source into batches of exactly N rows (see
// NewRebatcher). It implements flow.Source, and flow.Rewinder when its source
// does.
//
// Ownership: the Rebatcher borrows its source (it never releases or closes
// it) and holds references to at most one input batch and to the pieces of
// the batch being assembled; Close drops them. Every batch that Next
// returns is owned by the caller. A Rebatcher is read by one goroutine.
type Rebatcher struct {
	src  flow.Source
	mem  memory.Allocator
	rows int64
	last Remainder

	cur    flow.Batch // input batch being consumed, rows [off, cur.Rows())
	hasCur bool
	off    int64

	pieces     []flow.Batch // zero-copy slices waiting to be concatenated
	pieceRows  int64
	pieceEpoch int
	havePieces bool // pieces is non-empty and pieceEpoch is valid

	schemas batchSchemas
	outSeq  int64
	eof     bool
	closed  bool
}

var (
	_ flow.Source   = (*Rebatcher)(nil)
	_ flow.Rewinder = (*Rebatcher)(nil)
	_ io.Closer     = (*Rebatcher)(nil)
)

// NewRebatcher returns a source that reads src and returns batches of
// exactly rows rows, X and Y cut in lockstep. Batches are renumbered Seq 0,
// 1, 2, … and keep the Epoch of their input rows; a batch never mixes two
// epochs: where the input's Epoch changes, the rows gathered so far form an
// incomplete batch, handled like the incomplete batch at the end of the
// stream by the policy last (Keep, Drop or Pad).
//
// Cost: an output batch that lies within one input batch is a zero-copy
// slice of it (O(columns)); one that spans input batches is concatenated
// into new buffers from WithAllocator (default memory.DefaultAllocator),
// O(rows × row width). Memory held: one input batch plus less than rows
// rows of pieces. Options: WithAllocator.
//
// Every input batch must have the same columns (names and types) as the
// first; otherwise Next returns an error wrapping a *SchemaError. The error
// for rows < 1 is returned here, so that a bad pipeline fails before it
// runs.
func NewRebatcher(src flow.Source, rows int, last Remainder, opts ...Option) (*Rebatcher, error) {
	if src == nil {
		return nil, errors.New("minibatch: rebatch: source is nil")
	}
	if rows < 1 {
		return nil, fmt.Errorf("minibatch: rebatch: rows is %d, want at least 1", rows)
	}
	cfg, err := newStageConfig("rebatch", opts)
	if err != nil {
		return nil, err
	}
	return &Rebatcher{src: src, mem: cfg.mem, rows: int64(rows), last: last}, nil
}

// Next returns the next batch of exactly N rows (fewer or padded for an
// incomplete batch, according to the policy), which the caller owns, or
// io.EOF after the last one. Errors from the source are returned wrapped;
// after an error the Rebatcher should be closed.
func (r *Rebatcher) Next(ctx context.Context) (flow.Batch, error) {
	if r.closed {
		return flow.Batch{}, errors.New("minibatch: rebatch: Next after Close")
	}
	for {
		if ctx.Err() != nil {
			return flow.Batch{}, context.Cause(ctx)
		}
		if r.hasCur && r.off < r.cur.Rows() {
			// A new epoch starts: the pieces of the previous one form an
			// incomplete batch.
			if r.havePieces && r.cur.Epoch != r.pieceEpoch {
				out, ok, err := r.flushIncomplete()
				if err != nil {
					return flow.Batch{}, err
				}
				if ok {
					return out, nil
				}
				continue
			}
			avail := r.cur.Rows() - r.off
			if !r.havePieces && avail >= r.rows {
				out := sliceBatch(r.cur, r.off, r.off+r.rows)
				r.off += r.rows
				return r.emit(out), nil
			}
			k := min(r.rows-r.pieceRows, avail)
			r.addPiece(sliceBatch(r.cur, r.off, r.off+k))
			r.off += k
			if r.pieceRows == r.rows {
				out, err := r.concatPieces()
				if err != nil {
					return flow.Batch{}, err
				}
				return r.emit(out), nil
			}
			continue
		}
		if r.hasCur {
			r.cur.Release()
			r.cur, r.hasCur, r.off = flow.Batch{}, false, 0
		}
		if r.eof {
			if r.havePieces {
				out, ok, err := r.flushIncomplete()
				if err != nil {
					return flow.Batch{}, err
				}
				if ok {
					return out, nil
				}
			}
			return flow.Batch{}, io.EOF
		}
		b, err := r.src.Next(ctx)
		if err == io.EOF {
			r.eof = true
			continue
		}
		if err != nil {
			return flow.Batch{}, fmt.Errorf("minibatch: rebatch: reading input batch %d: %w", r.schemas.batches, err)
		}
		if err := r.schemas.check(b); err != nil {
			b.Release()
			return flow.Batch{}, fmt.Errorf("minibatch: rebatch: %w", err)
		}
		r.cur, r.hasCur, r.off = b, true, 0
	}
}

func (r *Rebatcher) emit(b flow.Batch) flow.Batch {
	b.Seq = r.outSeq
	r.outSeq++
	return b
}

func (r *Rebatcher) addPiece(p flow.Batch) {
	if !r.havePieces {
		r.pieceEpoch = p.Epoch
		r.havePieces = true
	}
	r.pieces = append(r.pieces, p)
	r.pieceRows += p.Rows()
}

func (r *Rebatcher) dropPieces() {
	for _, p := range r.pieces {
		p.Release()
	}
	clear(r.pieces)
	r.pieces = r.pieces[:0]
	r.pieceRows = 0
	r.havePieces = false
}

// concatPieces joins the pieces into one batch that the caller owns and
// empties the list of pieces.
func (r *Rebatcher) concatPieces() (flow.Batch, error) {
	defer r.dropPieces()
	if len(r.pieces) == 1 {
		out := r.pieces[0]
		out.Retain()
		return out, nil
	}
	out := flow.Batch{Epoch: r.pieceEpoch}
	xs := make([]arrow.RecordBatch, len(r.pieces))
	for i, p := range r.pieces {
		xs[i] = p.X
	}
	var err error
	if out.X, err = concatRecords(r.mem, xs); err != nil {
		return flow.Batch{}, fmt.Errorf("minibatch: rebatch: %w", err)
	}
	if r.schemas.hasY {
		for i, p := range r.pieces {
			xs[i] = p.Y
		}
		if out.Y, err = concatRecords(r.mem, xs); err != nil {
			out.Release()
			return flow.Batch{}, fmt.Errorf("minibatch: rebatch: %w", err)
		}
	}
	return out, nil
}

// flushIncomplete applies the remainder policy to the pieces. ok is false
// when the policy drops them.
func (r *Rebatcher) flushIncomplete() (out flow.Batch, ok bool, err error) {
	if r.last.kind == remainderDrop {
		r.dropPieces()
		return flow.Batch{}, false, nil
	}
	n := r.pieceRows
	if out, err = r.concatPieces(); err != nil {
		return flow.Batch{}, false, err
	}
	if r.last.kind == remainderPad && n < r.rows {
		padded, err := padBatch(r.mem, out, r.rows-n, r.last.pad)
		out.Release()
		if err != nil {
			return flow.Batch{}, false, fmt.Errorf("minibatch: rebatch: pad: %w", err)
		}
		out = padded
	}
	return r.emit(out), true, nil
}

// Rewind rewinds the source and starts again from its first batch: Seq
// starts again at 0 and the pieces held are released. It returns an error
// wrapping ErrNotReplayable if the source does not implement flow.Rewinder.
func (r *Rebatcher) Rewind() error {
	if r.closed {
		return errors.New("minibatch: rebatch: Rewind after Close")
	}
	rw, ok := r.src.(flow.Rewinder)
	if !ok {
		return fmt.Errorf("minibatch: rebatch: cannot rewind: source %T does not implement flow.Rewinder: %w", r.src, ErrNotReplayable)
	}
	if err := rw.Rewind(); err != nil {
		return fmt.Errorf("minibatch: rebatch: rewind source: %w", err)
	}
	r.reset()
	return nil
}

// Replayable reports whether Rewind can succeed: whether the Rebatcher is
// open and its source is replayable (see Repeat).
func (r *Rebatcher) Replayable() bool { return !r.closed && replayable(r.src) }

// Schema returns the schema of X: that of the source where it reports one
// (a Schema method), else that of the first batch read (nil before it).
// Re-batching never changes columns; padded rows are marked in the
// schema's metadata of the padded batch only (see RealRows).
func (r *Rebatcher) Schema() *arrow.Schema {
	if s := sourceSchema(r.src); s != nil {
		return s
	}
	return r.schemas.x
}

func (r *Rebatcher) reset() {
	r.dropPieces()
	if r.hasCur {
		r.cur.Release()
	}
	r.cur, r.hasCur, r.off = flow.Batch{}, false, 0
	r.schemas = batchSchemas{}
	r.outSeq, r.eof = 0, false
}

// Close drops the input batch and the pieces that the Rebatcher holds. It
// does not close the source, which the caller closes after the Rebatcher.
// Calling it more than once is safe; Next and Rewind fail afterwards.
func (r *Rebatcher) Close() error {
	if r.closed {
		return nil
	}
	r.reset()
	r.closed = true
	return nil
}

// sliceBatch returns a zero-copy slice [i, j) of b's X and Y that the
// caller owns. A slice of a padded batch is marked with its own real rows
// (see RealRows).
func sliceBatch(b flow.Batch, i, j int64) flow.Batch {
	out := flow.Batch{Seq: b.Seq, Epoch: b.Epoch, X: sliceRecord(b.X, i, j)}
	if b.Y != nil {
		out.Y = sliceRecord(b.Y, i, j)
	}
	return out
}

func sliceRecord(rec arrow.RecordBatch, i, j int64) arrow.RecordBatch {
	out := rec.NewSlice(i, j)
	if marked(rec) {
		out = remark(out, min(max(padStart(rec)-i, 0), j-i))
	}
	return out
}

// concatRecords concatenates records of identical columns into one record
// of new buffers allocated from mem, with the schema of the first, marked
// with the rows before the first padding row where a record is padded
// (see RealRows).
func concatRecords(mem memory.Allocator, recs []arrow.RecordBatch) (arrow.RecordBatch, error) {
	schema := recs[0].Schema()
	cols := make([]arrow.Array, schema.NumFields())
	parts := make([]arrow.Array, len(recs))
	var rows int64
	real, padded := int64(0), false
	for _, rec := range recs {
		if !padded {
			p := padStart(rec)
			real += p
			padded = p < rec.NumRows()
		}
		rows += rec.NumRows()
	}
	schema = markSchema(schema, real, rows)
	for c := range cols {
		for i, rec := range recs {
			parts[i] = rec.Column(c)
		}
		col, err := array.Concatenate(parts, mem)
		if err != nil {
			releaseArrays(cols[:c])
			return nil, fmt.Errorf("concatenate column %q: %w", schema.Field(c).Name, err)
		}
		cols[c] = col
	}
	out := array.NewRecordBatch(schema, cols, rows)
	releaseArrays(cols)
	return out, nil
}

func releaseArrays(arrs []arrow.Array) {
	for _, a := range arrs {
		if a != nil {
			a.Release()
		}
	}
}
