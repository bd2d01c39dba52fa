package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// copyDir copies the regular files of src into a new directory: what a
// crash at this moment would leave on disk (every write of the log is in
// the page cache, which a process crash does not lose).
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// The segment being written is zeroed ahead of its records; a crash
// leaves the zeros, which Open takes for free space (no torn tail, no
// truncation) and the next records overwrite. Close cuts them off.
func TestPreallocatedTail(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	e := newEnv(t, dir, mem, nil)
	postEach(t, e, 3, 4)
	files, data := onlySegment(t, dir)
	e.log.mu.Lock()
	size := e.log.segs[0].size
	e.log.mu.Unlock()
	if n := int64(len(data)); n <= size || n > size+preallocChunk {
		t.Fatalf("segment file is %d bytes with %d of records; want zeros after them, at most %d", n, size, preallocChunk)
	}
	if !bytes.Equal(data[size:], make([]byte, len(data)-int(size))) {
		t.Fatal("the preallocated end of the segment is not all zeros")
	}

	crashed := copyDir(t, dir)
	e.close()
	if got := fileSize(t, files[0]); got != size {
		t.Errorf("after Close the segment is %d bytes; want %d, its records", got, size)
	}

	// Reopen what the crash left: the three posts, no torn tail, and the
	// zeros kept for the next record.
	e2 := newEnv(t, crashed, mem, nil)
	if logged := e2.logBuf.String(); strings.Contains(logged, "torn tail") {
		t.Errorf("log %q; want no torn tail for zeros after the last record", logged)
	}
	seg := segFiles(t, crashed)[0]
	if got := fileSize(t, seg); got != int64(len(data)) {
		t.Errorf("reopened segment is %d bytes; want %d (the zeros kept)", got, len(data))
	}
	if r := e2.post(ctx, body(t, e2.opts.Schema.Fields, 4, 4), "k4", ContentType); r.code != 202 || r.answer.Record != 4 {
		t.Fatalf("post after recovery: %d %+v; want 202, record 4", r.code, r.answer)
	}
	if r := e2.post(ctx, body(t, e2.opts.Schema.Fields, 1, 4), "k1", ContentType); r.code != 202 || r.answer.Status != "duplicate" {
		t.Fatalf("retry of k1 after recovery: %d %+v; want a duplicate", r.code, r.answer)
	}
	gs, err := e2.run(ctx, nil).drainAll(t, ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var want [][]int64
	for p := 1; p <= 4; p++ {
		want = append(want, labelsOf(p, 4)...)
	}
	if got := gotLabels(gs); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Run sent %v; want %v", got, want)
	}
}

// A torn write into the preallocated space leaves bytes that are not all
// zero: cut off and logged, as in an appended segment.
func TestTornWriteIntoPreallocated(t *testing.T) {
	mem := checkedMem(t)
	dir := t.TempDir()
	e := newEnv(t, dir, mem, nil)
	postEach(t, e, 2, 4)
	e.log.mu.Lock()
	size := e.log.segs[0].size
	e.log.mu.Unlock()
	crashed := copyDir(t, dir)
	e.close()
	seg := segFiles(t, crashed)[0]
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Half of a record's page reached the disk: its header is zero, bytes
	// further on are not.
	if _, err := f.WriteAt([]byte{0xde, 0xad}, size+4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e2 := newEnv(t, crashed, mem, nil)
	if logged := e2.logBuf.String(); !strings.Contains(logged, "torn tail") {
		t.Errorf("log %q; want a torn tail logged", logged)
	}
	if got := fileSize(t, seg); got != size {
		t.Errorf("segment is %d bytes after recovery; want %d", got, size)
	}
	postEach(t, e2, 1, 4) // key k1 again: a duplicate
	if got := e2.log.Stats().Records; got != 0 {
		t.Errorf("records appended after recovery %d; want 0 (k1 is a duplicate)", got)
	}
}

// A segment is closed at its last record: when the log rolls, the zeros
// go, so that zeros in an older segment are damage.
func TestRolledSegmentHasNoZeros(t *testing.T) {
	mem := checkedMem(t)
	dir := t.TempDir()
	e := newEnv(t, dir, mem, func(o *Options) { o.SegmentBytes = 4 << 20 })
	// Enough posts for a roll past 4 MiB, in groups that fill part of the
	// preallocated chunk each.
	big := body(t, e.opts.Schema.Fields, 1, 20000)
	for i := 0; len(segFiles(t, dir)) < 2; i++ {
		if i > 1000 {
			t.Fatal("no roll after 1000 posts")
		}
		r := e.post(ctxT(t), big, "", ContentType)
		if r.code != 202 {
			t.Fatalf("post %d: %d %+v", i, r.code, r.answer)
		}
	}
	files := segFiles(t, dir)
	e.log.mu.Lock()
	size := e.log.segs[0].size
	e.log.mu.Unlock()
	if got := fileSize(t, files[0]); got != size {
		t.Errorf("rolled segment is %d bytes; want %d, its records", got, size)
	}
	crashed := copyDir(t, dir)
	e.close()

	// Zeros at the end of the older segment: damage, not free space.
	f, err := os.OpenFile(filepath.Join(crashed, filepath.Base(files[0])), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 100))
	f.Close()
	o := Options{Dir: crashed, Schema: testSchema(3), Alloc: mem}
	if l, err := Open(o); err == nil {
		l.Close()
		t.Fatal("Open took an older segment with zeros after its records")
	} else if !strings.Contains(err.Error(), "not the last segment") {
		t.Errorf("Open: %v; want the older segment named as damaged", err)
	}
}
