// Package emu runs the CUDA kernels of package gpu/cuda
// (kernels/kernels.cu), compiled as C++ by cgo for the CPU, in the
// geometry and with the argument packing of package launch: a block's
// threads are OS threads and __syncthreads a barrier over them. It lets
// the kernels' source, their launch geometry and their arguments be tested
// against the CPU device (gpu.CPU) on a machine without a GPU; what it
// cannot show is what only the GPU does (the PTX, the driver, the
// hardware's float approximations, exp2f and log2f here). A block's
// threads are coroutines on the calling thread, and __syncthreads passes
// to the next. It needs cgo and a C++20 compiler.
//
// The directory driver holds a stand-in for NVIDIA's libcuda.so.1
// (fakecuda.cc, not a Go package): the driver calls that gpu/cuda makes,
// on host memory, with every operation done at once and the kernels run
// by this package's emu.cc. .ci/cuda.sh builds it against cuda.h and runs
// gpu/cuda's test binary on it (PENSTOCK_CUDA_EMULATED=1), so that the
// device's code, the Stage on it and the 100-step fit run end to end
// without a GPU.
package emu
