package dirsource_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/daemon/dirsource"
	"github.com/penstock-ml/penstock/daemon/source"
)

// An IPC stream still being written, cut at a message boundary whose body
// happens to end in the bytes of the end-of-stream marker (an int64 y of
// 0xFFFFFFFF as the last value), only looks complete: it is not taken
// before it settles, so no batch is lost.
func TestAuditStreamLooksEndedButIsNot(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	rec := newRecorder()
	d := newDir(t, dir, mem, rec, func(o *dirsource.Options) { o.Settle = time.Second })
	path := filepath.Join(dir, "a.arrows")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const first = 0xFFFFFFFF // little-endian ff ff ff ff 00 00 00 00
	recs := records(memory.DefaultAllocator, first, 2, 1)
	defer release(recs)
	w := ipc.NewWriter(f, ipc.WithSchema(recs[0].Schema()))
	if err := w.Write(recs[0]); err != nil {
		t.Fatal(err)
	}
	r := start(t, d, nil)
	defer r.Stop(t, nil)
	r.Quiet(t, 300*time.Millisecond)
	if err := w.Write(recs[1]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(r.Recv(t, 2)); !slices.Equal(got, []int64{first, first + 1}) {
		t.Fatalf("rows %v; want both batches of the stream", got)
	}
	if got := rec.List(); len(got) != 0 {
		t.Errorf("rejections %q; want none", got)
	}
}

// A CSV header that gives a column twice is a schema rejection naming the
// column, as the same table in an IPC or Parquet file is
// (source.Schema.Check), not a decoding error.
func TestAuditCSVColumnTwice(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	rec := newRecorder()
	d := newDir(t, dir, mem, rec, nil)
	writeFile(t, filepath.Join(dir, "a.csv"), "x0,x1,y,x1\n1,-1,1,-1\n")
	writeIPCFile(t, filepath.Join(dir, "b.arrow"), 0, 1, 2)
	r := start(t, d, nil)
	defer r.Stop(t, nil)
	if got := rowsOf(r.Recv(t, 1)); !slices.Equal(got, seq(0, 2)) {
		t.Fatalf("rows %v; want b.arrow's", got)
	}
	got := rec.List()
	if len(got) != 1 || !strings.HasPrefix(got[0], string(source.ReasonSchema)+":") || !strings.Contains(got[0], `column "x1"`) {
		t.Fatalf("rejections %q; want a.csv rejected for its schema, naming column x1", got)
	}
}
