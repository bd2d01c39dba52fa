// Command softmax is the example of writing your own steps (a scaler, a softmax classifier),
// fitted on 80% of the UCI digits (examples/data). From the repository root: go run ./examples/softmax
package main

import (
	"context"
	"fmt"
	"log"
	"math"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

func main() {
	acc, err := run(context.Background(), memory.DefaultAllocator, "examples/data/digits.csv.gz", 10)
	if err != nil {
		log.Fatal("softmax: ", err)
	}
	fmt.Printf("test accuracy: %.3f\n", acc)
}

const digit = "c64" // the label: the file has no header, so its columns are c0 … c64

// run fits pack → scale → softmax on a stratified 80% of the digits; it returns the test accuracy.
func run(ctx context.Context, mem memory.Allocator, path string, epochs int) (float64, error) {
	alloc := minibatch.WithAllocator(mem)
	src, err := minibatch.OpenCSV(path, alloc, minibatch.WithHeader(false), minibatch.WithLabels(digit))
	if err != nil {
		return 0, err
	}
	defer src.Close()
	train, test, err := minibatch.Holdout(ctx, src, 0.2, minibatch.WithSeed(1), alloc) // stratified by Y
	if err != nil {
		return 0, err
	}
	stream, err := minibatch.Epochs(train, epochs, minibatch.WithBatchRows(32), minibatch.WithShuffleRows(2048), alloc)
	if err != nil {
		return 0, err
	}
	defer stream.Close()
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "pixels"}),
		flow.Named("scale", &scaler{}, flow.FitEpochs(1), flow.Barrier(barrier.Joiner)), // fitted first
		flow.Named("softmax", &softmax{classes: 10, rate: 0.1}),
	})
	if err != nil {
		return 0, err
	}
	runner := flow.Runner{Engine: flow.Streaming, Allocator: mem} // steps: flow.Allocator(ctx)
	if _, err := runner.Fit(ctx, p, stream); err != nil {
		return 0, err
	}
	scores, err := metrics.Score(ctx, runner, p, test, "proba", digit, metrics.Accuracy())
	return scores["accuracy"], err
}

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
	return minibatch.MapRows(ctx, b, "pixels", "pixels", len(s.sum), func(x, z []float32) {
		for j, v := range x {
			mean := s.sum[j] / s.n
			z[j] = float32((float64(v) - mean) / math.Sqrt(max(s.sumSq[j]/s.n-mean*mean, 1e-12)))
		}
	})
}

// softmax is a softmax-regression classifier: Fit takes a gradient step per
// row on the cross-entropy; Transform returns the class probabilities.
type softmax struct {
	classes int
	rate    float32
	w       []float32 // a row per class: a weight per feature, then the bias
}

func (m *softmax) Fit(_ context.Context, b flow.Batch) error {
	x, y, err := minibatch.Examples(b, "pixels", digit, m.classes) // y: int64 labels in [0, classes)
	if err != nil {
		return err
	}
	if m.w == nil {
		m.w = make([]float32, m.classes*(x.Cols+1))
	}
	p, step := make([]float32, m.classes), m.rate/float32(x.Rows)
	for r, label := range y {
		m.predict(x.Row(r), p)
		p[label]-- // p − onehot(label): the gradient of the loss in the logits
		for k, g := range p {
			w := m.w[k*(x.Cols+1):]
			for j, v := range x.Row(r) {
				w[j] -= step * g * v
			}
			w[x.Cols] -= step * g
		}
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
	steps.Softmax(p) // the logits p become probabilities
}

func (m *softmax) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	return minibatch.MapRows(ctx, b, "pixels", "proba", m.classes, m.predict)
}
