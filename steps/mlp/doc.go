// Package mlp is the multilayer perceptron of package steps/nn on the CPU,
// built with gorgonia: a Classifier (softmax cross-entropy, returning the
// predicted "class" and, on request, the "proba"bilities) and a Regressor
// (half the mean squared error, returning "pred"), both flow steps with
// hyperparameters (hparams.Tunable and hparams.Spacer, from nn.Spec).
//
// # Fitting
//
// Fit takes one optimizer step per batch: a pass over a stream is an
// epoch, and epochs are repeated streams (minibatch.Repeat, or
// minibatch.Permute for a new order each epoch). FitTransform takes the
// step and returns the outputs of its pass; it is the only place with
// dropout, so Transform is deterministic. flow.FitEpochs(0) on a model's
// node freezes it.
//
// # Lifecycle and state
//
// The constructors validate and allocate nothing. Setup (a run's) makes
// the model ready; the network for a batch size is compiled at its first
// batch (a gorgonia graph has static shapes, so a stream of batches of 64
// rows and a shorter last one compiles two, for fitting, and two for
// predicting) and kept until Teardown, at most 8 sizes per kind. The
// weights live in host memory (nn.Model): the compiled networks wrap
// them without copying, the optimizer updates them in place, and they
// survive Teardown, so a model fitted in one run predicts in the next.
// Copy copies the learned state, optimizer moments and dropout generator
// included, before or after a fit; Reset starts over from the seed's
// initial weights. A model is not a flow.Merger: its replicas could not
// be merged, and the runner refuses to fit it with replicas.
//
// # Saving
//
// Both are persist.Staters, registered in persist.Default as
// "mlp.Classifier" and "mlp.Regressor" when the package is imported
// (Register for a registry of one's own). A save holds the spec (the
// Params), the columns, a Classifier's classes and WithProba, and what
// was learned: every layer's weights and biases, the optimizer's moments,
// the count of steps and the dropout generator's state, so that a loaded
// model predicts to the bit as the saved one and goes on fitting exactly
// as it would have. The compiled networks are not saved: a loaded model
// is not set up, and the run that sets it up builds them.
//
// # Concurrency
//
// Transform is safe for concurrent calls: each call takes a compiled
// network of its own from a pool. Fit, FitTransform, Setup, Teardown,
// Reset and SetParams are not. Building a network takes a package-level
// lock (gorgonia's graph construction touches shared state); running one
// does not.
//
// # Cost
//
// Per batch of n rows: the forward and backward passes (one matrix
// product per layer forward, two back, through gonum's pure-Go BLAS, and
// fused ops for the bias, ReLU and the softmax cross-entropy),
// a copy of the n × inputs features into the network's input, the
// optimizer step (O(weights)), and the output batch, allocated from the
// run's allocator. On the UCI digits (1347 rows, 64 → 64 → 10, batches of
// 64, 50 epochs) a fit takes about twice scikit-learn's time; see
// bench/mlp_test.go.
package mlp
