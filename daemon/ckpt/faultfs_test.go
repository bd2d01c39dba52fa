package ckpt

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"slices"
	"testing"
)

func mustWrite(t *testing.T, f *FaultFS, name string, data []byte, sync bool) File {
	t.Helper()
	w, err := f.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func read(t *testing.T, f *FaultFS, name string) ([]byte, error) {
	t.Helper()
	r, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func names(t *testing.T, f *FaultFS, dir string) []string {
	t.Helper()
	es, err := f.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, e := range es {
		ns = append(ns, e.Name)
	}
	return ns
}

func newDir(t *testing.T) *FaultFS {
	t.Helper()
	f := NewFaultFS()
	if err := f.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFaultFSCrashForgetsUnsyncedEntries(t *testing.T) {
	f := newDir(t)
	mustWrite(t, f, "/d/a", []byte("aaa"), true) // synced, its directory not
	f.Crash()
	if got := names(t, f, "/d"); len(got) != 0 {
		t.Errorf("after a crash: %v; want no file (the directory was not synced)", got)
	}

	mustWrite(t, f, "/d/a", []byte("aaa"), true)
	if err := f.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	if err := f.Rename("/d/a", "/d/b"); err != nil {
		t.Fatal(err)
	}
	f.Crash()
	if got := names(t, f, "/d"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("after a crash following an unsynced rename: %v; want [a]", got)
	}
	if b, err := read(t, f, "/d/a"); err != nil || string(b) != "aaa" {
		t.Errorf("a: %q, %v; want %q", b, err, "aaa")
	}

	if err := f.Rename("/d/a", "/d/b"); err != nil {
		t.Fatal(err)
	}
	if err := f.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	f.Crash()
	if got := names(t, f, "/d"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("after a synced rename: %v; want [b]", got)
	}

	if err := f.Remove("/d/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := read(t, f, "/d/b"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("b after Remove: %v; want not found", err)
	}
	f.Crash()
	if got := names(t, f, "/d"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("after an unsynced remove: %v; want [b] back", got)
	}
}

func TestFaultFSCrashKeepsAPrefixOfUnsyncedData(t *testing.T) {
	lens := map[int]bool{}
	for seed := range uint64(20) {
		f := newDir(t)
		f.Seed(seed)
		w := mustWrite(t, f, "/d/a", []byte("durable|"), true)
		if err := f.SyncDir("/d"); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("0123456789")); err != nil {
			t.Fatal(err)
		}
		f.Crash()
		b, err := read(t, f, "/d/a")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix([]byte("durable|0123456789"), b) || len(b) < len("durable|") {
			t.Fatalf("seed %d: after a crash %q; want the synced part and a prefix of the rest", seed, b)
		}
		lens[len(b)] = true
		// The same seed keeps the same prefix.
		g := newDir(t)
		g.Seed(seed)
		w = mustWrite(t, g, "/d/a", []byte("durable|"), true)
		if err := g.SyncDir("/d"); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("0123456789")); err != nil {
			t.Fatal(err)
		}
		g.Crash()
		if c, _ := read(t, g, "/d/a"); !bytes.Equal(b, c) {
			t.Errorf("seed %d: %q then %q; want the same prefix for the same seed", seed, b, c)
		}
		// What the crash kept is durable: a second crash keeps it.
		f.Crash()
		if c, _ := read(t, f, "/d/a"); !bytes.Equal(b, c) {
			t.Errorf("seed %d: a second crash changed %q to %q", seed, b, c)
		}
	}
	if len(lens) < 3 {
		t.Errorf("20 seeds kept %d distinct lengths; want the prefix to vary", len(lens))
	}
}

func TestFaultFSHandlesDieWithTheProcess(t *testing.T) {
	for _, restart := range []bool{false, true} {
		f := newDir(t)
		w := mustWrite(t, f, "/d/a", []byte("x"), false)
		if restart {
			f.Restart()
			if b, err := read(t, f, "/d/a"); err != nil || string(b) != "x" {
				t.Errorf("after a restart: %q, %v; want the unsynced %q kept", b, err, "x")
			}
		} else {
			f.Crash()
		}
		if _, err := w.Write([]byte("y")); err == nil {
			t.Errorf("restart %v: a write to a file opened before: nil error", restart)
		}
		if err := w.Sync(); err == nil {
			t.Errorf("restart %v: a sync of a file opened before: nil error", restart)
		}
	}
	f := newDir(t)
	w := mustWrite(t, f, "/d/a", nil, false)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("y")); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("write after Close: %v; want fs.ErrClosed", err)
	}
}

func TestFaultFSFailAtAndHalt(t *testing.T) {
	f := newDir(t)
	boom := errors.New("boom")
	f.FailAt(OpCreate, 2, boom)
	if _, err := f.Create("/d/a"); err != nil {
		t.Fatalf("first Create: %v", err)
	}
	if _, err := f.Create("/d/b"); !errors.Is(err, boom) {
		t.Errorf("second Create: %v; want the injected error", err)
	}
	if got := names(t, f, "/d"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("after a failed Create: %v; want [a] (no effect)", got)
	}
	if _, err := f.Create("/d/c"); err != nil {
		t.Errorf("third Create: %v; want it to work (one failure only)", err)
	}

	f.Halt(2)
	if err := f.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadDir("/d"); err != nil {
		t.Fatal(err)
	}
	if f.Halted() {
		t.Error("halted after the 2 calls allowed; want after the third")
	}
	if err := f.Remove("/d/a"); !errors.Is(err, ErrHalted) {
		t.Errorf("third call after Halt(2): %v; want ErrHalted", err)
	}
	if _, err := f.Open("/d/a"); !errors.Is(err, ErrHalted) || !f.Halted() {
		t.Errorf("fourth call: %v; want ErrHalted", err)
	}
	f.Restart()
	if got := names(t, f, "/d"); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("after Restart: %v; want [a c] (the halted Remove had no effect)", got)
	}
	if n := f.Calls(); n != len(f.Trace()) || n != 10 {
		t.Errorf("Calls %d, %d in the trace; want 10 (%q)", n, len(f.Trace()), f.Trace())
	}
}

func TestFaultFSErrors(t *testing.T) {
	f := newDir(t)
	if _, err := f.Create("/nodir/a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Create in a missing directory: %v; want not found", err)
	}
	if err := f.Rename("/d/none", "/d/b"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Rename of a missing file: %v; want not found", err)
	}
	if err := f.Remove("/d/none"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove of a missing file: %v; want not found", err)
	}
	if _, err := f.ReadDir("/nodir"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadDir of a missing directory: %v; want not found", err)
	}
	if err := f.SyncDir("/nodir"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir of a missing directory: %v; want not found", err)
	}
}
