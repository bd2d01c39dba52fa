package steps_test

import (
	"context"
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

// ExampleNewWindow turns the series 1 … 10, in batches of 4, into the
// (3 past values → next value) pairs of an autoregressive model.
func ExampleNewWindow() {
	ctx := context.Background()
	series := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	src, err := minibatch.FromSlices(4, []minibatch.Column{minibatch.Float64s("s", series)}, nil)
	if err != nil {
		panic(err)
	}
	defer src.Close()
	w, err := steps.NewWindow("s", 3)
	if err != nil {
		panic(err)
	}
	p, err := flow.NewPipeline([]flow.Node{flow.Named("window", w)})
	if err != nil {
		panic(err)
	}
	s, err := flow.Runner{}.FitTransform(ctx, p, src)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	for b, err := range s.All(ctx) {
		if err != nil {
			panic(err)
		}
		x, _ := minibatch.Features(b, steps.WindowX)
		y, _ := minibatch.LabelsFloat32(b, steps.WindowY)
		for r := range x.Rows {
			fmt.Println(x.Row(r), "→", y[r])
		}
		b.Release()
	}
	// Output:
	// [1 2 3] → 4
	// [2 3 4] → 5
	// [3 4 5] → 6
	// [4 5 6] → 7
	// [5 6 7] → 8
	// [6 7 8] → 9
	// [7 8 9] → 10
}

// ExampleNewChooseOneOf tunes the choice between two branches, one of
// them optional, with hparams: the space of the branch not chosen does
// not apply.
func ExampleNewChooseOneOf() {
	noise, _ := steps.NewGaussianNoise("x", 0.1, 1)
	window, _ := steps.NewWindow("x", 4)
	maybe, _ := steps.NewOptional(flow.Named("noise", noise), true)
	pick, err := steps.NewChooseOneOf(flow.Named("window", window), flow.Named("maybe", maybe))
	if err != nil {
		panic(err)
	}
	p, err := flow.NewPipeline([]flow.Node{flow.Named("pick", pick)})
	if err != nil {
		panic(err)
	}
	space, _ := hparams.Gather(p)
	fmt.Println(space.Keys())
	if err := hparams.Set(p, hparams.Values{"pick__choice": "maybe", "pick__maybe__noise__stddev": 0.25}); err != nil {
		panic(err)
	}
	got, _ := hparams.Get(p)
	fmt.Println(got)
	// Output:
	// [pick__choice pick__maybe__enabled pick__maybe__noise__stddev pick__window__k]
	// {pick__choice: "maybe", pick__maybe__enabled: true, pick__maybe__noise__stddev: 0.25}
}
