// Package nn specifies a multilayer perceptron as plain values, with no
// tensor library: the architecture and how it is fitted (Spec), its
// hyperparameters and their default search space (Spec.Params,
// Spec.WithParams, Spec.Space), and its learned state in host memory
// (Model: the layers' weights, the optimizer's state and the generator of
// the dropout masks), with the host-side parts of fitting that every
// implementation shares: the initial weights (Model.Init), the dropout
// masks (Model.Mask) and the optimizer step (Model.Update, Adam or SGD
// with momentum, L2 included).
//
// An implementation computes the forward pass and the gradients of the
// loss wherever it runs — package steps/mlp with gorgonia on the CPU, a
// GPU stage on a device — and hands the gradients to Update. Equal specs,
// sizes and batches give equal weights, masks and steps in every
// implementation, to the rounding of its arithmetic.
//
// # Ownership and concurrency
//
// A Spec is a value (Clone copies its one slice). A Model belongs to one
// goroutine at a time; Layers returns its own slices, which an
// implementation may wrap without copying and read from many goroutines
// while nothing changes the model. Weights and Clone copy.
//
// # Cost
//
// Init draws one number per weight. Update is O(weights), with no
// allocation after the first (which allocates the optimizer's state: one
// or two values per weight). Mask draws one number per value.
package nn
