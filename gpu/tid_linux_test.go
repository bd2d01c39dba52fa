//go:build linux

package gpu_test

import "syscall"

func threadID() (int, bool) { return syscall.Gettid(), true }
