package metrics

import (
	"errors"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
)

// Metric scores predictions against the truth, accumulated batch by batch.
//
// A Metric keeps sufficient statistics (counts, sums, confusion counts per
// class), never the predictions, so its memory does not grow with the
// stream; Merge combines the statistics of two metrics of the same kind, so
// that replicas that each scored part of a stream give the score of the
// whole. A Metric borrows the arrays given to Update and retains none of
// them. It is not safe for concurrent use: give each goroutine its own
// Metric and Merge them at the end.
type Metric interface {
	// Name is the metric's name ("accuracy", "mse", …), the key of its
	// score in Score's result.
	Name() string
	// Update adds the rows of pred (the predictions) and truth (the expected
	// values), which have the same length, to the statistics. The arrays are
	// borrowed. An Update that returns an error has changed nothing. The
	// column types each metric accepts are in its constructor's doc.
	Update(pred, truth arrow.Array) error
	// Value returns the score of every row given so far: NaN when there are
	// none (see Result for an error instead) or when the metric is not
	// defined over them (R2 over fewer than two rows).
	Value() float64
	// Rows returns the number of rows given so far.
	Rows() int64
	// HigherIsBetter reports whether a higher Value is a better score
	// (accuracy, F1, R2) or a worse one (losses and errors).
	HigherIsBetter() bool
	// Merge adds the statistics of other, a metric of the same kind (made
	// by the same constructor), to this one, as if this one had been given
	// other's rows too. other is not changed; merging a metric into itself
	// is an error. A Merge that returns an error has changed nothing.
	Merge(other Metric) error
	// Reset forgets every row given so far.
	Reset()
}

// ErrEmpty is returned by Result (and Score) for a metric that has been
// given no rows.
var ErrEmpty = errors.New("metrics: no rows to score")

// ErrUndefined is returned by Result (and Score) for a metric whose value
// is not defined over the rows it was given (R2 over a single row).
var ErrUndefined = errors.New("metrics: score not defined")

// Result returns m's Value, or an error wrapping ErrEmpty when m has been
// given no rows, or ErrUndefined when its Value is NaN over the rows it has.
func Result(m Metric) (float64, error) {
	if m.Rows() == 0 {
		return math.NaN(), fmt.Errorf("metrics: %s: %w", m.Name(), ErrEmpty)
	}
	v := m.Value()
	if math.IsNaN(v) {
		return v, fmt.Errorf("metrics: %s over %d rows: %w", m.Name(), m.Rows(), ErrUndefined)
	}
	return v, nil
}

// mergeable returns other as a *T, or an error when it is of another kind or
// is m itself.
func mergeable[T any, P interface {
	*T
	Metric
}](m P, name string, other Metric) (P, error) {
	o, ok := other.(P)
	if !ok {
		if other == nil {
			return nil, fmt.Errorf("metrics: %s: merge with nil", name)
		}
		return nil, fmt.Errorf("metrics: %s: merge with %s (%T): want another %s", name, other.Name(), other, name)
	}
	if o == nil {
		return nil, fmt.Errorf("metrics: %s: merge with nil", name)
	}
	if o == m {
		return nil, fmt.Errorf("metrics: %s: merge into itself would count its rows twice", name)
	}
	return o, nil
}

// sameLength checks that pred and truth have the same number of rows.
func sameLength(name string, pred, truth arrow.Array) error {
	if pred == nil {
		return fmt.Errorf("metrics: %s: prediction is a nil array", name)
	}
	if truth == nil {
		return fmt.Errorf("metrics: %s: truth is a nil array", name)
	}
	if pred.Len() != truth.Len() {
		return fmt.Errorf("metrics: %s: prediction has %d rows and truth %d, want the same number", name, pred.Len(), truth.Len())
	}
	return nil
}

// sum is a compensated (Neumaier) sum: its error does not grow with the
// number of terms, so that a long stream sums as precisely as a short one.
type sum struct{ s, c float64 }

func (k *sum) add(v float64) {
	t := k.s + v
	if math.Abs(k.s) >= math.Abs(v) {
		k.c += (k.s - t) + v
	} else {
		k.c += (v - t) + k.s
	}
	k.s = t
}

func (k *sum) merge(o sum) {
	k.add(o.s)
	k.add(o.c)
}

func (k sum) value() float64 { return k.s + k.c }
