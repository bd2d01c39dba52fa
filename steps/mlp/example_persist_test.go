package mlp_test

import (
	"context"
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps/mlp"
	"github.com/penstock-ml/penstock/steps/nn"
)

// A fitted classifier saved to bytes (persist.Marshal) and loaded back:
// the loaded pipeline has the same weights and predicts the same classes.
func Example_persist() {
	ctx := context.Background()
	data, err := minibatch.FromSlices(4,
		[]minibatch.Column{minibatch.Float32s("a", []float32{-2, -1.5, 2, 1.5}), minibatch.Float32s("b", []float32{-1, -2, 1, 2})},
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
	saved, err := persist.Marshal(p) // mlp registers its steps in persist.Default
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := persist.Unmarshal(saved)
	if err != nil {
		fmt.Println(err)
		return
	}
	loaded, err := m.Pipeline()
	if err != nil {
		fmt.Println(err)
		return
	}
	lc := loaded.Children()[1].Step.(*mlp.Classifier)
	fmt.Println("steps:", lc.Steps(), "same weights:", fmt.Sprint(lc.Weights()) == fmt.Sprint(clf.Weights()))
	if err := data.Rewind(); err != nil {
		fmt.Println(err)
		return
	}
	s, err := r.Transform(ctx, loaded, data) // the run sets the loaded model up
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
		fmt.Println("classes:", b.X.Column(0))
		b.Release()
	}
	// Output:
	// steps: 100 same weights: true
	// classes: [0 0 1 1]
}
