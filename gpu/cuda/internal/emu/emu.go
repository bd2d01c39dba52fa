//go:build cgo

package emu

/*
#cgo CXXFLAGS: -std=c++20 -O2
#cgo LDFLAGS: -lstdc++
#include <stdlib.h>
#include "emu.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/gpu/cuda/internal/launch"
)

// Launch runs kernel k on bufs, its buffers in gpu.Args's order (their
// lengths checked against the integers, as gpu.CheckLaunch does), with
// the integer and float arguments given, and writes the buffers back.
func Launch(k gpu.Kernel, bufs [][]float32, ints []int, floats []float64) error {
	return launchWithin(k, bufs, ints, floats, launch.MaxGrid)
}

// launchWithin is Launch in launch.ShapeWithin's geometry: a small maxGrid
// makes the kernels loop over their rows or values.
func launchWithin(k gpu.Kernel, bufs [][]float32, ints []int, floats []float64, maxGrid int) error {
	handles := make([]gpu.Buffer, len(bufs))
	for i, b := range bufs {
		handles[i] = gpu.NewBuffer(uint64(i+1), len(b))
	}
	a := gpu.Args{Bufs: handles, Ints: ints, Floats: floats}
	if err := gpu.CheckLaunch(k, a); err != nil {
		return fmt.Errorf("gpu/cuda/internal/emu: %w", err)
	}
	grid, block := launch.ShapeWithin(k, ints, maxGrid)
	if grid[0] == 0 || grid[1] == 0 {
		return nil
	}
	// C memory for the values: the kernels hold their addresses as
	// integers, out of the Go collector's sight.
	mem := make([]unsafe.Pointer, len(bufs))
	addrs := make([]uint64, len(bufs))
	for i, b := range bufs {
		mem[i] = C.malloc(C.size_t(max(len(b), 1) * 4))
		defer C.free(mem[i])
		copy(unsafe.Slice((*float32)(mem[i]), len(b)), b)
		addrs[i] = uint64(uintptr(mem[i]))
	}
	vals := launch.Pack(addrs, a)
	cv := (*C.uint64_t)(C.malloc(C.size_t(len(vals) * 8)))
	defer C.free(unsafe.Pointer(cv))
	copy(unsafe.Slice((*uint64)(unsafe.Pointer(cv)), len(vals)), vals)
	if r := C.emu_launch(C.int(k), C.longlong(grid[0]), C.longlong(grid[1]), C.longlong(block[0]), C.longlong(block[1]), cv); r != 0 {
		return fmt.Errorf("gpu/cuda/internal/emu: launch of %s: no such kernel (%d)", k, int(r))
	}
	for i, b := range bufs {
		copy(b, unsafe.Slice((*float32)(mem[i]), len(b)))
	}
	return nil
}
