package dirsource_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/daemon/dirsource"
	"github.com/penstock-ml/penstock/daemon/source"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Files of every format are read in lexical order of their names, whatever
// the order they were written in, each batch with its position.
func TestLexicalOrderAndFormats(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	writeParquet(t, filepath.Join(dir, "d.parquet"), 300, 10)
	writeFile(t, filepath.Join(dir, "c.csv"), csvText(200, 5, "y", "x1", "x0")) // any column order
	writeIPCStream(t, filepath.Join(dir, "b.arrows"), 100, 2, 3)
	writeIPCFile(t, filepath.Join(dir, "a.arrow"), 0, 3, 4)
	d := newDir(t, dir, mem, newRecorder(), func(o *dirsource.Options) { o.BatchRows = 4 })
	r := start(t, d, nil)
	gs := r.Recv(t, 3+2+2+3)
	if err := r.Stop(t, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v; want context.Canceled", err)
	}
	var poss []string
	for _, g := range gs {
		poss = append(poss, g.Pos)
	}
	want := []string{
		pos("a.arrow", 0, false), pos("a.arrow", 1, false), pos("a.arrow", 2, true),
		pos("b.arrows", 0, false), pos("b.arrows", 1, true),
		pos("c.csv", 0, false), pos("c.csv", 1, true),
		pos("d.parquet", 0, false), pos("d.parquet", 1, false), pos("d.parquet", 2, true),
	}
	if !slices.Equal(poss, want) {
		t.Fatalf("positions:\n got %v\nwant %v", poss, want)
	}
	wantRows := slices.Concat(seq(0, 12), seq(100, 106), seq(200, 205), seq(300, 310))
	if got := rowsOf(gs); !slices.Equal(got, wantRows) {
		t.Fatalf("rows:\n got %v\nwant %v", got, wantRows)
	}
	if n := len(gs[5].Rows); n != 4 {
		t.Fatalf("first CSV batch has %d rows; want BatchRows 4", n)
	}
}

// A file of the same content gives the same batches every time it is
// read: what resuming from a batch index relies on.
func TestSameFileSameBatches(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.csv"), csvText(0, 10, "x0", "x1", "y"))
	var runs [2][]got
	for i := range runs {
		sub := t.TempDir()
		data, _ := os.ReadFile(filepath.Join(dir, "a.csv"))
		writeFile(t, filepath.Join(sub, "a.csv"), string(data))
		d := newDir(t, sub, mem, newRecorder(), func(o *dirsource.Options) { o.BatchRows = 3 })
		r := start(t, d, nil)
		runs[i] = r.Recv(t, 4)
		r.Stop(t, nil)
	}
	for i := range runs[0] {
		if a, b := runs[0][i], runs[1][i]; a.Pos != b.Pos || !slices.Equal(a.Rows, b.Rows) {
			t.Fatalf("batch %d: first read %s %v, second %s %v; want the same", i, a.Pos, a.Rows, b.Pos, b.Rows)
		}
	}
}

// A file is not taken while it is being written: a CSV file only once its
// size and time have not changed for Settle; an IPC stream at once when it
// ends with its end-of-stream marker; names of files being written never.
func TestSettle(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	const settle = 400 * time.Millisecond
	d := newDir(t, dir, mem, newRecorder(), func(o *dirsource.Options) { o.Settle = settle })
	r := start(t, d, nil)
	defer r.Stop(t, nil)

	// Being written under a temporary name: never taken.
	writeIPCFile(t, filepath.Join(dir, "a.arrow.part"), 0, 1, 2)
	writeIPCFile(t, filepath.Join(dir, ".a.arrow"), 0, 1, 2)
	writeIPCFile(t, filepath.Join(dir, "a.arrow.tmp"), 0, 1, 2)
	// A CSV file written in two steps, more slowly than Settle.
	path := filepath.Join(dir, "b.csv")
	text := csvText(0, 6, "x0", "x1", "y")
	half := strings.Index(text, "3,-3")
	writeFile(t, path, text[:half])
	began := time.Now()
	r.Quiet(t, settle/2)
	writeFile(t, path, text) // changed: settling starts again
	changed := time.Now()
	gs := r.Recv(t, 1)
	if waited := time.Since(changed); waited < settle {
		t.Fatalf("b.csv taken %v after its last change; want at least Settle %v", waited, settle)
	}
	if !slices.Equal(gs[0].Rows, seq(0, 6)) {
		t.Fatalf("b.csv rows %v; want all 6 (%v), not the half first written", gs[0].Rows, seq(0, 6))
	}
	_ = began
	// An IPC stream cut before its end waits; once whole it is taken at
	// once (its end-of-stream marker says it is complete).
	recs := records(mem, 10, 2, 2)
	full := ipcStream(t, recs)
	release(recs)
	path = filepath.Join(dir, "c.arrows")
	writeFile(t, path, string(full[:len(full)-20]))
	r.Quiet(t, settle/2)
	writeFile(t, path, string(full))
	wrote := time.Now()
	gs = r.Recv(t, 2)
	if waited := time.Since(wrote); waited >= settle {
		t.Fatalf("complete stream taken after %v; want at once, before Settle %v", waited, settle)
	}
	if got := rowsOf(gs); !slices.Equal(got, seq(10, 14)) {
		t.Fatalf("c.arrows rows %v; want %v", got, seq(10, 14))
	}
	r.Quiet(t, 50*time.Millisecond)
	for _, name := range []string{"a.arrow.part", ".a.arrow", "a.arrow.tmp"} {
		if !exists(filepath.Join(dir, name)) {
			t.Fatalf("%s moved; want temporary names left alone", name)
		}
	}
}

// A bad file goes to rejected/ with its reason, is reported, sends
// nothing, and blocks nothing: the files after it are read.
func TestReject(t *testing.T) {
	cases := []struct {
		name   string
		write  func(t *testing.T, path string)
		reason source.Reason
		want   string // in the error and the reason file
	}{
		{"a-magic.arrow", func(t *testing.T, p string) { writeFile(t, p, "ARROW1 but not really an arrow file at all") }, source.ReasonDecode, `"a-magic.arrow"`},
		{"a-garbage.arrows", func(t *testing.T, p string) { writeFile(t, p, "\xff\xff\xff\xff\x10\x00\x00\x00garbage garbage!") }, source.ReasonDecode, `"a-garbage.arrows"`},
		{"a-type.csv", func(t *testing.T, p string) { writeFile(t, p, "x0,x1,y\n1,2,3\n4,5,oops\n") }, source.ReasonDecode, `column "y"`},
		{"a-extra.csv", func(t *testing.T, p string) { writeFile(t, p, "x0,x1,y,z\n1,2,3,4\n") }, source.ReasonSchema, `column "z"`},
		{"a-missing.csv", func(t *testing.T, p string) { writeFile(t, p, "x0,y\n1,3\n") }, source.ReasonSchema, `column "x1"`},
		{"a-schema.arrow", func(t *testing.T, p string) { writeWrongType(t, p) }, source.ReasonSchema, `column "x1": want float32, got int32`},
		{"a-big.arrow", func(t *testing.T, p string) { writeIPCFile(t, p, 0, 40, 100) }, source.ReasonTooBig, "MaxFileBytes"},
		{"a-ext.txt", func(t *testing.T, p string) { writeFile(t, p, "hello") }, source.ReasonType, "extension"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := checked(t)
			dir := t.TempDir()
			c.write(t, filepath.Join(dir, c.name))
			writeIPCFile(t, filepath.Join(dir, "b.arrow"), 0, 1, 3)
			rec := newRecorder()
			d := newDir(t, dir, mem, rec, func(o *dirsource.Options) { o.MaxFileBytes = 8 << 10 })
			r := start(t, d, nil)
			gs := r.Recv(t, 1)
			r.Stop(t, nil)
			if gs[0].Pos != pos("b.arrow", 0, true) {
				t.Fatalf("first input at %s; want b.arrow's (nothing of %s)", gs[0].Pos, c.name)
			}
			got := rec.List()
			if len(got) != 1 || !strings.HasPrefix(got[0], string(c.reason)+": ") || !strings.Contains(got[0], c.want) || !strings.Contains(got[0], `dirsource "dir"`) {
				t.Fatalf("reported %q; want one %s rejection naming the source and %s", got, c.reason, c.want)
			}
			if exists(filepath.Join(dir, c.name)) || !exists(filepath.Join(dir, "rejected", c.name)) {
				t.Fatalf("%s not moved to rejected/", c.name)
			}
			reason, err := os.ReadFile(filepath.Join(dir, "rejected", c.name+".reason.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(reason), "reason: "+string(c.reason)) || !strings.Contains(string(reason), c.want) {
				t.Fatalf("reason file:\n%s\nwant the reason %s and %s", reason, c.reason, c.want)
			}
		})
	}
}

// A file that is bad after some good batches is rejected whole: none of
// its batches is sent.
func TestRejectWholeFile(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	var text strings.Builder
	text.WriteString(csvText(0, 20, "x0", "x1", "y"))
	text.WriteString("21,-21,bad\n")
	writeFile(t, filepath.Join(dir, "a.csv"), text.String())
	writeIPCFile(t, filepath.Join(dir, "b.arrow"), 100, 1, 3)
	rec := newRecorder()
	d := newDir(t, dir, mem, rec, func(o *dirsource.Options) { o.BatchRows = 4 })
	r := start(t, d, nil)
	gs := r.Recv(t, 1)
	r.Stop(t, nil)
	if gs[0].Pos != pos("b.arrow", 0, true) {
		t.Fatalf("first input at %s; want b.arrow's: no batch of the bad a.csv", gs[0].Pos)
	}
	if got := rec.List(); len(got) != 1 || !strings.Contains(got[0], "line 22") {
		t.Fatalf("reported %q; want a.csv rejected at line 22", got)
	}
}

// writeWrongType writes an IPC file whose x1 is int32.
func writeWrongType(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writeIPCWith(f, "x1"); err != nil {
		t.Fatal(err)
	}
}

// Files move to done/ only once Durable covers all their batches.
func TestDoneOnlyAfterDurable(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	writeIPCFile(t, filepath.Join(dir, "a.arrow"), 0, 2, 2)
	writeIPCFile(t, filepath.Join(dir, "b.arrow"), 4, 2, 2)
	d := newDir(t, dir, mem, newRecorder(), nil)
	r := start(t, d, nil)
	gs := r.Recv(t, 4)
	in := func(name string) string {
		switch {
		case exists(filepath.Join(dir, name)):
			return "inbox"
		case exists(filepath.Join(dir, "done", name)):
			return "done"
		}
		return "gone"
	}
	if in("a.arrow") != "inbox" || in("b.arrow") != "inbox" {
		t.Fatalf("after sending: a %s, b %s; want both in the inbox before Durable", in("a.arrow"), in("b.arrow"))
	}
	steps := []struct {
		pos  string
		a, b string
	}{
		{gs[0].Pos, "inbox", "inbox"}, // a's first batch: a not covered wholly
		{gs[1].Pos, "done", "inbox"},  // a's last batch
		{gs[2].Pos, "done", "inbox"},
		{gs[3].Pos, "done", "done"},
	}
	for _, s := range steps {
		if err := d.Durable([]byte(s.pos)); err != nil {
			t.Fatal(err)
		}
		if in("a.arrow") != s.a || in("b.arrow") != s.b {
			t.Fatalf("after Durable(%s): a %s, b %s; want %s, %s", s.pos, in("a.arrow"), in("b.arrow"), s.a, s.b)
		}
	}
	r.Stop(t, nil)
	if err := d.Durable([]byte("{nope")); err == nil || !strings.Contains(err.Error(), "position") {
		t.Fatalf("Durable of a bad position: %v; want an error naming the position", err)
	}
}

// Run from a position in the middle of a file sends exactly the batches
// after it, then the later files; the files it covers move to done/ at
// the next Durable.
func TestResume(t *testing.T) {
	cases := []struct {
		from     string
		wantRows []int64
		wantPos  string // of the first input
		covered  []string
	}{
		{pos("b.arrow", 0, false), slices.Concat(seq(6, 12), seq(12, 15)), pos("b.arrow", 1, false), []string{"a.arrow"}},
		{pos("b.arrow", 1, false), slices.Concat(seq(9, 12), seq(12, 15)), pos("b.arrow", 2, true), []string{"a.arrow"}},
		{pos("b.arrow", 2, true), seq(12, 15), pos("c.csv", 0, true), []string{"a.arrow", "b.arrow"}},
		{pos("a.arrow", 1, true), slices.Concat(seq(3, 12), seq(12, 15)), pos("b.arrow", 0, false), []string{"a.arrow"}},
	}
	for _, c := range cases {
		t.Run(c.from, func(t *testing.T) {
			mem := checked(t)
			dir := t.TempDir()
			writeIPCFile(t, filepath.Join(dir, "a.arrow"), 0, 1, 3) // rows 0-2
			writeIPCFile(t, filepath.Join(dir, "b.arrow"), 3, 3, 3) // rows 3-11
			writeFile(t, filepath.Join(dir, "c.csv"), csvText(12, 3, "x0", "x1", "y"))
			if c.from == pos("a.arrow", 1, true) { // a.arrow was moved to done/ before the crash
				os.Rename(filepath.Join(dir, "a.arrow"), filepath.Join(dir, "done", "a.arrow"))
				writeIPCFile(t, filepath.Join(dir, "a.arrow"), 0, 1, 3) // and a late copy came
			}
			d := newDir(t, dir, mem, newRecorder(), nil)
			r := start(t, d, []byte(c.from))
			var gs []got
			for len(rowsOf(gs)) < len(c.wantRows) {
				gs = append(gs, r.Recv(t, 1)...)
			}
			r.Quiet(t, 50*time.Millisecond)
			r.Stop(t, nil)
			if got := rowsOf(gs); !slices.Equal(got, c.wantRows) {
				t.Fatalf("rows from %s:\n got %v\nwant %v", c.from, got, c.wantRows)
			}
			if gs[0].Pos != c.wantPos {
				t.Fatalf("first position %s; want %s", gs[0].Pos, c.wantPos)
			}
			for _, name := range c.covered {
				if !exists(filepath.Join(dir, name)) {
					t.Fatalf("%s moved before Durable", name)
				}
			}
			if err := d.Durable([]byte(gs[0].Pos)); err != nil {
				t.Fatal(err)
			}
			for _, name := range c.covered {
				if exists(filepath.Join(dir, name)) || !exists(filepath.Join(dir, "done", name)) {
					t.Fatalf("%s, covered by %s, not in done/ after Durable", name, c.from)
				}
			}
		})
	}
}

// A bad position is an error of Run.
func TestResumeBadPosition(t *testing.T) {
	d := newDir(t, t.TempDir(), checked(t), newRecorder(), nil)
	err := d.Run(t.Context(), []byte(`{"file":"../x","batch":1}`), nil, make(chan source.Input))
	if err == nil || !strings.Contains(err.Error(), `"../x"`) {
		t.Fatalf("Run from a position outside the directory: %v; want an error naming it", err)
	}
}

// A file that arrives after a later one was taken is rejected as late.
func TestLateFile(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	writeIPCFile(t, filepath.Join(dir, "b.arrow"), 0, 1, 2)
	rec := newRecorder()
	d := newDir(t, dir, mem, rec, nil)
	r := start(t, d, nil)
	defer r.Stop(t, nil)
	r.Recv(t, 1)
	writeIPCFile(t, filepath.Join(dir, "a.arrow"), 10, 1, 2)
	select {
	case <-rec.Seen:
	case <-time.After(10 * time.Second):
		t.Fatal("late a.arrow not rejected in 10 s")
	}
	if got := rec.List(); len(got) != 1 || !strings.HasPrefix(got[0], "duplicate: ") || !strings.Contains(got[0], `"a.arrow" arrived after "b.arrow"`) {
		t.Fatalf("reported %q; want a.arrow rejected as late", got)
	}
	r.Quiet(t, 30*time.Millisecond)
}

// Drain: the file being sent is sent to its end, no new file is taken,
// Run returns nil.
func TestDrain(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	writeIPCFile(t, filepath.Join(dir, "a.arrow"), 0, 4, 2)
	writeIPCFile(t, filepath.Join(dir, "b.arrow"), 8, 1, 2)
	d := newDir(t, dir, mem, newRecorder(), nil)
	r := start(t, d, nil)
	defer r.Cancel(nil)
	gs := r.Recv(t, 1)
	close(r.Drain)
	for {
		select {
		case in := <-r.Out:
			gs = append(gs, read(t, in))
			continue
		case err := <-r.Done:
			if err != nil {
				t.Fatalf("Run after drain: %v; want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return 10 s after drain")
		}
		break
	}
	if got := rowsOf(gs); !slices.Equal(got, seq(0, 8)) {
		t.Fatalf("rows after drain: %v; want all of a.arrow (%v) and nothing of b.arrow", got, seq(0, 8))
	}
	if !exists(filepath.Join(dir, "b.arrow")) {
		t.Fatal("b.arrow moved; want it left in the inbox")
	}
}

// Cancel while a file's batches wait to be received: Run returns the
// cause at once, and every batch it held is released (the checked
// allocator ends at 0; goleak finds no goroutine).
func TestCancelReleases(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	writeIPCFile(t, filepath.Join(dir, "a.arrow"), 0, 5, 10)
	d := newDir(t, dir, mem, newRecorder(), nil)
	ctx, cancel := context.WithCancelCause(t.Context())
	done := make(chan error, 1)
	out := make(chan source.Input)
	go func() { done <- d.Run(ctx, nil, nil, out) }()
	read(t, <-out)
	cause := errors.New("stop now")
	cancel(cause)
	select {
	case err := <-done:
		if !errors.Is(err, cause) {
			t.Fatalf("Run after cancel: %v; want the cause %v", err, cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10 s after cancel")
	}
	if n := mem.CurrentAlloc(); n != 0 {
		t.Fatalf("%d bytes still allocated after Run returned; want 0", n)
	}
}

// Run twice, Run after Close and bad options are errors.
func TestLifecycleAndOptions(t *testing.T) {
	d := newDir(t, t.TempDir(), checked(t), newRecorder(), nil)
	d.Close()
	if err := d.Run(t.Context(), nil, nil, nil); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Fatalf("Run after Close: %v; want an error", err)
	}
	for _, c := range []struct {
		edit func(*dirsource.Options)
		want string
	}{
		{func(o *dirsource.Options) { o.Dir = "" }, "Dir is empty"},
		{func(o *dirsource.Options) { o.Dir = filepath.Join(o.Dir, "nope") }, "no such file"},
		{func(o *dirsource.Options) { o.Glob = "[" }, "Glob"},
		{func(o *dirsource.Options) { o.Format = "json" }, `Format "json"`},
		{func(o *dirsource.Options) { o.Schema.Inputs = nil }, "no input columns"},
		{func(o *dirsource.Options) { o.MaxFileBytes = -1 }, "MaxFileBytes"},
	} {
		o := dirsource.Options{Dir: t.TempDir(), Schema: testSchema()}
		c.edit(&o)
		if _, err := dirsource.New(o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New: %v; want an error with %q", err, c.want)
		}
	}
}

// A file that looks complete (its closing magic is there) but does not
// read is not rejected before it has settled: it may still be being
// written. Rewritten whole meanwhile, it is taken; left bad, it is
// rejected once Settle has passed.
func TestLooksCompleteButIsNot(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	const settle = 300 * time.Millisecond
	rec := newRecorder()
	d := newDir(t, dir, mem, rec, func(o *dirsource.Options) { o.Settle = settle })
	r := start(t, d, nil)
	defer r.Stop(t, nil)
	path := filepath.Join(dir, "a.arrow")
	fake := "ARROW1\x00\x00" + strings.Repeat("\x00", 40) + "\x10\x00\x00\x00ARROW1"
	writeFile(t, path, fake)
	writeIPCFile(t, filepath.Join(dir, "b.arrow"), 3, 1, 3) // waits for a.arrow
	r.Quiet(t, settle/2)
	if got := rec.List(); len(got) != 0 {
		t.Fatalf("rejected %q before Settle; want it given time to be written", got)
	}
	writeIPCFile(t, path, 0, 1, 3)
	if got := rowsOf(r.Recv(t, 2)); !slices.Equal(got, seq(0, 6)) {
		t.Fatalf("rows %v; want %v: a.arrow, then b.arrow", got, seq(0, 6))
	}
	began := time.Now()
	writeFile(t, filepath.Join(dir, "c.arrow"), fake)
	select {
	case <-rec.Seen:
	case <-time.After(10 * time.Second):
		t.Fatal("bad c.arrow not rejected in 10 s")
	}
	if waited := time.Since(began); waited < settle {
		t.Fatalf("c.arrow rejected after %v; want at least Settle %v", waited, settle)
	}
	if got := rec.List(); len(got) != 1 || !strings.Contains(got[0], `"c.arrow"`) {
		t.Fatalf("reported %q; want c.arrow rejected", got)
	}
}

// A gzip-compressed CSV file is read like a plain one, its header's
// columns in any order.
func TestGzipCSV(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(csvText(0, 5, "x1", "y", "x0")))
	zw.Close()
	writeFile(t, filepath.Join(dir, "a.csv.gz"), buf.String())
	d := newDir(t, dir, mem, newRecorder(), nil)
	r := start(t, d, nil)
	gs := r.Recv(t, 1)
	r.Stop(t, nil)
	if got := rowsOf(gs); !slices.Equal(got, seq(0, 5)) || gs[0].Pos != pos("a.csv.gz", 0, true) {
		t.Fatalf("a.csv.gz: rows %v at %s; want %v at %s", got, gs[0].Pos, seq(0, 5), pos("a.csv.gz", 0, true))
	}
}

// A Parquet file small on disk whose batches would hold more than
// MaxFileBytes once decoded is rejected as too large.
func TestRejectDecodedTooLarge(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	writeZerosParquet(t, filepath.Join(dir, "a.parquet"), 20000) // compresses well
	st, _ := os.Stat(filepath.Join(dir, "a.parquet"))
	rec := newRecorder()
	limit := st.Size() + 100
	d := newDir(t, dir, mem, rec, func(o *dirsource.Options) { o.MaxFileBytes = limit })
	r := start(t, d, nil)
	defer r.Stop(t, nil)
	select {
	case <-rec.Seen:
	case <-time.After(10 * time.Second):
		t.Fatal("a.parquet not rejected in 10 s")
	}
	if got := rec.List(); len(got) != 1 || !strings.HasPrefix(got[0], "too_large: ") || !strings.Contains(got[0], "hold over MaxFileBytes") {
		t.Fatalf("reported %q; want a.parquet (%d bytes on disk) too large once decoded (limit %d)", got, st.Size(), limit)
	}
	r.Quiet(t, 20*time.Millisecond)
}
