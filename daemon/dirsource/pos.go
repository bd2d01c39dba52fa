package dirsource

import (
	"encoding/json"
	"fmt"
	"path/filepath"
)

// position is where the directory stands: just after batch Batch (0-based)
// of file File. Last says that Batch is the file's last batch, so that the
// position covers the whole file (it can move to done/).
type position struct {
	File  string `json:"file"`
	Batch int    `json:"batch"`
	Last  bool   `json:"last,omitempty"`
}

func (p position) encode() []byte {
	b, err := json.Marshal(p)
	if err != nil { // a struct of a string, an int and a bool always marshals
		panic(err)
	}
	return b
}

// decodePosition reads a position that Run sent; name is the source's, for
// errors.
func decodePosition(name string, b []byte) (position, error) {
	var p position
	if err := json.Unmarshal(b, &p); err != nil {
		return position{}, fmt.Errorf("dirsource %q: position %q: %w", name, b, err)
	}
	if p.File == "" || p.File != filepath.Base(p.File) || p.File == "." || p.File == ".." {
		return position{}, fmt.Errorf("dirsource %q: position %q: file %q is not a file name of the directory", name, b, p.File)
	}
	if p.Batch < 0 {
		return position{}, fmt.Errorf("dirsource %q: position %q: batch %d is negative", name, b, p.Batch)
	}
	return p, nil
}

// covers reports whether p covers every batch of file: file sorts before
// p's file, or is p's file and p is at its last batch.
func (p position) covers(file string) bool {
	return file < p.File || file == p.File && p.Last
}
