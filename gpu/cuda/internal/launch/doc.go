// Package launch holds what a launch of one of package gpu/cuda's kernels
// needs besides the GPU: the grid and block of each kernel, as
// kernels/kernels.cu expects them, and its arguments packed as 8-byte
// values. Package gpu/cuda launches with it on the GPU, and package emu
// runs the same kernels' source with it on the CPU, so that both use one
// geometry.
package launch
