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

	"github.com/penstock-ml/penstock/flow"
)

// This file holds train/validation splitting: Holdout, KFold and
// WalkForward, which plan a split in one pass over a replayable source and
// return each side as a replayable SplitSource (split_source.go) that
// re-reads the source and keeps only its rows.

// Fold is one train/validation pair of a cross-validation split.
type Fold struct {
	Train      *SplitSource
	Validation *SplitSource
}

// Holdout splits a replayable source into a train side and a validation
// side holding the fraction validation (0 < validation < 1) of the rows,
// round(rows × validation) in all (a half rounded up: 0.145 of 100 rows is
// 15).
//
// It reads src once from the start to plan the split (see the options):
// that pass keeps only the row count and, when stratifying, one small
// class id per row taken from the label column (integer, floating-point,
// string or boolean values, or a dictionary of them; every distinct value is
// a class, nulls included). When stratified, each class sends floor or ceil
// of its rows × validation to the validation side — within one row of the
// exact proportion — with the leftover rows given to the classes with the
// largest remainders, ties broken at random; which rows go is drawn by a
// PCG generator seeded with WithSeed. Without labels the validation rows are
// a uniform random sample.
//
// Memory: the plan is 4 bytes per row (an int32 side per row), shared by
// both sides, plus 8 bytes per row while planning; the data itself is never
// held. Both sides are replayable SplitSources reading src again (see
// SplitSource for ownership and for reading the two sides in turn).
// WithAllocator (default memory.DefaultAllocator) holds the copied rows of the batches
// that the sides return.
//
// src must implement flow.Rewinder and must return the same rows in the
// same order on every pass: a Shuffler or a Permute, which draw a new order
// on every pass, and a Curriculum, whose order is given per epoch, are
// refused, also under a Rebatcher, Repeat or Epochs (split first and
// shuffle or order each side, or cache one pass with NewCache).
// Both sides must have at least one row.
func Holdout(ctx context.Context, src flow.Source, validation float64, opts ...Option) (train, val *SplitSource, err error) {
	const op = "holdout"
	if !(validation > 0 && validation < 1) {
		return nil, nil, fmt.Errorf("minibatch: %s: validation fraction is %v, want strictly between 0 and 1", op, validation)
	}
	cfg, err := newStageConfig(op, opts, splitOptions...)
	if err != nil {
		return nil, nil, err
	}
	mem := cfg.mem
	p, plan, err := planSplit(ctx, op, src, cfg)
	if err != nil {
		return nil, nil, err
	}
	n := p.rows
	want := roundFraction(n, validation)
	if want < 1 || want > n-1 {
		return nil, nil, fmt.Errorf("minibatch: %s: validation fraction %v of %d rows gives %d validation and %d train rows; want at least one on each side",
			op, validation, n, want, n-want)
	}
	parts := plan.holdout(validation, want, seededRand(cfg.seed))
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
// all 2k sides, 8 bytes per row while planning; never the data.
// WithAllocator (default memory.DefaultAllocator) holds the rows that the sides copy. See
// SplitSource for ownership and for reading the sides in turn; reading the
// folds one after another, each side to its end, re-reads src 2k times.
func KFold(ctx context.Context, src flow.Source, k int, opts ...Option) ([]Fold, error) {
	const op = "k-fold"
	if k < 2 {
		return nil, fmt.Errorf("minibatch: %s: k is %d, want at least 2", op, k)
	}
	cfg, err := newStageConfig(op, opts, splitOptions...)
	if err != nil {
		return nil, err
	}
	mem := cfg.mem
	p, plan, err := planSplit(ctx, op, src, cfg)
	if err != nil {
		return nil, err
	}
	if int64(k) > p.rows {
		return nil, fmt.Errorf("minibatch: %s: k is %d but the source has %d rows; want k at most the number of rows", op, k, p.rows)
	}
	parts := plan.kfold(k, seededRand(cfg.seed))
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
// With rows rows and validation blocks of v rows (WithValidationRows,
// default rows/(folds+1)), block i covers [rows - (folds-i)·v, rows - (folds-i-1)·v).
// Its train window ends gap rows (WithGap) before the block and
// starts at row 0 (expanding window) or at most WithTrainWindow rows
// earlier (sliding window). The first fold must keep at least one train row.
//
// WalkForward reads src once, counting rows only; src must return the same
// rows in the same order on every pass, as for Holdout. Every side is a
// contiguous range of the parent, returned as zero-copy slices of the
// parent's batches, so it allocates no buffers and stops reading the parent
// at the end of its range. See SplitSource for ownership and for reading
// the sides in turn.
func WalkForward(ctx context.Context, src flow.Source, folds int, opts ...Option) ([]Fold, error) {
	const op = "walk-forward"
	cfg, err := newStageConfig(op, opts, "WithTrainWindow", "WithValidationRows", "WithGap")
	if err != nil {
		return nil, err
	}
	if folds < 1 {
		return nil, fmt.Errorf("minibatch: %s: folds is %d, want at least 1", op, folds)
	}
	cfg.stratify = -1
	p, _, err := planSplit(ctx, op, src, cfg)
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
			Train:      newSplitSide(name+" train", p, cfg.mem, rangeSelection{lo: trainLo, hi: trainHi}, trainHi-trainLo, trainHi),
			Validation: newSplitSide(name+" validation", p, cfg.mem, rangeSelection{lo: valLo, hi: valLo + v}, v, valLo+v),
		}
	}
	return out, nil
}

// roundFraction returns round(n × frac), halves away from zero, of the
// decimal fraction or ratio that frac stands for (Holdout, the Resampler's
// ratios): the float product's rounding
// error (0.145 × 100 is 14.499999999999998) must not move it across a half.
func roundFraction(n int64, frac float64) int64 {
	q := float64(n) * frac
	return int64(math.Round(q + q*1e-12))
}

// splitOptions are the options that Holdout and KFold read.
var splitOptions = []string{"WithSeed", "WithClassLabel", "WithStratify"}

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
func planSplit(ctx context.Context, op string, src flow.Source, cfg *sourceConfig) (*splitParent, *splitPlan, error) {
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
	if what := reshuffles(src); what != "" {
		return nil, nil, fmt.Errorf("minibatch: %s: source %T returns its rows in a new order on every pass (through %s); a split re-reads its source and needs the same order, or its sides would share rows and lose others: %s",
			op, src, what, splitFirst(what))
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
			labelled = cfg.stratify == 1 || (cfg.stratify == 0 && (cfg.classLabel != "" || (b.Y != nil && b.Y.NumCols() > 0)))
		}
		if err := checkSplitBatch(b); err != nil {
			b.Release()
			return nil, nil, fmt.Errorf("minibatch: %s: planning pass, batch %d: %w", op, batch, err)
		}
		if labelled {
			col, where, err := labelColumn(b, cfg.classLabel)
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
