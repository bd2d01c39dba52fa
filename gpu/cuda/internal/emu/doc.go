// Package emu runs the CUDA kernels of package gpu/cuda
// (kernels/kernels.cu), compiled as C++ by cgo for the CPU, in the
// geometry and with the argument packing of package launch: a block's
// threads are OS threads and __syncthreads a barrier over them. It lets
// the kernels' source, their launch geometry and their arguments be tested
// against the CPU device (gpu.CPU) on a machine without a GPU; what it
// cannot show is what only the GPU does (the PTX, the driver, the
// hardware's float approximations, exp2f and log2f here). It needs cgo
// and a C++20 compiler.
package emu
