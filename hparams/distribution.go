package hparams

import "math/rand/v2"

// Distribution is the distribution of one hyperparameter's values.
//
// The constructors of this package (Fixed, Boolean, Choice,
// PriorityChoice, WeightedChoice, IntRange, Uniform, LogUniform, Normal,
// TruncatedNormal, LogNormal, Quantized, Mixture, When) never fail: a
// distribution built from impossible arguments reports them in Validate,
// and Space.Check, Gather, Override, Sample and Grid refuse it, naming its
// key. The other methods of a distribution that Validate refuses return
// unspecified values.
//
// Distributions are values that never change; they are safe for
// concurrent use, the *rand.Rand given to Sample excepted.
type Distribution interface {
	// String names the distribution and its arguments, as Go code would
	// build it ("LogUniform(1e-05, 1)").
	String() string
	// Type is the type of every value that Sample returns.
	Type() Type
	// Validate returns an error that says which argument is impossible,
	// or nil.
	Validate() error
	// Sample draws one value from r, of Go type float64, int, bool or
	// string (see Type). Equal draws of r give equal values.
	Sample(r *rand.Rand) any
	// Contains reports whether v, converted to Type (see Convert), is a
	// value that the distribution can take.
	Contains(v any) bool
	// Values returns every value the distribution can take, in a fixed
	// order, and true, where there are at most MaxValues of them (what a
	// grid search enumerates); nil and false otherwise.
	Values() (values []any, finite bool)
	// Continuous reports whether the distribution has a density with
	// respect to length (a PDF) rather than probabilities of single
	// values (a PMF).
	Continuous() bool
	// Density returns the PDF at v where Continuous, else the probability
	// of v (the PMF); 0 where v is not a value of the distribution.
	Density(v any) float64
	// Stats returns the bounds, mean and standard deviation of a
	// distribution over numbers; false for one over bools or strings.
	Stats() (Stats, bool)
}

// Stats describes a distribution over numbers. Min and Max are the
// bounds of its values (±Inf where it has none); a bound need not be a
// value itself (LogNormal's Min is 0).
type Stats struct {
	Min, Max  float64
	Mean, Std float64
}

// Cumulative is a distribution over numbers with a cumulative distribution
// function: CDF(x) is the probability of a value ≤ x. Quantized needs one.
// Uniform, LogUniform, Normal, TruncatedNormal and LogNormal have one.
type Cumulative interface {
	Distribution
	CDF(x float64) float64
}

// MaxValues bounds the values that Values lists: a distribution with more
// values than this (IntRange(0, 1e9)) is not finite for grid search.
const MaxValues = 1 << 16

// NewRand returns a random source for Sample: a PCG generator seeded with
// seed, so that a seed gives the same draws on every platform and run.
// A *rand.Rand is not safe for concurrent use.
func NewRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
