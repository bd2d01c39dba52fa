package persist

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/penstock-ml/penstock/flow"
)

// beforeRename, when set (by tests), is called between writing and
// fsyncing a temporary file and renaming it into place; an error stops the
// save there, as a crash would.
var beforeRename func(tmp, final string) error

// tmpMark marks the temporary files of a save: ".<name>.tmp-<random>".
const tmpMark = ".tmp-"

// writeAtomic writes path through write: into a temporary file of the same
// directory, fsynced, then renamed over path, then the directory fsynced,
// so that path holds either its old content or the new, never a part.
func writeAtomic(path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tmpMark+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if beforeRename != nil {
		if err := beforeRename(tmp, path); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// SaveFile saves the tree of s to the file path, atomically (a temporary
// file in the same directory, fsync, rename, fsync of the directory): a
// crash leaves the old file or the new one. The file is a tar archive of
// the manifest and the blobs (see the package documentation). Options:
// WithRegistry, WithExtra, WithAllocator.
func SaveFile(path string, s flow.Step, opts ...Option) error {
	c, err := newConfig(opts)
	if err != nil {
		return err
	}
	e, err := encode(s, c)
	if err != nil {
		return err
	}
	if err := writeAtomic(path, func(w io.Writer) error { return writeTar(w, e) }); err != nil {
		return fmt.Errorf("persist: save %s: %w", path, err)
	}
	return nil
}

// LoadFile loads a model saved by SaveFile or Marshal. Options:
// WithRegistry, WithLimits, WithAllocator.
func LoadFile(path string, opts ...Option) (*Model, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("persist: load: %w", err)
	}
	defer f.Close()
	m, err := readTar(bufio.NewReaderSize(f, 1<<20), nil, c)
	if err != nil {
		return nil, fmt.Errorf("persist: load %s: %w", path, err)
	}
	return m, nil
}

// SaveDir saves the tree of s to the directory dir (made if missing):
// dir/manifest.json and dir/blobs/<sha256>.arrows, one per distinct
// tensor. The manifest is the commit point: the new blobs are written
// (each atomically, a blob that is already there with the right checksum
// is kept), then the manifest is replaced atomically, then the blobs that
// it no longer names are removed. A crash at any point leaves the old
// model or the new one loadable. One save at a time per directory.
// Options: WithRegistry, WithExtra, WithAllocator.
func SaveDir(dir string, s flow.Step, opts ...Option) error {
	c, err := newConfig(opts)
	if err != nil {
		return err
	}
	e, err := encode(s, c)
	if err != nil {
		return err
	}
	if err := saveDir(dir, e); err != nil {
		return fmt.Errorf("persist: save %s: %w", dir, err)
	}
	return nil
}

func saveDir(dir string, e *encoded) error {
	blobs := filepath.Join(dir, "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, p := range e.paths {
		keep[filepath.Base(p)] = true
		full := filepath.Join(dir, filepath.FromSlash(p))
		if sameFile(full, e.blobs[p]) {
			continue
		}
		data := e.blobs[p]
		if err := writeAtomic(full, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
			return err
		}
	}
	if err := syncDir(blobs); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, ManifestName), func(w io.Writer) error { _, err := w.Write(e.manifest); return err }); err != nil {
		return err
	}
	// The new manifest is in place: drop what it does not name, and what
	// crashed saves left.
	entries, err := os.ReadDir(blobs)
	if err != nil {
		return err
	}
	for _, en := range entries {
		name := en.Name()
		if keep[name] || en.IsDir() {
			continue
		}
		if isBlobName(name) || strings.Contains(name, tmpMark) {
			if err := os.Remove(filepath.Join(blobs, name)); err != nil {
				return err
			}
		}
	}
	for _, en := range mustReadDir(dir) {
		if strings.HasPrefix(en.Name(), "."+ManifestName+tmpMark) {
			os.Remove(filepath.Join(dir, en.Name()))
		}
	}
	return syncDir(blobs)
}

func mustReadDir(dir string) []os.DirEntry {
	entries, _ := os.ReadDir(dir)
	return entries
}

// isBlobName reports whether name is a blob's file name.
func isBlobName(name string) bool {
	sum, ext, ok := strings.Cut(name, ".")
	return ok && (ext == "arrows" || ext == "bin") && checkSum(sum) == nil
}

// sameFile reports whether the file path holds data.
func sameFile(path string, data []byte) bool {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() || st.Size() != int64(len(data)) {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	want := sha256.Sum256(data)
	return hex.EncodeToString(h.Sum(nil)) == hex.EncodeToString(want[:])
}

// LoadDir loads a model saved by SaveDir. Options: WithRegistry,
// WithLimits, WithAllocator.
func LoadDir(dir string, opts ...Option) (*Model, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	m, err := loadDir(dir, c)
	if err != nil {
		return nil, fmt.Errorf("persist: load %s: %w", dir, err)
	}
	return m, nil
}

func loadDir(dir string, c config) (*Model, error) {
	mb, err := readFileLimited(filepath.Join(dir, ManifestName), c.lim.MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	m, err := decodeManifest(mb, c.lim)
	if err != nil {
		return nil, err
	}
	return load(m, func(sum string, ref blobRef) ([]byte, error) {
		// ref.Path is "blobs/<sha256>.<ext>" (checkManifest): no way out
		// of dir.
		return readFileSized(filepath.Join(dir, filepath.FromSlash(ref.Path)), ref.Size)
	}, c)
}

// readFileLimited reads the file path, refusing more than limit bytes.
func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := readAllLimited(f, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrLimit, filepath.Base(path), err)
	}
	return b, nil
}

// readFileSized reads the file path, which must have size bytes.
func readFileSized(path string, size int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch {
	case st.Size() < size:
		return nil, fmt.Errorf("%w: %d of %d bytes", errTruncated, st.Size(), size)
	case st.Size() > size:
		return nil, fmt.Errorf("%d bytes, the manifest says %d", st.Size(), size)
	}
	return readExactly(f, size)
}
