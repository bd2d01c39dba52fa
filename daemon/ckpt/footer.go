package ckpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// A checkpoint file is persist.Marshal's archive followed by a footer:
//
//	magic "PSTCKPT1" (8 bytes) | archive length (8 bytes, big endian) | SHA-256 of the archive (32 bytes)
//
// persist checks every blob against the SHA-256 that the manifest gives,
// but not the manifest itself: a flipped digit of a scalar in it (a
// count, a hyperparameter) would load as another model. The footer covers
// every byte. It comes after the tar archive's end, where tar readers
// (persist.LoadFile among them) do not look, so a checkpoint file is also
// a saved model that persist and tar tools read.
const (
	footerMagic = "PSTCKPT1"
	footerBytes = len(footerMagic) + 8 + sha256.Size
)

// footer returns the footer of archive.
func footer(archive []byte) []byte {
	f := make([]byte, 0, footerBytes)
	f = append(f, footerMagic...)
	f = binary.BigEndian.AppendUint64(f, uint64(len(archive)))
	sum := sha256.Sum256(archive)
	return append(f, sum[:]...)
}

// unseal checks the footer of a checkpoint file's bytes and returns the
// archive before it.
func unseal(file []byte) ([]byte, error) {
	if len(file) < footerBytes {
		return nil, fmt.Errorf("%d bytes, too short for a checkpoint (its footer alone has %d): truncated", len(file), footerBytes)
	}
	archive, f := file[:len(file)-footerBytes], file[len(file)-footerBytes:]
	if !bytes.Equal(f[:len(footerMagic)], []byte(footerMagic)) {
		return nil, fmt.Errorf("no checkpoint footer (%q) at its end: truncated, damaged, or not written by ckpt", footerMagic)
	}
	if n := binary.BigEndian.Uint64(f[len(footerMagic):]); n != uint64(len(archive)) {
		return nil, fmt.Errorf("the footer says %d bytes of archive, the file has %d: damaged", n, len(archive))
	}
	if sum := sha256.Sum256(archive); !bytes.Equal(sum[:], f[len(footerMagic)+8:]) {
		return nil, fmt.Errorf("SHA-256 %x, the footer says %x: damaged", sum, f[len(footerMagic)+8:])
	}
	return archive, nil
}
