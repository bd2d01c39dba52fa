package hparams_test

import (
	"context"
	"fmt"
	"slices"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

// forest and linear are models with hyperparameters and default spaces.
type forest struct{ depth int }

func (f *forest) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}
func (f *forest) Params() hparams.Values { return hparams.Values{"depth": f.depth} }
func (f *forest) SetParams(p hparams.Values) error {
	if d, ok := p["depth"]; ok {
		f.depth = d.(int)
	}
	return nil
}
func (f *forest) Space() hparams.Space { return hparams.Space{"depth": hparams.IntRange(2, 4)} }

type linear struct{ l2 float64 }

func (l *linear) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}
func (l *linear) Params() hparams.Values { return hparams.Values{"l2": l.l2} }
func (l *linear) SetParams(p hparams.Values) error {
	if v, ok := p["l2"]; ok {
		l.l2 = v.(float64)
	}
	return nil
}
func (l *linear) Space() hparams.Space { return hparams.Space{"l2": hparams.LogUniform(1e-4, 1)} }

// oneOf runs the model its "model" parameter names: a Switch.
type oneOf struct {
	models []flow.Node
	model  string
}

func (o *oneOf) Children() []flow.Node { return slices.Clone(o.models) }
func (o *oneOf) WithChildren(c []flow.Node) (flow.Composite, error) {
	return &oneOf{models: slices.Clone(c), model: o.model}, nil
}
func (o *oneOf) Active(name string) bool { return name == o.model }
func (o *oneOf) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	for _, m := range o.models {
		if m.Name == o.model {
			return m.Step.Transform(ctx, in)
		}
	}
	return flow.Batch{}, fmt.Errorf("oneOf: no model %q", o.model)
}
func (o *oneOf) Params() hparams.Values { return hparams.Values{"model": o.model} }
func (o *oneOf) SetParams(p hparams.Values) error {
	if v, ok := p["model"]; ok {
		o.model = v.(string)
	}
	return nil
}
func (o *oneOf) Space() hparams.Space {
	return hparams.Space{"model": hparams.Choice("forest", "linear")}
}
func (o *oneOf) ActiveWhen(child string) (string, []any) { return "model", []any{child} }

func Example() {
	pick := &oneOf{model: "forest", models: []flow.Node{
		flow.Named("forest", &forest{depth: 3}),
		flow.Named("linear", &linear{l2: 0.01}),
	}}
	pipe, err := flow.NewPipeline([]flow.Node{flow.Named("pick", pick)})
	if err != nil {
		fmt.Println(err)
		return
	}

	// The tree's space: each step's own, keyed by path, conditional on the
	// choice.
	space, err := hparams.Gather(pipe)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(space)

	// A seeded sample holds only the chosen model's keys, and configures
	// the tree.
	sample, err := space.Sample(hparams.NewRand(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("sample:", sample)
	if err := hparams.Set(pipe, sample); err != nil {
		fmt.Println(err)
		return
	}
	now, _ := hparams.Get(pipe)
	fmt.Println("get:", now)

	// Values outside the declared space are refused, naming the key.
	fmt.Println(hparams.Set(pipe, hparams.Values{"pick__forest__depth": 9}))

	// Narrowed to finite values, the grid counts active combinations
	// only: 3 depths + 2 strengths.
	narrow, err := space.Override(hparams.Space{"pick__linear__l2": hparams.Choice(0.01, 0.1)})
	if err != nil {
		fmt.Println(err)
		return
	}
	grid, _ := narrow.Grid()
	for v := range grid {
		fmt.Println("grid:", v)
	}
	// Output:
	// pick__forest__depth: When(IntRange(2, 4), "pick__model", "forest")
	// pick__linear__l2: When(LogUniform(0.0001, 1), "pick__model", "linear")
	// pick__model: Choice("forest", "linear")
	// sample: {pick__linear__l2: 0.7737295383248693, pick__model: "linear"}
	// get: {pick__linear__l2: 0.7737295383248693, pick__model: "linear"}
	// hparams: "pick__forest__depth": 9 is outside IntRange(2, 4)
	// grid: {pick__forest__depth: 2, pick__model: "forest"}
	// grid: {pick__forest__depth: 3, pick__model: "forest"}
	// grid: {pick__forest__depth: 4, pick__model: "forest"}
	// grid: {pick__linear__l2: 0.01, pick__model: "linear"}
	// grid: {pick__linear__l2: 0.1, pick__model: "linear"}
}
