package main

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// scaler standardizes each feature to mean 0 and variance 1 (a constant
// feature is only centred). Fit sums the features and their squares.
type scaler struct {
	n          float64
	sum, sumSq []float64
}

func (s *scaler) Fit(_ context.Context, b flow.Batch) error {
	x, err := minibatch.Features(b, "pixels") // a view of the tensor column: no copy
	if err != nil {
		return err
	}
	if s.sum == nil {
		s.sum, s.sumSq = make([]float64, x.Cols), make([]float64, x.Cols)
	}
	for i, v := range x.Data {
		s.sum[i%x.Cols] += float64(v)
		s.sumSq[i%x.Cols] += float64(v) * float64(v)
	}
	s.n += float64(x.Rows)
	return nil
}

func (s *scaler) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	mean, inv := make([]float32, len(s.sum)), make([]float32, len(s.sum))
	for j := range s.sum {
		m := s.sum[j] / s.n
		mean[j], inv[j] = float32(m), float32(1/cmp.Or(math.Sqrt(max(s.sumSq[j]/s.n-m*m, 0)), 1))
	}
	return minibatch.MapRows(ctx, b, "pixels", "pixels", len(s.sum), func(x, z []float32) {
		for j, v := range x {
			z[j] = (v - mean[j]) * inv[j]
		}
	})
}

// softmax is a softmax-regression classifier: Fit takes a gradient step on
// the batch's cross-entropy; Transform returns the class probabilities.
type softmax struct {
	classes int
	rate    float32
	w       []float32 // a row per class: a weight per feature, then the bias
}

func (m *softmax) Fit(_ context.Context, b flow.Batch) error {
	x, err := minibatch.Features(b, "pixels")
	if err != nil {
		return err
	}
	y, err := minibatch.LabelsInt64(b, "digit") // no copy: the column is int64
	if err != nil {
		return err
	}
	if m.w == nil {
		m.w = make([]float32, m.classes*(x.Cols+1))
	}
	grad, p := make([]float32, len(m.w)), make([]float32, m.classes)
	for r, label := range y {
		if label < 0 || label >= int64(m.classes) {
			return fmt.Errorf("softmax: row %d has label %d, want 0 to %d", r, label, m.classes-1)
		}
		m.predict(x.Row(r), p)
		p[label]-- // p − onehot(label): the gradient of the loss in the logits
		for k, g := range p {
			row := grad[k*(x.Cols+1):]
			for j, v := range x.Row(r) {
				row[j] += g * v
			}
			row[x.Cols] += g
		}
	}
	for i, g := range grad { // one step per batch: mini-batch SGD
		m.w[i] -= m.rate * g / float32(x.Rows)
	}
	return nil
}

// predict writes the class probabilities of the features x into p.
func (m *softmax) predict(x, p []float32) {
	for k := range p {
		w := m.w[k*(len(x)+1):]
		p[k] = w[len(x)]
		for j, v := range x {
			p[k] += w[j] * v
		}
	}
	top, sum := slices.Max(p), float32(0)
	for k := range p {
		p[k] = float32(math.Exp(float64(p[k] - top)))
		sum += p[k]
	}
	for k := range p {
		p[k] /= sum
	}
}

func (m *softmax) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	return minibatch.MapRows(ctx, b, "pixels", "proba", m.classes, m.predict)
}
