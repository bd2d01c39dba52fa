//go:build cgo

package emu_test

import (
	"fmt"

	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/gpu/cuda/internal/emu"
)

// The CUDA source of the ReLU kernel, run on the CPU in one block of 256
// threads, four of which have a value.
func ExampleLaunch() {
	x := []float32{-1, 2, -3, 4}
	err := emu.Launch(gpu.ReLU, [][]float32{x}, []int{len(x)}, nil)
	fmt.Println(x, err)
	// Output: [0 2 0 4] <nil>
}
