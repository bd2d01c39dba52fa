package ckpt

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// FS is the file system a Store writes to: the few operations that an
// atomic, durable save and a bounded load need. Names are paths as the
// os package takes them. OSFS is the real one; FaultFS is an in-memory one
// that models what a crash keeps, to test the order of the operations.
type FS interface {
	// MkdirAll makes the directory dir and its parents where missing.
	MkdirAll(dir string) error
	// Create makes the file name, empty (truncating one that exists),
	// open for writing.
	Create(name string) (File, error)
	// Open opens the file name for reading.
	Open(name string) (io.ReadCloser, error)
	// Rename renames oldname to newname, replacing newname where it
	// exists, atomically.
	Rename(oldname, newname string) error
	// Remove removes the file name.
	Remove(name string) error
	// ReadDir lists the regular files of dir, sorted by name.
	ReadDir(dir string) ([]Entry, error)
	// SyncDir makes the entries of dir durable: the files created,
	// renamed into it, renamed away or removed since its last SyncDir
	// (fsync of the directory).
	SyncDir(dir string) error
}

// File is a file open for writing.
type File interface {
	io.Writer
	// Sync makes what was written durable (fsync); it does not make the
	// file's name durable: that is its directory's SyncDir.
	Sync() error
	Close() error
}

// Entry is a regular file of a directory, as FS.ReadDir lists it.
type Entry struct {
	Name string // base name
	Size int64  // bytes
}

// OSFS returns the FS of the operating system (package os).
func OSFS() FS { return osFS{} }

type osFS struct{}

func (osFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

func (osFS) Create(name string) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
}

func (osFS) Open(name string) (io.ReadCloser, error) { return os.Open(name) }

func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

func (osFS) Remove(name string) error { return os.Remove(name) }

func (osFS) ReadDir(dir string) ([]Entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	es := make([]Entry, 0, len(des))
	for _, de := range des {
		if !de.Type().IsRegular() {
			continue
		}
		info, err := de.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, err
		}
		es = append(es, Entry{Name: de.Name(), Size: info.Size()})
	}
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return es, nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, os.ErrInvalid) {
		err = nil // a file system that cannot fsync a directory (as persist.SaveFile)
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
