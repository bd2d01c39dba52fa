package launch

import (
	"math"
	"testing"

	"github.com/penstock-ml/penstock/gpu"
)

func TestShape(t *testing.T) {
	for _, c := range []struct {
		k           gpu.Kernel
		ints        []int
		grid, block [2]int
	}{
		{gpu.Gemm, []int{37, 29, 45, 0, 0}, [2]int{2, 3}, [2]int{16, 16}},
		{gpu.Gemm, []int{8192, 10, 1024, 0, 1}, [2]int{1, 512}, [2]int{16, 16}},
		{gpu.ColSum, []int{8192, 1024}, [2]int{32, 1}, [2]int{32, 32}},
		{gpu.ColSum, []int{8192, 10}, [2]int{1, 1}, [2]int{32, 32}},
		{gpu.SoftmaxXent, []int{8192, 10}, [2]int{1, 1}, [2]int{256, 1}},
		{gpu.SumSquares, []int{5}, [2]int{1, 1}, [2]int{256, 1}},
		{gpu.BiasAdd, []int{3, 100}, [2]int{2, 1}, [2]int{256, 1}},
		{gpu.ReLU, []int{256}, [2]int{1, 1}, [2]int{256, 1}},
		{gpu.ReLU, []int{0}, [2]int{0, 1}, [2]int{256, 1}},
		{gpu.Adam, []int{1 << 30}, [2]int{65535, 1}, [2]int{256, 1}},
		{gpu.Gemm, []int{2 << 20, 10, 1024, 0, 0}, [2]int{1, 65535}, [2]int{16, 16}},
	} {
		g, b := Shape(c.k, c.ints)
		if g != c.grid || b != c.block {
			t.Errorf("Shape(%s, %v) = %v, %v; want %v, %v", c.k, c.ints, g, b, c.grid, c.block)
		}
	}
}

func TestShapeWithin(t *testing.T) {
	if g, _ := ShapeWithin(gpu.Gemm, []int{100, 40, 3, 0, 0}, 2); g != [2]int{3, 2} {
		t.Errorf("gemm 100×40 within 2: grid %v; want [3 2]", g)
	}
	if g, _ := ShapeWithin(gpu.ReLU, []int{5000}, 3); g != [2]int{3, 1} {
		t.Errorf("relu of 5000 within 3: grid %v; want [3 1]", g)
	}
}

func TestPack(t *testing.T) {
	got := Pack([]uint64{0x1000, 0x2000}, gpu.Args{Ints: []int{3, -1}, Floats: []float64{1.5}})
	want := []uint64{0x1000, 0x2000, 3, math.MaxUint64, uint64(math.Float32bits(1.5))}
	if len(got) != len(want) {
		t.Fatalf("Pack: %d values; want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Pack: value %d is %#x; want %#x", i, got[i], want[i])
		}
	}
}
