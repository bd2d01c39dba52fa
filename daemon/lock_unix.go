//go:build unix

package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockName is the file in the checkpoint directory that a running daemon
// holds locked.
const lockName = "LOCK"

// lockDir takes an exclusive lock on dir (flock on dir/LOCK), so that two
// daemons never checkpoint into, and resume from, one directory; the
// kernel releases it when the process ends, however it ends. The returned
// function releases it.
func lockDir(dir string) (func() error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("daemon: checkpoints: %w", err)
	}
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("daemon: checkpoints: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("daemon: checkpoint directory %s is in use by another daemon (%s): one directory, one daemon",
				dir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("daemon: lock %s: %w", path, err)
	}
	// Who holds it, for the error of the next one (best effort).
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() error {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return errors.Join(err, f.Close())
	}, nil
}
