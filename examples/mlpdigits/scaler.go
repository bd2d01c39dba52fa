package main

import (
	"cmp"
	"context"
	"fmt"
	"math"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// scaler standardizes each feature of a tensor column to mean 0 and
// variance 1 (a constant feature is only centred). Fit sums the features
// and their squares; Transform reads the sums.
type scaler struct {
	column     string
	n          float64
	sum, sumSq []float64
}

var (
	_ flow.Fitter   = (*scaler)(nil)
	_ flow.Copier   = (*scaler)(nil)
	_ flow.Resetter = (*scaler)(nil)
)

func (s *scaler) Fit(_ context.Context, b flow.Batch) error {
	x, err := minibatch.Features(b, s.column)
	if err != nil {
		return fmt.Errorf("scaler: fit: %w", err)
	}
	if s.sum == nil {
		s.sum, s.sumSq = make([]float64, x.Cols), make([]float64, x.Cols)
	}
	if x.Cols != len(s.sum) {
		return fmt.Errorf("scaler: fit: column %q has width %d, want %d", s.column, x.Cols, len(s.sum))
	}
	for i, v := range x.Data {
		s.sum[i%x.Cols] += float64(v)
		s.sumSq[i%x.Cols] += float64(v) * float64(v)
	}
	s.n += float64(x.Rows)
	return nil
}

func (s *scaler) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	if s.n == 0 {
		return flow.Batch{}, fmt.Errorf("scaler: transform: not fitted yet")
	}
	mean, inv := make([]float32, len(s.sum)), make([]float32, len(s.sum))
	for j := range s.sum {
		m := s.sum[j] / s.n
		sd := math.Sqrt(max(s.sumSq[j]/s.n-m*m, 0))
		mean[j], inv[j] = float32(m), float32(1/cmp.Or(sd, 1))
	}
	return minibatch.MapRows(ctx, b, s.column, s.column, len(s.sum), func(x, z []float32) {
		for j, v := range x {
			z[j] = (v - mean[j]) * inv[j]
		}
	})
}

func (s *scaler) Copy() flow.Step {
	c := *s
	c.sum, c.sumSq = append([]float64(nil), s.sum...), append([]float64(nil), s.sumSq...)
	return &c
}

func (s *scaler) Reset() { s.n, s.sum, s.sumSq = 0, nil, nil }
