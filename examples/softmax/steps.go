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

// The two steps of the example, written against package minibatch's
// helpers: Features and LabelsInt64 read a batch, MapRows computes a new X
// row by row with the run's allocator.

// scaler standardizes each feature to mean 0 and variance 1. Fit sums the
// features and their squares over the batches it is given.
type scaler struct {
	n           float64
	sum, sumSq  []float64
	mean, scale []float32
}

func (s *scaler) Fit(_ context.Context, b flow.Batch) error {
	x, err := minibatch.Features(b, "pixels") // a view of the batch's tensor, no copy
	if err != nil {
		return err
	}
	if s.sum == nil {
		s.sum, s.sumSq = make([]float64, x.Cols), make([]float64, x.Cols)
		s.mean, s.scale = make([]float32, x.Cols), make([]float32, x.Cols)
	}
	for i, v := range x.Data {
		s.sum[i%x.Cols] += float64(v)
		s.sumSq[i%x.Cols] += float64(v) * float64(v)
	}
	s.n += float64(x.Rows)
	for j := range x.Cols {
		mean := s.sum[j] / s.n
		sd := math.Sqrt(max(s.sumSq[j]/s.n-mean*mean, 0))
		s.mean[j], s.scale[j] = float32(mean), float32(1/cmp.Or(sd, 1)) // a constant feature is only centred
	}
	return nil
}

func (s *scaler) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	return minibatch.MapRows(ctx, b, "pixels", "pixels", len(s.mean), func(x, z []float32) {
		for j, v := range x {
			z[j] = (v - s.mean[j]) * s.scale[j]
		}
	})
}

// softmax is a softmax-regression classifier: Fit takes a gradient step on
// the batch's cross-entropy; Transform returns the class probabilities.
type softmax struct {
	classes int
	rate    float32
	w       minibatch.Matrix // a row per class: a weight per feature, then the bias
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
	if m.w.Data == nil {
		m.w = minibatch.Matrix{Rows: m.classes, Cols: x.Cols + 1, Data: make([]float32, m.classes*(x.Cols+1))}
	}
	grad := minibatch.Matrix{Rows: m.w.Rows, Cols: m.w.Cols, Data: make([]float32, len(m.w.Data))}
	p := make([]float32, m.classes)
	for r, label := range y {
		if label < 0 || label >= int64(m.classes) {
			return fmt.Errorf("softmax: row %d has label %d, want 0 to %d", r, label, m.classes-1)
		}
		m.predict(x.Row(r), p)
		p[label]-- // p − onehot(label): the loss's gradient in the logits
		for k, g := range p {
			gk := grad.Row(k)
			for j, v := range x.Row(r) {
				gk[j] += g * v
			}
			gk[x.Cols] += g
		}
	}
	for i, g := range grad.Data {
		m.w.Data[i] -= m.rate * g / float32(x.Rows)
	}
	return nil
}

// predict writes the class probabilities of the features x into p.
func (m *softmax) predict(x, p []float32) {
	for k := range p {
		w := m.w.Row(k)
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
