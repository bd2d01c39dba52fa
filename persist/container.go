package persist

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/penstock-ml/penstock/flow"
)

// A saved model in one file (or []byte) is a tar archive (POSIX ustar,
// PAX where a size needs it) whose first member is manifest.json and whose
// other members are the blobs, named as the manifest says
// ("blobs/<sha256>.arrows"): what a directory holds, in one stream that
// any tar reader (Python's tarfile) opens.

// epoch is the modification time of every member, so that a model saves
// to the same bytes every time.
var epoch = time.Unix(0, 0).UTC()

// writeTar writes e as a tar archive to w.
func writeTar(w io.Writer, e *encoded) error {
	tw := tar.NewWriter(w)
	put := func(name string, data []byte) error {
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatUnknown}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put(ManifestName, e.manifest); err != nil {
		return err
	}
	for _, p := range e.paths {
		if err := put(p, e.blobs[p]); err != nil {
			return err
		}
	}
	return tw.Close()
}

// readTar reads a saved model from the tar archive r: the manifest, which
// must come first, then the blobs it declares, each once and of its
// declared size (a member of another name, type or size is an error).
// Where r reads whole (a *bytes.Reader of it), blobs are slices of whole,
// not copies.
func readTar(r io.Reader, whole []byte, c config) (*Model, error) {
	br, _ := r.(*bytes.Reader)
	tr := tar.NewReader(r)
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("%w: not a saved model (a tar archive whose first member is %s): %w", ErrFormat, ManifestName, noEOF(err))
	}
	if h.Name != ManifestName || h.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("%w: the first member is %q, want the file %s", ErrFormat, h.Name, ManifestName)
	}
	if h.Size > c.lim.MaxManifestBytes {
		return nil, fmt.Errorf("%w: the manifest has %d bytes, over the limit of %d (Limits.MaxManifestBytes)", ErrLimit, h.Size, c.lim.MaxManifestBytes)
	}
	mb, err := readExactly(tr, h.Size)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFormat, ManifestName, err)
	}
	m, err := decodeManifest(mb, c.lim)
	if err != nil {
		return nil, err
	}
	byPath := map[string]string{}
	for sum, b := range m.Blobs {
		byPath[b.Path] = sum
	}
	got := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: after %d blobs: %w", ErrFormat, len(got), noEOF(err))
		}
		sum, ok := byPath[h.Name]
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: member %q is not a blob of the manifest", ErrFormat, h.Name)
		case h.Typeflag != tar.TypeReg:
			return nil, fmt.Errorf("%w: member %q is not a regular file", ErrFormat, h.Name)
		case got[sum] != nil:
			return nil, fmt.Errorf("%w: member %q appears twice", ErrFormat, h.Name)
		case h.Size != m.Blobs[sum].Size:
			return nil, fmt.Errorf("%w: member %q has %d bytes, the manifest says %d", ErrFormat, h.Name, h.Size, m.Blobs[sum].Size)
		}
		var b []byte
		if br != nil && whole != nil {
			// The tar reader has read the header and nothing more: the
			// data starts here (and the next Next seeks past it).
			at := int64(len(whole)) - int64(br.Len())
			if h.Size > int64(len(whole))-at {
				return nil, fmt.Errorf("%w: blob %s: %w: %d of %d bytes", ErrFormat, h.Name, errTruncated, int64(len(whole))-at, h.Size)
			}
			b = whole[at : at+h.Size : at+h.Size]
		} else if b, err = readExactly(tr, h.Size); err != nil {
			return nil, fmt.Errorf("%w: blob %s: %w", ErrFormat, h.Name, err)
		}
		got[sum] = b
	}
	return load(m, func(sum string, ref blobRef) ([]byte, error) {
		b, ok := got[sum]
		if !ok {
			return nil, errors.New("missing from the archive")
		}
		return b, nil
	}, c)
}

// readExactly reads n bytes of r (n already checked against a limit);
// fewer is an error wrapping errTruncated.
func readExactly(r io.Reader, n int64) ([]byte, error) {
	var buf bytes.Buffer
	// Grow as the data comes, so that a size that lies costs nothing.
	got, err := io.CopyN(&buf, r, n)
	if err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %d of %d bytes", errTruncated, got, n)
		}
		return nil, err
	}
	if got != n {
		return nil, fmt.Errorf("%w: %d of %d bytes", errTruncated, got, n)
	}
	return buf.Bytes(), nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", errTruncated, io.ErrUnexpectedEOF)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", errTruncated, err)
	}
	return err
}

// Marshal saves the tree of s to bytes (the single-file form: see
// SaveFile). Options: WithRegistry, WithExtra, WithAllocator.
func Marshal(s flow.Step, opts ...Option) ([]byte, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	e, err := encode(s, c)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	size := len(e.manifest) + 2048
	for _, b := range e.blobs {
		size += len(b) + 1024
	}
	buf.Grow(size)
	if err := writeTar(&buf, e); err != nil {
		return nil, fmt.Errorf("persist: save: %w", err)
	}
	return buf.Bytes(), nil
}

// Unmarshal loads a model saved by Marshal or SaveFile. Options:
// WithRegistry, WithLimits, WithAllocator.
func Unmarshal(b []byte, opts ...Option) (*Model, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return readTar(bytes.NewReader(b), b, c)
}
