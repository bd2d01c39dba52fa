package metrics_test

import (
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/metrics"
)

// BenchmarkUpdate measures Update over batches of 4096 rows: classes (or
// 10 class probabilities per row, argmax taken) for the classification
// metrics and the log-loss, one value per row for the regression metrics.
func BenchmarkUpdate(b *testing.B) {
	const rows, classes = 4096, 10
	rng := rand.New(rand.NewPCG(1, 2))
	cls, pred := make([]int64, rows), make([]int64, rows)
	ys, ps := make([]float64, rows), make([]float64, rows)
	probs := make([][]float64, rows)
	for i := range rows {
		cls[i], pred[i] = rng.Int64N(classes), rng.Int64N(classes)
		ys[i], ps[i] = rng.NormFloat64(), rng.NormFloat64()
		probs[i] = make([]float64, classes)
		for k := range probs[i] {
			probs[i][k] = 1.0 / classes
		}
	}
	mem := memory.NewGoAllocator()
	classCol, predCol := int64s(cls...)(mem), int64s(pred...)(mem)
	yCol, pCol := float64s(ys...)(mem), float64s(ps...)(mem)
	probCol := f32Lists(probs...)(mem)
	defer func() {
		for _, a := range []arrow.Array{classCol, predCol, yCol, pCol, probCol} {
			a.Release()
		}
	}()
	cases := []struct {
		name        string
		m           metrics.Metric
		pred, truth arrow.Array
	}{
		{"accuracy", metrics.Accuracy(), predCol, classCol},
		{"accuracy/argmax", metrics.Accuracy(), probCol, classCol},
		{"macro_f1", metrics.MacroF1(), predCol, classCol},
		{"log_loss", metrics.LogLoss(), probCol, classCol},
		{"mse", metrics.MSE(), pCol, yCol},
		{"r2", metrics.R2(), pCol, yCol},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.m.Update(c.pred, c.truth); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
