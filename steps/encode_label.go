package steps

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// LabelEncoder maps the values of a label column of Y to class indices 0
// to K-1: an int64 column that replaces the label column at its place in
// Y (named as EncodeOutput says; the label column's name by default). X
// and the other columns of Y pass through, retained.
//
// Labels are strings (utf8, large utf8, string view, or a dictionary of
// them) or integers (any integer type, booleans as 0 and 1, or floats that
// are whole numbers); nulls are an error. The classes are the distinct
// values seen by Fit, sorted (strings by bytes, integers by value), so
// class i is the i-th smallest; Classes lists them. A label that Fit did
// not see is an error at Transform that names the value and its row.
//
// Fit is a partial fit, and a batch with a new class renumbers the classes
// above it: put a Joiner after the encoder (flow.Barrier(barrier.Joiner))
// so that the steps after it see the classes of the whole stream, or give
// them with KnownClasses. Replicas merge exactly (the union of their
// classes). LabelEncoder has no hyperparameters (it is not
// hparams.Tunable). Transform does not change the step and may be called
// concurrently.
type LabelEncoder struct {
	column string
	cfg    encodeConfig
	cls    labelClasses
	fixed  labelClasses // KnownClasses; the zero value when learned
}

const labelEncoderName = "steps.LabelEncoder"

// labelClasses is a sorted set of labels of one kind.
type labelClasses struct {
	kind labelKind
	text []string
	ints []int64
}

type labelKind uint8

const (
	noLabels labelKind = iota
	textLabels
	intLabels
)

func (k labelKind) String() string {
	switch k {
	case textLabels:
		return "strings"
	case intLabels:
		return "integers"
	}
	return "nothing"
}

func (c labelClasses) len() int { return len(c.text) + len(c.ints) }

func (c labelClasses) clone() labelClasses {
	return labelClasses{kind: c.kind, text: slices.Clone(c.text), ints: slices.Clone(c.ints)}
}

// union returns the union of c and o, or an error where their kinds
// differ.
func (c labelClasses) union(o labelClasses) (labelClasses, error) {
	switch {
	case o.kind == noLabels:
		return c, nil
	case c.kind == noLabels:
		return o.clone(), nil
	case c.kind != o.kind:
		return c, fmt.Errorf("labels are %s, but were %s before", o.kind, c.kind)
	}
	return labelClasses{kind: c.kind, text: sortedUnion(c.text, o.text), ints: sortedUnion(c.ints, o.ints)}, nil
}

// sortedUnion returns the sorted union of the sorted, distinct a and b.
func sortedUnion[T cmp.Ordered](a, b []T) []T {
	if len(b) == 0 {
		return a
	}
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// batchLabels reads a label column: its distinct values as labelClasses
// (sorted), and a function that gives the index of row i's value in a
// set of classes of the same kind (false when it is not one of them).
type batchLabels struct {
	distinct labelClasses
	n        int
	text     func(i int) string
	ints     []int64
}

func (b batchLabels) find(c labelClasses, i int) (int, bool) {
	if b.distinct.kind == textLabels {
		return slices.BinarySearch(c.text, b.text(i))
	}
	return slices.BinarySearch(c.ints, b.ints[i])
}

func (b batchLabels) value(i int) any {
	if b.distinct.kind == textLabels {
		return b.text(i)
	}
	return b.ints[i]
}

// readLabels reads the column of Y named column.
func readLabels(batch flow.Batch, column string) (batchLabels, error) {
	if batch.Y == nil {
		return batchLabels{}, fmt.Errorf("the batch has no Y, want the label column %q in it; a source puts the label columns in Y with minibatch.WithLabels", column)
	}
	idx, err := uniqueColumn(batch.Y, column)
	if err != nil {
		return batchLabels{}, fmt.Errorf("label column: %w", err)
	}
	col := batch.Y.Column(idx)
	text, isText := stringValues(col)
	if !isText {
		ints, err := minibatch.LabelsInt64(batch, column)
		if err != nil {
			return batchLabels{}, fmt.Errorf("%w (or strings)", err)
		}
		d := slices.Clone(ints)
		slices.Sort(d)
		return batchLabels{distinct: labelClasses{kind: intLabels, ints: slices.Compact(d)}, n: len(ints), ints: ints}, nil
	}
	if n := col.NullN(); n > 0 {
		first := 0
		for col.IsValid(first) {
			first++
		}
		return batchLabels{}, fmt.Errorf("column %q of Y has %d nulls, the first at row %d; labels cannot be null: drop or fill those rows first", column, n, first)
	}
	seen := map[string]struct{}{}
	var d []string
	for i := range col.Len() {
		s := text(i)
		if _, ok := seen[s]; !ok {
			seen[s] = struct{}{}
			d = append(d, s)
		}
	}
	slices.Sort(d)
	return batchLabels{distinct: labelClasses{kind: textLabels, text: d}, n: col.Len(), text: text}, nil
}

// stringValues returns the string at each row of a string column (utf8,
// large utf8, string view, or a dictionary of them), or false for any
// other column.
func stringValues(col arrow.Array) (func(int) string, bool) {
	type texts interface{ Value(int) string }
	if d, ok := col.(*array.Dictionary); ok {
		vals, ok := d.Dictionary().(texts)
		if !ok {
			return nil, false
		}
		return func(i int) string { return vals.Value(d.GetValueIndex(i)) }, true
	}
	switch c := col.(type) {
	case *array.String:
		return c.Value, true
	case *array.LargeString:
		return c.Value, true
	case *array.StringView:
		return c.Value, true
	}
	return nil, false
}

// NewLabelEncoder returns an unfitted encoder of the label column column of
// Y. Options: EncodeOutput (default: column), KnownClasses (default:
// learned by Fit).
func NewLabelEncoder(column string, opts ...EncodeOption) (*LabelEncoder, error) {
	cfg, err := newEncodeConfig(labelEncoderName, "LabelEncoder", column, opts)
	if err != nil {
		return nil, err
	}
	e := &LabelEncoder{column: column, cfg: cfg}
	if cfg.known {
		fixed, err := knownClasses(cfg.classes)
		if err != nil {
			return nil, fmt.Errorf("%s: KnownClasses: %w", labelEncoderName, err)
		}
		e.fixed, e.cls = fixed, fixed
	}
	return e, nil
}

// knownClasses converts the values of KnownClasses.
func knownClasses(values []any) (labelClasses, error) {
	var c labelClasses
	for i, v := range values {
		switch x := v.(type) {
		case string:
			if c.kind == intLabels {
				return c, fmt.Errorf("value %d is the string %q among integers; give strings or integers", i, x)
			}
			c.kind = textLabels
			c.text = append(c.text, x)
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr:
			if c.kind == textLabels {
				return c, fmt.Errorf("value %d is the integer %v among strings; give strings or integers", i, x)
			}
			l, ok := toInt64(x)
			if !ok {
				return c, fmt.Errorf("value %d is %v, beyond the int64 range of the labels", i, x)
			}
			c.kind = intLabels
			c.ints = append(c.ints, l)
		default:
			return c, fmt.Errorf("value %d is %v (%T); want a string or an integer", i, v, v)
		}
	}
	n := c.len()
	slices.Sort(c.text)
	slices.Sort(c.ints)
	c.text, c.ints = slices.Compact(c.text), slices.Compact(c.ints)
	if c.len() != n {
		return c, fmt.Errorf("a class is given twice")
	}
	return c, nil
}

// toInt64 converts a Go integer, or reports false where it is beyond
// int64's range.
func toInt64(v any) (int64, bool) {
	var u uint64
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint:
		u = uint64(x)
	case uint64:
		u = x
	case uintptr:
		u = uint64(x)
	default:
		panic(fmt.Sprintf("toInt64(%T)", v))
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

var (
	_ flow.Fitter   = (*LabelEncoder)(nil)
	_ flow.Merger   = (*LabelEncoder)(nil)
	_ flow.Copier   = (*LabelEncoder)(nil)
	_ flow.Resetter = (*LabelEncoder)(nil)
)

// Fit adds the labels of in's label column to the classes; with
// KnownClasses it learns nothing and returns an error for a label that is
// not one of them (naming the value and its row).
func (e *LabelEncoder) Fit(ctx context.Context, in flow.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	labels, err := readLabels(in, e.column)
	if err != nil {
		return fmt.Errorf("%s: fit: %w", labelEncoderName, err)
	}
	if e.fixed.kind != noLabels {
		if _, err := e.encode(labels, nil); err != nil {
			return fmt.Errorf("%s: fit: %w", labelEncoderName, err)
		}
		return nil
	}
	cls, err := e.cls.union(labels.distinct)
	if err != nil {
		return fmt.Errorf("%s: fit: column %q of Y: %w", labelEncoderName, e.column, err)
	}
	e.cls = cls
	return nil
}

// encode returns the class index of every label, appended to dst.
func (e *LabelEncoder) encode(labels batchLabels, dst []int64) ([]int64, error) {
	if labels.n > 0 && labels.distinct.kind != e.cls.kind {
		return nil, fmt.Errorf("column %q of Y holds %s, but the classes are %s", e.column, labels.distinct.kind, e.cls.kind)
	}
	for i := range labels.n {
		k, ok := labels.find(e.cls, i)
		if !ok {
			return nil, fmt.Errorf("column %q of Y, row %d, holds %s, which is not a known class (%d classes: %s)",
				e.column, i, formatLabel(labels.value(i)), e.cls.len(), e.classList(8))
		}
		dst = append(dst, int64(k))
	}
	return dst, nil
}

func formatLabel(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

// classList prints the first limit classes.
func (e *LabelEncoder) classList(limit int) string {
	var out []string
	for i, c := range e.Classes() {
		if i == limit {
			out = append(out, "…")
			break
		}
		out = append(out, formatLabel(c))
	}
	return fmt.Sprint(out)
}

// Transform borrows in and returns a batch whose label column in Y is
// replaced by the class indices (int64, from the run's allocator); X and
// the other columns of Y are retained. Cost: O(rows × log K), plus one map
// insertion per row for string labels.
func (e *LabelEncoder) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, err
	}
	if e.cls.kind == noLabels {
		return flow.Batch{}, fmt.Errorf("%s: transform: not fitted: fit it on labels first (column %q of Y)", labelEncoderName, e.column)
	}
	labels, err := readLabels(in, e.column)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("%s: transform: %w", labelEncoderName, err)
	}
	idx, err := e.encode(labels, make([]int64, 0, labels.n))
	if err != nil {
		return flow.Batch{}, fmt.Errorf("%s: transform: %w", labelEncoderName, err)
	}
	col := int64Array(flow.Allocator(ctx), idx)
	defer col.Release()
	return replaceY(in, e.column, e.cfg.out, col, labelEncoderName)
}

// int64Array returns an int64 array of v allocated from mem.
func int64Array(mem memory.Allocator, v []int64) arrow.Array {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.AppendValues(v, nil)
	return b.NewArray()
}

// replaceY returns in with the column column of Y replaced by col, named
// out; X and the other columns are retained, col too (the caller keeps its
// reference).
func replaceY(in flow.Batch, column, out string, col arrow.Array, what string) (flow.Batch, error) {
	i, err := uniqueColumn(in.Y, column)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("%s: transform: Y: %w", what, err)
	}
	y, err := replaceColumn(in.Y, i, out, col)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("%s: transform: Y: %w", what, err)
	}
	if in.X != nil {
		in.X.Retain()
	}
	return flow.Batch{Seq: in.Seq, Epoch: in.Epoch, X: in.X, Y: y}, nil
}

// Classes returns the classes in index order: strings or int64s; nil
// before any fit.
func (e *LabelEncoder) Classes() []any {
	var out []any
	for _, s := range e.cls.text {
		out = append(out, s)
	}
	for _, i := range e.cls.ints {
		out = append(out, i)
	}
	return out
}

// NumClasses returns the number of classes, K.
func (e *LabelEncoder) NumClasses() int { return e.cls.len() }

// Replica returns an encoder with the same configuration and no learned
// classes (the known classes, where KnownClasses gave them).
func (e *LabelEncoder) Replica() flow.Step {
	return &LabelEncoder{column: e.column, cfg: e.cfg, cls: e.fixed.clone(), fixed: e.fixed.clone()}
}

// Merge adds the classes of replicas (LabelEncoders) to the receiver's:
// their union. It changes nothing when it fails (a replica of another
// type, or whose labels are of another kind).
func (e *LabelEncoder) Merge(replicas []flow.Step) error {
	cls := e.cls
	for i, r := range replicas {
		o, ok := r.(*LabelEncoder)
		if !ok {
			return fmt.Errorf("%s: merge: replica %d is a %T, want a *steps.LabelEncoder", labelEncoderName, i, r)
		}
		var err error
		if cls, err = cls.union(o.cls); err != nil {
			return fmt.Errorf("%s: merge: replica %d: %w", labelEncoderName, i, err)
		}
	}
	e.cls = cls
	return nil
}

// Copy returns an independent encoder in the same state.
func (e *LabelEncoder) Copy() flow.Step {
	return &LabelEncoder{column: e.column, cfg: e.cfg, cls: e.cls.clone(), fixed: e.fixed.clone()}
}

// Reset forgets the learned classes (known classes stay).
func (e *LabelEncoder) Reset() { e.cls = e.fixed.clone() }
