package dirsource_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon/dirsource"
	"github.com/penstock-ml/penstock/daemon/internal/srctest"
	"github.com/penstock-ml/penstock/daemon/source"
)

// A file whose record batch claims other rows than its columns hold reads
// without an error in arrow-go: it is rejected (decode) with the column
// named, and blocks nothing.
func TestAuditRowsMismatchRejected(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	recs := records(memory.DefaultAllocator, 0, 2, 3)
	bad := srctest.RowsMismatch(t, ipcStream(t, recs))
	release(recs)
	writeFile(t, filepath.Join(dir, "a.arrows"), string(bad))
	writeIPCFile(t, filepath.Join(dir, "b.arrow"), 10, 1, 2)
	rec := newRecorder()
	r := start(t, newDir(t, dir, mem, rec, nil), nil)
	gs := r.Recv(t, 1)
	r.Stop(t, nil)
	if gs[0].Pos != pos("b.arrow", 0, true) || !slices.Equal(gs[0].Rows, seq(10, 12)) {
		t.Fatalf("first input %+v; want b.arrow's rows 10, 11 (nothing of a.arrows)", gs[0])
	}
	got := rec.List()
	if len(got) != 1 || !strings.HasPrefix(got[0], "decode: ") || !strings.Contains(got[0], "a.arrows") || !strings.Contains(got[0], "holds 3 values") {
		t.Fatalf("rejections %q; want one decode rejection of a.arrows naming its column's 3 values", got)
	}
	if !exists(filepath.Join(dir, "rejected", "a.arrows")) {
		t.Error("a.arrows not in rejected/")
	}
}

// Only regular files are read: a symbolic link to a good file, a
// directory named like a data file, a FIFO are neither read, nor
// rejected, nor moved, and block nothing after them.
func TestAuditNotRegularFilesIgnored(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	other := t.TempDir()
	writeIPCFile(t, filepath.Join(other, "real.arrow"), 100, 1, 2)
	if err := os.Symlink(filepath.Join(other, "real.arrow"), filepath.Join(dir, "a-link.arrow")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "b-dir.arrow"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mkfifo(filepath.Join(dir, "c-fifo.csv")); err != nil {
		t.Logf("no FIFO: %v", err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "d-dangling.arrow")); err != nil {
		t.Fatal(err)
	}
	writeIPCFile(t, filepath.Join(dir, "e.arrow"), 0, 1, 3)
	rec := newRecorder()
	r := start(t, newDir(t, dir, mem, rec, nil), nil)
	gs := r.Recv(t, 1)
	r.Quiet(t, 100*time.Millisecond)
	r.Stop(t, nil)
	if gs[0].Pos != pos("e.arrow", 0, true) || !slices.Equal(gs[0].Rows, seq(0, 3)) {
		t.Fatalf("input %+v; want e.arrow's rows 0..2 only", gs[0])
	}
	if got := rec.List(); len(got) != 0 {
		t.Errorf("rejections %q; want none", got)
	}
	for _, name := range []string{"a-link.arrow", "b-dir.arrow", "d-dangling.arrow"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v; want it left where it was", name, err)
		}
	}
	if !exists(filepath.Join(other, "real.arrow")) {
		t.Error("the link's target was moved")
	}
}

// A CSV file that grows while its producer writes it (no rename) is taken
// only once it stopped changing for Settle, wholly: no partial read, no
// rejection.
func TestAuditGrowingFileTakenWhole(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	rec := newRecorder()
	d := newDir(t, dir, mem, rec, func(o *dirsource.Options) { o.Settle = 400 * time.Millisecond; o.BatchRows = 1000 })
	path := filepath.Join(dir, "a.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprint(f, "x0,x1,y\n")
	r := start(t, d, nil)
	const rows = 20
	for i := range rows {
		fmt.Fprintf(f, "%d,%d,%d\n", i, -i, i)
		time.Sleep(20 * time.Millisecond) // well within Settle
	}
	gs := r.Recv(t, 1)
	r.Stop(t, nil)
	if !slices.Equal(gs[0].Rows, seq(0, rows)) {
		t.Fatalf("rows %v; want all %d rows of the file at once", gs[0].Rows, rows)
	}
	if got := rec.List(); len(got) != 0 {
		t.Errorf("rejections %q; want none", got)
	}
}

// Close from several goroutines at once, before Run: no race, no panic,
// and Run afterwards refuses. Durable with garbage, or before anything
// was sent, moves nothing.
func TestAuditCloseConcurrentAndDurableGarbage(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	writeIPCFile(t, filepath.Join(dir, "a.arrow"), 0, 1, 3)
	d := newDir(t, dir, mem, newRecorder(), nil)
	for _, p := range []string{``, `null`, `{}`, `{"file":"a.arrow"}x`, `{"file":"","batch":0}`, `{"file":"a.arrow","batch":-1}`, `[]`, strings.Repeat("{", 10000)} {
		err := d.Durable([]byte(p))
		if p != `{}` && p != `{"file":"","batch":0}` && err == nil {
			t.Errorf("Durable(%.20q): no error; want one", p)
		}
	}
	if err := d.Durable([]byte(pos("zzz.arrow", 5, true))); err != nil {
		t.Errorf("Durable of a position past every file before Run: %v", err)
	}
	if !exists(filepath.Join(dir, "a.arrow")) {
		t.Fatal("a.arrow moved to done/ by a Durable before it was sent")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { d.Close() })
	}
	wg.Wait()
	if err := d.Run(t.Context(), nil, nil, nil); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Fatalf("Run after concurrent Closes: %v; want an error", err)
	}
}

// Run called twice at once: one runs, the other fails at once; the one
// that runs returns the context's cause when cancelled.
func TestAuditRunTwice(t *testing.T) {
	mem := checked(t)
	d := newDir(t, t.TempDir(), mem, newRecorder(), nil)
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- d.Run(ctx, nil, nil, nil) }()
	}
	timeout := time.After(10 * time.Second)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "twice") {
			t.Errorf("the Run that returned first: %v; want an error saying twice", err)
		}
	case <-timeout:
		t.Fatal("neither Run returned")
	}
	stop := errors.New("stop")
	cancel(stop)
	select {
	case err := <-done:
		if !errors.Is(err, stop) {
			t.Errorf("the running Run after cancel: %v; want the cause", err)
		}
	case <-timeout:
		t.Fatal("the running Run did not return after cancel")
	}
}

var _ source.Source = (*dirsource.Dir)(nil)

// Cancel at any moment (before the first listing, during a file's read,
// between batches, while a send waits): Run returns the cause within a
// deadline, and every batch it made is released, sent or not.
func TestAuditCancelAnyMoment(t *testing.T) {
	for _, delay := range []time.Duration{0, 50 * time.Microsecond, 200 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond} {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		dir := t.TempDir()
		for f := range 6 {
			writeIPCFile(t, filepath.Join(dir, fmt.Sprintf("f%02d.arrow", f)), f*300, 3, 100)
		}
		d, err := dirsource.New(dirsource.Options{Dir: dir, Schema: testSchema(), Settle: -1, Poll: time.Millisecond, Alloc: mem, Reporter: newRecorder()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancelCause(t.Context())
		out := make(chan source.Input)
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx, nil, nil, out) }()
		stop := errors.New("stop")
		time.AfterFunc(delay, func() { cancel(stop) })
		var runErr error
	recv:
		for {
			select {
			case in := <-out:
				in.Batch.Release()
			case runErr = <-done:
				break recv
			case <-time.After(10 * time.Second):
				t.Fatalf("delay %v: Run did not return 10 s after cancel", delay)
			}
		}
		if !errors.Is(runErr, stop) {
			t.Errorf("delay %v: Run returned %v; want the cause", delay, runErr)
		}
		d.Close()
		if n := mem.CurrentAlloc(); n != 0 {
			t.Errorf("delay %v: %d bytes still allocated after Run returned; want 0", delay, n)
		}
	}
}

// A file replaced under its name (a producer that repeats a name, renaming
// a new file over one already taken) after its batches were sent and
// before the checkpoint that covers them: Durable must not move the new,
// unread file to done/ as if it had been fitted; it is a repeated file,
// rejected as a duplicate.
func TestAuditReplacedFileNotDone(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	writeIPCFile(t, filepath.Join(dir, "a.arrow"), 0, 1, 3)
	rec := newRecorder()
	d := newDir(t, dir, mem, rec, nil)
	r := start(t, d, nil)
	gs := r.Recv(t, 1)
	other := t.TempDir()
	writeIPCFile(t, filepath.Join(other, "a.arrow"), 100, 1, 3)
	if err := os.Rename(filepath.Join(other, "a.arrow"), filepath.Join(dir, "a.arrow")); err != nil {
		t.Fatal(err)
	}
	if err := d.Durable([]byte(gs[0].Pos)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rec.Seen:
	case <-time.After(10 * time.Second):
	}
	r.Stop(t, nil)
	if exists(filepath.Join(dir, "done", "a.arrow")) {
		t.Fatal("the replacing a.arrow, never read, was moved to done/ as fitted")
	}
	got := rec.List()
	if len(got) != 1 || !strings.HasPrefix(got[0], "duplicate: ") || !exists(filepath.Join(dir, "rejected", "a.arrow")) {
		t.Errorf("rejections %q, rejected/a.arrow there %v; want the repeated a.arrow rejected as a duplicate", got, exists(filepath.Join(dir, "rejected", "a.arrow")))
	}
}
