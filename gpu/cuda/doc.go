// Package cuda is a gpu.Device on an NVIDIA GPU through CUDA's driver
// API, with gorgonia.org/cu v0.9.6's package-level calls (contexts,
// cuModuleLoadDataEx with the JIT's log, cuLaunchKernel, non-blocking
// streams, events, asynchronous copies) and the package's own cgo for
// page-locked memory (cuMemHostAlloc, cuMemFreeHost). It is built only
// with the build tag cuda (and cgo): every file but this one says
// //go:build cuda && cgo, so that a program without the tag neither links
// libcuda nor runs cu's initialisation, which calls os.Exit(1) where
// cuInit fails (no GPU or no driver). Only programs built with -tags cuda
// import it.
//
// Open makes a context current on the calling thread, two non-blocking
// streams (gpu.CopyStream, gpu.ComputeStream) and loads the kernels; call
// it from the function given to gpu.Start or gpu.WithDevice, so that the
// owner's locked thread holds the context:
//
//	st, err := gpu.NewStage(10, spec, gpu.WithDevice(func() (gpu.Device, error) { return cuda.Open(0) }))
//
// # Kernels
//
// The kernels (gpu.Kernel: tiled SGEMM, bias add, column sums, ReLU and
// its gradient, softmax cross-entropy, Adam over one flat buffer, the sum
// of squares, axpy, scale) are CUDA-dialect C in kernels/kernels.cu,
// compiled by Debian's clang without NVIDIA's headers or libraries to PTX
// ISA 7.0 for sm_75 (kernels/kernels.ptx, committed and embedded), which
// the driver compiles for the GPU it runs on (sm_75 and later: Turing,
// Ampere, Hopper). Regenerate it with
//
//	go generate ./gpu/cuda
//
// Every kernel argument is passed from an 8-byte variable (cu's
// Function.Launch copies 8 bytes per argument): a device address, an
// integer as a 64-bit integer, a float as a float32 in the low 4 bytes.
//
// # Building and testing
//
// Building needs NVIDIA's cuda.h (CUDA 11.8 or 12; not 13, whose
// cuCtxCreate breaks cu) and, to link, libcuda.so (the driver's, or the
// stub that CUDA ships); running needs the driver's libcuda.so.1 and a GPU.
// .ci/cuda.sh fetches cuda.h and the stub from Debian's nvidia-cuda-dev
// 11.8 into a cache outside the repository and vets, staticchecks and
// builds the tests against them. With CUDA installed elsewhere:
//
//	CGO_CFLAGS=-I/usr/local/cuda/include CGO_LDFLAGS=-L/usr/local/cuda/lib64/stubs \
//	  go test -c -tags cuda -o cuda.test ./gpu/cuda
//
// and carry cuda.test (it needs no other file) to the machine with the
// GPU, where (PENSTOCK_CUDA_REQUIRE=1 makes a missing GPU a failure
// instead of a skip)
//
//	PENSTOCK_CUDA_REQUIRE=1 ./cuda.test -test.v -test.bench . -test.benchtime 200x
//
// runs the tests, the example and the benchmarks (-test.run '^$'
// -test.bench Stage runs only the stage's). The tests compare every
// kernel, and 100 Adam steps of the stage on 64-row batches (10 classes
// of 64 features, made in the binary), with the CPU device (gpu.CPU) to
// 1e-4. BenchmarkStage fits an MLP 784-1024-1024-10 on batches of 64,
// 1024 and 8192 rows and reports rows/s, busy % and overlap % (the
// stage's Stats), launches per batch and the upload and training time per
// batch; BenchmarkH2D reports the pinned and pageable upload bandwidth
// (GB/s) of an 8192-row batch. Where the machine has no GPU (no
// /dev/nvidia0), the test binary prints why and exits 0 before cu's
// initialisation (see internal/skipnogpu); it still needs a libcuda.so.1
// to start (the stub will do, through LD_LIBRARY_PATH).
//
// Without a GPU, package internal/emu runs kernels.cu compiled as C++ on
// the CPU, in the launch geometry of package internal/launch that Launch
// uses, and its tests compare every kernel with the CPU device (go test
// ./... runs them everywhere). .ci/cuda.sh also runs this package's test
// binary on a stand-in libcuda.so.1 (internal/emu/driver) whose kernels
// are emu's: the device's calls, the Stage on it and the 100-step fit run
// end to end (the largest GEMMs and the stage's benchmark are skipped
// there: too slow on a CPU). What only a GPU shows: the PTX (ptxas
// assembles it in CI, but its results are the GPU's), the real driver,
// and streams that really run concurrently.
//
// The tag cuda is gorgonia's too: a program built with -tags cuda that
// imports steps/mlp (gorgonia) builds gorgonia's CUDA engine, which needs
// cuDNN's and cuBLAS's headers and libraries.
package cuda

//go:generate sh gen.sh
