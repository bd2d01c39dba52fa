package ckpt

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// crashSeeds are the FaultFS seeds (the prefixes of unsynced data that a
// crash keeps) each crash point is tried with.
var crashSeeds = []uint64{1, 2, 3, 4}

// crashCheck saves checkpoint 1 through a Store (Keep 1) on a FaultFS f,
// then makes a second Save, through a Store on wrap(f), die before each
// of its FS calls in turn (and once after its last), simulates a crash of
// the machine (or, with kill, only of the process), opens a new Store on
// f and checks what Latest gives: never an error, checkpoint 1 or 2
// whole, and 2 where the second Save returned nil; then that a third Save
// and Latest work. It returns the
// violations found, each naming the call where the save died.
func crashCheck(t *testing.T, wrap func(*FaultFS) FS, kill bool) []string {
	t.Helper()
	p1, p2, p3 := fitted(t, 0, 4), fitted(t, 10, 4), fitted(t, 20, 4)
	var bad []string
	// A dry run counts the calls of the second save.
	calls := -1
	for n := 0; calls < 0 || n <= calls; n++ {
		for _, seed := range crashSeeds {
			f := NewFaultFS()
			f.Seed(seed)
			st, err := Open("/c", Options{FS: f, Keep: 1, Log: discardLog()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Save(t.Context(), p1, Meta{Batches: 1}); err != nil {
				t.Fatal(err)
			}
			if st, err = Open("/c", Options{FS: wrap(f), Keep: 1, Log: discardLog()}); err != nil {
				t.Fatal(err)
			}
			before := f.Calls()
			if calls >= 0 {
				f.Halt(n)
			}
			_, saveErr := st.Save(t.Context(), p2, Meta{Batches: 2})
			if calls < 0 {
				if saveErr != nil {
					t.Fatal(saveErr)
				}
				calls = f.Calls() - before
				n = -1 // start the loop over with the count known
				break
			}
			where := "after its last call"
			if tr := f.Trace(); before+n < len(tr) {
				where = fmt.Sprintf("before call %d (%s)", n+1, tr[before+n])
			}
			where = fmt.Sprintf("save died %s, seed %d", where, seed)
			if n == calls && saveErr != nil {
				t.Fatalf("%s: Save returned %v", where, saveErr)
			} // dying in the prune, after the checkpoint is durable, is no error of Save's
			if kill {
				f.Restart()
			} else {
				f.Crash()
			}
			st, err = Open("/c", Options{FS: f, Keep: 1, Log: discardLog()})
			if err != nil {
				t.Fatal(err)
			}
			l, err := st.Latest()
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: Latest: %v", where, err))
				continue
			}
			mean, _ := meanOf(t, l.Model)
			switch got := l.Meta.Batches; {
			case got != 1 && got != 2:
				bad = append(bad, fmt.Sprintf("%s: Latest gave batches %d; want 1 or 2", where, got))
				continue
			case mean != float64(got-1)*10+1:
				bad = append(bad, fmt.Sprintf("%s: Latest gave checkpoint %d with mean %v; want %v", where, got, mean, float64(got-1)*10+1))
				continue
			case saveErr == nil && got != 2:
				bad = append(bad, fmt.Sprintf("%s: Save returned nil, then Latest gave checkpoint %d; want 2 (lost a durable checkpoint)", where, got))
				continue
			}
			info, err := st.Save(t.Context(), p3, Meta{Batches: 3})
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: next Save: %v", where, err))
				continue
			}
			if info.Seq <= l.Info.Seq {
				bad = append(bad, fmt.Sprintf("%s: next Save took seq %d; want above the loaded %d", where, info.Seq, l.Info.Seq))
			}
			if l, err := st.Latest(); err != nil || l.Meta.Batches != 3 {
				bad = append(bad, fmt.Sprintf("%s: Latest after the next Save: %v; want checkpoint 3", where, err))
			}
		}
	}
	if calls < 6 {
		t.Fatalf("the second Save made %d FS calls; want at least ReadDir, Create, Write, Sync, Close, Rename, SyncDir", calls)
	}
	return bad
}

func plainFS(f *FaultFS) FS { return f }

// A crash of the machine, or a kill of the process, before any FS call of
// a Save leaves the old checkpoint or the new one, whole, and the new one
// once Save returned.
func TestCrashAtEveryStep(t *testing.T) {
	for _, kill := range []bool{false, true} {
		name := map[bool]string{false: "crash", true: "kill"}[kill]
		t.Run(name, func(t *testing.T) {
			for _, v := range crashCheck(t, plainFS, kill) {
				t.Error(v)
			}
		})
	}
}

// brokenFS is the FS of a broken Store: it skips every call of one
// operation (returning nil), as a Save without that step would.
type brokenFS struct {
	FS
	skip Op
}

func (b brokenFS) Create(name string) (File, error) {
	f, err := b.FS.Create(name)
	if err != nil || b.skip != OpSync {
		return f, err
	}
	return noSyncFile{f}, nil
}

func (b brokenFS) SyncDir(dir string) error {
	if b.skip == OpSyncDir {
		return nil
	}
	return b.FS.SyncDir(dir)
}

type noSyncFile struct{ File }

func (noSyncFile) Sync() error { return nil }

// The crash test can fail: a Save that skips the file's fsync, or the
// directory's, loses a checkpoint that it reported durable, and
// crashCheck finds it. (A kill of the process alone loses nothing: the
// operating system keeps what was written.)
func TestCrashCheckDetectsMissingSync(t *testing.T) {
	for _, skip := range []Op{OpSync, OpSyncDir} {
		t.Run(string(skip), func(t *testing.T) {
			bad := crashCheck(t, func(f *FaultFS) FS { return brokenFS{FS: f, skip: skip} }, false)
			if !slices.ContainsFunc(bad, func(v string) bool { return strings.Contains(v, "lost a durable checkpoint") }) {
				t.Fatalf("a Save without %s passed the crash check (%d other violations: %q); want a lost checkpoint found", skip, len(bad), bad)
			}
			t.Logf("%d violations, the first: %s", len(bad), bad[0])
		})
	}
}
