// Command search is the example of a hyperparameter search: a
// standardized logistic regression on the UCI digits (examples/data),
// its learning rate and L2 penalty tuned by TPE over 20 trials, each
// scored by 3-fold cross-validation on 80% of the data, 2 trials at once;
// the best configuration is refitted on that 80% and scored on the other
// 20%. The trials are recorded in a directory, so that a search stopped
// with Ctrl-C resumes where it stopped. Run it from the root:
// go run ./examples/search
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dir := filepath.Join(os.TempDir(), "penstock-search-digits")
	out, err := run(ctx, options{
		mem: memory.DefaultAllocator, path: "examples/data/digits.csv.gz", dir: dir,
		trials: 20, folds: 3, parallel: 2, progress: os.Stdout,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "search:", err)
		os.Exit(1)
	}
	fmt.Printf("trials recorded in %s (remove it to search again from scratch)\n", dir)
	fmt.Printf("best %v: cross-validated accuracy %.4f ± %.4f; test accuracy %.4f\n",
		out.result.Best.Params, out.result.Best.Score, out.result.Best.Spread, out.test)
}

type options struct {
	mem                     memory.Allocator
	path, dir               string // the digits; the trials' directory ("" keeps them in memory)
	trials, folds, parallel int
	progress                io.Writer
}

type outcome struct {
	result automl.Result
	test   float64 // the refitted best pipeline's accuracy on the held-out 20%
}

// run searches pack → scale → logistic regression on a stratified 80% of
// the digits and scores the refitted best on the rest.
func run(ctx context.Context, o options) (outcome, error) {
	pixels := make([]string, 64)
	for i := range pixels {
		pixels[i] = fmt.Sprint("px", i)
	}
	alloc := minibatch.WithAllocator(o.mem)
	csv, err := minibatch.OpenCSV(o.path, alloc, minibatch.WithHeader(false),
		minibatch.WithColumnNames(append(pixels, "digit")...), minibatch.WithLabels("digit"))
	if err != nil {
		return outcome{}, err
	}
	defer csv.Close()
	batches, err := minibatch.NewRebatcher(csv, 32, minibatch.Keep, alloc) // batches of 32 before splitting
	if err != nil {
		return outcome{}, err
	}
	defer batches.Close()
	train, test, err := minibatch.Holdout(ctx, batches, 0.2, minibatch.WithSeed(1), alloc) // stratified by Y
	if err != nil {
		return outcome{}, err
	}
	defer train.Close()
	defer test.Close()

	scale, err := steps.NewStandardScaler()
	if err != nil {
		return outcome{}, err
	}
	model, err := steps.NewLogisticRegression("digit", 10, steps.Seed(7))
	if err != nil {
		return outcome{}, err
	}
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: pixels}),
		flow.Named("scale", scale, flow.FitEpochs(1), flow.Barrier(barrier.Joiner)), // fitted on the first epoch, first
		flow.Named("model", model),
	})
	if err != nil {
		return outcome{}, err
	}
	var repo automl.Repository = automl.NewMemoryRepository()
	if o.dir != "" {
		if repo, err = automl.OpenDir(o.dir); err != nil {
			return outcome{}, err
		}
	}
	runner := flow.Runner{Engine: flow.Streaming, Allocator: o.mem}
	res, err := automl.Search(ctx, automl.Config{
		Study:    "digits-logistic",
		Pipeline: p,
		Override: hparams.Space{ // the steps' own space (hparams.Gather), narrowed
			"scale__with_mean":     hparams.Fixed(true),
			"scale__with_std":      hparams.Fixed(true),
			"model__penalty":       hparams.Fixed(steps.PenaltyL2),
			"model__momentum":      hparams.Fixed(0.9),
			"model__learning_rate": hparams.LogUniform(1e-3, 0.5),
			"model__alpha":         hparams.LogUniform(1e-6, 1e-2),
		},
		Sampler:    automl.TPE{Startup: 8},
		Seed:       1,
		Splitter:   automl.KFold(o.folds, minibatch.WithSeed(2), alloc),
		Metric:     metrics.Accuracy,
		Prediction: steps.ClassColumn,
		Truth:      "digit",
		Trials:     o.trials,
		Epochs:     10,
		Parallel:   o.parallel,
		Refit:      true,
		Runner:     runner,
		Repository: repo,
		Progress:   o.progress,
	}, train)
	if err != nil {
		return outcome{result: res}, err
	}
	scores, err := metrics.Score(ctx, runner, res.Pipeline, test, steps.ClassColumn, "digit", metrics.Accuracy())
	return outcome{result: res, test: scores["accuracy"]}, err
}
