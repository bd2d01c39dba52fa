package persist

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// SetBeforeRename sets the hook called between writing a temporary file
// and renaming it into place, for tests that simulate a crash there; the
// returned function restores the previous hook.
func SetBeforeRename(f func(tmp, final string) error) (restore func()) {
	old := beforeRename
	beforeRename = f
	return func() { beforeRename = old }
}

// SealManifest returns the manifest b (a JSON object) with its checksum
// member, manifest_sha256, added last (what a save writes), for tests
// that edit a manifest and mean to test what comes after the checksum.
func SealManifest(b []byte) ([]byte, error) { return sealManifest(b) }

// ResealArchive recomputes, in place, the checksum of the manifest of the
// tar archive b (the first member, after a ustar header of 512 bytes),
// for FuzzLoad: a mutation of the manifest then reaches the manifest's
// decoder instead of stopping at its checksum. Input of another shape is
// left as it is.
func ResealArchive(b []byte) {
	if len(b) < 512 {
		return
	}
	size, err := strconv.ParseInt(strings.Trim(string(b[124:136]), " \x00"), 8, 64)
	if err != nil || size < sumTail || size > int64(len(b)-512) {
		return
	}
	m := b[512 : 512+size]
	h := sha256.Sum256(m[:len(m)-sumTail])
	hex.Encode(m[len(m)-sumTail+1:len(m)-3], h[:])
}
