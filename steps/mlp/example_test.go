package mlp_test

import (
	"context"
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps/mlp"
	"github.com/penstock-ml/penstock/steps/nn"
)

// A classifier of two classes, fitted for 100 epochs on four points, then
// asked for their classes.
func Example() {
	ctx := context.Background()
	x := []float32{-2, -1, -1.5, -2, 2, 1, 1.5, 2}
	data, err := minibatch.FromSlices(4,
		[]minibatch.Column{minibatch.Float32s("a", []float32{x[0], x[2], x[4], x[6]}), minibatch.Float32s("b", []float32{x[1], x[3], x[5], x[7]})},
		[]minibatch.Column{minibatch.Int64s("y", []int64{0, 0, 1, 1})})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer data.Close()
	epochs, err := minibatch.Repeat(data, 100)
	if err != nil {
		fmt.Println(err)
		return
	}
	spec := nn.Default(nn.CrossEntropy)
	spec.Hidden, spec.LearningRate = []int{8}, 0.05
	clf, err := mlp.NewClassifier(2, spec)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: []string{"a", "b"}}),
		flow.Named("mlp", clf),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var r flow.Runner
	if _, err := r.Fit(ctx, p, epochs); err != nil {
		fmt.Println(err)
		return
	}
	if err := data.Rewind(); err != nil {
		fmt.Println(err)
		return
	}
	s, err := r.Transform(ctx, p, data)
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := flow.Collect(ctx, s)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, b := range out {
		fmt.Println("steps:", clf.Steps(), "classes:", b.X.Column(0))
		b.Release()
	}
	// Output:
	// steps: 100 classes: [0 0 1 1]
}
