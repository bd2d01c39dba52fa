//go:build !unix

package dirsource_test

import "errors"

func mkfifo(string) error { return errors.New("no FIFOs here") }
