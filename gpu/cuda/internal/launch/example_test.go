package launch_test

import (
	"fmt"

	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/gpu/cuda/internal/launch"
)

func ExampleShape() {
	// C (64×1024) = A (64×784) · B (784×1024): a block of 16×16 per tile of C.
	grid, block := launch.Shape(gpu.Gemm, []int{64, 1024, 784, 0, 0})
	fmt.Println(grid, block)
	// Output: [64 4] [16 16]
}
