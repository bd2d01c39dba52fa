package checkpoint

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
)

const (
	modelFile = "prefix.tar"
	xFile     = "x.arrows"
	yFile     = "y.arrows"
	metaFile  = "meta.json"
)

// meta is an entry's meta.json.
type meta struct {
	Format  int        `json:"format"`
	HasY    bool       `json:"has_y"`
	Batches [][2]int64 `json:"batches"` // Seq, Epoch
}

const formatVersion = 1

// entryWriter writes one entry into a temporary directory, batch by
// batch; commit renames it into place.
type entryWriter struct {
	tmp  string
	mem  memory.Allocator
	x, y fileWriter
	meta meta
}

type fileWriter struct {
	f  *os.File
	bw *bufio.Writer
	w  *ipc.Writer
	sc *arrow.Schema
}

func (c *Cache) create(mem memory.Allocator) (*entryWriter, error) {
	tmp, err := os.MkdirTemp(c.Dir(), ".tmp-")
	if err != nil {
		return nil, fmt.Errorf("checkpoint: store: %w", err)
	}
	return &entryWriter{tmp: tmp, mem: mem, meta: meta{Format: formatVersion}}, nil
}

func (w *entryWriter) write(b flow.Batch) error {
	if len(w.meta.Batches) == 0 {
		w.meta.HasY = b.Y != nil
	}
	if (b.Y != nil) != w.meta.HasY {
		return fmt.Errorf("checkpoint: store: output batch %d has Y=%v, the first had Y=%v; want labels on every batch or none", b.Seq, b.Y != nil, w.meta.HasY)
	}
	if b.X == nil {
		return fmt.Errorf("checkpoint: store: output batch %d has no X", b.Seq)
	}
	if err := w.x.write(w, xFile, b.X); err != nil {
		return err
	}
	if w.meta.HasY {
		if err := w.y.write(w, yFile, b.Y); err != nil {
			return err
		}
	}
	w.meta.Batches = append(w.meta.Batches, [2]int64{b.Seq, int64(b.Epoch)})
	return nil
}

func (f *fileWriter) write(w *entryWriter, name string, rec arrow.RecordBatch) error {
	if f.w == nil {
		var err error
		if f.f, err = os.Create(filepath.Join(w.tmp, name)); err != nil {
			return fmt.Errorf("checkpoint: store: %w", err)
		}
		f.bw = bufio.NewWriterSize(f.f, 1<<20)
		f.sc = rec.Schema()
		f.w = ipc.NewWriter(f.bw, ipc.WithSchema(f.sc), ipc.WithAllocator(w.mem), ipc.WithZstd())
	}
	if !rec.Schema().Equal(f.sc) {
		return fmt.Errorf("checkpoint: store %s: schema %v differs from the first batch's %v", name, rec.Schema(), f.sc)
	}
	if err := f.w.Write(rec); err != nil {
		return fmt.Errorf("checkpoint: store %s: %w", name, err)
	}
	return nil
}

// finish closes, flushes and fsyncs the file.
func (f *fileWriter) finish() error {
	if f.f == nil {
		return nil
	}
	err := f.w.Close()
	f.w = nil
	if err == nil {
		err = f.bw.Flush()
	}
	if err == nil {
		err = f.f.Sync()
	}
	err = errors.Join(err, f.f.Close())
	f.f = nil
	return err
}

// commit writes the model and meta, fsyncs everything and renames the
// entry to dst. Where another run stored dst first, its entry is kept and
// this one dropped (both are the same fit of the same data).
func (w *entryWriter) commit(dst string, model []byte) error {
	err := errors.Join(w.x.finish(), w.y.finish())
	if err == nil {
		err = writeSynced(filepath.Join(w.tmp, modelFile), model)
	}
	if err == nil {
		var mb []byte
		if mb, err = json.Marshal(w.meta); err == nil {
			err = writeSynced(filepath.Join(w.tmp, metaFile), mb)
		}
	}
	if err == nil {
		err = syncDir(w.tmp)
	}
	if err != nil {
		w.abort()
		return fmt.Errorf("checkpoint: store: %w", err)
	}
	// The rename fails where dst exists: a complete entry that a
	// concurrent run stored first is kept (it is the same fit of the
	// same data) and ours dropped; anything else there (a directory that
	// some other writer left half-written) is removed and the rename
	// tried again. An eviction racing with this is retried too.
	for try := 0; ; try++ {
		err := os.Rename(w.tmp, dst)
		if err == nil {
			break
		}
		if _, serr := os.Stat(filepath.Join(dst, metaFile)); serr == nil {
			w.abort()
			return nil
		}
		if try == 3 {
			w.abort()
			return fmt.Errorf("checkpoint: store: %w", err)
		}
		if rerr := removeEntry(dst); rerr != nil {
			w.abort()
			return rerr
		}
	}
	return syncDir(filepath.Dir(dst))
}

// abort drops what was written.
func (w *entryWriter) abort() {
	if w.x.f != nil {
		w.x.w.Close()
		w.x.f.Close()
	}
	if w.y.f != nil {
		w.y.w.Close()
		w.y.f.Close()
	}
	w.x, w.y = fileWriter{}, fileWriter{}
	os.RemoveAll(w.tmp)
}

func writeSynced(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// entryReader is a complete entry opened for reading: a flow.Source of
// the cached outputs, read batch by batch (one decoded batch in memory at
// a time), and the fitted prefix.
type entryReader struct {
	dir   string
	mem   memory.Allocator
	model []byte
	meta  meta
	x, y  fileReader
	pos   int
	// damaged is set when a batch could not be read back.
	damaged bool
}

type fileReader struct {
	f *os.File
	r *ipc.Reader
}

// open opens the entry in dir, all its files at once, or reports a miss
// (false) where it is absent, incomplete or being evicted.
func openEntry(dir string, mem memory.Allocator) (*entryReader, bool, error) {
	return openOutputs(dir, mem, true)
}

// openOutputs opens the outputs in dir, and the model where withModel.
func openOutputs(dir string, mem memory.Allocator, withModel bool) (*entryReader, bool, error) {
	e := &entryReader{dir: dir, mem: mem}
	mb, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, false, nil
	}
	if err := json.Unmarshal(mb, &e.meta); err != nil || e.meta.Format != formatVersion {
		return nil, false, nil // a foreign or older entry: a miss, overwritten by the next store
	}
	if withModel {
		if e.model, err = os.ReadFile(filepath.Join(dir, modelFile)); err != nil {
			return nil, false, nil
		}
	}
	if len(e.meta.Batches) > 0 {
		if err := e.x.open(filepath.Join(dir, xFile), mem); err != nil {
			return nil, false, nil
		}
		if e.meta.HasY {
			if err := e.y.open(filepath.Join(dir, yFile), mem); err != nil {
				e.x.close()
				return nil, false, nil
			}
		}
	}
	return e, true, nil
}

func (f *fileReader) open(path string, mem memory.Allocator) error {
	var err error
	if f.f, err = os.Open(path); err != nil {
		return err
	}
	if f.r, err = ipc.NewReader(bufio.NewReaderSize(f.f, 1<<20), ipc.WithAllocator(mem)); err != nil {
		f.f.Close()
		f.f = nil
		return err
	}
	return nil
}

func (f *fileReader) read(name string) (arrow.RecordBatch, error) {
	if !f.r.Next() {
		err := f.r.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	rec := f.r.RecordBatch()
	rec.Retain()
	return rec, nil
}

func (f *fileReader) close() {
	if f.r != nil {
		f.r.Release()
	}
	if f.f != nil {
		f.f.Close()
	}
	*f = fileReader{}
}

// Next returns the next cached output batch, which the caller owns.
func (e *entryReader) Next(ctx context.Context) (flow.Batch, error) {
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	if e.pos >= len(e.meta.Batches) {
		return flow.Batch{}, io.EOF
	}
	var b flow.Batch
	var err error
	if b.X, err = e.x.read(xFile); err == nil && e.meta.HasY {
		b.Y, err = e.y.read(yFile)
	}
	if err != nil {
		b.Release()
		e.damaged = true
		return flow.Batch{}, fmt.Errorf("%w %s, batch %d: %w", ErrDamaged, e.dir, e.pos, err)
	}
	b.Seq, b.Epoch = e.meta.Batches[e.pos][0], int(e.meta.Batches[e.pos][1])
	e.pos++
	return b, nil
}

// Replayable reports true: the entry can be read again.
func (e *entryReader) Replayable() bool { return true }

// Rewind reads the entry again from its first batch.
func (e *entryReader) Rewind() error {
	for _, f := range []*fileReader{&e.x, &e.y} {
		if f.f == nil {
			continue
		}
		if f.r != nil {
			f.r.Release()
		}
		f.r = nil
		if _, err := f.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("checkpoint: rewind %s: %w", e.dir, err)
		}
		r, err := ipc.NewReader(bufio.NewReaderSize(f.f, 1<<20), ipc.WithAllocator(e.mem))
		if err != nil {
			return fmt.Errorf("checkpoint: rewind %s: %w", e.dir, err)
		}
		f.r = r
	}
	e.pos = 0
	return nil
}

func (e *entryReader) close() {
	e.x.close()
	e.y.close()
}

var _ flow.Rewinder = (*entryReader)(nil)

// spill reads src to its end into a temporary directory of the cache
// (Arrow IPC, zstd, batch by batch) and returns it as a replayable
// source; remove deletes it. It makes a source that can be neither
// fingerprinted nor rewound cacheable: its content is hashed from the
// spill, and a miss fits the prefix on the spill.
func (c *Cache) spill(ctx context.Context, src flow.Source, mem memory.Allocator) (*entryReader, error) {
	w, err := c.create(mem)
	if err != nil {
		return nil, err
	}
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			err = w.write(b)
			b.Release()
		}
		if err != nil {
			w.abort()
			return nil, fmt.Errorf("checkpoint: spilling the source (%T) after %d batches: %w", src, len(w.meta.Batches), err)
		}
	}
	err = errors.Join(w.x.finish(), w.y.finish())
	if err == nil {
		var mb []byte
		if mb, err = json.Marshal(w.meta); err == nil {
			err = os.WriteFile(filepath.Join(w.tmp, metaFile), mb, 0o644)
		}
	}
	if err != nil {
		w.abort()
		return nil, fmt.Errorf("checkpoint: spilling the source (%T): %w", src, err)
	}
	e, ok, err := openOutputs(w.tmp, mem, false)
	if err != nil || !ok {
		w.abort()
		return nil, fmt.Errorf("checkpoint: spilling the source (%T): cannot read the spill back (%v)", src, err)
	}
	return e, nil
}

// remove closes e and deletes its directory (a spill's).
func (e *entryReader) remove() {
	e.close()
	os.RemoveAll(e.dir)
}
