package steps_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/penstock-ml/penstock/steps"
)

func TestSoftmax(t *testing.T) {
	// Small logits: the textbook formula, computed directly.
	z := []float64{1, 2, 3}
	steps.Softmax(z)
	e := []float64{math.Exp(1), math.Exp(2), math.Exp(3)}
	for k := range z {
		if want := e[k] / (e[0] + e[1] + e[2]); math.Abs(z[k]-want) > 1e-15 {
			t.Errorf("float64 [1 2 3]: p[%d] = %v; want %v", k, z[k], want)
		}
	}
	// Logits whose exp overflows float32 and float64 alike still give
	// probabilities: only their differences matter.
	big := []float32{1000, 1001, -1e30}
	steps.Softmax(big)
	if sum := big[0] + big[1] + big[2]; math.Abs(float64(sum)-1) > 1e-6 || big[2] != 0 || !(big[1] > big[0]) {
		t.Errorf("float32 [1000 1001 -1e30]: got %v (sum %v); want about [0.27 0.73 0], summing to 1", big, sum)
	}
	one := []float32{-7}
	steps.Softmax(one)
	if one[0] != 1 {
		t.Errorf("one logit: got %v; want [1]", one)
	}
	steps.Softmax([]float32{}) // no panic
	withNaN := []float64{0, math.NaN()}
	steps.Softmax(withNaN)
	if !math.IsNaN(withNaN[0]) || !math.IsNaN(withNaN[1]) {
		t.Errorf("a NaN logit: got %v; want every value NaN", withNaN)
	}
}

func ExampleSoftmax() {
	p := []float32{2, 1, 0.1}
	steps.Softmax(p)
	fmt.Printf("%.3f\n", p)
	// Output: [0.659 0.242 0.099]
}
