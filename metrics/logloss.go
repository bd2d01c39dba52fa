package metrics

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
)

// Eps is the clipping bound of LogLoss: probabilities are clipped to
// [Eps, 1-Eps], so a confident wrong prediction costs -log(Eps) ≈ 34.54
// instead of +Inf. It is scikit-learn's log_loss eps before version 1.2,
// whose default clips at the machine epsilon of the probabilities' dtype
// instead (2.2e-16 for float64, 1.2e-7 for float32); the scores differ
// only where a probability is clipped.
const Eps = 1e-15

// LogLoss returns the mean cross-entropy of predicted class probabilities
// against the truth (scikit-learn's log_loss), named "log_loss"; lower is
// better.
//
// The prediction is either a column of class probabilities,
// fixed_size_list<float32> or fixed_size_list<float64> with one value per
// class (value k is the probability of class k), or a float32 or float64
// column holding the probability of class 1 of a binary problem (the
// probability of class 0 is one minus it). Every probability must lie in
// [0, 1] (softmax logits first); each is clipped to [Eps, 1-Eps] and each
// row then divided by its sum, as scikit-learn does. NaN, values outside
// [0, 1] and nulls are errors.
//
// The truth is an integer class column whose classes are the indices 0 to
// K-1 of the probabilities (another class is an error naming its row), or a
// fixed_size_list of the same width K holding one-hot or soft labels, whose
// loss is -Σ_k y_k log p_k. Unlike scikit-learn, which finds the classes
// in the truth, the classes are the positions of the probabilities: a
// stream need not show every class in every batch. The number of classes
// is fixed by the first batch; a batch or a Merge with another is an
// error. It keeps a sum, a row count and the number of classes.
func LogLoss() Metric { return &logLoss{} }

type logLoss struct {
	loss    sum
	rows    int64
	classes int // K, fixed by the first batch; 0 before
}

func (m *logLoss) Name() string         { return "log_loss" }
func (m *logLoss) HigherIsBetter() bool { return false }
func (m *logLoss) Rows() int64          { return m.rows }
func (m *logLoss) Reset()               { *m = logLoss{} }

func (m *logLoss) Value() float64 {
	if m.rows == 0 {
		return math.NaN()
	}
	return m.loss.value() / float64(m.rows)
}

func (m *logLoss) Merge(other Metric) error {
	o, err := mergeable(m, m.Name(), other)
	if err != nil {
		return err
	}
	if m.classes != 0 && o.classes != 0 && m.classes != o.classes {
		return fmt.Errorf("metrics: log_loss: merge of %d classes with %d classes; want the same number", m.classes, o.classes)
	}
	if m.classes == 0 {
		m.classes = o.classes
	}
	m.loss.merge(o.loss)
	m.rows += o.rows
	return nil
}

func (m *logLoss) Update(pred, truth arrow.Array) error {
	const name = "log_loss"
	if err := sameLength(name, pred, truth); err != nil {
		return err
	}
	p, err := probabilities(pred)
	if err != nil {
		return err
	}
	if m.classes != 0 && p.width != m.classes {
		return fmt.Errorf("metrics: log_loss: prediction has %d classes, want %d (the number of earlier batches)", p.width, m.classes)
	}
	class, soft, err := labels(truth, p.width)
	if err != nil {
		return err
	}
	if p.rows == 0 { // fixes nothing, not even the number of classes
		return nil
	}
	var batch sum
	for i := range p.rows {
		var total float64
		for k := range p.width {
			total += clip(p.get(i, k))
		}
		if class != nil {
			batch.add(-math.Log(clip(p.get(i, int(class(i)))) / total))
			continue
		}
		var loss float64
		for k := range p.width {
			if y := soft.get(i, k); y != 0 {
				loss -= y * math.Log(clip(p.get(i, k))/total)
			}
		}
		batch.add(loss)
	}
	m.loss.merge(batch)
	m.rows += int64(p.rows)
	m.classes = p.width
	return nil
}

func clip(p float64) float64 { return min(max(p, Eps), 1-Eps) }

// probabilities reads the prediction of LogLoss as rows × K probabilities:
// a probability of class 1 (a float column, or a list of width 1) becomes
// the two columns 1-p, p.
func probabilities(pred arrow.Array) (matrix, error) {
	const name, role = "log_loss", "prediction"
	if err := noNulls(name, role, pred); err != nil {
		return matrix{}, err
	}
	m, ok, err := vectors(name, role, pred)
	if err != nil {
		return matrix{}, err
	}
	if !ok {
		at, isFloat := floats(pred)
		if !isFloat {
			return matrix{}, fmt.Errorf("metrics: %s: %s has type %s, want %s", name, role, pred.DataType(), wantProbs)
		}
		m = matrix{rows: pred.Len(), width: 1, at: at}
	}
	for j := range m.rows * m.width {
		if v := m.at(j); !(v >= 0 && v <= 1) {
			return matrix{}, fmt.Errorf("metrics: %s: %s has %v at %s; want probabilities in [0, 1] (apply softmax to logits first)", name, role, v, position(m, j))
		}
	}
	if m.width == 1 {
		m = binary(m.rows, m.at)
	}
	return m, nil
}

// binary returns the probabilities 1-p, p of classes 0 and 1 of rows whose
// probability of class 1 is p(i).
func binary(rows int, p func(i int) float64) matrix {
	return matrix{rows: rows, width: 2, at: func(j int) float64 {
		if j%2 == 1 {
			return p(j / 2)
		}
		return 1 - p(j/2)
	}}
}

// labels reads the truth of LogLoss over k classes: an integer column as
// the class of each row, or one-hot or soft labels as the weight of each
// class in each row.
func labels(truth arrow.Array, k int) (class func(i int) int64, soft matrix, err error) {
	const name, role = "log_loss", "truth"
	if err := noNulls(name, role, truth); err != nil {
		return nil, matrix{}, err
	}
	if at, ok := integers(truth); ok {
		for i := range truth.Len() {
			if c := at(i); c < 0 || c >= int64(k) {
				return nil, matrix{}, fmt.Errorf("metrics: %s: %s has class %d at row %d, want a class from 0 to %d (the prediction has %d classes)", name, role, c, i, k-1, k)
			}
		}
		return at, matrix{}, nil
	}
	m, ok, err := vectors(name, role, truth)
	if err != nil {
		return nil, matrix{}, err
	}
	if !ok {
		return nil, matrix{}, fmt.Errorf("metrics: %s: %s has type %s, want %s", name, role, truth.DataType(), wantLogTruth)
	}
	if m.width != k {
		return nil, matrix{}, fmt.Errorf("metrics: %s: %s has %d values per row and the prediction %d classes; want one value per class", name, role, m.width, k)
	}
	for j := range m.rows * m.width {
		if v := m.at(j); !(v >= 0 && v <= 1) {
			return nil, matrix{}, fmt.Errorf("metrics: %s: %s has %v at %s; want label weights in [0, 1]", name, role, v, position(m, j))
		}
	}
	return nil, m, nil
}
