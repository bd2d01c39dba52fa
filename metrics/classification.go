package metrics

import (
	"maps"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
)

// Accuracy returns the fraction of rows whose predicted class is the true
// class (scikit-learn's accuracy_score), named "accuracy"; higher is
// better.
//
// Prediction and truth are each an integer class column (int8 to int64,
// uint8 to uint32) or a column of class scores — probabilities, one-hot
// labels or logits, as fixed_size_list<float32> or fixed_size_list<float64>
// with one value per class — whose class is the index of the largest value
// (the first one on ties). Nulls, and NaN scores, are errors. It keeps two
// counters.
func Accuracy() Metric { return &accuracy{} }

type accuracy struct{ correct, rows int64 }

func (m *accuracy) Name() string         { return "accuracy" }
func (m *accuracy) HigherIsBetter() bool { return true }
func (m *accuracy) Rows() int64          { return m.rows }
func (m *accuracy) Reset()               { *m = accuracy{} }

func (m *accuracy) Value() float64 {
	if m.rows == 0 {
		return math.NaN()
	}
	return float64(m.correct) / float64(m.rows)
}

func (m *accuracy) Update(pred, truth arrow.Array) error {
	p, t, err := classPairs(m.Name(), pred, truth)
	if err != nil {
		return err
	}
	for i := range pred.Len() {
		if p(i) == t(i) {
			m.correct++
		}
	}
	m.rows += int64(pred.Len())
	return nil
}

func (m *accuracy) Merge(other Metric) error {
	o, err := mergeable(m, m.Name(), other)
	if err != nil {
		return err
	}
	m.correct += o.correct
	m.rows += o.rows
	return nil
}

// classPairs reads pred and truth as classes.
func classPairs(name string, pred, truth arrow.Array) (p, t func(int) int64, err error) {
	if err := sameLength(name, pred, truth); err != nil {
		return nil, nil, err
	}
	if p, err = classes(name, "prediction", pred); err != nil {
		return nil, nil, err
	}
	if t, err = classes(name, "truth", truth); err != nil {
		return nil, nil, err
	}
	return p, t, nil
}

// F1 is the macro-averaged F1 score: the unweighted mean, over every class
// seen in the predictions or the truth, of each class's F1 (the harmonic
// mean of its precision and recall), as scikit-learn's
// f1_score(average="macro", zero_division=0). Make one with MacroF1.
type F1 struct {
	counts map[int64]*classCounts
	rows   int64
}

// classCounts are one class's cells of the confusion matrix.
type classCounts struct {
	hits      int64 // predicted and true (true positives)
	predicted int64 // predicted as the class (true + false positives)
	actual    int64 // truly of the class (true positives + false negatives)
}

// ClassF1 is the score of one class: precision = hits / predicted, recall =
// hits / actual, F1 their harmonic mean. A ratio whose denominator is zero
// (a class never predicted, or never true) is 0, as scikit-learn's
// zero_division=0.
type ClassF1 struct {
	Class     int64
	Precision float64
	Recall    float64
	F1        float64
	Support   int64 // rows truly of the class
}

var _ Metric = (*F1)(nil)

// MacroF1 returns an F1 named "macro_f1"; higher is better. It accepts the
// columns that Accuracy accepts. A class that appears only in the
// predictions, or only in the truth, has an F1 of 0 and counts in the mean.
// It keeps three counters per class seen.
func MacroF1() *F1 { return &F1{counts: map[int64]*classCounts{}} }

// Name returns "macro_f1".
func (m *F1) Name() string { return "macro_f1" }

// HigherIsBetter returns true.
func (m *F1) HigherIsBetter() bool { return true }

// Rows returns the number of rows given so far.
func (m *F1) Rows() int64 { return m.rows }

// Reset forgets every row and class seen.
func (m *F1) Reset() { clear(m.counts); m.rows = 0 }

func (m *F1) count(class int64) *classCounts {
	if m.counts == nil {
		m.counts = map[int64]*classCounts{}
	}
	c := m.counts[class]
	if c == nil {
		c = &classCounts{}
		m.counts[class] = c
	}
	return c
}

// Update adds the rows of pred and truth (see Metric.Update).
func (m *F1) Update(pred, truth arrow.Array) error {
	p, t, err := classPairs(m.Name(), pred, truth)
	if err != nil {
		return err
	}
	for i := range pred.Len() {
		pc, tc := p(i), t(i)
		m.count(pc).predicted++
		c := m.count(tc)
		c.actual++
		if pc == tc {
			c.hits++
		}
	}
	m.rows += int64(pred.Len())
	return nil
}

// Merge adds the counts of other, another *F1 (see Metric.Merge).
func (m *F1) Merge(other Metric) error {
	o, err := mergeable(m, m.Name(), other)
	if err != nil {
		return err
	}
	for class, oc := range o.counts {
		c := m.count(class)
		c.hits += oc.hits
		c.predicted += oc.predicted
		c.actual += oc.actual
	}
	m.rows += o.rows
	return nil
}

// Value returns the macro F1, or NaN before any row.
func (m *F1) Value() float64 {
	if m.rows == 0 {
		return math.NaN()
	}
	var total float64
	for _, class := range slices.Sorted(maps.Keys(m.counts)) { // one order: one sum
		total += m.counts[class].f1()
	}
	return total / float64(len(m.counts))
}

func (c classCounts) f1() float64 {
	// 2PR/(P+R) with P = hits/predicted and R = hits/actual; 0 when hits is.
	if c.hits == 0 {
		return 0
	}
	return 2 * float64(c.hits) / float64(c.predicted+c.actual)
}

// PerClass returns the score of every class seen, in increasing order of
// class.
func (m *F1) PerClass() []ClassF1 {
	out := make([]ClassF1, 0, len(m.counts))
	for _, class := range slices.Sorted(maps.Keys(m.counts)) {
		c := m.counts[class]
		out = append(out, ClassF1{
			Class:     class,
			Precision: ratio(c.hits, c.predicted),
			Recall:    ratio(c.hits, c.actual),
			F1:        c.f1(),
			Support:   c.actual,
		})
	}
	return out
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
