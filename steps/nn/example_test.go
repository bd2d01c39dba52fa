package nn_test

import (
	"fmt"

	"github.com/penstock-ml/penstock/steps/nn"
)

// A model of 3 inputs, one hidden layer of 4 units and 2 outputs, and one
// Adam step for the gradients of a batch of 8 rows.
func Example() {
	spec := nn.Default(nn.CrossEntropy)
	spec.Hidden = []int{4}
	m, err := nn.NewModel(spec)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Init(3, 2); err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range m.Layers() {
		fmt.Printf("layer %d×%d: %d weights, %d biases\n", l.In, l.Out, len(l.W), len(l.B))
	}
	grads := m.Weights() // any gradients of the layers' shapes
	if err := m.Update(grads, 8); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("steps:", m.Steps())
	fmt.Println("hidden:", spec.Params()[nn.ParamHidden])
	// Output:
	// layer 3×4: 12 weights, 4 biases
	// layer 4×2: 8 weights, 2 biases
	// steps: 1
	// hidden: 4
}
