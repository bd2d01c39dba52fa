package steps

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

// The strategies of an Imputer.
const (
	// ImputeMean fills with the mean of the values that Fit saw.
	ImputeMean = "mean"
	// ImputeMostFrequent fills with the most frequent value that Fit saw,
	// the smallest one among ties (as scikit-learn).
	ImputeMostFrequent = "most_frequent"
	// ImputeConstant fills with the hyperparameter "fill_value".
	ImputeConstant = "constant"
)

// Imputer fills the missing values of numeric columns of X: nulls, and NaN
// in floating-point columns. Its output columns hold neither. Columns that
// have nothing missing in a batch pass through unchanged (retained, not
// copied), as do X's other columns, Y, Seq and Epoch.
//
// The columns are those of ImputeColumns, each of which must be numeric,
// or by default every numeric column of X (int8 to int64, uint8 to uint64,
// float32, float64). A float column keeps its type; an integer column keeps
// its type under most_frequent and constant (where fill_value must then be
// a whole number in the type's range) and becomes float64 under mean, whose
// fill value is not a whole number in general.
//
// The strategies are those that are mergeable exactly, so that replicas
// fitted in parallel (Merger) give what one fit would:
//
//   - mean: a count and a running mean per column, merged with the
//     counts as weights (exact up to rounding); O(1) memory per column;
//   - most_frequent: a count per distinct value (exact); O(distinct
//     values) memory per column, so meant for discrete columns;
//   - constant: fill_value; Fit learns nothing.
//
// There is no median: an exact median needs all the values of a column
// (or a second pass), and approximate quantile sketches do not merge to
// the median of the whole stream exactly; use mean, or most_frequent for
// discrete data.
//
// A column whose values were all missing during the fit, and that has a
// missing value at Transform, is an error that names it. Hyperparameters:
// "strategy" (Choice of the three) and "fill_value" (a float, any finite
// value); changing the strategy forgets what was learned, since each
// strategy learns something else. Transform does not change the step and
// may be called concurrently.
type Imputer struct {
	cfg   imputeConfig
	stats map[string]*imputeStats
}

const imputerName = "steps.Imputer"

// ImputeOption configures NewImputer.
type ImputeOption func(*imputeConfig)

type imputeConfig struct {
	strategy string
	fill     float64
	columns  []string // nil: every numeric column
	err      error
}

// ImputeColumns sets the columns of X to impute (distinct names; each must
// be numeric). The default is every numeric column of X.
func ImputeColumns(names ...string) ImputeOption {
	return func(c *imputeConfig) {
		if err := checkColumnNames("ImputeColumns", "X", names, false); err != nil && c.err == nil {
			c.err = err
		}
		c.columns = slices.Clone(names)
	}
}

// FillValue sets the value of the constant strategy (the hyperparameter
// "fill_value"); the default is 0.
func FillValue(v float64) ImputeOption {
	return func(c *imputeConfig) { c.fill = v }
}

// imputeStats is what the mean and most_frequent strategies learn about a
// column.
type imputeStats struct {
	n      int64
	mean   float64
	ints   map[int64]int64   // most_frequent of an integer column
	floats map[float64]int64 // most_frequent of a float column
}

func (s *imputeStats) clone() *imputeStats {
	return &imputeStats{n: s.n, mean: s.mean, ints: maps.Clone(s.ints), floats: maps.Clone(s.floats)}
}

// merge folds o into s.
func (s *imputeStats) merge(o *imputeStats) {
	if o.n == 0 {
		return
	}
	n := s.n + o.n
	mean := s.mean + (o.mean-s.mean)*float64(o.n)/float64(n)
	if math.IsInf(mean, 0) && !math.IsInf(s.mean, 0) && !math.IsInf(o.mean, 0) {
		// The difference or its product overflowed: weigh each mean.
		mean = s.mean*(float64(s.n)/float64(n)) + o.mean*(float64(o.n)/float64(n))
	}
	s.mean = mean
	s.n = n
	for v, c := range o.ints {
		if s.ints == nil {
			s.ints = map[int64]int64{}
		}
		s.ints[v] += c
	}
	for v, c := range o.floats {
		if s.floats == nil {
			s.floats = map[float64]int64{}
		}
		s.floats[v] += c
	}
}

// mode returns the most frequent value, the smallest among ties.
func (s *imputeStats) mode() (i int64, f float64, isInt bool) {
	if len(s.ints) > 0 {
		return argmaxCount(s.ints), 0, true
	}
	return 0, argmaxCount(s.floats), false
}

func argmaxCount[K int64 | float64](counts map[K]int64) K {
	var best K
	bestN := int64(-1)
	for v, n := range counts {
		if n > bestN || (n == bestN && v < best) {
			best, bestN = v, n
		}
	}
	return best
}

var (
	_ flow.Fitter     = (*Imputer)(nil)
	_ flow.Merger     = (*Imputer)(nil)
	_ flow.Copier     = (*Imputer)(nil)
	_ flow.Resetter   = (*Imputer)(nil)
	_ hparams.Tunable = (*Imputer)(nil)
	_ hparams.Spacer  = (*Imputer)(nil)
)

// NewImputer returns an unfitted imputer with the given strategy
// (ImputeMean, ImputeMostFrequent or ImputeConstant). Options:
// ImputeColumns (default: every numeric column of X), FillValue (default
// 0; for ImputeConstant).
func NewImputer(strategy string, opts ...ImputeOption) (*Imputer, error) {
	cfg := imputeConfig{strategy: strategy}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.err != nil {
		return nil, fmt.Errorf("%s: %w", imputerName, cfg.err)
	}
	m := &Imputer{cfg: cfg, stats: map[string]*imputeStats{}}
	if err := checkOwnParams(imputerName, m.Params(), m.Space()); err != nil {
		return nil, err
	}
	if math.IsNaN(cfg.fill) || math.IsInf(cfg.fill, 0) {
		return nil, fmt.Errorf("%s: FillValue(%v): want a finite value", imputerName, cfg.fill)
	}
	return m, nil
}

// numericColumn is a numeric Arrow column read as int64s or float64s.
type numericColumn struct {
	col     arrow.Array
	isFloat bool
	ints    func(i int) int64
	floats  func(i int) float64
}

func (c numericColumn) missing(i int) bool {
	return c.col.IsNull(i) || (c.isFloat && math.IsNaN(c.floats(i)))
}

func (c numericColumn) anyMissing() bool {
	if c.col.NullN() > 0 {
		return true
	}
	if c.isFloat {
		for i := range c.col.Len() {
			if math.IsNaN(c.floats(i)) {
				return true
			}
		}
	}
	return false
}

// asNumeric reads col, or returns false for a column that is not numeric.
func asNumeric(col arrow.Array) (numericColumn, bool) {
	n := numericColumn{col: col}
	switch c := col.(type) {
	case *array.Float32:
		n.isFloat, n.floats = true, func(i int) float64 { return float64(c.Value(i)) }
	case *array.Float64:
		n.isFloat, n.floats = true, c.Value
	case *array.Int8:
		n.ints = func(i int) int64 { return int64(c.Value(i)) }
	case *array.Int16:
		n.ints = func(i int) int64 { return int64(c.Value(i)) }
	case *array.Int32:
		n.ints = func(i int) int64 { return int64(c.Value(i)) }
	case *array.Int64:
		n.ints = c.Value
	case *array.Uint8:
		n.ints = func(i int) int64 { return int64(c.Value(i)) }
	case *array.Uint16:
		n.ints = func(i int) int64 { return int64(c.Value(i)) }
	case *array.Uint32:
		n.ints = func(i int) int64 { return int64(c.Value(i)) }
	case *array.Uint64:
		n.ints = func(i int) int64 { return int64(c.Value(i)) } // checked by checkUint64
	default:
		return n, false
	}
	if !n.isFloat {
		n.floats = func(i int) float64 { return float64(n.ints(i)) }
	}
	return n, true
}

// checkUint64 returns an error where a uint64 column holds a value beyond
// int64's range, which the statistics cannot hold.
func checkUint64(name string, col arrow.Array) error {
	c, ok := col.(*array.Uint64)
	if !ok {
		return nil
	}
	for i := range c.Len() {
		if c.IsValid(i) && c.Value(i) > math.MaxInt64 {
			return fmt.Errorf("column %q of X, row %d, holds %d, beyond int64's range", name, i, c.Value(i))
		}
	}
	return nil
}

// targets returns the columns of x to impute, by index, with their names.
func (m *Imputer) targets(x arrow.RecordBatch) ([]int, error) {
	if m.cfg.columns == nil {
		var idx []int
		for i := range int(x.NumCols()) {
			if _, ok := asNumeric(x.Column(i)); ok {
				idx = append(idx, i)
			}
		}
		return idx, nil
	}
	idx := make([]int, len(m.cfg.columns))
	for k, name := range m.cfg.columns {
		i, err := uniqueColumn(x, name)
		if err != nil {
			return nil, fmt.Errorf("imputed column: %w", err)
		}
		if _, ok := asNumeric(x.Column(i)); !ok {
			return nil, fmt.Errorf("column %q of X has type %s, want a numeric column (int8 to int64, uint8 to uint64, float32 or float64)", name, x.Column(i).DataType())
		}
		idx[k] = i
	}
	return idx, nil
}

// Fit adds the non-missing values of the columns to the statistics of the
// strategy (nothing for constant, which only checks the columns).
func (m *Imputer) Fit(ctx context.Context, in flow.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if in.X == nil {
		return fmt.Errorf("%s: fit: the batch has no X", imputerName)
	}
	idx, err := m.targets(in.X)
	if err != nil {
		return fmt.Errorf("%s: fit: %w", imputerName, err)
	}
	if m.cfg.strategy == ImputeConstant {
		return nil
	}
	batch := map[string]*imputeStats{}
	for _, i := range idx {
		name := in.X.Schema().Field(i).Name
		if err := checkUint64(name, in.X.Column(i)); err != nil {
			return fmt.Errorf("%s: fit: %w", imputerName, err)
		}
		batch[name] = m.columnStats(in.X.Column(i))
	}
	for name, s := range batch { // all checked: now change the step
		if m.stats[name] == nil {
			m.stats[name] = &imputeStats{}
		}
		m.stats[name].merge(s)
	}
	return nil
}

// columnStats returns the statistics of one column of a batch.
func (m *Imputer) columnStats(col arrow.Array) *imputeStats {
	c, _ := asNumeric(col)
	s := &imputeStats{}
	var sum float64
	for i := range col.Len() {
		if c.missing(i) {
			continue
		}
		s.n++
		switch {
		case m.cfg.strategy == ImputeMean:
			sum += c.floats(i)
		case c.isFloat:
			if s.floats == nil {
				s.floats = map[float64]int64{}
			}
			s.floats[c.floats(i)]++
		default:
			if s.ints == nil {
				s.ints = map[int64]int64{}
			}
			s.ints[c.ints(i)]++
		}
	}
	if s.n > 0 {
		s.mean = sum / float64(s.n)
	}
	if m.cfg.strategy == ImputeMean && math.IsInf(sum, 0) {
		// The sum overflowed or holds an infinity: a sum of the values
		// divided by n is finite for finite values.
		s.mean = 0
		for i := range col.Len() {
			if !c.missing(i) {
				s.mean += c.floats(i) / float64(s.n)
			}
		}
	}
	return s
}

// Transform borrows in and returns a batch whose imputed columns have no
// missing values: new arrays, from the run's allocator, where a column had
// some; every other column retained. Cost: O(rows) per imputed column.
func (m *Imputer) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, err
	}
	if in.X == nil {
		return flow.Batch{}, fmt.Errorf("%s: transform: the batch has no X", imputerName)
	}
	idx, err := m.targets(in.X)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("%s: transform: %w", imputerName, err)
	}
	mem := flow.Allocator(ctx)
	x := in.X
	x.Retain()
	defer func() { x.Release() }()
	for _, i := range idx {
		col := x.Column(i)
		c, _ := asNumeric(col)
		if !c.anyMissing() {
			continue
		}
		name := x.Schema().Field(i).Name
		filled, err := m.fill(mem, name, c)
		if err != nil {
			return flow.Batch{}, fmt.Errorf("%s: transform: %w", imputerName, err)
		}
		next, err := replaceColumn(x, i, name, filled)
		filled.Release()
		if err != nil {
			return flow.Batch{}, fmt.Errorf("%s: transform: %w", imputerName, err)
		}
		x.Release()
		x = next
	}
	x.Retain() // the deferred Release drops the loop's reference
	return in.WithX(x), nil
}

// fill returns c with its missing values filled.
func (m *Imputer) fill(mem memory.Allocator, name string, c numericColumn) (arrow.Array, error) {
	fill := m.cfg.fill
	var modeInt int64
	modeIsInt := false
	if m.cfg.strategy != ImputeConstant {
		s := m.stats[name]
		if s == nil || s.n == 0 {
			return nil, fmt.Errorf("column %q of X has missing values, but the fit saw no value of it to learn the %s from", name, m.cfg.strategy)
		}
		fill = s.mean
		if m.cfg.strategy == ImputeMean && math.IsNaN(fill) {
			return nil, fmt.Errorf("column %q of X has missing values, but the mean of the values the fit saw is not a number (it saw both +Inf and -Inf)", name)
		}
		if m.cfg.strategy == ImputeMostFrequent {
			modeInt, fill, modeIsInt = s.mode()
			if modeIsInt && c.isFloat {
				fill = float64(modeInt)
			}
		}
	}
	switch col := c.col.(type) {
	case *array.Float32:
		return filled(array.NewFloat32Builder(mem), col.Float32Values(), c.missing, float32(fill)), nil
	case *array.Float64:
		return filled(array.NewFloat64Builder(mem), col.Float64Values(), c.missing, fill), nil
	}
	if m.cfg.strategy == ImputeMean {
		vals := make([]float64, c.col.Len())
		for i := range vals {
			if !c.missing(i) {
				vals[i] = c.floats(i)
			}
		}
		return filled(array.NewFloat64Builder(mem), vals, c.missing, fill), nil
	}
	if !modeIsInt && m.cfg.strategy == ImputeMostFrequent {
		return nil, fmt.Errorf("column %q of X is an integer column now, but was a float column during the fit", name)
	}
	if m.cfg.strategy == ImputeConstant && (fill != math.Trunc(fill) || fill < math.MinInt64 || fill >= math.MaxInt64) {
		return nil, fmt.Errorf("fill_value %v is not a whole number, for the integer column %q of X", fill, name)
	}
	if modeIsInt {
		fill = float64(modeInt)
	}
	out, ok := fillInteger(mem, c.col, fill, modeInt, modeIsInt)
	if !ok {
		return nil, fmt.Errorf("fill value %v is beyond the range of column %q of X (%s)", fill, name, c.col.DataType())
	}
	return out, nil
}

// filled returns vals with the rows where missing holds replaced by fill,
// built by b (released).
func filled[T any, B interface {
	array.Builder
	AppendValues([]T, []bool)
}](b B, vals []T, missing func(int) bool, fill T) arrow.Array {
	defer b.Release()
	out := slices.Clone(vals)
	for i := range out {
		if missing(i) {
			out[i] = fill
		}
	}
	b.AppendValues(out, nil)
	return b.NewArray()
}

// fillInteger fills an integer column with fill (or, exactly, with the
// int64 mode where isMode), or reports false where the value does not fit
// the column's type.
func fillInteger(mem memory.Allocator, col arrow.Array, fill float64, mode int64, isMode bool) (arrow.Array, bool) {
	v := int64(fill)
	if isMode {
		v = mode
	}
	switch c := col.(type) {
	case *array.Int8:
		return fillAs(array.NewInt8Builder(mem), c.Int8Values(), c.IsNull, v)
	case *array.Int16:
		return fillAs(array.NewInt16Builder(mem), c.Int16Values(), c.IsNull, v)
	case *array.Int32:
		return fillAs(array.NewInt32Builder(mem), c.Int32Values(), c.IsNull, v)
	case *array.Int64:
		return fillAs(array.NewInt64Builder(mem), c.Int64Values(), c.IsNull, v)
	case *array.Uint8:
		return fillAs(array.NewUint8Builder(mem), c.Uint8Values(), c.IsNull, v)
	case *array.Uint16:
		return fillAs(array.NewUint16Builder(mem), c.Uint16Values(), c.IsNull, v)
	case *array.Uint32:
		return fillAs(array.NewUint32Builder(mem), c.Uint32Values(), c.IsNull, v)
	case *array.Uint64:
		if v < 0 {
			return nil, false
		}
		return filled(array.NewUint64Builder(mem), c.Uint64Values(), c.IsNull, uint64(v)), true
	}
	panic(fmt.Sprintf("fillInteger(%T)", col))
}

// fillAs is filled for a value v that must fit T.
func fillAs[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32, B interface {
	array.Builder
	AppendValues([]T, []bool)
}](b B, vals []T, missing func(int) bool, v int64) (arrow.Array, bool) {
	if int64(T(v)) != v {
		b.Release()
		return nil, false
	}
	return filled(b, vals, missing, T(v)), true
}

// Fill returns the value that the imputer fills column name with under
// its strategy, as a float64, and false where it has none (a column that
// mean or most_frequent never saw a value of).
func (m *Imputer) Fill(name string) (float64, bool) {
	if m.cfg.strategy == ImputeConstant {
		return m.cfg.fill, true
	}
	s := m.stats[name]
	if s == nil || s.n == 0 {
		return 0, false
	}
	if m.cfg.strategy == ImputeMean {
		return s.mean, true
	}
	i, f, isInt := s.mode()
	if isInt {
		return float64(i), true
	}
	return f, true
}

// Replica returns an imputer with the same configuration and nothing
// learned.
func (m *Imputer) Replica() flow.Step {
	return &Imputer{cfg: m.cfg, stats: map[string]*imputeStats{}}
}

// Merge folds the statistics of replicas (Imputers of the same strategy)
// into the receiver's. It changes nothing when it fails.
func (m *Imputer) Merge(replicas []flow.Step) error {
	for i, r := range replicas {
		o, ok := r.(*Imputer)
		if !ok {
			return fmt.Errorf("%s: merge: replica %d is a %T, want a *steps.Imputer", imputerName, i, r)
		}
		if o.cfg.strategy != m.cfg.strategy {
			return fmt.Errorf("%s: merge: replica %d has strategy %q, want %q", imputerName, i, o.cfg.strategy, m.cfg.strategy)
		}
		for name, s := range o.stats {
			if have := m.stats[name]; have != nil && (len(have.ints) > 0 && len(s.floats) > 0 || len(have.floats) > 0 && len(s.ints) > 0) {
				return fmt.Errorf("%s: merge: replica %d saw column %q with another type", imputerName, i, name)
			}
		}
	}
	for _, r := range replicas {
		for name, s := range r.(*Imputer).stats {
			if m.stats[name] == nil {
				m.stats[name] = &imputeStats{}
			}
			m.stats[name].merge(s)
		}
	}
	return nil
}

// Copy returns an independent imputer in the same state.
func (m *Imputer) Copy() flow.Step {
	c := &Imputer{cfg: m.cfg, stats: make(map[string]*imputeStats, len(m.stats))}
	c.cfg.columns = slices.Clone(m.cfg.columns)
	for name, s := range m.stats {
		c.stats[name] = s.clone()
	}
	return c
}

// Reset forgets what was learned.
func (m *Imputer) Reset() { m.stats = map[string]*imputeStats{} }

// Params returns "strategy" and "fill_value".
func (m *Imputer) Params() hparams.Values {
	return hparams.Values{"strategy": m.cfg.strategy, "fill_value": m.cfg.fill}
}

// SetParams sets "strategy" and "fill_value", all or none; a new strategy
// forgets what was learned.
func (m *Imputer) SetParams(p hparams.Values) error {
	c, err := convertParams(imputerName, m.Params(), m.Space(), p)
	if err != nil {
		return err
	}
	if v, ok := c["fill_value"]; ok {
		f := v.(float64)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return errors.New(imputerName + ": fill_value must be finite")
		}
		m.cfg.fill = f
	}
	if v, ok := c["strategy"]; ok && v.(string) != m.cfg.strategy {
		m.cfg.strategy = v.(string)
		m.Reset()
	}
	return nil
}

// Space returns Choice("mean", "most_frequent", "constant") for
// "strategy"; "fill_value" has no distribution (any finite float).
func (m *Imputer) Space() hparams.Space {
	return hparams.Space{"strategy": hparams.Choice(ImputeMean, ImputeMostFrequent, ImputeConstant)}
}
