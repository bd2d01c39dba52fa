package nn

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Activation is the nonlinearity applied after every hidden layer.
type Activation string

// The activations.
const (
	ReLU    Activation = "relu"    // max(0, x)
	Tanh    Activation = "tanh"    // tanh(x)
	Sigmoid Activation = "sigmoid" // 1 / (1 + e⁻ˣ)
)

// Loss is what fitting minimizes; it also fixes what the output layer
// means.
type Loss string

// The losses.
const (
	// CrossEntropy is the softmax cross-entropy of the logits against the
	// class labels, averaged over the rows: classification.
	CrossEntropy Loss = "cross_entropy"
	// MSE is half the squared error averaged over rows and targets (as
	// scikit-learn's squared loss): regression.
	MSE Loss = "mse"
)

// Optimizer is the update rule applied once per batch.
type Optimizer string

// The optimizers.
const (
	// Adam is Adam (Kingma and Ba) in scikit-learn's form: the step size
	// LearningRate·√(1−β₂ᵗ)/(1−β₁ᵗ) applied to m/(√v+ε).
	Adam Optimizer = "adam"
	// SGD is stochastic gradient descent with (heavy-ball) momentum:
	// v ← Momentum·v − LearningRate·g, w ← w + v. Momentum 0 is plain SGD.
	SGD Optimizer = "sgd"
)

// Init is how Init draws the weights; biases start at zero.
type Init string

// The initialisations, for a layer of fan-in n and fan-out m.
const (
	GlorotUniform Init = "glorot_uniform" // U(−√(6/(n+m)), √(6/(n+m)))
	GlorotNormal  Init = "glorot_normal"  // N(0, 2/(n+m))
	HeUniform     Init = "he_uniform"     // U(−√(6/n), √(6/n)), for ReLU
)

var (
	activations = []Activation{ReLU, Tanh, Sigmoid}
	losses      = []Loss{CrossEntropy, MSE}
	optimizers  = []Optimizer{Adam, SGD}
	inits       = []Init{GlorotUniform, GlorotNormal, HeUniform}
)

// MaxUnits bounds the width of a layer (hidden, input or output), so that
// a typing mistake in a size (a digit too many) is an error rather than an
// allocation of gigabytes. It bounds each layer, not the network: two
// adjacent layers of MaxUnits units still join 2³² weights (16 GiB).
const MaxUnits = 1 << 16

// Spec is a multilayer perceptron: its architecture, its loss and how it
// is fitted. It is a plain value: an implementation (package steps/mlp on
// the CPU, a GPU stage) builds its network from it, and the learned state
// lives in a Model. Every field is a hyperparameter (see Spec.Params).
//
// The network is Hidden dense layers, each followed by Activation and, on
// the fit path only, inverted dropout (each unit kept with probability
// 1−Dropout and scaled by 1/(1−Dropout)), then a dense output layer
// whose width the step gives (the classes of a classifier, the targets of
// a regressor). The output layer has no activation: Loss is computed from
// its values (the logits of CrossEntropy).
type Spec struct {
	Hidden       []int      // units per hidden layer; empty: a linear model
	Activation   Activation // after each hidden layer
	Loss         Loss
	Optimizer    Optimizer
	LearningRate float64 // > 0
	Momentum     float64 // SGD: in [0, 1)
	Beta1, Beta2 float64 // Adam: in [0, 1)
	Epsilon      float64 // Adam: > 0
	L2           float64 // ≥ 0: the loss gains L2/2·‖W‖²/rows for the weights (not the biases), as scikit-learn's alpha
	Dropout      float64 // in [0, 1): the probability of dropping a hidden unit when fitting
	Init         Init
	Seed         uint64 // seeds the initial weights and the dropout masks; 0 to math.MaxInt
}

// Default returns the spec with scikit-learn's defaults for loss
// (MLPClassifier's with CrossEntropy, MLPRegressor's with MSE): one hidden
// layer of 100 ReLU units, Adam with a learning rate of 0.001, β₁ 0.9,
// β₂ 0.999, ε 1e-8, L2 1e-4; momentum 0.9 should SGD be chosen; no
// dropout; Glorot-uniform weights from seed 0.
func Default(loss Loss) Spec {
	return Spec{
		Hidden:       []int{100},
		Activation:   ReLU,
		Loss:         loss,
		Optimizer:    Adam,
		LearningRate: 1e-3,
		Momentum:     0.9,
		Beta1:        0.9,
		Beta2:        0.999,
		Epsilon:      1e-8,
		L2:           1e-4,
		Init:         GlorotUniform,
	}
}

// Clone returns s with its own Hidden slice.
func (s Spec) Clone() Spec {
	s.Hidden = slices.Clone(s.Hidden)
	return s
}

// Validate returns nil where s describes a network that can be fitted,
// else an error that names every field that is wrong and what it wants.
func (s Spec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("nn: spec: "+format, args...)) }
	for i, h := range s.Hidden {
		if h < 1 || h > MaxUnits {
			bad("hidden layer %d has %d units, want 1 to %d", i, h, MaxUnits)
		}
	}
	if !slices.Contains(activations, s.Activation) {
		bad("activation %q, want one of %q", s.Activation, activations)
	}
	if !slices.Contains(losses, s.Loss) {
		bad("loss %q, want one of %q", s.Loss, losses)
	}
	if !slices.Contains(optimizers, s.Optimizer) {
		bad("optimizer %q, want one of %q", s.Optimizer, optimizers)
	}
	if !slices.Contains(inits, s.Init) {
		bad("init %q, want one of %q", s.Init, inits)
	}
	if !(s.LearningRate > 0) || math.IsInf(s.LearningRate, 0) {
		bad("learning rate %v, want a finite number above 0", s.LearningRate)
	}
	unit := func(name string, v float64) {
		if !(v >= 0 && v < 1) {
			bad("%s %v, want 0 or more and below 1", name, v)
		}
	}
	unit("momentum", s.Momentum)
	unit("beta1", s.Beta1)
	unit("beta2", s.Beta2)
	unit("dropout", s.Dropout)
	if !(s.Epsilon > 0) || math.IsInf(s.Epsilon, 0) {
		bad("epsilon %v, want a finite number above 0", s.Epsilon)
	}
	if !(s.L2 >= 0) || math.IsInf(s.L2, 0) {
		bad("l2 %v, want a finite number, 0 or more", s.L2)
	}
	if s.Seed > math.MaxInt {
		bad("seed %d, want 0 to %d (the hyperparameter %q is an int, and a spec must survive Params)", s.Seed, math.MaxInt, ParamSeed)
	}
	return errors.Join(errs...)
}

// Sizes returns the widths of the network's layers for inputs features
// and outputs outputs: inputs, then Hidden, then outputs.
func (s Spec) Sizes(inputs, outputs int) []int {
	return slices.Concat([]int{inputs}, s.Hidden, []int{outputs})
}

// architecture reports whether s and o describe the same network with the
// same initial weights: what a Model's learned state depends on.
func (s Spec) architecture(o Spec) bool {
	return slices.Equal(s.Hidden, o.Hidden) && s.Activation == o.Activation && s.Loss == o.Loss &&
		s.Init == o.Init && s.Seed == o.Seed
}
