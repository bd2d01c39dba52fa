package minibatch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// resampleTarget returns the number of rows that each class present in a
// batch should have, given its current rows.
type resampleTarget func(counts map[string]int, rng *rand.Rand) (map[string]int, error)

func (c *sourceConfig) setTarget(name string, t resampleTarget, err error) {
	c.targets = append(c.targets, name)
	c.target = t
	c.note(name, err)
}

// WithClassRows resamples every class present in a batch to exactly rows
// rows (rows ≥ 1): smaller classes are oversampled, larger ones
// undersampled.
func WithClassRows(rows int) Option {
	return func(c *sourceConfig) {
		var err error
		if rows < 1 {
			err = fmt.Errorf("WithClassRows(%d): want at least 1 row per class", rows)
		}
		c.setTarget("WithClassRows", func(counts map[string]int, _ *rand.Rand) (map[string]int, error) {
			out := make(map[string]int, len(counts))
			for k := range counts {
				out[k] = rows
			}
			return out, nil
		}, err)
	}
}

// WithOversampleToMajority oversamples minority classes: every class with
// fewer than round(ratio × majority) rows (a half rounded up), where
// majority is the row count of the batch's largest class, is raised to that
// many; the others are kept as they are. ratio 1 balances the classes
// fully; ratio must be positive.
func WithOversampleToMajority(ratio float64) Option {
	return func(c *sourceConfig) {
		var err error
		if !(ratio > 0) || math.IsInf(ratio, 0) {
			err = fmt.Errorf("WithOversampleToMajority(%v): want a positive, finite ratio", ratio)
		}
		c.setTarget("WithOversampleToMajority", func(counts map[string]int, _ *rand.Rand) (map[string]int, error) {
			most := 0
			for _, n := range counts {
				most = max(most, n)
			}
			want := int(roundFraction(int64(most), ratio))
			out := make(map[string]int, len(counts))
			for k, n := range counts {
				out[k] = max(n, want)
			}
			return out, nil
		}, err)
	}
}

// WithUndersampleToMinority undersamples majority classes: every class with
// more than round(ratio × minority) rows (a half rounded up), where
// minority is the row count of the batch's smallest class, is cut to that
// many; the others are kept as they are. ratio 1 balances the classes
// fully; ratio must be at least 1.
func WithUndersampleToMinority(ratio float64) Option {
	return func(c *sourceConfig) {
		var err error
		if !(ratio >= 1) || math.IsInf(ratio, 0) {
			err = fmt.Errorf("WithUndersampleToMinority(%v): want a finite ratio of at least 1", ratio)
		}
		c.setTarget("WithUndersampleToMinority", func(counts map[string]int, _ *rand.Rand) (map[string]int, error) {
			least := math.MaxInt
			for _, n := range counts {
				least = min(least, n)
			}
			want := int(roundFraction(int64(least), ratio))
			out := make(map[string]int, len(counts))
			for k, n := range counts {
				out[k] = min(n, want)
			}
			return out, nil
		}, err)
	}
}

// WithClassWeights scales each class by its weight: a class with n rows in
// a batch gets weight × n rows on average (weights above 1 oversample,
// below 1 undersample, 0 drops the class). The fractional part of
// weight × n is drawn at random, so that small batches are not biased.
// Classes are named by the text of their label (see NewResampler); classes
// missing from weights keep weight 1. Weights must be finite and not
// negative. The map is copied.
func WithClassWeights(weights map[string]float64) Option {
	w := make(map[string]float64, len(weights))
	var err error
	for k, v := range weights {
		if !(v >= 0) || math.IsInf(v, 0) {
			err = fmt.Errorf("WithClassWeights: class %q has weight %v; want a finite weight of at least 0", k, v)
		}
		w[k] = v
	}
	if len(weights) == 0 {
		err = errors.New("WithClassWeights: no weights; want at least one class")
	}
	return func(c *sourceConfig) {
		c.setTarget("WithClassWeights", func(counts map[string]int, rng *rand.Rand) (map[string]int, error) {
			out := make(map[string]int, len(counts))
			// Draw in a fixed class order, so that the result does not depend
			// on map iteration order.
			for _, k := range resampleSortedKeys(counts) {
				weight, ok := w[k]
				if !ok {
					weight = 1
				}
				q := weight * float64(counts[k])
				whole := math.Floor(q)
				if rng.Float64() < q-whole {
					whole++
				}
				out[k] = int(whole)
			}
			return out, nil
		}, err)
	}
}

// WithClassTargets sets a custom target: f is given the rows of each class
// present in a batch (keyed by the text of the label, see NewResampler) and
// returns the rows each class should have. A class missing from its result
// keeps its rows; a negative count is an error. f must be safe for
// concurrent use when the step is used by several replicas.
func WithClassTargets(f func(counts map[string]int) map[string]int) Option {
	var err error
	if f == nil {
		err = errors.New("WithClassTargets(nil): want a function")
	}
	return func(c *sourceConfig) {
		c.setTarget("WithClassTargets", func(counts map[string]int, _ *rand.Rand) (map[string]int, error) {
			return f(counts), nil
		}, err)
	}
}

// Resampler is a train-only step that re-balances classes within each batch
// by oversampling (drawing rows again) and undersampling (leaving rows out).
//
// On the fit path (FitTransform) it resamples; on the transform path
// (Transform) it passes the batch through unchanged, so validation, test and
// serving data are never resampled — it is train-only by construction.
//
// Resampler has no learned state and no mutable state: the rows drawn for
// a batch come from a PCG generator seeded from the seed, the batch's Seq and
// its Epoch. It is safe for concurrent use, and a Merger whose replicas are
// copies and whose Merge has nothing to combine, so it runs in replicated
// stages on the fit path too.
type Resampler struct {
	mem    memory.Allocator
	seed   uint64
	label  string
	target resampleTarget
}

var (
	_ flow.FitTransformer = (*Resampler)(nil)
	_ flow.Merger         = (*Resampler)(nil)
)

// NewResampler returns a resampling step (see Resampler and the options:
// WithSeed, WithClassLabel and at most one target: WithClassRows,
// WithOversampleToMajority, WithUndersampleToMinority, WithClassWeights or
// WithClassTargets; without a target every class is oversampled to the size
// of the majority class, WithOversampleToMajority(1)). WithAllocator
// (default memory.DefaultAllocator) holds the rows that FitTransform
// copies. Invalid options (a ratio out of range, two targets) are reported
// here, before any batch is seen.
//
// Class labels are read from the label column as in Holdout (integers,
// floats, strings, booleans, or a dictionary of one); the options that name
// classes use their text: decimal for integers ("3", "-1"), the shortest
// exact form for floats ("0.5"), the value for strings, "true"/"false".
func NewResampler(opts ...Option) (*Resampler, error) {
	c, err := newStageConfig("resample", opts, "WithSeed", "WithClassLabel",
		"WithClassRows", "WithOversampleToMajority", "WithUndersampleToMinority", "WithClassWeights", "WithClassTargets")
	if err != nil {
		return nil, err
	}
	if len(c.targets) > 1 {
		return nil, fmt.Errorf("minibatch: resample: %d targets given (%s); want at most one", len(c.targets), strings.Join(c.targets, ", "))
	}
	if c.target == nil {
		WithOversampleToMajority(1)(c)
	}
	return &Resampler{mem: c.mem, seed: c.seed, label: c.classLabel, target: c.target}, nil
}

// Transform is the transform path: it returns in unchanged (X and Y
// retained, so the caller owns its own references). It costs O(1).
func (r *Resampler) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

// FitTransform is the fit path: it returns a batch, owned by the caller,
// whose rows are those of in (borrowed) resampled to the target. Every row
// of a class that keeps or gains rows appears at least once (n rows
// growing to t: each row ⌊t/n⌋ times, and t mod n of them, drawn at
// random, once more); a class that loses rows keeps a random subset. Rows
// stay in their original order, repeats next to each other; shuffle
// afterwards if the order matters. X and Y are resampled alike; Seq and
// Epoch are kept.
//
// Cost: O(rows) to read the labels and plan, plus a copy of the output
// rows into buffers from the Resampler's allocator; a batch that the target
// leaves as it is is passed through (retained) without a copy.
//
// Every batch must have X, the rows resampled; the label column must exist
// in every batch, have a supported type and no nulls; otherwise the error
// names the batch, the column and what was expected.
func (r *Resampler) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	if in.X == nil {
		return flow.Batch{}, fmt.Errorf("minibatch: resample: batch %d has no X; want the rows to resample", in.Seq)
	}
	col, where, err := labelColumn(in, r.label)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("minibatch: resample: batch %d: label %s: %w", in.Seq, where, err)
	}
	rows := int(in.Rows())
	if col.Len() != rows || (in.Y != nil && in.X.NumRows() != in.Y.NumRows()) {
		return flow.Batch{}, fmt.Errorf("minibatch: resample: batch %d: X, Y and label %s disagree on the number of rows; want the same", in.Seq, where)
	}
	var classes classTable
	ids, err := classes.appendIDs(make([]int32, 0, rows), col, false)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("minibatch: resample: batch %d: label %s: %w", in.Seq, where, err)
	}
	members := make([][]int32, len(classes.keys))
	for row, c := range ids {
		members[c] = append(members[c], int32(row))
	}
	counts := make(map[string]int, len(classes.keys))
	for c, k := range classes.keys {
		if len(members[c]) > 0 {
			counts[k.String()] = len(members[c])
		}
	}
	rng := seededRand(r.seed, uint64(in.Epoch), uint64(in.Seq))
	targets, err := r.target(counts, rng)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("minibatch: resample: batch %d: %w", in.Seq, err)
	}

	times := make([]int32, rows) // how many times each row appears
	same := true
	for c, k := range classes.keys {
		rowsOf := members[c]
		n := len(rowsOf)
		if n == 0 {
			continue
		}
		t, ok := targets[k.String()]
		if !ok {
			t = n
		}
		if t < 0 {
			return flow.Batch{}, fmt.Errorf("minibatch: resample: batch %d: target for class %q of label %s is %d rows; want 0 or more", in.Seq, k.String(), where, t)
		}
		same = same && t == n
		whole, extra := int32(t/n), t%n
		for _, row := range rowsOf {
			times[row] = whole
		}
		for i := range extra {
			j := i + rng.IntN(n-i)
			rowsOf[i], rowsOf[j] = rowsOf[j], rowsOf[i]
			times[rowsOf[i]]++
		}
	}
	if same {
		in.Retain()
		return in, nil
	}
	var total int
	for _, k := range times {
		total += int(k)
	}
	idx := make([]int32, 0, total)
	for row, k := range times {
		for range k {
			idx = append(idx, int32(row))
		}
	}
	out, err := takeBatchRows(r.mem, in, idx)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("minibatch: resample: batch %d: %w", in.Seq, err)
	}
	return out, nil
}

// Replica returns a copy of r. Resampler has no state to diverge, so
// replicas behave exactly like r.
func (r *Resampler) Replica() flow.Step {
	cp := *r
	return &cp
}

// Merge checks that the replicas are Resamplers; there is no learned state
// to combine.
func (r *Resampler) Merge(replicas []flow.Step) error {
	for i, s := range replicas {
		if _, ok := s.(*Resampler); !ok {
			return fmt.Errorf("minibatch: resample: merge: replica %d is %T; want *minibatch.Resampler", i, s)
		}
	}
	return nil
}

func resampleSortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
