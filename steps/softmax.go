package steps

import (
	"math"
	"slices"
)

// Softmax turns the logits z into class probabilities, in place:
// exp(z − max z), each divided by their sum, which is accumulated in
// float64. Subtracting the largest logit keeps exp from overflowing, so any
// finite logits give probabilities in [0, 1] that sum to 1 (to rounding);
// a NaN logit makes every value NaN. An empty z is left as it is. It is the
// arithmetic of the package's classifiers, for steps written outside it.
func Softmax[F ~float32 | ~float64](z []F) {
	if len(z) == 0 {
		return
	}
	top := slices.Max(z)
	var sum float64
	for k, v := range z {
		e := math.Exp(float64(v - top))
		z[k] = F(e)
		sum += e
	}
	for k := range z {
		z[k] = F(float64(z[k]) / sum)
	}
}
