// Package gpuprobe tells, without loading NVIDIA's driver library, whether
// the machine looks as if it has an NVIDIA GPU: the driver's device files
// (/dev/nvidiactl and /dev/nvidia0, or WSL's /dev/dxg). Package gpu/cuda's
// tests use it (through package skipnogpu) to skip before gorgonia.org/cu's
// package initialisation, which exits the program when cuInit fails.
package gpuprobe
