// Package skipnogpu, imported (for its initialisation) by package
// gpu/cuda's tests, ends a test binary on a machine without a GPU before
// gorgonia.org/cu's initialisation can: cu's init calls cuInit and, when
// it fails, os.Exit(1), which no TestMain could prevent, since a test
// package's initialisation runs after its imports'.
//
// This package is initialised before cu because Go initialises packages
// in the order of their import paths among those whose imports are
// initialised (the Go specification, "Package initialization", since Go
// 1.21): its path sorts before "gorgonia.org/cu" and its imports (fmt,
// os, gpuprobe) are a subset of what cu needs first. Where gpuprobe finds
// no GPU it prints why and "PASS" and exits 0, so that go test reports
// the package as passing with nothing run; with PENSTOCK_CUDA_REQUIRE=1
// in the environment it exits 1 instead (for the run on a GPU machine,
// where a skip would hide a broken driver setup). With
// PENSTOCK_CUDA_EMULATED=1 it lets the binary run without a GPU: for the
// stand-in driver of package emu (emu/driver), which .ci/cuda.sh loads
// through LD_LIBRARY_PATH.
//
// The binary still needs libcuda.so.1 to start: the dynamic loader
// resolves it before any Go code runs. On a machine without NVIDIA's
// driver, point LD_LIBRARY_PATH at a directory holding NVIDIA's stub
// (libcuda.so linked as libcuda.so.1), as .ci/cuda.sh does.
package skipnogpu
