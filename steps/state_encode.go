package steps

import (
	"cmp"
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
)

// This file holds the saved state of the label encoders (persist.Stater).

var (
	_ persist.Stater = (*LabelEncoder)(nil)
	_ persist.Stater = (*OneHot)(nil)
)

// marshalClasses writes c as the scalar prefix+"kind" and, for strings or
// integers, the tensor prefix+"strings" or prefix+"ints".
func marshalClasses(w *persist.StateWriter, prefix string, c labelClasses) {
	w.String(prefix+"kind", c.kind.String())
	switch c.kind {
	case textLabels:
		w.Strings(prefix+"strings", c.text)
	case intLabels:
		w.Int64s(prefix+"ints", c.ints)
	}
}

func unmarshalClasses(r *persist.StateReader, prefix string) (labelClasses, error) {
	var c labelClasses
	kind, err := r.String(prefix + "kind")
	if err != nil {
		return c, err
	}
	switch kind {
	case noLabels.String():
		return c, nil
	case textLabels.String():
		c.kind = textLabels
		if c.text, err = r.Strings(prefix + "strings"); err != nil {
			return c, err
		}
		err = strictlySorted(c.text)
	case intLabels.String():
		c.kind = intLabels
		if c.ints, err = r.Int64s(prefix + "ints"); err != nil {
			return c, err
		}
		err = strictlySorted(c.ints)
	default:
		return c, fmt.Errorf("state %q is %q; want strings, integers or nothing", prefix+"kind", kind)
	}
	if err == nil && c.len() == 0 {
		err = fmt.Errorf("no classes of %s", kind)
	}
	if err != nil {
		return c, fmt.Errorf("classes %q: %w", prefix, err)
	}
	return c, nil
}

func strictlySorted[T cmp.Ordered](s []T) error {
	for i := 1; i < len(s); i++ {
		if !(s[i-1] < s[i]) {
			return fmt.Errorf("class %d (%v) is not above class %d (%v); want sorted, distinct classes", i, s[i], i-1, s[i-1])
		}
	}
	return nil
}

func stateNewLabelEncoder(spec persist.Spec) (flow.Step, error) {
	column, err := spec.State.String("column")
	if err != nil {
		return nil, err
	}
	out, err := spec.State.String("output")
	if err != nil {
		return nil, err
	}
	opts := []EncodeOption{EncodeOutput(out)}
	fixed, err := unmarshalClasses(spec.State, "known_")
	if err != nil {
		return nil, err
	}
	if fixed.kind != noLabels {
		var known []any
		for _, s := range fixed.text {
			known = append(known, s)
		}
		for _, i := range fixed.ints {
			known = append(known, i)
		}
		opts = append(opts, KnownClasses(known...))
	}
	return NewLabelEncoder(column, opts...)
}

// MarshalState writes the columns ("column", "output"), the known classes
// ("known_kind", and "known_strings" or "known_ints") and the classes
// ("kind", and "strings" or "ints"), in index order.
func (e *LabelEncoder) MarshalState(w *persist.StateWriter) error {
	w.String("column", e.column)
	w.String("output", e.cfg.out)
	marshalClasses(w, "known_", e.fixed)
	marshalClasses(w, "", e.cls)
	return nil
}

// UnmarshalState reads the classes that MarshalState wrote: sorted and
// distinct, and including the known classes.
func (e *LabelEncoder) UnmarshalState(r *persist.StateReader) error {
	c, err := unmarshalClasses(r, "")
	if err != nil {
		return fmt.Errorf("%s: %w", labelEncoderName, err)
	}
	if e.fixed.kind != noLabels {
		if u, err := c.union(e.fixed); err != nil || u.len() != c.len() {
			return fmt.Errorf("%s: the classes do not include the known classes", labelEncoderName)
		}
	}
	e.cls = c
	return nil
}

func stateNewOneHot(spec persist.Spec) (flow.Step, error) {
	column, err := spec.State.String("column")
	if err != nil {
		return nil, err
	}
	out, err := spec.State.String("output")
	if err != nil {
		return nil, err
	}
	return NewOneHot(column, EncodeOutput(out))
}

// MarshalState writes the columns ("column", "output") and "seen", the
// largest label seen plus one.
func (o *OneHot) MarshalState(w *persist.StateWriter) error {
	w.String("column", o.column)
	w.String("output", o.cfg.out)
	w.Int64("seen", int64(o.seen))
	return nil
}

// UnmarshalState reads "seen".
func (o *OneHot) UnmarshalState(r *persist.StateReader) error {
	seen, err := r.Int("seen")
	if err != nil {
		return err
	}
	if seen < 0 || seen > maxOneHotClasses {
		return fmt.Errorf("%s: seen %d, want 0 to %d", oneHotName, seen, maxOneHotClasses)
	}
	o.seen = seen
	return nil
}
