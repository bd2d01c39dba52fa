//go:build linux

package gpu

import "syscall"

// callerID identifies the calling goroutine's OS thread: its thread id.
// The owner's goroutine is locked to its thread, which no other goroutine
// runs on while it lives, so the id identifies the owner's goroutine.
func callerID() int64 { return int64(syscall.Gettid()) }
