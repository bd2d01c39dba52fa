package steps

import (
	"errors"
	"fmt"
)

// DefaultFeatures is the name of the tensor column of X that the scalers
// and the linear models read by default: a FixedSizeList<float32> column
// (see minibatch.Pack and minibatch.PackStep).
const DefaultFeatures = "x"

// ScaleOption configures a scaler (NewStandardScaler, NewMinMaxScaler).
// An option that does not apply to the scaler, or has an impossible
// value, makes the constructor return an error.
type ScaleOption func(*scaleConfig)

// scaleConfig is what the scalers' options set.
type scaleConfig struct {
	in, out      string
	withMean     bool
	withStd      bool
	lo, hi       float64
	standardOnly string // the name of a StandardScaler-only option given
	minMaxOnly   string // the name of a MinMaxScaler-only option given
	err          error
	outSet       bool
}

func (c *scaleConfig) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// ScaleColumn sets the tensor column of X that the scaler reads (and, by
// default, writes). The default is DefaultFeatures, "x".
func ScaleColumn(name string) ScaleOption {
	return func(c *scaleConfig) {
		if name == "" {
			c.fail(errors.New("ScaleColumn: empty column name"))
		}
		c.in = name
	}
}

// ScaleOutput sets the name of the scaled column, which replaces the input
// column at its place in X. The default is the input column's name.
func ScaleOutput(name string) ScaleOption {
	return func(c *scaleConfig) {
		if name == "" {
			c.fail(errors.New("ScaleOutput: empty column name"))
		}
		c.out, c.outSet = name, true
	}
}

// WithMean sets whether a StandardScaler centres each feature (subtracts
// its mean); the default is true. The hyperparameter "with_mean".
func WithMean(on bool) ScaleOption {
	return func(c *scaleConfig) { c.withMean, c.standardOnly = on, "WithMean" }
}

// WithStd sets whether a StandardScaler divides each feature by its
// standard deviation; the default is true. The hyperparameter "with_std".
func WithStd(on bool) ScaleOption {
	return func(c *scaleConfig) { c.withStd, c.standardOnly = on, "WithStd" }
}

// FeatureRange sets the range [lo, hi] onto which a MinMaxScaler maps each
// feature's fitted [min, max]; the default is [0, 1]. lo < hi, lo within
// ±1e6 and hi - lo from 1e-6 to 2e6 (the hyperparameters' space). The
// hyperparameters "feature_min" (lo) and "feature_span" (hi - lo).
func FeatureRange(lo, hi float64) ScaleOption {
	return func(c *scaleConfig) {
		if !(lo < hi) {
			c.fail(fmt.Errorf("FeatureRange(%v, %v): want lo < hi", lo, hi))
		}
		c.lo, c.hi, c.minMaxOnly = lo, hi, "FeatureRange"
	}
}

// newScaleConfig applies opts over the defaults; what names the scaler and
// standard says which kind it is, for the options that apply to one kind.
func newScaleConfig(what string, standard bool, opts []ScaleOption) (scaleConfig, error) {
	c := scaleConfig{in: DefaultFeatures, withMean: true, withStd: true, lo: 0, hi: 1}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.err != nil {
		return c, fmt.Errorf("%s: %w", what, c.err)
	}
	if standard && c.minMaxOnly != "" {
		return c, fmt.Errorf("%s: option %s applies to a MinMaxScaler only", what, c.minMaxOnly)
	}
	if !standard && c.standardOnly != "" {
		return c, fmt.Errorf("%s: option %s applies to a StandardScaler only", what, c.standardOnly)
	}
	if !c.outSet {
		c.out = c.in
	}
	return c, nil
}
