//go:build unix

package dirsource_test

import "syscall"

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o644) }
