//go:build !linux

package gpu_test

func threadID() (int, bool) { return 0, false }
