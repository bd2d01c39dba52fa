package steps

import (
	"context"
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
)

// OneHot turns a class-index column of Y (labels 0 to K-1: any integer
// type, or whole floats; see minibatch.LabelsInt64) into a one-hot
// FixedSizeList<float32> column of width K — row i holds 1 at its label's
// position and 0 elsewhere — that replaces the label column at its place
// in Y (named as EncodeOutput says; the label column's name by default). X
// and the other columns of Y pass through, retained. Put a LabelEncoder
// first for labels that are not 0 to K-1.
//
// K is the hyperparameter "classes" (NumClasses) where it is not 0; then
// Fit learns nothing and only checks the labels. With "classes" 0 (the
// default) Fit learns K as the largest label seen plus one: a partial fit
// whose K can grow, so put a Joiner after the encoder for the steps after
// it to see the final width. Replicas merge exactly (the largest K). A
// negative label, or one not below K, is an error that names it and its
// row. Transform does not change the step and may be called concurrently.
type OneHot struct {
	column string
	cfg    encodeConfig
	seen   int // the largest label seen plus one
}

const oneHotName = "steps.OneHot"

var (
	_ flow.Fitter     = (*OneHot)(nil)
	_ flow.Merger     = (*OneHot)(nil)
	_ flow.Copier     = (*OneHot)(nil)
	_ flow.Resetter   = (*OneHot)(nil)
	_ hparams.Tunable = (*OneHot)(nil)
	_ hparams.Spacer  = (*OneHot)(nil)
)

// NewOneHot returns an encoder of the class-index column column of Y.
// Options: EncodeOutput (default: column), NumClasses (default 0:
// learned).
func NewOneHot(column string, opts ...EncodeOption) (*OneHot, error) {
	cfg, err := newEncodeConfig(oneHotName, "OneHot", column, opts)
	if err != nil {
		return nil, err
	}
	o := &OneHot{column: column, cfg: cfg}
	if err := checkOwnParams(oneHotName, o.Params(), o.Space()); err != nil {
		return nil, err
	}
	return o, nil
}

// Fit checks in's labels and, with "classes" 0, learns K from them.
func (o *OneHot) Fit(ctx context.Context, in flow.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	labels, err := minibatch.LabelsInt64(in, o.column)
	if err != nil {
		return fmt.Errorf("%s: fit: %w", oneHotName, err)
	}
	seen := o.seen
	for i, l := range labels {
		if err := o.check(i, l); err != nil {
			return fmt.Errorf("%s: fit: %w", oneHotName, err)
		}
		seen = max(seen, int(l)+1)
	}
	o.seen = seen
	return nil
}

// maxOneHotClasses bounds K, as the space of "classes" does.
const maxOneHotClasses = 1 << 16

// check returns an error for the label l of row i that cannot be a class.
func (o *OneHot) check(i int, l int64) error {
	switch {
	case l < 0:
		return fmt.Errorf("column %q of Y, row %d, holds %d; want a class index from 0", o.column, i, l)
	case o.cfg.k > 0 && l >= int64(o.cfg.k):
		return fmt.Errorf("column %q of Y, row %d, holds %d; want 0 to %d (classes is %d)", o.column, i, l, o.cfg.k-1, o.cfg.k)
	case l >= maxOneHotClasses:
		return fmt.Errorf("column %q of Y, row %d, holds %d; want below %d", o.column, i, l, maxOneHotClasses)
	}
	return nil
}

// Classes returns K: "classes" where it is set, else the learned K (0
// before any fit).
func (o *OneHot) Classes() int {
	if o.cfg.k > 0 {
		return o.cfg.k
	}
	return o.seen
}

// Transform borrows in and returns a batch whose label column in Y is
// replaced by its one-hot encoding (from the run's allocator); X and the
// other columns of Y are retained. Cost: O(rows × K).
func (o *OneHot) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, err
	}
	k := o.Classes()
	if k == 0 {
		return flow.Batch{}, fmt.Errorf("%s: transform: not fitted: fit it on labels first, or set classes (column %q of Y)", oneHotName, o.column)
	}
	labels, err := minibatch.Classes(in, o.column, k)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("%s: transform: %w", oneHotName, err)
	}
	m := minibatch.NewMatrix(flow.Allocator(ctx), len(labels), k)
	defer m.Release()
	for i, l := range labels {
		m.Data[i*k+int(l)] = 1
	}
	rec := m.Record(o.cfg.out)
	defer rec.Release()
	return replaceY(in, o.column, o.cfg.out, rec.Column(0), oneHotName)
}

// Replica returns an encoder with the same configuration and nothing
// learned.
func (o *OneHot) Replica() flow.Step { return &OneHot{column: o.column, cfg: o.cfg} }

// Merge takes the largest K that the replicas (OneHots) learned.
func (o *OneHot) Merge(replicas []flow.Step) error {
	seen := o.seen
	for i, r := range replicas {
		x, ok := r.(*OneHot)
		if !ok {
			return fmt.Errorf("%s: merge: replica %d is a %T, want a *steps.OneHot", oneHotName, i, r)
		}
		seen = max(seen, x.seen)
	}
	o.seen = seen
	return nil
}

// Copy returns an independent encoder in the same state.
func (o *OneHot) Copy() flow.Step { c := *o; return &c }

// Reset forgets the learned K.
func (o *OneHot) Reset() { o.seen = 0 }

// Params returns "classes".
func (o *OneHot) Params() hparams.Values { return hparams.Values{"classes": o.cfg.k} }

// SetParams sets "classes" (0: learned).
func (o *OneHot) SetParams(p hparams.Values) error {
	c, err := convertParams(oneHotName, o.Params(), o.Space(), p)
	if err != nil {
		return err
	}
	if v, ok := c["classes"]; ok {
		o.cfg.k = v.(int)
	}
	return nil
}

// Space returns IntRange(0, 65536) for "classes".
func (o *OneHot) Space() hparams.Space {
	return hparams.Space{"classes": hparams.IntRange(0, maxOneHotClasses)}
}
