package ckpt

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestOSFS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	o := OSFS()
	if err := o.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"z", "m"} {
		w, err := o.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(name + name)); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Rename(filepath.Join(dir, "z"), filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if err := o.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	es, err := o.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Entry{{"a", 2}, {"m", 2}}; !reflect.DeepEqual(es, want) {
		t.Errorf("ReadDir: %v; want %v (regular files only, sorted)", es, want)
	}
	r, err := o.Open(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(b) != "zz" {
		t.Errorf("a: %q, %v; want %q", b, err, "zz")
	}
	if err := o.Remove(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if err := o.SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("SyncDir of a missing directory: nil error")
	}
}
