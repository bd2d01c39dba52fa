package launch

import (
	"math"

	"github.com/penstock-ml/penstock/gpu"
)

// The geometry that kernels.cu assumes.
const (
	Tile    = 16    // gemm's blocks are Tile×Tile threads, one element of C each
	Threads = 256   // the flat kernels' and the reductions' block size
	MaxGrid = 65535 // the flat kernels' grid and gemm's grid y at most (they loop over the rest)
)

// Shape returns the grid and block (x, y) of a launch of k with the
// integer arguments ints (checked: gpu.CheckLaunch). A grid with a zero
// dimension means there is nothing to do.
func Shape(k gpu.Kernel, ints []int) (grid, block [2]int) { return ShapeWithin(k, ints, MaxGrid) }

// ShapeWithin is Shape with the grid's y dimension (gemm's row tiles) and
// the flat kernels' grid at most maxGrid (1 or more): the kernels loop
// over the rest. Tests use it to make them loop.
func ShapeWithin(k gpu.Kernel, ints []int, maxGrid int) (grid, block [2]int) {
	flat := func(n int) ([2]int, [2]int) {
		return [2]int{min((n+Threads-1)/Threads, maxGrid), 1}, [2]int{Threads, 1}
	}
	switch k {
	case gpu.Gemm:
		m, n := ints[0], ints[1]
		return [2]int{(n + Tile - 1) / Tile, min((m+Tile-1)/Tile, maxGrid)}, [2]int{Tile, Tile}
	case gpu.ColSum: // a block of 32×32 per 32 columns
		return [2]int{(ints[1] + 31) / 32, 1}, [2]int{32, 32}
	case gpu.SoftmaxXent, gpu.SumSquares: // one block: it reduces
		return [2]int{1, 1}, [2]int{Threads, 1}
	case gpu.BiasAdd:
		return flat(ints[0] * ints[1])
	}
	return flat(ints[0]) // ReLU, ReLUGrad, Adam, Axpy, Scale: n first
}

// Pack returns a launch's arguments as kernels.cu declares them, each in
// an 8-byte value: the buffers' addresses (given), the integers as
// 64-bit integers (long long), the floats as float32 in the low 4 bytes
// (float: the driver reads 4 bytes of the 8).
func Pack(addrs []uint64, a gpu.Args) []uint64 {
	vals := make([]uint64, 0, len(addrs)+len(a.Ints)+len(a.Floats))
	vals = append(vals, addrs...)
	for _, n := range a.Ints {
		vals = append(vals, uint64(int64(n)))
	}
	for _, f := range a.Floats {
		vals = append(vals, uint64(math.Float32bits(float32(f))))
	}
	return vals
}
