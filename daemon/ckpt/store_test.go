package ckpt

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/persist"
)

func seqs(is []Info) []int64 {
	var s []int64
	for _, i := range is {
		s = append(s, i.Seq)
	}
	return s
}

func TestSaveLatestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, Options{Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	meta := Meta{
		Batches:   42,
		Positions: map[string][]byte{"http": []byte(`{"record":7,"batch":1}`), "dir": {0, 1, 2}},
		Version:   3,
		Time:      time.Date(2026, 12, 1, 22, 0, 0, 123456789, time.FixedZone("x", 3600)),
		Extra:     map[string]string{"rng": "seeded"},
	}
	info, err := st.Save(t.Context(), fitted(t, 5, 3), meta)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "ckpt-000000000001.pst"); info.Seq != 1 || info.Path != want {
		t.Errorf("Save: seq %d, path %s; want 1, %s", info.Seq, info.Path, want)
	}
	fi, err := os.Stat(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != info.Bytes || info.Took <= 0 {
		t.Errorf("Save: Bytes %d, Took %v; want the file's size %d and a positive duration", info.Bytes, info.Took, fi.Size())
	}
	l, err := st.Latest()
	if err != nil {
		t.Fatal(err)
	}
	want := meta
	want.Time = meta.Time.UTC()
	if !reflect.DeepEqual(l.Meta, want) {
		t.Errorf("Latest: meta %+v; want %+v", l.Meta, want)
	}
	if !l.Meta.Time.Equal(meta.Time) {
		t.Errorf("Latest: time %v; want %v", l.Meta.Time, meta.Time)
	}
	if mean, cols := meanOf(t, l.Model); mean != 6 || cols != 3 {
		t.Errorf("Latest: mean %v over %d columns; want 6 over 3", mean, cols)
	}
	if l.Info.Seq != 1 || l.Info.Path != info.Path || l.Info.Bytes != info.Bytes {
		t.Errorf("Latest: info %+v; want seq 1, path %s, %d bytes", l.Info, info.Path, info.Bytes)
	}
}

func TestSaveSetsZeroTime(t *testing.T) {
	st, err := Open("/c", Options{FS: NewFaultFS(), Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if _, err := st.Save(t.Context(), fitted(t, 0, 1), Meta{}); err != nil {
		t.Fatal(err)
	}
	l, err := st.Latest()
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Meta.Time; got.Before(before.Add(-time.Second)) || got.After(time.Now().Add(time.Second)) {
		t.Errorf("meta time %v; want the time of the save (about %v)", got, before)
	}
}

func TestSaveExtraOptions(t *testing.T) {
	st, err := Open("/c", Options{FS: NewFaultFS(), Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	p := fitted(t, 0, 1)
	if _, err := st.Save(t.Context(), p, Meta{}, persist.WithExtra("note", []byte("hi"))); err != nil {
		t.Fatal(err)
	}
	l, err := st.Latest()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(l.Model.Extra["note"]); got != "hi" {
		t.Errorf("extra note %q; want %q", got, "hi")
	}
	if _, err := st.Save(t.Context(), p, Meta{}, persist.WithExtra(MetaName, []byte("{}"))); err == nil || !strings.Contains(err.Error(), MetaName) {
		t.Errorf("Save with an extra named %q: error %v; want one naming it", MetaName, err)
	}
}

func TestSaveCanceled(t *testing.T) {
	f := NewFaultFS()
	st, err := Open("/c", Options{FS: f, Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	cause := errors.New("shutting down")
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(cause)
	calls := f.Calls()
	if _, err := st.Save(ctx, fitted(t, 0, 1), Meta{}); !errors.Is(err, cause) {
		t.Errorf("Save with a canceled context: %v; want its cause", err)
	}
	if got := f.Calls() - calls; got != 0 {
		t.Errorf("Save with a canceled context made %d FS calls; want 0", got)
	}
}

func TestOpenRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  string
		o    Options
		want string
	}{
		{"empty dir", "", Options{}, "empty directory"},
		{"negative keep", "/c", Options{Keep: -1}, "Keep -1"},
		{"negative max", "/c", Options{MaxBytes: -5}, "MaxBytes -5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.FS = NewFaultFS()
			if _, err := Open(tc.dir, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestSeqContinuesAfterHighest(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, Options{Keep: 10, Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	p := fitted(t, 0, 1)
	for range 3 {
		if _, err := st.Save(t.Context(), p, Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	// Files that are not checkpoints are ignored; a checkpoint of a higher
	// seq (an older program, a copy) moves the sequence on.
	for _, name := range []string{"README", "ckpt-x.pst", "ckpt-.pst", "ckpt-1.pst.bak", "ckpt-000000000009.pst"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st2, err := Open(dir, Options{Keep: 10, Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	info, err := st2.Save(t.Context(), p, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Seq != 10 {
		t.Errorf("Save after ckpt-…9 on disk: seq %d; want 10", info.Seq)
	}
	is, err := st2.List()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(is), []int64{10, 9, 3, 2, 1}; !slices.Equal(got, want) {
		t.Errorf("List: seqs %v; want %v", got, want)
	}
}

func TestPruneKeeps(t *testing.T) {
	for _, keep := range []int{0, 1, 2, 5} {
		want := keep
		if keep == 0 {
			want = DefaultKeep
		}
		f := NewFaultFS()
		st, err := Open("/c", Options{FS: f, Keep: keep, Log: discardLog()})
		if err != nil {
			t.Fatal(err)
		}
		p := fitted(t, 0, 1)
		for i := range 7 {
			if _, err := st.Save(t.Context(), p, Meta{Batches: int64(i + 1)}); err != nil {
				t.Fatal(err)
			}
		}
		is, err := st.List()
		if err != nil {
			t.Fatal(err)
		}
		var wantSeqs []int64
		for s := int64(7); s > int64(7-want); s-- {
			wantSeqs = append(wantSeqs, s)
		}
		if got := seqs(is); !slices.Equal(got, wantSeqs) {
			t.Errorf("Keep %d after 7 saves: seqs %v; want %v", keep, got, wantSeqs)
		}
		// Oldest first: the first Remove of the last save is the oldest.
		var removes []string
		for _, c := range f.Trace() {
			if strings.HasPrefix(c, string(OpRemove)) {
				removes = append(removes, c)
			}
		}
		if len(removes) > 1 && removes[0] > removes[1] {
			t.Errorf("Keep %d: removes %v; want the oldest first", keep, removes)
		}
	}
}

func TestPruneOrderOldestFirst(t *testing.T) {
	dir := t.TempDir()
	// Five checkpoints on disk, then a store keeping 2: one save removes four,
	// oldest first.
	f := NewFaultFS()
	st, err := Open(dir, Options{FS: f, Keep: 10, Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	p := fitted(t, 0, 1)
	for range 5 {
		if _, err := st.Save(t.Context(), p, Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	st2, err := Open(dir, Options{FS: f, Keep: 2, Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	n := f.Calls()
	if _, err := st2.Save(t.Context(), p, Meta{}); err != nil {
		t.Fatal(err)
	}
	var removes []string
	for _, c := range f.Trace()[n:] {
		if name, ok := strings.CutPrefix(c, string(OpRemove)+" "); ok {
			removes = append(removes, filepath.Base(name))
		}
	}
	want := []string{fileName(1), fileName(2), fileName(3), fileName(4)}
	if !slices.Equal(removes, want) {
		t.Errorf("removed %v; want %v", removes, want)
	}
}

func TestPruneFailureLogged(t *testing.T) {
	f := NewFaultFS()
	log, buf := newLog()
	st, err := Open("/c", Options{FS: f, Keep: 1, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	p := fitted(t, 0, 1)
	if _, err := st.Save(t.Context(), p, Meta{}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk says no")
	f.FailAt(OpRemove, 1, boom)
	if _, err := st.Save(t.Context(), p, Meta{}); err != nil {
		t.Fatalf("Save whose prune fails: %v; want nil (the checkpoint is durable)", err)
	}
	if out := buf.String(); !strings.Contains(out, "old checkpoint not removed") || !strings.Contains(out, fileName(1)) || !strings.Contains(out, "disk says no") {
		t.Errorf("log %q; want a line naming %s and the reason", out, fileName(1))
	}
	if _, err := st.Save(t.Context(), p, Meta{}); err != nil {
		t.Fatal(err)
	}
	is, err := st.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(is); !slices.Equal(got, []int64{3}) {
		t.Errorf("after the next save: seqs %v; want [3]", got)
	}
}

func TestLatestEmpty(t *testing.T) {
	st, err := Open(t.TempDir(), Options{Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Latest(); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("Latest of an empty directory: %v; want ErrNoCheckpoint", err)
	}
}

// A registry that lacks the saved step types makes every checkpoint fail
// to load; the error says so (persist.ErrUnknownType), not "damaged".
func TestLatestWrongRegistry(t *testing.T) {
	dir := t.TempDir()
	saveTwo(t, Options{Log: discardLog()}, dir)
	log, buf := newLog()
	st, err := Open(dir, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Latest(persist.WithRegistry(persist.NewRegistry()))
	if !errors.Is(err, ErrNoValidCheckpoint) || !errors.Is(err, persist.ErrUnknownType) || errors.Is(err, persist.ErrFormat) {
		t.Errorf("Latest with an empty registry: %v; want ErrNoValidCheckpoint and persist.ErrUnknownType", err)
	}
	if got := strings.Count(buf.String(), "checkpoint skipped"); got != 2 {
		t.Errorf("log has %d skipped lines; want 2:\n%s", got, buf)
	}
}

func TestLatestNoneValid(t *testing.T) {
	dir := t.TempDir()
	log, buf := newLog()
	st, err := Open(dir, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{fileName(1), fileName(2)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("not a tar"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err = st.Latest()
	if !errors.Is(err, ErrNoValidCheckpoint) || errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("Latest with only bad files: %v; want ErrNoValidCheckpoint (not ErrNoCheckpoint)", err)
	}
	if err != nil && !strings.Contains(err.Error(), fileName(2)) {
		t.Errorf("error %q; want it to name the newest, %s", err, fileName(2))
	}
	if got := strings.Count(buf.String(), "checkpoint skipped"); got != 2 {
		t.Errorf("log has %d skipped lines; want 2:\n%s", got, buf)
	}
}

// saveTwo saves checkpoints 1 (mean 1) and 2 (mean 11) in a new store of dir.
func saveTwo(t *testing.T, o Options, dir string) *Store {
	t.Helper()
	st, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, base := range []float32{0, 10} {
		if _, err := st.Save(t.Context(), fitted(t, base, 4), Meta{Batches: int64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func TestLatestSkipsBadNewest(t *testing.T) {
	write := func(t *testing.T, path string, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	metaWith := func(j string) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			b, err := persist.Marshal(fitted(t, 20, 4), persist.WithExtra(MetaName, []byte(j)))
			if err != nil {
				t.Fatal(err)
			}
			write(t, path, append(b, footer(b)...))
		}
	}
	const big = 1 << 16 // over the size of checkpoint 1, the limit of "too big"
	for _, tc := range []struct {
		name   string
		max    int64
		spoil  func(t *testing.T, path string)
		reason string
	}{
		{"truncated", 0, func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"footer cut", 0, func(t *testing.T, path string) {
			edit(t, path, func(b []byte) []byte { return b[:len(b)-1] })
		}, "truncated"},
		{"empty", 0, func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, "too short"},
		{"flipped byte", 0, func(t *testing.T, path string) { flip(t, path, -1) }, "damaged"},
		{"too big", big, func(t *testing.T, path string) { write(t, path, make([]byte, big+1)) },
			"65537 bytes, over the limit of 65536"},
		{"no meta", 0, func(t *testing.T, path string) {
			b, err := persist.Marshal(fitted(t, 20, 4))
			if err != nil {
				t.Fatal(err)
			}
			write(t, path, append(b, footer(b)...))
		}, "not a daemon checkpoint"},
		{"no footer", 0, func(t *testing.T, path string) {
			b, err := persist.Marshal(fitted(t, 20, 4), persist.WithExtra(MetaName, []byte(`{"format_version":1}`)))
			if err != nil {
				t.Fatal(err)
			}
			write(t, path, b)
		}, "not written by ckpt"},
		// persist does not checksum its manifest: '2' → '3' (one bit) in the
		// scalar "n" loads as a scaler fitted on 3 rows. The footer catches it.
		{"manifest digit flipped", 0, func(t *testing.T, path string) {
			edit(t, path, func(b []byte) []byte {
				i := bytes.Index(b, []byte(`"int": 2`))
				if i < 0 {
					t.Fatalf("no scalar n = 2 in the manifest")
				}
				b[i+len(`"int": `)] ^= 0x01
				return b
			})
		}, "damaged"},
		// Under a footer that matches, persist's own checks still run.
		{"blob flipped, footer resealed", 0, func(t *testing.T, path string) {
			edit(t, path, func(b []byte) []byte {
				archive := b[:len(b)-footerBytes]
				r := bytes.NewReader(archive)
				tr := tar.NewReader(r)
				for {
					h, err := tr.Next()
					if err != nil {
						t.Fatalf("no blob found in the archive: %v", err)
					}
					if strings.HasPrefix(h.Name, "blobs/") && h.Size > 0 {
						archive[len(archive)-r.Len()+int(h.Size)/2] ^= 0x10 // in its data
						return append(archive, footer(archive)...)
					}
				}
			})
		}, "invalid saved model"},
		{"unknown meta field", 0, metaWith(`{"format_version":1,"batches":3,"positions":null,"version":0,"time":"2026-01-01T00:00:00Z","shards":4}`), "unknown member"},
		{"newer meta", 0, metaWith(`{"format_version":2,"batches":3,"positions":null,"version":0,"time":"2026-01-01T00:00:00Z"}`), "newer"},
		{"bad meta", 0, metaWith(`{"format_version":1,"batches":-3,"positions":null,"version":0,"time":"2026-01-01T00:00:00Z"}`), "batches -3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			saveTwo(t, Options{Log: discardLog()}, dir)
			bad := filepath.Join(dir, fileName(2))
			tc.spoil(t, bad)
			log, buf := newLog()
			st, err := Open(dir, Options{Log: log, MaxBytes: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			l, err := st.Latest()
			if err != nil {
				t.Fatalf("Latest: %v; want checkpoint 1", err)
			}
			if mean, _ := meanOf(t, l.Model); l.Info.Seq != 1 || l.Meta.Batches != 1 || mean != 1 {
				t.Errorf("Latest: seq %d, batches %d, mean %v; want 1, 1, 1", l.Info.Seq, l.Meta.Batches, mean)
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "checkpoint skipped") || !strings.Contains(lines[0], bad) || !strings.Contains(lines[0], tc.reason) {
				t.Errorf("log %q; want one line: skipped, %s, reason containing %q", buf, bad, tc.reason)
			}
		})
	}
}

// edit rewrites the file path with what change makes of its bytes.
func edit(t *testing.T, path string, change func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, change(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

// flip flips one bit of the byte at off (negative: the middle) of path.
func flip(t *testing.T, path string, off int) {
	t.Helper()
	edit(t, path, func(b []byte) []byte {
		if off < 0 {
			off = len(b) / 2
		}
		b[off] ^= 0x10
		return b
	})
}

// A flipped bit anywhere in the newest checkpoint, tar padding and header
// fields included, makes Latest skip it for the previous one.
func TestLatestFlippedAnywhere(t *testing.T) {
	dir := t.TempDir()
	st := saveTwo(t, Options{Log: discardLog()}, dir)
	path := filepath.Join(dir, fileName(2))
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	step := max(1, len(orig)/400)
	offs := []int{len(orig) - 1} // the footer's last byte
	for off := 0; off < len(orig); off += step {
		offs = append(offs, off)
	}
	for _, off := range offs {
		flip(t, path, off)
		l, err := st.Latest()
		if err != nil {
			t.Fatalf("byte %d of %d flipped: Latest: %v", off, len(orig), err)
		}
		if mean, _ := meanOf(t, l.Model); l.Info.Seq != 1 || mean != 1 || l.Meta.Batches != 1 {
			t.Errorf("byte %d of %d flipped: seq %d, mean %v, batches %d; want checkpoint 1", off, len(orig), l.Info.Seq, mean, l.Meta.Batches)
		}
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLatestRefusesBeforeReading(t *testing.T) {
	f := NewFaultFS()
	st := saveTwo(t, Options{FS: f, Log: discardLog(), Keep: 3}, "/c")
	is, err := st.List()
	if err != nil {
		t.Fatal(err)
	}
	// A store whose limit admits checkpoint 1 only: 2 is made bigger.
	w, err := f.Create(is[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, is[1].Bytes+1)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st2, err := Open("/c", Options{FS: f, MaxBytes: is[1].Bytes, Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	n := f.Calls()
	l, err := st2.Latest()
	if err != nil {
		t.Fatal(err)
	}
	if l.Info.Seq != 1 {
		t.Errorf("Latest: seq %d; want 1", l.Info.Seq)
	}
	for _, c := range f.Trace()[n:] {
		if c == string(OpOpen)+" "+is[0].Path {
			t.Errorf("Latest opened %s, which is over MaxBytes; want it refused before reading", is[0].Path)
		}
	}
}

func TestLatestRemovesLeftoverTemp(t *testing.T) {
	f := NewFaultFS()
	log, buf := newLog()
	var tmpSeen, finalSeen string
	st, err := Open("/c", Options{FS: f, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Save(t.Context(), fitted(t, 0, 2), Meta{Batches: 1}); err != nil {
		t.Fatal(err)
	}
	// The second save is killed in its hook: nothing after it runs.
	st.beforeRename = func(tmp, final string) error {
		tmpSeen, finalSeen = tmp, final
		f.Halt(0)
		return errors.New("killed")
	}
	if _, err := st.Save(t.Context(), fitted(t, 10, 2), Meta{Batches: 2}); err == nil {
		t.Fatal("Save killed in its hook: nil error")
	}
	if want := "/c/" + fileName(2); finalSeen != want || !isTmp(filepath.Base(tmpSeen)) || filepath.Dir(tmpSeen) != "/c" {
		t.Errorf("hook got (%q, %q); want a temporary name in /c and %q", tmpSeen, finalSeen, want)
	}
	f.Restart()
	es, err := f.ReadDir("/c")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(es, func(e Entry) bool { return e.Name == filepath.Base(tmpSeen) }) {
		t.Fatalf("after the kill: %v; want the temporary file %s left", es, tmpSeen)
	}
	st2, err := Open("/c", Options{FS: f, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	l, err := st2.Latest()
	if err != nil {
		t.Fatal(err)
	}
	if l.Meta.Batches != 1 {
		t.Errorf("Latest: batches %d; want 1", l.Meta.Batches)
	}
	es, err = f.ReadDir("/c")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Name != fileName(1) {
		t.Errorf("after Latest: %v; want only %s", es, fileName(1))
	}
	if out := buf.String(); !strings.Contains(out, "leftover temporary file removed") || !strings.Contains(out, tmpSeen) {
		t.Errorf("log %q; want a line naming the removed %s", out, tmpSeen)
	}
	info, err := st2.Save(t.Context(), fitted(t, 10, 2), Meta{Batches: 2})
	if err != nil || info.Seq != 2 {
		t.Errorf("Save after recovery: seq %d, %v; want 2, nil", info.Seq, err)
	}
}

// At the hook, the temporary file holds the whole checkpoint and the
// final name does not exist yet; a hook's error stops the save, leaving
// the old checkpoint and no temporary file.
func TestBeforeRename(t *testing.T) {
	dir := t.TempDir()
	st := saveTwo(t, Options{Log: discardLog()}, dir)
	stop := errors.New("paused by the test")
	st.beforeRename = func(tmp, final string) error {
		m, err := persist.LoadFile(tmp)
		if err != nil {
			t.Errorf("at the hook, %s does not load: %v", tmp, err)
		} else if _, ok := m.Extra[MetaName]; !ok {
			t.Errorf("at the hook, %s has no meta", tmp)
		}
		if _, err := os.Stat(final); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("at the hook, %s: %v; want it not to exist", final, err)
		}
		return stop
	}
	if _, err := st.Save(t.Context(), fitted(t, 20, 4), Meta{Batches: 3}); !errors.Is(err, stop) {
		t.Errorf("Save: %v; want the hook's error", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{fileName(1), fileName(2)}; !slices.Equal(names, want) {
		t.Errorf("directory after the stopped save: %v; want %v", names, want)
	}
	l, err := st.Latest()
	if err != nil || l.Meta.Batches != 2 {
		t.Errorf("Latest: %v; want checkpoint 2", err)
	}
}

// Each FS call of a Save fails once, in turn: the Save returns that error,
// leaves no temporary file, and Latest loads the previous checkpoint (or,
// where it failed after the rename, the new one), whole.
func TestSaveFailures(t *testing.T) {
	boom := errors.New("injected")
	for _, op := range []Op{OpReadDir, OpCreate, OpWrite, OpSync, OpClose, OpRename, OpSyncDir} {
		t.Run(string(op), func(t *testing.T) {
			f := NewFaultFS()
			st := saveTwo(t, Options{FS: f, Log: discardLog(), Keep: 2}, "/c")
			f.FailAt(op, 1, boom)
			_, err := st.Save(t.Context(), fitted(t, 20, 4), Meta{Batches: 3})
			if !errors.Is(err, boom) {
				t.Fatalf("Save with %s failing: %v; want the injected error", op, err)
			}
			if !strings.Contains(err.Error(), "/c") {
				t.Errorf("error %q; want it to name the directory", err)
			}
			es, err := f.ReadDir("/c")
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if isTmp(e.Name) {
					t.Errorf("after the failed save: temporary file %s left", e.Name)
				}
			}
			l, err := st.Latest()
			if err != nil {
				t.Fatalf("Latest: %v", err)
			}
			want := int64(2)
			if op == OpSyncDir {
				want = 3 // renamed: complete, not known durable
			}
			if mean, _ := meanOf(t, l.Model); l.Meta.Batches != want || mean != float64(want-1)*10+1 {
				t.Errorf("Latest: batches %d, mean %v; want checkpoint %d, whole", l.Meta.Batches, mean, want)
			}
			// The next save works and takes a new seq.
			wantSeq := int64(4)
			if op == OpReadDir {
				wantSeq = 3 // failed before it took a seq
			}
			info, err := st.Save(t.Context(), fitted(t, 30, 4), Meta{Batches: 4})
			if err != nil || info.Seq != wantSeq {
				t.Errorf("next Save: seq %d, %v; want %d, nil", info.Seq, err, wantSeq)
			}
		})
	}
}
