package minibatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// This file holds train/validation splitting: Holdout, KFold and
// WalkForward, which plan a split in one pass over a replayable source and
// return each side as a replayable SplitSource that re-reads the source and
// keeps only its rows. It also holds the row-selection helpers that
// resample.go shares (label columns as class keys, taking rows by index).

// SplitOption configures Holdout and KFold. The zero configuration uses
// seed 0, takes the label from the first column of Y and stratifies when
// the batches carry one.
type SplitOption func(*splitConfig)

type splitConfig struct {
	seed     uint64
	label    string
	stratify int8 // 0 automatic, 1 required, -1 off
}

// SplitSeed sets the seed of the PCG generator that assigns rows to sides
// and folds (default 0). The same seed over the same data gives the same
// split; a different seed gives, with overwhelming probability, a
// different one.
func SplitSeed(seed uint64) SplitOption { return func(c *splitConfig) { c.seed = seed } }

// SplitLabel names the label column used for stratification. It is looked
// up in Y and, where Y has no column of that name, in X (a tabular source
// may keep its label among the inputs). The default is the first column of
// Y. Naming a column makes every batch need it.
func SplitLabel(name string) SplitOption { return func(c *splitConfig) { c.label = name } }

// SplitStratify turns stratification on or off. By default a split is
// stratified when the batches carry a label (Y, or the column named by
// SplitLabel) and plain random otherwise. SplitStratify(true) makes a
// missing label an error; SplitStratify(false) ignores labels and reads
// only row counts in the planning pass.
func SplitStratify(on bool) SplitOption {
	return func(c *splitConfig) {
		c.stratify = -1
		if on {
			c.stratify = 1
		}
	}
}

// WalkForwardOption configures WalkForward. The zero configuration is an
// expanding train window, validation blocks of rows/(folds+1) rows and no
// gap, like scikit-learn's TimeSeriesSplit.
type WalkForwardOption func(*walkForwardConfig)

type walkForwardConfig struct {
	window, validation, gap int64
}

// WalkForwardWindow makes the train window slide: each fold trains on at
// most the rows rows just before its validation block (and its gap). Zero,
// the default, is an expanding window that always starts at row 0.
func WalkForwardWindow(rows int64) WalkForwardOption {
	return func(c *walkForwardConfig) { c.window = rows }
}

// WalkForwardValidationRows sets the number of rows in every validation
// block. The default, 0, means rows/(folds+1), rounded down.
func WalkForwardValidationRows(rows int64) WalkForwardOption {
	return func(c *walkForwardConfig) { c.validation = rows }
}

// WalkForwardGap leaves rows rows out between the end of each train window
// and the start of its validation block (default 0), so that targets that
// look ahead do not leak from train into validation.
func WalkForwardGap(rows int64) WalkForwardOption {
	return func(c *walkForwardConfig) { c.gap = rows }
}

// Fold is one train/validation pair of a cross-validation split.
type Fold struct {
	Train      *SplitSource
	Validation *SplitSource
}

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

	next int64 // parent row at which this side continues
	seq  int64
	idx  []int32 // scratch for selected indices
}

var (
	_ flow.Source   = (*SplitSource)(nil)
	_ flow.Rewinder = (*SplitSource)(nil)
)

// splitParent is the source shared by all the sides of one split.
type splitParent struct {
	mu    sync.Mutex
	src   flow.Source
	rw    flow.Rewinder
	rows  int64 // rows seen by the planning pass
	pos   int64 // parent row of the next batch the parent returns
	known bool  // whether pos is known (false after a read error)
}

// Rows returns the number of rows that one pass of this side returns, as
// planned from the parent's first pass. It costs O(1).
func (s *SplitSource) Rows() int64 { return s.rows }

// String returns the side's name, e.g. "holdout validation" or
// "k-fold 2/5 train".
func (s *SplitSource) String() string { return s.name }

// Replayable reports true: a side re-reads its replayable parent.
func (s *SplitSource) Replayable() bool { return true }

// Rewind makes the next call to Next return this side's first batch again.
// It costs O(1); the parent is rewound lazily by the next Next.
func (s *SplitSource) Rewind() error {
	s.next, s.seq = 0, 0
	return nil
}

// Next returns the next batch of this side's rows, which the caller owns,
// or io.EOF after the last one (without reading the rest of the parent).
// It may rewind the parent and skip batches (see SplitSource). Errors from
// the parent are returned wrapped; a parent that ends before the planned
// rows (its data changed since the split was planned) is an error.
func (s *SplitSource) Next(ctx context.Context) (flow.Batch, error) {
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

// Holdout splits a replayable source into a train side and a validation
// side holding the fraction validation (0 < validation < 1) of the rows,
// round(rows × validation) in all.
//
// It reads src once from the start to plan the split (see the options):
// that pass keeps only the row count and, when stratifying, one small
// class id per row taken from the label column (integer, floating-point,
// string or boolean values, or a dictionary of them; every distinct value is
// a class, nulls included). When stratified, each class sends floor or ceil
// of its rows × validation to the validation side — within one row of the
// exact proportion — with the leftover rows given to the classes with the
// largest remainders, ties broken at random; which rows go is drawn by a
// PCG generator seeded with SplitSeed. Without labels the validation rows are
// a uniform random sample.
//
// Memory: the plan is 4 bytes per row (an int32 side per row), shared by
// both sides, plus 8 bytes per row while planning; the data itself is never
// held. Both sides are replayable SplitSources reading src again (see
// SplitSource for ownership and for reading the two sides in turn). mem
// (nil means memory.DefaultAllocator) holds the copied rows of the batches
// that the sides return.
//
// src must implement flow.Rewinder and must return the same rows in the
// same order on every pass. Both sides must have at least one row.
func Holdout(ctx context.Context, src flow.Source, mem memory.Allocator, validation float64, opts ...SplitOption) (train, val *SplitSource, err error) {
	const op = "holdout"
	if !(validation > 0 && validation < 1) {
		return nil, nil, fmt.Errorf("minibatch: %s: validation fraction is %v, want strictly between 0 and 1", op, validation)
	}
	cfg := newSplitConfig(opts)
	p, plan, err := planSplit(ctx, op, src, cfg)
	if err != nil {
		return nil, nil, err
	}
	n := p.rows
	want := int64(math.Round(float64(n) * validation))
	if want < 1 || want > n-1 {
		return nil, nil, fmt.Errorf("minibatch: %s: validation fraction %v of %d rows gives %d validation and %d train rows; want at least one on each side",
			op, validation, n, want, n-want)
	}
	parts := plan.holdout(validation, want, newSplitRand(cfg.seed))
	last, sizes := lastAndSizes(parts, 2)
	train = newSplitSide(op+" train", p, mem, partSelection{parts: parts, part: 0}, sizes[0], last[0]+1)
	val = newSplitSide(op+" validation", p, mem, partSelection{parts: parts, part: 1}, sizes[1], last[1]+1)
	return train, val, nil
}

// KFold splits a replayable source into k folds (2 ≤ k ≤ rows): fold i
// validates on the i-th of k disjoint parts that together cover every row,
// and trains on the other k-1. Part sizes differ by at most one row.
//
// Planning is as for Holdout: one pass over src keeps the row count and,
// when stratifying, a class id per row. When stratified, each class's rows
// are shuffled and dealt to the parts in turn, so that every part holds
// floor or ceil of the class's rows / k (within one row of the exact
// proportion); classes with fewer than k rows are then absent from some
// parts. Rows keep the parent's order within each side.
//
// Memory: 4 bytes per row for the plan (an int32 part per row) shared by
// all 2k sides, 8 bytes per row while planning; never the data. mem (nil
// means memory.DefaultAllocator) holds the rows that the sides copy. See
// SplitSource for ownership and for reading the sides in turn; reading the
// folds one after another, each side to its end, re-reads src 2k times.
func KFold(ctx context.Context, src flow.Source, mem memory.Allocator, k int, opts ...SplitOption) ([]Fold, error) {
	const op = "k-fold"
	if k < 2 {
		return nil, fmt.Errorf("minibatch: %s: k is %d, want at least 2", op, k)
	}
	cfg := newSplitConfig(opts)
	p, plan, err := planSplit(ctx, op, src, cfg)
	if err != nil {
		return nil, err
	}
	if int64(k) > p.rows {
		return nil, fmt.Errorf("minibatch: %s: k is %d but the source has %d rows; want k at most the number of rows", op, k, p.rows)
	}
	parts := plan.kfold(k, newSplitRand(cfg.seed))
	last, sizes := lastAndSizes(parts, k)
	folds := make([]Fold, k)
	for i := range folds {
		var trainEnd int64
		for j := range k {
			if j != i {
				trainEnd = max(trainEnd, last[j]+1)
			}
		}
		name := fmt.Sprintf("%s %d/%d", op, i+1, k)
		folds[i] = Fold{
			Train:      newSplitSide(name+" train", p, mem, partSelection{parts: parts, part: int32(i), invert: true}, p.rows-sizes[i], trainEnd),
			Validation: newSplitSide(name+" validation", p, mem, partSelection{parts: parts, part: int32(i)}, sizes[i], last[i]+1),
		}
	}
	return folds, nil
}

// WalkForward splits a replayable time series into folds that respect
// time: fold i validates on the i-th of folds consecutive blocks at the end
// of the series and trains on rows before it, never after. Nothing is
// shuffled and both sides keep the parent's order, so every train row
// precedes every validation row of its fold.
//
// With rows rows and validation blocks of v rows (WalkForwardValidationRows,
// default rows/(folds+1)), block i covers [rows - (folds-i)·v, rows - (folds-i-1)·v).
// Its train window ends gap rows (WalkForwardGap) before the block and
// starts at row 0 (expanding window) or at most WalkForwardWindow rows
// earlier (sliding window). The first fold must keep at least one train row.
//
// WalkForward reads src once, counting rows only. Every side is a
// contiguous range of the parent, returned as zero-copy slices of the
// parent's batches, so it allocates no buffers and stops reading the parent
// at the end of its range. See SplitSource for ownership and for reading
// the sides in turn.
func WalkForward(ctx context.Context, src flow.Source, folds int, opts ...WalkForwardOption) ([]Fold, error) {
	const op = "walk-forward"
	var cfg walkForwardConfig
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case folds < 1:
		return nil, fmt.Errorf("minibatch: %s: folds is %d, want at least 1", op, folds)
	case cfg.window < 0:
		return nil, fmt.Errorf("minibatch: %s: train window is %d rows, want 0 (expanding) or more", op, cfg.window)
	case cfg.validation < 0:
		return nil, fmt.Errorf("minibatch: %s: validation block is %d rows, want 0 (automatic) or more", op, cfg.validation)
	case cfg.gap < 0:
		return nil, fmt.Errorf("minibatch: %s: gap is %d rows, want 0 or more", op, cfg.gap)
	}
	p, _, err := planSplit(ctx, op, src, splitConfig{stratify: -1})
	if err != nil {
		return nil, err
	}
	n := p.rows
	v := cfg.validation
	if v == 0 {
		v = n / int64(folds+1)
		if v == 0 {
			return nil, fmt.Errorf("minibatch: %s: %d rows cannot make %d folds with validation blocks of at least one row; want at least %d rows",
				op, n, folds, folds+1)
		}
	}
	firstVal := n - int64(folds)*v
	if firstVal-cfg.gap < 1 {
		return nil, fmt.Errorf("minibatch: %s: %d folds of %d validation rows and a gap of %d leave %d train rows for the first fold of %d rows; want at least one (fewer folds, smaller blocks or a smaller gap)",
			op, folds, v, cfg.gap, firstVal-cfg.gap, n)
	}
	out := make([]Fold, folds)
	for i := range out {
		valLo := firstVal + int64(i)*v
		trainHi := valLo - cfg.gap
		trainLo := int64(0)
		if cfg.window > 0 {
			trainLo = max(0, trainHi-cfg.window)
		}
		name := fmt.Sprintf("%s %d/%d", op, i+1, folds)
		out[i] = Fold{
			Train:      newSplitSide(name+" train", p, nil, rangeSelection{lo: trainLo, hi: trainHi}, trainHi-trainLo, trainHi),
			Validation: newSplitSide(name+" validation", p, nil, rangeSelection{lo: valLo, hi: valLo + v}, v, valLo+v),
		}
	}
	return out, nil
}

func newSplitConfig(opts []SplitOption) splitConfig {
	var c splitConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

func newSplitRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

func newSplitSide(name string, p *splitParent, mem memory.Allocator, sel rowSelection, rows, end int64) *SplitSource {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	return &SplitSource{name: name, parent: p, mem: mem, sel: sel, rows: rows, end: end}
}

// lastAndSizes returns, for each part, its last row and its number of rows.
func lastAndSizes(parts []int32, k int) (last, sizes []int64) {
	last = make([]int64, k)
	sizes = make([]int64, k)
	for i := range last {
		last[i] = -1
	}
	for row, p := range parts {
		last[p] = int64(row)
		sizes[p]++
	}
	return last, sizes
}

// splitPlan is what the planning pass keeps: the rows grouped by class.
type splitPlan struct {
	rows   int
	counts []int32 // rows per class; one class when not stratified
	class  []int32 // class of each row; nil when not stratified
}

// planSplit checks src, rewinds it and reads it once to count its rows and,
// when stratifying, to record each row's class.
func planSplit(ctx context.Context, op string, src flow.Source, cfg splitConfig) (*splitParent, *splitPlan, error) {
	if src == nil {
		return nil, nil, fmt.Errorf("minibatch: %s: source is nil", op)
	}
	rw, ok := src.(flow.Rewinder)
	if !ok {
		return nil, nil, fmt.Errorf("minibatch: %s: source %T cannot be read again (it is not a flow.Rewinder); a split re-reads its source, so load it into memory or use a replayable source: %w",
			op, src, ErrNotReplayable)
	}
	if r, ok := src.(interface{ Replayable() bool }); ok && !r.Replayable() {
		return nil, nil, fmt.Errorf("minibatch: %s: source %T reports that it is not replayable; a split re-reads its source: %w", op, src, ErrNotReplayable)
	}
	if err := rw.Rewind(); err != nil {
		return nil, nil, fmt.Errorf("minibatch: %s: rewind source before planning: %w", op, err)
	}
	var (
		rows     int64
		classes  classTable
		class    []int32
		labelled bool
	)
	for batch := int64(0); ; batch++ {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Release()
			return nil, nil, fmt.Errorf("minibatch: %s: planning pass, batch %d: %w", op, batch, err)
		}
		if batch == 0 {
			labelled = cfg.stratify == 1 || (cfg.stratify == 0 && (cfg.label != "" || (b.Y != nil && b.Y.NumCols() > 0)))
		}
		if b.X != nil && b.Y != nil && b.X.NumRows() != b.Y.NumRows() {
			b.Release()
			return nil, nil, fmt.Errorf("minibatch: %s: planning pass, batch %d: X has %d rows and Y %d; want the same", op, batch, b.X.NumRows(), b.Y.NumRows())
		}
		if labelled {
			col, where, err := labelColumn(b, cfg.label)
			if err == nil {
				class, err = classes.appendIDs(class, col, true)
			}
			if err != nil {
				b.Release()
				return nil, nil, fmt.Errorf("minibatch: %s: planning pass, batch %d: stratify on %s: %w", op, batch, where, err)
			}
		}
		rows += b.Rows()
		b.Release()
		if rows > math.MaxInt32 {
			return nil, nil, fmt.Errorf("minibatch: %s: source has more than %d rows; a split plans at most that many", op, math.MaxInt32)
		}
	}
	if rows == 0 {
		return nil, nil, fmt.Errorf("minibatch: %s: source has no rows; want at least one", op)
	}
	plan := &splitPlan{rows: int(rows)}
	if labelled {
		plan.class = class
		plan.counts = make([]int32, len(classes.keys))
		for _, c := range class {
			plan.counts[c]++
		}
	} else {
		plan.counts = []int32{int32(rows)}
	}
	return &splitParent{src: src, rw: rw, rows: rows, pos: rows, known: true}, plan, nil
}

// byClass returns the row indices grouped by class (ascending within a
// class) and the start of each class's group. It reuses nothing.
func (pl *splitPlan) byClass() (order []int32, start []int32) {
	start = make([]int32, len(pl.counts)+1)
	for c, n := range pl.counts {
		start[c+1] = start[c] + n
	}
	order = make([]int32, pl.rows)
	if pl.class == nil {
		for i := range order {
			order[i] = int32(i)
		}
		return order, start
	}
	fill := slices.Clone(start[:len(pl.counts)])
	for row, c := range pl.class {
		order[fill[c]] = int32(row)
		fill[c]++
	}
	return order, start
}

// parts returns a slice for the per-row assignment, reusing the class ids.
func (pl *splitPlan) parts() []int32 {
	if pl.class != nil {
		p := pl.class
		pl.class = nil
		return p
	}
	return make([]int32, pl.rows)
}

// holdout assigns want rows to part 1 (validation), each class getting
// floor or ceil of its rows × frac, and the rest to part 0.
func (pl *splitPlan) holdout(frac float64, want int64, rng *rand.Rand) []int32 {
	order, start := pl.byClass()
	k := len(pl.counts)
	take := make([]int32, k)
	rem := make([]float64, k)
	var sum int64
	for c, n := range pl.counts {
		q := float64(n) * frac
		f := math.Floor(q + 1e-9)
		take[c], rem[c] = int32(f), max(q-f, 0)
		sum += int64(f)
	}
	// Largest remainders get the leftover rows; a random order first breaks
	// ties at random (SortStableFunc keeps it among equals).
	byRem := rng.Perm(k)
	slices.SortStableFunc(byRem, func(a, b int) int { return cmp.Compare(rem[b], rem[a]) })
	for i := 0; sum < want && i < 2*k; i++ {
		if c := byRem[i%k]; take[c] < pl.counts[c] {
			take[c]++
			sum++
		}
	}
	for i := 0; sum > want && i < 2*k; i++ {
		if c := byRem[k-1-i%k]; take[c] > 0 {
			take[c]--
			sum--
		}
	}
	parts := pl.parts()
	clear(parts)
	for c := range k {
		rows := order[start[c]:start[c+1]]
		for i := range int(take[c]) {
			j := i + rng.IntN(len(rows)-i)
			rows[i], rows[j] = rows[j], rows[i]
			parts[rows[i]] = 1
		}
	}
	return parts
}

// kfold deals each class's shuffled rows to k parts in turn, continuing
// the turn from one class to the next (classes in random order), so that
// every part holds floor or ceil of each class's rows / k and part sizes
// differ by at most one.
func (pl *splitPlan) kfold(k int, rng *rand.Rand) []int32 {
	order, start := pl.byClass()
	parts := pl.parts()
	turn := rng.IntN(k)
	for _, c := range rng.Perm(len(pl.counts)) {
		rows := order[start[c]:start[c+1]]
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		for _, row := range rows {
			parts[row] = int32(turn)
			turn++
			if turn == k {
				turn = 0
			}
		}
	}
	return parts
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

// labelColumn returns the label column of b: the column named name in Y,
// else in X, or the first column of Y when name is empty. where describes
// it for error messages.
func labelColumn(b flow.Batch, name string) (col arrow.Array, where string, err error) {
	if name == "" {
		if b.Y == nil || b.Y.NumCols() == 0 {
			return nil, "the first column of Y", errors.New("the batch has no Y (or Y has no columns); name the label column or give the batches a Y")
		}
		return b.Y.Column(0), fmt.Sprintf("Y column %q", b.Y.ColumnName(0)), nil
	}
	for _, rec := range []struct {
		role string
		rec  arrow.RecordBatch
	}{{"Y", b.Y}, {"X", b.X}} {
		if rec.rec == nil {
			continue
		}
		if idx := rec.rec.Schema().FieldIndices(name); len(idx) > 0 {
			return rec.rec.Column(idx[0]), fmt.Sprintf("%s column %q", rec.role, name), nil
		}
	}
	var have []string
	for _, rec := range []arrow.RecordBatch{b.Y, b.X} {
		if rec != nil {
			for _, f := range rec.Schema().Fields() {
				have = append(have, strconv.Quote(f.Name))
			}
		}
	}
	return nil, fmt.Sprintf("label column %q", name), fmt.Errorf("no column %q in Y or X (columns: %s)", name, strings.Join(have, ", "))
}

// classKey is one distinct label value.
type classKey struct {
	kind classKind
	bits uint64 // integer, float or boolean value
	str  string // string value (owned: cloned from the Arrow buffer)
}

type classKind uint8

const (
	classNull classKind = iota
	classInt
	classUint
	classFloat32
	classFloat64
	classString
	classBool
)

// String returns the text of the label: decimal for integers, the shortest
// exact form for floats, the value for strings, true or false, and
// "(null)" for a null.
func (k classKey) String() string {
	switch k.kind {
	case classInt:
		return strconv.FormatInt(int64(k.bits), 10)
	case classUint:
		return strconv.FormatUint(k.bits, 10)
	case classFloat32:
		return strconv.FormatFloat(float64(math.Float32frombits(uint32(k.bits))), 'g', -1, 32)
	case classFloat64:
		return strconv.FormatFloat(math.Float64frombits(k.bits), 'g', -1, 64)
	case classString:
		return k.str
	case classBool:
		return strconv.FormatBool(k.bits != 0)
	}
	return "(null)"
}

// classTable gives each distinct label value a small id, in order of first
// appearance.
type classTable struct {
	ids  map[classKey]int32
	keys []classKey
}

func (t *classTable) id(k classKey) int32 {
	if id, ok := t.ids[k]; ok {
		return id
	}
	if t.ids == nil {
		t.ids = make(map[classKey]int32)
	}
	k.str = strings.Clone(k.str)
	id := int32(len(t.keys))
	t.ids[k] = id
	t.keys = append(t.keys, k)
	return id
}

// appendIDs appends the class id of every row of col to dst. A null is a
// class of its own when nulls is true and an error otherwise.
func (t *classTable) appendIDs(dst []int32, col arrow.Array, nulls bool) ([]int32, error) {
	if col.NullN() > 0 && !nulls {
		for i := range col.Len() {
			if col.IsNull(i) {
				return dst, fmt.Errorf("row %d is null; every row needs a class", i)
			}
		}
	}
	switch a := col.(type) {
	case *array.Int8:
		return appendIntIDs(t, dst, a, a.Int8Values()), nil
	case *array.Int16:
		return appendIntIDs(t, dst, a, a.Int16Values()), nil
	case *array.Int32:
		return appendIntIDs(t, dst, a, a.Int32Values()), nil
	case *array.Int64:
		return appendIntIDs(t, dst, a, a.Int64Values()), nil
	case *array.Uint8:
		return appendUintIDs(t, dst, a, a.Uint8Values()), nil
	case *array.Uint16:
		return appendUintIDs(t, dst, a, a.Uint16Values()), nil
	case *array.Uint32:
		return appendUintIDs(t, dst, a, a.Uint32Values()), nil
	case *array.Uint64:
		return appendUintIDs(t, dst, a, a.Uint64Values()), nil
	case *array.Float32:
		return appendKeyIDs(t, dst, a, func(i int) classKey {
			v := a.Value(i)
			switch {
			case v == 0:
				v = 0 // -0 and +0 are one class
			case v != v:
				v = float32(math.NaN())
			}
			return classKey{kind: classFloat32, bits: uint64(math.Float32bits(v))}
		}), nil
	case *array.Float64:
		return appendKeyIDs(t, dst, a, func(i int) classKey {
			v := a.Value(i)
			switch {
			case v == 0:
				v = 0
			case v != v:
				v = math.NaN()
			}
			return classKey{kind: classFloat64, bits: math.Float64bits(v)}
		}), nil
	case *array.String:
		return appendKeyIDs(t, dst, a, func(i int) classKey { return classKey{kind: classString, str: a.Value(i)} }), nil
	case *array.LargeString:
		return appendKeyIDs(t, dst, a, func(i int) classKey { return classKey{kind: classString, str: a.Value(i)} }), nil
	case *array.StringView:
		return appendKeyIDs(t, dst, a, func(i int) classKey { return classKey{kind: classString, str: a.Value(i)} }), nil
	case *array.Boolean:
		return appendKeyIDs(t, dst, a, func(i int) classKey {
			if a.Value(i) {
				return classKey{kind: classBool, bits: 1}
			}
			return classKey{kind: classBool}
		}), nil
	case *array.Dictionary:
		dict, err := t.appendIDs(nil, a.Dictionary(), nulls)
		if err != nil {
			return dst, fmt.Errorf("dictionary: %w", err)
		}
		null := int32(-1)
		for i := range a.Len() {
			if a.IsNull(i) {
				if null < 0 {
					null = t.id(classKey{kind: classNull})
				}
				dst = append(dst, null)
				continue
			}
			dst = append(dst, dict[a.GetValueIndex(i)])
		}
		return dst, nil
	}
	return dst, fmt.Errorf("got type %s; want an integer, floating-point, string or boolean column (or a dictionary of one) as class labels", col.DataType())
}

func appendIntIDs[T int8 | int16 | int32 | int64](t *classTable, dst []int32, col arrow.Array, vals []T) []int32 {
	return appendKeyIDs(t, dst, col, func(i int) classKey { return classKey{kind: classInt, bits: uint64(int64(vals[i]))} })
}

func appendUintIDs[T uint8 | uint16 | uint32 | uint64](t *classTable, dst []int32, col arrow.Array, vals []T) []int32 {
	return appendKeyIDs(t, dst, col, func(i int) classKey { return classKey{kind: classUint, bits: uint64(vals[i])} })
}

func appendKeyIDs(t *classTable, dst []int32, col arrow.Array, key func(i int) classKey) []int32 {
	hasNulls := col.NullN() > 0
	for i := range col.Len() {
		if hasNulls && col.IsNull(i) {
			dst = append(dst, t.id(classKey{kind: classNull}))
			continue
		}
		dst = append(dst, t.id(key(i)))
	}
	return dst
}

// takeBatchRows returns a batch that the caller owns holding the rows idx
// (ascending; repeats allowed) of b's X and Y, with b's Seq and Epoch. A
// batch taken whole is retained, a contiguous run is a zero-copy slice, and
// anything else is copied into buffers from mem.
func takeBatchRows(mem memory.Allocator, b flow.Batch, idx []int32) (flow.Batch, error) {
	out := flow.Batch{Seq: b.Seq, Epoch: b.Epoch}
	for _, r := range []struct {
		role string
		in   arrow.RecordBatch
		out  *arrow.RecordBatch
	}{{"X", b.X, &out.X}, {"Y", b.Y, &out.Y}} {
		if r.in == nil {
			continue
		}
		rec, err := takeRecordRows(mem, r.in, idx)
		if err != nil {
			out.Release()
			return flow.Batch{}, fmt.Errorf("%s: %w", r.role, err)
		}
		*r.out = rec
	}
	return out, nil
}

// takeRecordRows is takeBatchRows for one record.
func takeRecordRows(mem memory.Allocator, rec arrow.RecordBatch, idx []int32) (arrow.RecordBatch, error) {
	n := len(idx)
	if n > 0 && int64(idx[n-1]-idx[0]) == int64(n-1) {
		// Ascending with no repeats and no gaps: one contiguous run.
		if idx[0] == 0 && int64(n) == rec.NumRows() {
			rec.Retain()
			return rec, nil
		}
		return rec.NewSlice(int64(idx[0]), int64(idx[0])+int64(n)), nil
	}
	cols := make([]arrow.Array, rec.NumCols())
	for c, col := range rec.Columns() {
		out, err := takeArrayRows(mem, col, idx)
		if err != nil {
			for _, done := range cols[:c] {
				done.Release()
			}
			return nil, fmt.Errorf("column %q: %w", rec.ColumnName(c), err)
		}
		cols[c] = out
	}
	out := array.NewRecordBatch(rec.Schema(), cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	return out, nil
}

// takeArrayRows copies the rows idx of a. Fixed-width numeric columns and
// fixed-size lists of them without null elements are gathered directly;
// other types are assembled from zero-copy slices of runs of consecutive
// rows by array.Concatenate.
func takeArrayRows(mem memory.Allocator, a arrow.Array, idx []int32) (arrow.Array, error) {
	if width, ok := gatherWidth(a.DataType()); ok {
		d := a.Data()
		valid, nulls := gatherValidity(mem, a, idx)
		vals := gatherBytes(mem, d.Buffers()[1], d.Offset()*width, width, idx)
		out := array.NewData(a.DataType(), len(idx), []*memory.Buffer{valid, vals}, nil, nulls, 0)
		releaseBuffers(valid, vals)
		defer out.Release()
		return array.MakeFromData(out), nil
	}
	if l, ok := a.(*array.FixedSizeList); ok {
		lt := l.DataType().(*arrow.FixedSizeListType)
		child := l.Data().Children()[0]
		if width, ok := gatherWidth(lt.Elem()); ok && child.NullN() == 0 && len(child.Buffers()) > 1 {
			n := int(lt.Len())
			valid, nulls := gatherValidity(mem, a, idx)
			vals := gatherBytes(mem, child.Buffers()[1], (child.Offset()+l.Data().Offset()*n)*width, width*n, idx)
			elems := array.NewData(lt.Elem(), len(idx)*n, []*memory.Buffer{nil, vals}, nil, 0, 0)
			out := array.NewData(lt, len(idx), []*memory.Buffer{valid}, []arrow.ArrayData{elems}, nulls, 0)
			releaseBuffers(valid, vals)
			elems.Release()
			defer out.Release()
			return array.MakeFromData(out), nil
		}
	}
	var runs []arrow.Array
	defer func() {
		for _, r := range runs {
			r.Release()
		}
	}()
	for lo := 0; lo < len(idx); {
		hi := lo + 1
		for hi < len(idx) && idx[hi] == idx[hi-1]+1 {
			hi++
		}
		runs = append(runs, array.NewSlice(a, int64(idx[lo]), int64(idx[hi-1])+1))
		lo = hi
	}
	if len(runs) == 0 {
		return array.MakeArrayOfNull(mem, a.DataType(), 0), nil
	}
	return array.Concatenate(runs, mem)
}

// gatherWidth returns the byte width of a fixed-width numeric or temporal
// type whose values sit in buffer 1.
func gatherWidth(dt arrow.DataType) (int, bool) {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64,
		arrow.DATE32, arrow.DATE64, arrow.TIME32, arrow.TIME64,
		arrow.TIMESTAMP, arrow.DURATION:
		return dt.(arrow.FixedWidthDataType).Bytes(), true
	}
	return 0, false
}

// gatherBytes copies, for each index i, the width bytes of element i of
// buf, whose element 0 starts at byte offset.
func gatherBytes(mem memory.Allocator, buf *memory.Buffer, offset, width int, idx []int32) *memory.Buffer {
	out := memory.NewResizableBuffer(mem)
	out.Resize(len(idx) * width)
	dst := out.Bytes()
	src := buf.Bytes()[offset:]
	for j, i := range idx {
		copy(dst[j*width:(j+1)*width], src[int(i)*width:(int(i)+1)*width])
	}
	return out
}

// gatherValidity returns the validity bitmap of the rows idx of a, or nil
// when a has no nulls.
func gatherValidity(mem memory.Allocator, a arrow.Array, idx []int32) (*memory.Buffer, int) {
	if a.NullN() == 0 {
		return nil, 0
	}
	out := memory.NewResizableBuffer(mem)
	out.Resize(int(bitutil.BytesForBits(int64(len(idx)))))
	bits := out.Bytes()
	clear(bits)
	nulls := 0
	for j, i := range idx {
		if a.IsValid(int(i)) {
			bitutil.SetBit(bits, j)
		} else {
			nulls++
		}
	}
	return out, nulls
}

func releaseBuffers(bufs ...*memory.Buffer) {
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
}
