// Command mutate is the example of a step that becomes another step after
// a phase: a linear autoencoder is pre-trained on the pixels of 80% of the
// UCI digits (examples/data) without their labels, then mutated in place
// (flow.Mutate with flow.Become) into a classifier that reuses its encoder
// and fine-tunes it under a softmax head, with the standardizer in front
// frozen (steps.Freeze through flow.MutateNode). It prints the accuracy on
// the other 20%. Run it from the root: go run ./examples/mutate
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

func main() {
	res, err := run(context.Background(), memory.DefaultAllocator, "examples/data/digits.csv.gz", 5, 20)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(1)
	}
	fmt.Printf("reconstruction error: %.3f before pre-training, %.3f after\n", res.lossBefore, res.lossAfter)
	fmt.Printf("test accuracy: %.3f\n", res.accuracy)
}

type result struct {
	lossBefore, lossAfter float64 // mean squared error per standardized pixel, on the test set
	accuracy              float64
	ae                    *autoencoder
	clf                   *classifier
}

// run pre-trains pack → scale → autoencoder for pre epochs, mutates the
// autoencoder into a classifier and freezes the scaler, fine-tunes for
// tune epochs, and returns the test accuracy.
func run(ctx context.Context, mem memory.Allocator, path string, pre, tune int) (result, error) {
	pixels := make([]string, 64)
	for i := range pixels {
		pixels[i] = fmt.Sprint("px", i)
	}
	alloc := minibatch.WithAllocator(mem)
	src, err := minibatch.OpenCSV(path, alloc, minibatch.WithHeader(false),
		minibatch.WithColumnNames(append(pixels, "digit")...), minibatch.WithLabels("digit"))
	if err != nil {
		return result{}, err
	}
	defer src.Close()
	train, test, err := minibatch.Holdout(ctx, src, 0.2, minibatch.WithSeed(1), alloc)
	if err != nil {
		return result{}, err
	}
	batches, err := minibatch.NewRebatcher(train, 32, minibatch.Keep, alloc)
	if err != nil {
		return result{}, err
	}
	defer batches.Close()
	shuffled, err := minibatch.Shuffle(batches, 2048, minibatch.WithSeed(1), alloc)
	if err != nil {
		return result{}, err
	}
	defer shuffled.Close()

	ae := &autoencoder{code: 32, rate: 0.01, seed: 1}
	scaler, err := steps.NewStandardScaler(steps.ScaleColumn("pixels"))
	if err != nil {
		return result{}, err
	}
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "pixels", Cols: pixels}),
		flow.Named("scale", scaler, flow.FitEpochs(1), flow.Barrier(barrier.Joiner)),
		flow.Named("model", ae),
	})
	if err != nil {
		return result{}, err
	}
	runner := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	var res result
	res.ae = ae

	// Phase 1: unsupervised pre-training (the autoencoder reads no label).
	stream, err := minibatch.Repeat(shuffled, pre)
	if err != nil {
		return result{}, err
	}
	if _, err := runner.Fit(ctx, p, stream); err != nil {
		return result{}, err
	}
	if res.lossAfter, err = reconstruction(ctx, runner, p, test, ae); err != nil {
		return result{}, err
	}
	fresh := &autoencoder{code: ae.code, seed: ae.seed}
	fresh.init(64)
	if res.lossBefore, err = reconstruction(ctx, runner, p, test, fresh); err != nil {
		return result{}, err
	}

	// The mutation: the autoencoder becomes a classifier, in place; the
	// scaler, fitted in phase 1, is frozen.
	mutated, err := flow.Mutate(p, flow.Path{"model"}, flow.Become)
	if err != nil {
		return result{}, err
	}
	mutated, err = flow.MutateNode(mutated, flow.Path{"scale"}, func(n flow.Node) (flow.Node, error) { return steps.Freeze(n), nil })
	if err != nil {
		return result{}, err
	}
	p = mutated.(*flow.Pipeline)
	res.clf = p.Step("model").(*classifier)

	// Phase 2: supervised fine-tuning of encoder and head.
	if err := shuffled.Rewind(); err != nil {
		return result{}, err
	}
	if stream, err = minibatch.Repeat(shuffled, tune); err != nil {
		return result{}, err
	}
	if _, err := runner.Fit(ctx, p, stream); err != nil {
		return result{}, err
	}
	scores, err := metrics.Score(ctx, runner, p, test, "proba", "digit", metrics.Accuracy())
	res.accuracy = scores["accuracy"]
	return res, err
}

// reconstruction returns model's mean squared reconstruction error on
// src, through p's pack and scale steps.
func reconstruction(ctx context.Context, r flow.Runner, p *flow.Pipeline, src flow.Rewinder, model *autoencoder) (float64, error) {
	if err := src.Rewind(); err != nil {
		return 0, err
	}
	prep, err := flow.NewPipeline(p.Nodes()[:2])
	if err != nil {
		return 0, err
	}
	s, err := r.Transform(ctx, prep, src)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	var sum float64
	var n int
	for b, err := range s.All(ctx) {
		if err != nil {
			return 0, err
		}
		l, err := model.loss(b)
		rows := int(b.Rows())
		b.Release()
		if err != nil {
			return 0, err
		}
		sum += l * float64(rows)
		n += rows
	}
	return sum / float64(n), src.Rewind()
}
