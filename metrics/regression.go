package metrics

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
)

// MSE returns the mean squared error of predicted values against the truth
// (scikit-learn's mean_squared_error), named "mse"; lower is better.
//
// Prediction and truth are value columns (float32, float64, or integers
// from int8 to int64 and uint8 to uint32) or vectors of values per row
// (fixed_size_list<float32> or fixed_size_list<float64>) of one width W,
// one target per position; a column of one value and a list of width 1 are
// alike. The score of several targets is the mean of each target's score
// (scikit-learn's multioutput="uniform_average"). NaN, infinities and
// nulls are errors. The width is fixed by the first batch; a batch or a
// Merge with another is an error. It keeps a sum per target.
func MSE() Metric { return &regression{kind: mse} }

// MAE returns the mean absolute error (scikit-learn's
// mean_absolute_error), named "mae"; lower is better. It accepts the
// columns that MSE accepts and keeps a sum per target.
func MAE() Metric { return &regression{kind: mae} }

// R2 returns the coefficient of determination, 1 - Σ(y-ŷ)² / Σ(y-ȳ)²
// (scikit-learn's r2_score), named "r2"; higher is better. It accepts the
// columns that MSE accepts.
//
// As in scikit-learn (force_finite=True): when every true value of a
// target is the same (zero variance), or their squared deviations sum to
// 0 in float64 (they differ by less than about 1e-162), that target's R2
// is 1 if every prediction is exact (the squared residuals sum to 0) and 0
// otherwise; over fewer than two rows R2 is undefined and Value returns
// NaN. It keeps per target the mean and the sum of squared deviations of
// the truth (combined batch by batch with Chan's parallel formula, which
// stays precise where Σy² - (Σy)²/n would cancel), its smallest and
// largest value (to tell zero variance exactly) and the sum of squared
// residuals.
func R2() Metric { return &regression{kind: r2} }

type regressionKind uint8

const (
	mse regressionKind = iota
	mae
	r2
)

func (k regressionKind) String() string {
	return [...]string{mse: "mse", mae: "mae", r2: "r2"}[k]
}

// regression holds the statistics of one target per element of its
// slices.
type regression struct {
	kind  regressionKind
	rows  int64
	width int   // W, fixed by the first batch; 0 before
	err   []sum // Σ(y-ŷ)² (mse, r2) or Σ|y-ŷ| (mae)

	// r2 only: the truth's mean, Σ(y-ȳ)², min and max
	mean, m2, lo, hi []float64
}

func (m *regression) Name() string         { return m.kind.String() }
func (m *regression) HigherIsBetter() bool { return m.kind == r2 }
func (m *regression) Rows() int64          { return m.rows }
func (m *regression) Reset()               { *m = regression{kind: m.kind} }

func (m *regression) Value() float64 {
	if m.rows == 0 || (m.kind == r2 && m.rows < 2) {
		return math.NaN()
	}
	var total float64
	for k := range m.width {
		total += m.target(k)
	}
	return total / float64(m.width)
}

// target returns the score of target k.
func (m *regression) target(k int) float64 {
	e := m.err[k].value()
	if m.kind != r2 {
		return e / float64(m.rows)
	}
	if m.lo[k] == m.hi[k] || m.m2[k] == 0 { // zero variance, or deviations whose squares underflow
		if e == 0 {
			return 1
		}
		return 0
	}
	return 1 - e/m.m2[k]
}

// grow gives m, which has no rows, the width w.
func (m *regression) grow(w int) {
	if m.width != 0 {
		return
	}
	m.width = w
	m.err = make([]sum, w)
	if m.kind == r2 {
		m.mean, m.m2 = make([]float64, w), make([]float64, w)
		m.lo, m.hi = make([]float64, w), make([]float64, w)
	}
}

func (m *regression) Update(pred, truth arrow.Array) error {
	name := m.Name()
	if err := sameLength(name, pred, truth); err != nil {
		return err
	}
	p, err := values(name, "prediction", pred)
	if err != nil {
		return err
	}
	t, err := values(name, "truth", truth)
	if err != nil {
		return err
	}
	if p.width != t.width {
		return fmt.Errorf("metrics: %s: prediction has %d values per row and truth %d; want one prediction per target", name, p.width, t.width)
	}
	if m.width != 0 && p.width != m.width {
		return fmt.Errorf("metrics: %s: batch has %d targets, want %d (the number of earlier batches)", name, p.width, m.width)
	}
	if p.rows == 0 {
		return nil
	}
	m.grow(p.width)
	n := p.rows
	for k := range p.width {
		var e sum
		for i := range n {
			d := t.get(i, k) - p.get(i, k)
			if m.kind == mae {
				e.add(math.Abs(d))
			} else {
				e.add(d * d)
			}
		}
		m.err[k].merge(e)
		if m.kind != r2 {
			continue
		}
		var s sum
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range n {
			y := t.get(i, k)
			s.add(y)
			lo, hi = min(lo, y), max(hi, y)
		}
		mean := s.value() / float64(n)
		var m2 sum
		for i := range n {
			d := t.get(i, k) - mean
			m2.add(d * d)
		}
		m.combine(k, m.rows, int64(n), mean, m2.value(), lo, hi)
	}
	m.rows += int64(n)
	return nil
}

// combine adds to target k, which has na rows, the moments of nb more rows
// (Chan et al.'s pairwise update).
func (m *regression) combine(k int, na, nb int64, mean, m2, lo, hi float64) {
	if na == 0 {
		m.mean[k], m.m2[k], m.lo[k], m.hi[k] = mean, m2, lo, hi
		return
	}
	n := float64(na + nb)
	d := mean - m.mean[k]
	m.mean[k] += d * float64(nb) / n
	m.m2[k] += m2 + d*d*float64(na)*float64(nb)/n
	m.lo[k], m.hi[k] = min(m.lo[k], lo), max(m.hi[k], hi)
}

func (m *regression) Merge(other Metric) error {
	o, err := mergeable(m, m.Name(), other)
	if err != nil {
		return err
	}
	if o.kind != m.kind {
		return fmt.Errorf("metrics: %s: merge with %s: want another %s", m.Name(), o.Name(), m.Name())
	}
	if o.rows == 0 {
		return nil
	}
	if m.width != 0 && o.width != m.width {
		return fmt.Errorf("metrics: %s: merge of %d targets with %d targets; want the same number", m.Name(), m.width, o.width)
	}
	m.grow(o.width)
	for k := range m.width {
		m.err[k].merge(o.err[k])
		if m.kind == r2 {
			m.combine(k, m.rows, o.rows, o.mean[k], o.m2[k], o.lo[k], o.hi[k])
		}
	}
	m.rows += o.rows
	return nil
}
