package checkpoint

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/penstock-ml/penstock/flow"
)

// FileFingerprint returns the fingerprint of the file path: its absolute
// path, size, modification time and the SHA-256 of its content. The
// content hash makes it safe against a file rewritten within one
// modification-time tick; it costs one read of the file, without
// parsing it (far cheaper than decoding its batches).
func FileFingerprint(path string) ([]byte, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: fingerprint %s: %w", path, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: fingerprint: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checkpoint: fingerprint %s: %w", abs, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("checkpoint: fingerprint %s: %w", abs, err)
	}
	return fmt.Appendf(nil, "file %q size %d mtime %s sha256 %x", abs, st.Size(), st.ModTime().UTC().Format(time.RFC3339Nano), h.Sum(nil)), nil
}

// Fingerprinted returns src with the fingerprint fp (a Fingerprinter):
// for a source read from files, FileFingerprint of each. The returned
// source is a flow.Rewinder where src is one (Replayable as src says).
func Fingerprinted(src flow.Source, fp func() ([]byte, error)) flow.Source {
	f := fingerprinted{Source: src, fp: fp}
	if r, ok := src.(flow.Rewinder); ok {
		return &fingerprintedRewinder{fingerprinted: f, r: r}
	}
	return &f
}

type fingerprinted struct {
	flow.Source
	fp func() ([]byte, error)
}

func (f *fingerprinted) Fingerprint() ([]byte, error) { return f.fp() }

type fingerprintedRewinder struct {
	fingerprinted
	r flow.Rewinder
}

func (f *fingerprintedRewinder) Replayable() bool { return f.r.Replayable() }
func (f *fingerprintedRewinder) Rewind() error    { return f.r.Rewind() }

var (
	_ Fingerprinter = (*fingerprinted)(nil)
	_ flow.Rewinder = (*fingerprintedRewinder)(nil)
)
