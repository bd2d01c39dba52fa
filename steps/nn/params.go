package nn

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/penstock-ml/penstock/hparams"
)

// The hyperparameters of a Spec, by name (see Spec.Params).
const (
	ParamHidden     = "hidden"     // string: units per hidden layer, comma-separated ("128,64"; "" for none)
	ParamActivation = "activation" // string: "relu", "tanh" or "sigmoid"
	ParamLoss       = "loss"       // string: "cross_entropy" or "mse"
	ParamOptimizer  = "optimizer"  // string: "adam" or "sgd"
	ParamLR         = "lr"         // float: LearningRate
	ParamMomentum   = "momentum"   // float: SGD's Momentum
	ParamBeta1      = "beta1"      // float: Adam's Beta1
	ParamBeta2      = "beta2"      // float: Adam's Beta2
	ParamEpsilon    = "epsilon"    // float: Adam's Epsilon
	ParamL2         = "l2"         // float: L2
	ParamDropout    = "dropout"    // float: Dropout
	ParamInit       = "init"       // string: "glorot_uniform", "glorot_normal" or "he_uniform"
	ParamSeed       = "seed"       // int: Seed, 0 or more
)

// FormatHidden writes hidden layer sizes as the "hidden" parameter does:
// "128,64"; "" for none.
func FormatHidden(hidden []int) string {
	parts := make([]string, len(hidden))
	for i, h := range hidden {
		parts[i] = strconv.Itoa(h)
	}
	return strings.Join(parts, ",")
}

// ParseHidden reads the "hidden" parameter: comma-separated layer sizes,
// spaces allowed, "" for none. The error names the part that is not a
// size from 1 to MaxUnits.
func ParseHidden(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	out := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > MaxUnits {
			return nil, fmt.Errorf("nn: hidden %q: part %d (%q) is not a layer size from 1 to %d; write sizes separated by commas, as \"128,64\"", s, i, p, MaxUnits)
		}
		out[i] = n
	}
	return out, nil
}

// Params returns s as hyperparameter values, keyed by the Param names;
// the map is the caller's. Every field is one of them. A step that holds
// a Spec returns these from its hparams.Tunable Params.
func (s Spec) Params() hparams.Values {
	return hparams.Values{
		ParamHidden:     FormatHidden(s.Hidden),
		ParamActivation: string(s.Activation),
		ParamLoss:       string(s.Loss),
		ParamOptimizer:  string(s.Optimizer),
		ParamLR:         s.LearningRate,
		ParamMomentum:   s.Momentum,
		ParamBeta1:      s.Beta1,
		ParamBeta2:      s.Beta2,
		ParamEpsilon:    s.Epsilon,
		ParamL2:         s.L2,
		ParamDropout:    s.Dropout,
		ParamInit:       string(s.Init),
		ParamSeed:       int(min(s.Seed, math.MaxInt)), // Validate refuses a larger Seed
	}
}

// WithParams returns s with the values of p, all of them or, with an
// error, none: every key must be a Param name, every value of its type
// (see hparams.Convert), and the result must Validate. s is not changed.
func (s Spec) WithParams(p hparams.Values) (Spec, error) {
	out := s.Clone()
	var errs []error
	str := func(k string, v any) (string, bool) {
		x, err := hparams.Convert(v, hparams.String)
		if err != nil {
			errs = append(errs, fmt.Errorf("nn: parameter %q: %w", k, err))
			return "", false
		}
		return x.(string), true
	}
	num := func(k string, v any, dst *float64) {
		x, err := hparams.Convert(v, hparams.Float)
		if err != nil {
			errs = append(errs, fmt.Errorf("nn: parameter %q: %w", k, err))
			return
		}
		*dst = x.(float64)
	}
	for _, k := range p.Keys() {
		v := p[k]
		switch k {
		case ParamHidden:
			if x, ok := str(k, v); ok {
				h, err := ParseHidden(x)
				if err != nil {
					errs = append(errs, err)
				}
				out.Hidden = h
			}
		case ParamActivation:
			if x, ok := str(k, v); ok {
				out.Activation = Activation(x)
			}
		case ParamLoss:
			if x, ok := str(k, v); ok {
				out.Loss = Loss(x)
			}
		case ParamOptimizer:
			if x, ok := str(k, v); ok {
				out.Optimizer = Optimizer(x)
			}
		case ParamInit:
			if x, ok := str(k, v); ok {
				out.Init = Init(x)
			}
		case ParamLR:
			num(k, v, &out.LearningRate)
		case ParamMomentum:
			num(k, v, &out.Momentum)
		case ParamBeta1:
			num(k, v, &out.Beta1)
		case ParamBeta2:
			num(k, v, &out.Beta2)
		case ParamEpsilon:
			num(k, v, &out.Epsilon)
		case ParamL2:
			num(k, v, &out.L2)
		case ParamDropout:
			num(k, v, &out.Dropout)
		case ParamSeed:
			x, err := hparams.Convert(v, hparams.Int)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("nn: parameter %q: %w", k, err))
			case x.(int) < 0:
				errs = append(errs, fmt.Errorf("nn: parameter %q: %d, want 0 or more", k, x))
			default:
				out.Seed = uint64(x.(int))
			}
		default:
			errs = append(errs, fmt.Errorf("nn: unknown parameter %q; the parameters are %s", k, strings.Join(s.Params().Keys(), ", ")))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, out.Validate())
	}
	if err := errors.Join(errs...); err != nil {
		return s, err
	}
	return out, nil
}

// Space returns the default search space of s, keyed by the Param names:
//
//	hidden      Choice("32", "64", "100", "128", "256", "64,64", "128,64", "256,128")
//	activation  Choice("relu", "tanh", "sigmoid")
//	optimizer   Choice("adam", "sgd")
//	lr          LogUniform(1e-4, 0.1)
//	momentum    Uniform(0, 0.99), when optimizer is "sgd"
//	beta1       Uniform(0.8, 0.99), when optimizer is "adam"
//	beta2       Uniform(0.9, 0.9999), when optimizer is "adam"
//	l2          LogUniform(1e-7, 0.01)
//	dropout     Uniform(0, 0.5)
//	init        Choice("glorot_uniform", "glorot_normal", "he_uniform")
//	loss        Fixed(s.Loss): the loss follows the kind of model
//
// epsilon and seed have no distribution: they are set, not searched. The
// defaults (Default) lie in it. The map is the caller's.
func (s Spec) Space() hparams.Space {
	return hparams.Space{
		ParamHidden:     hparams.Choice("32", "64", "100", "128", "256", "64,64", "128,64", "256,128"),
		ParamActivation: hparams.Choice(string(ReLU), string(Tanh), string(Sigmoid)),
		ParamOptimizer:  hparams.Choice(string(Adam), string(SGD)),
		ParamLR:         hparams.LogUniform(1e-4, 0.1),
		ParamMomentum:   hparams.When(hparams.Uniform(0, 0.99), ParamOptimizer, string(SGD)),
		ParamBeta1:      hparams.When(hparams.Uniform(0.8, 0.99), ParamOptimizer, string(Adam)),
		ParamBeta2:      hparams.When(hparams.Uniform(0.9, 0.9999), ParamOptimizer, string(Adam)),
		ParamL2:         hparams.LogUniform(1e-7, 0.01),
		ParamDropout:    hparams.Uniform(0, 0.5),
		ParamInit:       hparams.Choice(string(GlorotUniform), string(GlorotNormal), string(HeUniform)),
		ParamLoss:       hparams.Fixed(string(s.Loss)),
	}
}
