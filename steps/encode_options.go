package steps

import (
	"errors"
	"fmt"
)

// EncodeOption configures a label encoder (NewLabelEncoder, NewOneHot). An
// option that does not apply to the encoder, or has an impossible value,
// makes the constructor return an error.
type EncodeOption func(*encodeConfig)

type encodeConfig struct {
	out      string
	classes  []any // KnownClasses
	known    bool
	k        int // NumClasses
	only     string
	onlyKind string // "LabelEncoder" or "OneHot"
	err      error
}

func (c *encodeConfig) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// EncodeOutput sets the name of the encoded column, which replaces the
// label column at its place in Y. The default is the label column's name.
func EncodeOutput(name string) EncodeOption {
	return func(c *encodeConfig) {
		if name == "" {
			c.fail(errors.New("EncodeOutput: empty column name"))
		}
		c.out = name
	}
}

// KnownClasses gives a LabelEncoder its classes instead of learning them:
// all strings or all integers (any Go integer type), distinct; they are
// sorted, so class i is the i-th smallest. Fit then learns nothing and
// only checks that every label is known.
func KnownClasses(classes ...any) EncodeOption {
	return func(c *encodeConfig) {
		c.classes, c.known, c.only, c.onlyKind = classes, true, "KnownClasses", "LabelEncoder"
		if len(classes) == 0 {
			c.fail(errors.New("KnownClasses: no classes given"))
		}
	}
}

// NumClasses sets the number of classes K of a OneHot (its hyperparameter
// "classes"): labels must be 0 to K-1. The default, 0, learns K from the
// labels seen by Fit (the largest label plus one).
func NumClasses(k int) EncodeOption {
	return func(c *encodeConfig) {
		if k < 0 {
			c.fail(fmt.Errorf("NumClasses(%d): want 0 (learned) or more", k))
		}
		c.k, c.only, c.onlyKind = k, "NumClasses", "OneHot"
	}
}

// newEncodeConfig applies opts for the encoder kind ("LabelEncoder" or
// "OneHot") of the label column column.
func newEncodeConfig(what, kind, column string, opts []EncodeOption) (encodeConfig, error) {
	var c encodeConfig
	if column == "" {
		return c, fmt.Errorf("%s: empty label column name", what)
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		before := c.only
		o(&c)
		if c.only != before && c.onlyKind != kind {
			c.fail(fmt.Errorf("option %s applies to a %s only", c.only, c.onlyKind))
		}
	}
	if c.err != nil {
		return c, fmt.Errorf("%s: %w", what, c.err)
	}
	if c.out == "" {
		c.out = column
	}
	return c, nil
}
