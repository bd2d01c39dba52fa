package persist

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// The manifest carries its own checksum (format version 2): its last
// member is "manifest_sha256", whose value is the SHA-256, in lower-case
// hex, of every byte of manifest.json before the value's opening quote.
// The file ends with that value and `"\n}`, so the 68 bytes after the
// covered ones are fixed by the digest: a check compares them whole. The
// checksum lives in the manifest (not in an entry of its own) so that the
// manifest stays one file, the one atomic commit point of a directory, and
// so that a directory, a file and Marshal's bytes hold the same manifest.

// sumKey is what the covered bytes of a sealed manifest end with.
const sumKey = `"manifest_sha256": `

// sumTail is the length of what follows the covered bytes: the quoted
// digest, a newline and the closing brace.
const sumTail = 1 + 2*sha256.Size + 1 + 2

// What a manifest checksum error says.
const (
	errSumMismatch = "manifest checksum mismatch"
	errSumMissing  = "manifest checksum missing"
)

// sealManifest returns the JSON object b, which has no manifest_sha256
// member, with that member added last and set to the checksum.
func sealManifest(b []byte) ([]byte, error) {
	b = bytes.TrimRight(b, " \t\r\n")
	if len(b) < 2 || b[len(b)-1] != '}' {
		return nil, errors.New("the manifest is not a JSON object")
	}
	body := bytes.TrimRight(b[:len(b)-1], " \t\r\n")
	out := make([]byte, 0, len(body)+len(sumKey)+sumTail+4)
	out = append(out, body...)
	if body[len(body)-1] != '{' {
		out = append(out, ',')
	}
	out = append(out, "\n  "...)
	out = append(out, sumKey...)
	h := sha256.Sum256(out)
	out = append(out, '"')
	out = hex.AppendEncode(out, h[:])
	out = append(out, "\"\n}"...)
	return out, nil
}

// splitSum returns the digest written at the end of the manifest b and the
// bytes it covers; ok is false where b does not end with a manifest_sha256
// member of 64 lower-case hex digits.
func splitSum(b []byte) (sum string, covered []byte, ok bool) {
	if len(b) < len(sumKey)+sumTail {
		return "", nil, false
	}
	covered, tail := b[:len(b)-sumTail], b[len(b)-sumTail:]
	if !bytes.HasSuffix(covered, []byte(sumKey)) || tail[0] != '"' || string(tail[sumTail-3:]) != "\"\n}" {
		return "", nil, false
	}
	sum = string(tail[1 : sumTail-3])
	if checkSum(sum) != nil {
		return "", nil, false
	}
	return sum, covered, true
}

// verifyManifest checks the checksum of the manifest b before anything of
// it is decoded: a manifest that ends with its checksum must match it; one
// that does not is refused unless it is of format version 1, which had
// none (a version-1 manifest is loaded as version 1 loaded it: its blobs
// checked, itself not).
func verifyManifest(b []byte) error {
	if sum, covered, ok := splitSum(b); ok {
		h := sha256.Sum256(covered)
		if got := hex.EncodeToString(h[:]); got != sum {
			return fmt.Errorf("%w: %s: %s: its SHA-256 is %s, its manifest_sha256 says %s (corrupt or edited)", ErrFormat, ManifestName, errSumMismatch, got, sum)
		}
		return nil
	}
	var head struct {
		Version int             `json:"format_version"`
		Sum     json.RawMessage `json:"manifest_sha256"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return fmt.Errorf("%w: %s: %s: it does not end with its manifest_sha256 member, and does not parse: %v", ErrFormat, ManifestName, errSumMissing, err)
	}
	switch {
	case head.Version > FormatVersion && head.Sum == nil:
		// A later format may seal its manifest otherwise: say so, not
		// that it is corrupt.
		return fmt.Errorf("%w: format version %d; this program reads up to %d: update it", ErrNewerFormat, head.Version, FormatVersion)
	case head.Version != 1 || head.Sum != nil:
		return fmt.Errorf("%w: %s: %s: a manifest of format version 2 or later ends with its manifest_sha256 member (the SHA-256 of the bytes before its value: 64 lower-case hex digits in quotes, then a newline and \"}\"); this one, of format version %d, does not (corrupt or edited)", ErrFormat, ManifestName, errSumMissing, head.Version)
	}
	return nil
}

// ResealManifest returns the manifest b, edited by hand, as a save would
// write it, with its checksum (manifest_sha256) computed again: b is
// decoded as a manifest (a member the format does not know is an error),
// any manifest_sha256 in it is dropped, and the manifest is encoded and
// sealed. It is for a deliberate edit (a test that checks what a load
// does with a changed hyperparameter, a repair): a load refuses a
// manifest edited and not resealed. ResealManifest checks nothing else;
// the load does.
func ResealManifest(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("persist: reseal %s: %w", ManifestName, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("persist: reseal %s: data after the JSON document", ManifestName)
	}
	m.Sum = ""
	out, err := json.MarshalIndent(&m, "", "  ")
	if err == nil {
		out, err = sealManifest(out)
	}
	if err != nil {
		return nil, fmt.Errorf("persist: reseal %s: %w", ManifestName, err)
	}
	return out, nil
}
