package steps

import (
	"context"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
)

// This file holds Window, which turns a series into autoregressive
// (past values → next value) pairs.

// The columns that Window returns.
const (
	WindowX = "window" // X: FixedSizeList<float32> of the k past values
	WindowY = "next"   // Y (fit path): float32, the value that follows
)

// Window turns a series, a numeric column of X (float32, float64, int32
// or int64; no nulls) whose rows are consecutive values, into windows
// of its k most recent values. It changes the number of rows.
//
// On the fit path (FitTransform) each output row is a pair: X (column
// "window", FixedSizeList<float32> of k values) holds k consecutive values
// and Y (column "next", float32) the value that follows them, so the
// series 1 … 10 with k = 3 gives the 7 pairs [1 2 3] → 4, …, [7 8 9] → 10.
// Pairs cross batch boundaries: the step keeps the last k values of the
// batch it fitted on and puts them in front of the next batch when that
// one follows it (Seq one more, same Epoch), so a series cut into batches
// gives the pairs of the whole series. A batch that does not follow (a new
// epoch, a new run, a gap, another replica's share) starts afresh: windows
// never cross epochs. The input's Y and its other X columns are dropped.
//
// On the transform path (Transform) each output row is the window of the
// k values ending at an input row, from row k-1 on (n-k+1 rows for n ≥ k,
// none for fewer): the input for predicting the value after it. Transform
// keeps nothing between batches, so that it is safe for concurrent use
// (replicas share it): its windows never cross batches; give it batches of
// at least k rows. Where the input has a Y, its rows k-1 … n-1 pass
// through, one for each window (zero-copy), else Y is nil.
//
// Hyperparameters: "k" (int, 1 or more; space IntRange(1, 64), widened to
// IntRange(1, k) for a larger k, so that the space holds the step's own
// value and hparams.Set of hparams.Get succeeds).
// The carried values are per-run state: Copy copies them, Reset and
// SetParams of "k" forget them, Replica starts without. Cost: k float32
// per output row, one pass over the column.
type Window struct {
	column string

	mu        sync.Mutex // guards everything below on the fit path
	k         int
	carry     []float32 // the last k values fitted on
	lastSeq   int64
	lastEpoch int
	have      bool // carry belongs to batch lastSeq of lastEpoch
}

var (
	_ flow.FitTransformer = (*Window)(nil)
	_ flow.Merger         = (*Window)(nil)
	_ flow.Copier         = (*Window)(nil)
	_ flow.Resetter       = (*Window)(nil)
	_ hparams.Tunable     = (*Window)(nil)
	_ hparams.Spacer      = (*Window)(nil)
)

// NewWindow returns the step that windows the column column of X by k
// values. The error names a k below 1 or an empty column name.
func NewWindow(column string, k int) (*Window, error) {
	if column == "" {
		return nil, fmt.Errorf("steps: NewWindow: empty column name")
	}
	if k < 1 {
		return nil, fmt.Errorf("steps: NewWindow: k = %d, want 1 or more", k)
	}
	return &Window{column: column, k: k}, nil
}

// series reads the column as float32 values (a new slice); its errors
// name the column, the caller adds the step and the operation.
func (w *Window) series(b flow.Batch) ([]float32, error) {
	if b.X == nil {
		return nil, fmt.Errorf("column %q: the batch has no X", w.column)
	}
	idx := b.X.Schema().FieldIndices(w.column)
	if len(idx) != 1 {
		return nil, fmt.Errorf("column %q: X has %d columns of that name, want one (a numeric series)", w.column, len(idx))
	}
	col := b.X.Column(idx[0])
	if col.NullN() > 0 {
		return nil, fmt.Errorf("column %q of X has %d nulls; a series cannot have gaps: fill them first", w.column, col.NullN())
	}
	out := make([]float32, col.Len())
	switch c := col.(type) {
	case *array.Float32:
		copy(out, c.Float32Values())
	case *array.Float64:
		for i, v := range c.Float64Values() {
			out[i] = float32(v)
		}
	case *array.Int64:
		for i, v := range c.Int64Values() {
			out[i] = float32(v)
		}
	case *array.Int32:
		for i, v := range c.Int32Values() {
			out[i] = float32(v)
		}
	default:
		return nil, fmt.Errorf("column %q of X has type %s, want float32, float64, int32 or int64 (one value per row)", w.column, col.DataType())
	}
	return out, nil
}

// windowRows returns the matrix whose row i is s[i : i+k], for the first
// rows windows of s.
func windowRows(ctx context.Context, s []float32, k, rows int) minibatch.Matrix {
	m := minibatch.NewMatrix(flow.Allocator(ctx), rows, k)
	for i := range rows {
		copy(m.Row(i), s[i:i+k])
	}
	return m
}

// Transform returns the windows of the batch's series (see Window).
func (w *Window) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	s, err := w.series(in)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("steps.Window: transform: %w", err)
	}
	k := w.params()
	rows := max(len(s)-k+1, 0)
	m := windowRows(ctx, s, k, rows)
	defer m.Release()
	out := flow.Batch{Seq: in.Seq, Epoch: in.Epoch, X: m.Record(WindowX)}
	if in.Y != nil {
		out.Y = in.Y.NewSlice(int64(len(s)-rows), int64(len(s)))
	}
	return out, nil
}

func (w *Window) params() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.k
}

// FitTransform returns the (window → next value) pairs of the batch's
// series, continued from the previous batch where in follows it.
func (w *Window) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	vals, err := w.series(in)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("steps.Window: fit: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.have || in.Seq != w.lastSeq+1 || in.Epoch != w.lastEpoch {
		w.carry = w.carry[:0]
	}
	s := append(append(make([]float32, 0, len(w.carry)+len(vals)), w.carry...), vals...)
	rows := max(len(s)-w.k, 0)
	m := windowRows(ctx, s, w.k, rows)
	defer m.Release()
	yb := array.NewFloat32Builder(flow.Allocator(ctx))
	defer yb.Release()
	if rows > 0 {
		yb.AppendValues(s[w.k:], nil)
	}
	ycol := yb.NewArray()
	defer ycol.Release()
	w.carry = append(w.carry[:0], s[max(len(s)-w.k, 0):]...)
	w.lastSeq, w.lastEpoch, w.have = in.Seq, in.Epoch, true
	y := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: WindowY, Type: arrow.PrimitiveTypes.Float32}}, nil), []arrow.Array{ycol}, int64(rows))
	return flow.Batch{Seq: in.Seq, Epoch: in.Epoch, X: m.Record(WindowX), Y: y}, nil
}

// Replica returns a Window with w's k and nothing carried.
func (w *Window) Replica() flow.Step { return &Window{column: w.column, k: w.params()} }

// Merge has nothing to fold: a Window learns nothing.
func (w *Window) Merge(replicas []flow.Step) error {
	for i, r := range replicas {
		if _, ok := r.(*Window); !ok {
			return fmt.Errorf("steps.Window: merge: replica %d is a %T", i, r)
		}
	}
	return nil
}

// Copy returns a Window with w's k and carried values.
func (w *Window) Copy() flow.Step {
	w.mu.Lock()
	defer w.mu.Unlock()
	return &Window{column: w.column, k: w.k, carry: append([]float32(nil), w.carry...), lastSeq: w.lastSeq, lastEpoch: w.lastEpoch, have: w.have}
}

// Reset forgets the carried values.
func (w *Window) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.carry, w.have = nil, false
}

// Params returns "k".
func (w *Window) Params() hparams.Values { return hparams.Values{"k": w.params()} }

// SetParams sets "k", 1 or more, and forgets the carried values.
func (w *Window) SetParams(p hparams.Values) error {
	k := w.params()
	for name, v := range p {
		i, ok := v.(int)
		if name != "k" || !ok {
			return fmt.Errorf("steps.Window: no int parameter %q (%T); it has \"k\"", name, v)
		}
		k = i
	}
	if k < 1 {
		return fmt.Errorf("steps.Window: k = %d, want 1 or more", k)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.k, w.carry, w.have = k, nil, false
	return nil
}

// Space returns "k": IntRange(1, 64), or IntRange(1, k) where the step's
// k is larger.
func (w *Window) Space() hparams.Space {
	return hparams.Space{"k": hparams.IntRange(1, max(64, w.params()))}
}
