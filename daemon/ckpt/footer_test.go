package ckpt

import (
	"bytes"
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/persist"
)

// A checkpoint file is also a saved model: persist (and tar tools) read it,
// the footer being after the archive's end.
func TestCheckpointIsAPersistFile(t *testing.T) {
	st, err := Open(t.TempDir(), Options{Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Save(t.Context(), fitted(t, 4, 2), Meta{Batches: 9})
	if err != nil {
		t.Fatal(err)
	}
	m, err := persist.LoadFile(info.Path)
	if err != nil {
		t.Fatalf("persist.LoadFile of a checkpoint: %v", err)
	}
	if mean, cols := meanOf(t, m); mean != 5 || cols != 2 {
		t.Errorf("persist.LoadFile: mean %v over %d columns; want 5 over 2", mean, cols)
	}
	if meta, err := decodeMeta(m.Extra[MetaName]); err != nil || meta.Batches != 9 {
		t.Errorf("its meta: %+v, %v; want batches 9", meta, err)
	}
}

func TestUnseal(t *testing.T) {
	archive := []byte("an archive")
	file := append(bytes.Clone(archive), footer(archive)...)
	if got, err := unseal(file); err != nil || !bytes.Equal(got, archive) {
		t.Fatalf("unseal: %q, %v; want %q", got, err, archive)
	}
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"short", file[:footerBytes-1], "too short"},
		{"cut", file[:len(file)-1], "truncated"},
		{"longer", append([]byte("x"), file...), "the footer says 10 bytes of archive, the file has 11"},
		{"flipped", append([]byte("An archive"), file[len(archive):]...), "SHA-256"},
	} {
		if _, err := unseal(tc.file); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: unseal: %v; want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// FuzzUnseal: unseal never panics, and what it accepts ends in the footer
// of what it returns.
func FuzzUnseal(f *testing.F) {
	for _, a := range []string{"", "an archive", strings.Repeat("z", 600)} {
		f.Add(append([]byte(a), footer([]byte(a))...))
	}
	f.Add([]byte(footerMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		archive, err := unseal(b)
		if err != nil {
			return
		}
		if !bytes.Equal(b, append(bytes.Clone(archive), footer(archive)...)) {
			t.Fatalf("unseal accepted %q as %q, whose file is another", b, archive)
		}
	})
}
