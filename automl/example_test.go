package automl_test

import (
	"context"
	"fmt"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

// A grid search of a linear regression's learning rate, 2-fold, then the
// best configuration refitted on all the data.
func ExampleSearch() {
	ctx := context.Background()
	a, y := make([]float64, 200), make([]float64, 200)
	for i := range a {
		a[i] = float64(i%20)/10 - 1
		y[i] = 3*a[i] - 1
	}
	data, err := minibatch.FromSlices(10, []minibatch.Column{minibatch.Float64s("a", a)}, []minibatch.Column{minibatch.Float64s("y", y)})
	if err != nil {
		panic(err)
	}
	defer data.Close()
	model, err := steps.NewLinearRegression("y")
	if err != nil {
		panic(err)
	}
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: []string{"a"}}),
		flow.Named("linear", model),
	})
	if err != nil {
		panic(err)
	}
	res, err := automl.Search(ctx, automl.Config{
		Pipeline: p,
		Override: hparams.Space{ // the model's own space, narrowed
			"linear__learning_rate": hparams.Choice(0.001, 0.01, 0.1),
			"linear__penalty":       hparams.Fixed(steps.PenaltyNone),
			"linear__alpha":         hparams.Fixed(1e-4), // applies only with L2, but a grid lists every key
			"linear__momentum":      hparams.Fixed(0.0),
		},
		Sampler:    &automl.Grid{},
		Splitter:   automl.KFold(2, minibatch.WithStratify(false)),
		Metric:     metrics.MSE,
		Prediction: "pred", Truth: "y",
		Epochs: 5,
		Refit:  true,
	}, data)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(res.Trials), "trials")
	fmt.Println("best learning rate:", res.Best.Params["linear__learning_rate"])
	fmt.Println("best mse below 0.01:", res.Best.Score < 0.01)
	fmt.Println("refitted:", res.Pipeline != nil)
	// Output:
	// 3 trials
	// best learning rate: 0.1
	// best mse below 0.01: true
	// refitted: true
}
