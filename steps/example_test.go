package steps_test

import (
	"context"
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

// A StandardScaler fitted on two columns, packed into the tensor "x".
func ExampleStandardScaler() {
	ctx := context.Background()
	src, err := minibatch.FromSlices(2, []minibatch.Column{
		minibatch.Float64s("height", []float64{150, 160, 170, 180}),
		minibatch.Float64s("age", []float64{20, 20, 20, 20}), // constant: scaled by 1
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	scale, err := steps.NewStandardScaler()
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: []string{"height", "age"}}),
		flow.Named("scale", scale),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := (flow.Runner{}).Fit(ctx, p, src); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("mean %.1f, scale %.3f\n", scale.Mean(), scale.Scale())
	if err := src.Rewind(); err != nil {
		fmt.Println(err)
		return
	}
	out, err := (flow.Runner{}).Transform(ctx, p, src)
	if err != nil {
		fmt.Println(err)
		return
	}
	for b := range out.All(ctx) {
		x, _ := minibatch.Features(b, "x")
		for r := range x.Rows {
			fmt.Printf("%+.3f\n", x.Row(r))
		}
	}
	if err := out.Close(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// mean [165.0 20.0], scale [11.180 1.000]
	// [-1.342 +0.000]
	// [-0.447 +0.000]
	// [+0.447 +0.000]
	// [+1.342 +0.000]
}

// String labels in Y become class indices, then one-hot rows.
func ExampleLabelEncoder() {
	ctx := context.Background()
	src, err := minibatch.FromSlices(3,
		[]minibatch.Column{minibatch.Float64s("f", []float64{0, 0, 0})},
		[]minibatch.Column{minibatch.Strings("fruit", []string{"pear", "apple", "pear"})})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	enc, _ := steps.NewLabelEncoder("fruit")
	hot, _ := steps.NewOneHot("fruit")
	p, _ := flow.NewPipeline([]flow.Node{flow.Named("encode", enc), flow.Named("onehot", hot)})
	if _, err := (flow.Runner{}).Fit(ctx, p, src); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("classes:", enc.Classes(), "K:", hot.Classes())
	_ = src.Rewind()
	out, _ := (flow.Runner{}).Transform(ctx, p, src)
	defer out.Close()
	for b := range out.All(ctx) {
		fmt.Println(b.Y.Column(0))
	}
	// Output:
	// classes: [apple pear] K: 2
	// [[0 1] [1 0] [0 1]]
}

// Hyperparameters of the steps of a pipeline, set through hparams.
func ExampleLogisticRegression_hyperparameters() {
	scale, _ := steps.NewStandardScaler()
	model, _ := steps.NewLogisticRegression("digit", 10)
	p, _ := flow.NewPipeline([]flow.Node{flow.Named("scale", scale), flow.Named("logreg", model)})
	err := hparams.Set(p, hparams.Values{"logreg__learning_rate": 0.1, "logreg__momentum": 0.9})
	fmt.Println(err)
	err = hparams.Set(p, hparams.Values{"logreg__momentum": 1.5})
	fmt.Println(err)
	v, _ := hparams.Get(p)
	fmt.Println(v["logreg__learning_rate"], v["logreg__momentum"])
	// Output:
	// <nil>
	// hparams: "logreg__momentum": 1.5 is outside Uniform(0, 0.99)
	// 0.1 0.9
}
