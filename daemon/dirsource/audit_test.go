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
