package automl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/penstock-ml/penstock/hparams"
)

// Status is the outcome of a trial.
type Status string

const (
	// Done: every split was fitted and scored; Score is the mean.
	Done Status = "done"
	// Failed: a split failed (an error or a panic); Error says why and
	// Score is NaN.
	Failed Status = "failed"
)

// Trial is one evaluated configuration: its hyperparameters, fitted and
// scored on every split of the training data.
type Trial struct {
	Study string // the search's Config.Study
	// Search identifies the search's configuration (its space, sampler
	// and seed): a repository holding trials of one study under another
	// Search is a mistake (see ErrMismatch).
	Search string
	// ID is the trial's identity: a hash of its hyperparameters, its
	// epochs, its sampler step and the search's seed.
	ID     string
	Step   int            // the sampler's step that proposed it, from 0
	Rung   int            // successive halving's rung; 0 for other samplers
	Params hparams.Values // the hyperparameters, keyed as hparams.Set reads them
	Epochs int            // epochs of the training split that each fit read
	Status Status
	Score  float64   // mean of Scores; NaN when Failed
	Spread float64   // standard deviation of Scores (population); NaN when Failed
	Scores []float64 // the validation score of each split, in split order
	// EpochsRun holds, for each split that was fitted, the epochs that its
	// last pass ran: fewer than Epochs where a callback stopped it early.
	EpochsRun []int
	Error     string // why it failed; "" when Done
	Started   time.Time
	Duration  time.Duration
}

// Proposal is what a Sampler proposes for one step: the hyperparameters
// of a trial and how long to train it.
type Proposal struct {
	Params hparams.Values
	// Epochs is the number of epochs of the training split that each fit
	// reads (minibatch.Repeat); 0 means Config.Epochs.
	Epochs int
	// Rung is successive halving's rung, recorded in the trial.
	Rung int
}

// trialID returns the identity of a trial: a hash of its hyperparameters
// (keys sorted, values with their types), epochs, step and seed.
func trialID(params hparams.Values, epochs, step int, seed uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "step=%d;seed=%d;epochs=%d", step, seed, epochs)
	for _, k := range params.Keys() {
		b.WriteString(";")
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(canonicalValue(params[k]))
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}

// canonicalValue writes v with its type, exactly (floats in their shortest
// round-tripping form).
func canonicalValue(v any) string {
	switch x := v.(type) {
	case float64:
		return "f:" + strconv.FormatFloat(x, 'g', -1, 64)
	case int:
		return "i:" + strconv.Itoa(x)
	case bool:
		return "b:" + strconv.FormatBool(x)
	case string:
		return "s:" + strconv.Quote(x)
	}
	return fmt.Sprintf("%T:%v", v, v)
}

// searchID identifies a search's configuration: its study, space, sampler
// and seed.
func searchID(study string, space hparams.Space, sampler Sampler, seed uint64) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "study=%q\nsampler=%v\nseed=%d\nspace:\n%v", study, sampler, seed, space))
	return hex.EncodeToString(sum[:8])
}

// meanSpread returns the mean and the population standard deviation of xs.
func meanSpread(xs []float64) (mean, spread float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		spread += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(spread / float64(len(xs)))
}

// better reports whether score a is better than b under the direction
// maximize; NaN is worse than any number.
func better(a, b float64, maximize bool) bool {
	switch {
	case math.IsNaN(a):
		return false
	case math.IsNaN(b):
		return true
	case maximize:
		return a > b
	}
	return a < b
}
