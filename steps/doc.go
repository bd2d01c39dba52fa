// Package steps is the step library: ready-made flow steps for
// preprocessing, label handling, light models and metasteps, each a
// flow.Step with the optional capabilities that make sense for it. The
// neural networks live in the packages steps/nn and steps/mlp.
//
// # Contract of every step
//
// A step is built by a constructor that checks its options (an
// impossible value is the constructor's error, never a panic) and is never
// set up there. What it learns is partial-fit state: Fit is called once
// per batch and epoch, and a second Fit continues from the current state;
// Reset forgets it and Copy duplicates it (flow.Copy, flow.Reset). A step
// whose replicas can be merged exactly implements flow.Merger: Replica is
// an unfitted step with the same hyperparameters, Merge folds replicas'
// state into the receiver's, so a replicated fit equals a sequential one
// (to rounding, where floating-point sums are merged). A step that cannot
// merge exactly is no Merger, and a replicated stage refuses to fit it.
//
// Transform borrows its batch and returns one that the caller owns, built
// with the run's allocator (flow.Allocator); columns that pass through are
// retained, not copied. Transform reads the step and never changes it, so
// replicas may share one step on the transform path. Errors name the step
// type ("steps.StandardScaler"), the operation, the column (and the row
// where one is at fault) and what was expected.
//
// Hyperparameters (hparams.Tunable, hparams.Spacer): a tunable step's
// Space is the domain of its parameters, and its constructor options and
// SetParams are checked against it, so hparams.Set refuses a value outside
// it and Set of Get always succeeds. Narrow a space for a search with
// hparams.Space.Override.
//
// # Preprocessing
//
//   - StandardScaler: standardize the features of a tensor column
//     (FixedSizeList<float32>, default "x"); means and M2 merged in
//     float64 by Chan et al.'s parallel formula; a constant feature is
//     scaled by 1. Merger.
//   - MinMaxScaler: map each feature's fitted [min, max] onto a range.
//     Merger.
//   - Imputer: fill nulls (and NaN) of numeric columns with the mean, the
//     most frequent value or a constant; no median, which no exact merge
//     gives. Merger.
//   - SelectColumns and DropColumns: keep or drop columns of X by name.
//
// # Labels
//
// These change Y, not X:
//
//   - LabelEncoder: string or integer labels to class indices 0 to K-1
//     (the sorted classes seen by Fit, or KnownClasses). Merger.
//   - OneHot: class indices to a one-hot FixedSizeList<float32> column of
//     width K (the hyperparameter "classes", or learned). Merger.
//
// # Light models
//
// LinearRegression (mean squared error; output "pred") and
// LogisticRegression (softmax cross-entropy, multiclass; output "class"
// and, with Probabilities, "proba") are fitted by mini-batch SGD, one step
// per batch, with L2 penalty and momentum, from weights drawn by a seeded
// PCG: the same seed and batches give the same model in both engines.
// They are not Mergers: averaging SGD replicas is not what one run
// learns. On the UCI digits, StandardScaler then LogisticRegression
// reaches about 0.97 test accuracy in a fraction of a second (see the
// package tests). Softmax, their arithmetic for turning logits into
// probabilities, is exported for classifiers written outside the package.
//
// # Phases and augmentation
//
//   - TrainOnly and TestOnly: run a child on the fit path only (augmentation,
//     re-sampling) or on the transform path only (post-processing). Both are
//     flow.FitPathers: TrainOnly's child runs when fitting even if it only
//     transforms; TestOnly's child is never fitted nor replicated.
//   - Freeze: a node with flow.FitEpochs(0); the runners never fit it.
//   - GaussianNoise: train-only noise with a seeded generator whose state is
//     part of the step's (Copy copies it, Reset re-seeds it).
//
// A step can turn into another after a phase, in place by path:
// flow.Mutate, flow.MutateNode (to freeze it) and flow.Become (a
// flow.Mutator that knows what it becomes: a pre-trained autoencoder
// becomes a classifier that fine-tunes its encoder; see examples/mutate).
//
// # Label handling
//
//   - OnY: run a step on Y instead of X (an output transformer).
//   - Window: an autoregressive window of k values; on the fit path X is
//     the window and Y the next value (pairs cross batch boundaries within
//     an epoch, never epochs), at transform time only the windows.
//
// # Metasteps
//
// Each is a flow.Composite, so it nests, runs in both engines and exposes
// its children's hyperparameters (hparams.Get, Set, Gather):
//
//   - ForEach: a child applied to each row's items of a list column.
//   - ExpandDim: the child sees the whole batch as one row of lists.
//   - ChooseOneOf: the hyperparameter "choice" picks the one active branch
//     (a flow.Chooser and hparams.Switch: the others are neither set up,
//     fitted nor run, and their keys are sampled only when chosen).
//   - Optional: the hyperparameter "enabled" runs the child or passes the
//     batch through.
//
// scikit-learn's FeatureUnion is flow.NewUnion, and Neuraxle's
// ParallelTransform is a replicated stage (flow.Replicas); see the tests.
//
// # Cost
//
// The scalers, the imputer and the encoders cost O(rows × width) per batch
// and hold O(width) state (the most-frequent imputer: O(distinct values);
// the label encoder: O(classes)); a linear model costs O(rows × width ×
// outputs) per batch.
package steps
