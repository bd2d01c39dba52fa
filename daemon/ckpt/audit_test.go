package ckpt

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Junk in the checkpoint directory: files that look almost like
// checkpoints, a directory and a symbolic link named like one (FS.ReadDir
// lists regular files only: they are not checkpoints). Latest loads the
// newest real one, Save numbers above it, and neither Save's prune nor
// Latest removes junk.
func TestAuditJunkInDirectory(t *testing.T) {
	dir := t.TempDir()
	saveTwo(t, Options{Log: discardLog()}, dir)
	junk := []string{
		"ckpt-000000000003.pst.bak", "ckpt-000000000003.pst~", "ckpt-3.pstx", "xckpt-000000000004.pst",
		"ckpt-.pst", "ckpt--00000000005.pst", "ckpt-+00000000005.pst", "ckpt-0x0000000006.pst", "README", ".hidden",
	}
	for _, name := range junk {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, fileName(7)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, fileName(8))); err != nil {
		t.Fatal(err)
	}
	log, buf := newLog()
	st, err := Open(dir, Options{Log: log, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	l, err := st.Latest()
	if err != nil || l.Info.Seq != 2 {
		t.Fatalf("Latest: %v, %+v; want checkpoint 2", err, l)
	}
	if strings.Contains(buf.String(), "skipped") {
		t.Errorf("log %q; want nothing skipped (no junk is a regular checkpoint file)", buf)
	}
	for i := range 3 {
		in, err := st.Save(t.Context(), fitted(t, 30, 4), Meta{Batches: 9})
		if err != nil || in.Seq != int64(3+i) {
			t.Fatalf("Save %d with junk around: %+v, %v; want seq %d", i, in, err, 3+i)
		}
	}
	l, err = st.Latest()
	if err != nil || l.Info.Seq != 5 || l.Meta.Batches != 9 {
		t.Fatalf("Latest after the saves: %v, %+v; want checkpoint 5", err, l)
	}
	for _, name := range []string{fileName(7), fileName(8)} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v; want it left alone", name, err)
		}
	}
	for _, name := range junk {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("junk %s: %v; want it left alone", name, err)
		}
	}
}

// A file named like a checkpoint with the highest sequence number that a
// name can hold (18 digits) must not make Save write checkpoints that List
// and Latest cannot see: a Save reported durable, invisible at the next
// start, is an acknowledged input lost.
func TestAuditHighestSeqName(t *testing.T) {
	dir := t.TempDir()
	st := saveTwo(t, Options{Log: discardLog(), Keep: 3}, dir)
	if err := os.WriteFile(filepath.Join(dir, "ckpt-999999999999999999.pst"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := st.Save(t.Context(), fitted(t, 30, 4), Meta{Batches: 3})
	if err == nil {
		infos, lerr := st.List()
		if lerr != nil {
			t.Fatal(lerr)
		}
		if !slices.ContainsFunc(infos, func(i Info) bool { return i.Seq == in.Seq }) {
			t.Fatalf("Save returned %+v, nil, but List does not see it (%+v): a durable checkpoint that no start loads", in, infos)
		}
		return
	}
	if !strings.Contains(err.Error(), "999999999999999999") {
		t.Errorf("Save: %v; want an error naming the highest file", err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*ckpt-*"))
	for _, n := range names {
		if _, ok := parseName(filepath.Base(n)); !ok && !strings.HasSuffix(n, "999999999999999999.pst") {
			t.Errorf("Save left %s, a file no List sees", n)
		}
	}
}
