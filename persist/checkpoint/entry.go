package checkpoint

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
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
	// MaxBatchBytes is the size of the largest output record written (the
	// bytes of its buffers, minibatch.RecordBytes): what reading one back may
	// allocate is bounded by it (see readLimit).
	MaxBatchBytes int64 `json:"max_batch_bytes,omitempty"`
	// Files holds the size and SHA-256 of each output file, checked before
	// an entry is used: a file damaged on disk makes the entry a miss.
	Files map[string]fileSum `json:"files,omitempty"`
}

// fileSum is the size and SHA-256 (hex) of a file.
type fileSum struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// verify reports whether the output files in dir are those the meta
// describes, reading each once.
func (m meta) verify(dir string) bool {
	want := map[string]bool{}
	if len(m.Batches) > 0 {
		want[xFile] = true
		want[yFile] = m.HasY
	}
	for name, need := range want {
		sum, ok := m.Files[name]
		if need != ok {
			return false
		}
		if ok && !sameSum(filepath.Join(dir, name), sum) {
			return false
		}
	}
	return true
}

func sameSum(path string, want fileSum) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, want.Size+1))
	return err == nil && n == want.Size && hex.EncodeToString(h.Sum(nil)) == want.SHA256
}

// readLimit bounds what reading back one batch of the entry may allocate:
// twice the largest record written, and at least 1 MiB (arrow pads each
// buffer), or minibatch.DefaultMaxBatchBytes for an entry that does not
// say. A length damaged on disk is then an error, not a request for
// gigabytes.
func (m meta) readLimit() int64 {
	if m.MaxBatchBytes <= 0 {
		return minibatch.DefaultMaxBatchBytes
	}
	return max(2*m.MaxBatchBytes, 1<<20)
}

const formatVersion = 2 // 2: meta.Files

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
	h  hash.Hash // of what is written to f
	n  int64     // bytes written to f
	bw *bufio.Writer
	w  *ipc.Writer
	sc *arrow.Schema
}

// Write writes p to the file, counting and hashing it.
func (f *fileWriter) Write(p []byte) (int, error) {
	n, err := f.f.Write(p)
	f.h.Write(p[:n])
	f.n += int64(n)
	return n, err
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
	w.meta.MaxBatchBytes = max(w.meta.MaxBatchBytes, minibatch.RecordBytes(b.X))
	if w.meta.HasY {
		if err := w.y.write(w, yFile, b.Y); err != nil {
			return err
		}
		w.meta.MaxBatchBytes = max(w.meta.MaxBatchBytes, minibatch.RecordBytes(b.Y))
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
		f.h = sha256.New()
		f.bw = bufio.NewWriterSize(f, 1<<20)
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

// finish closes, flushes and fsyncs the file name, and records its size
// and SHA-256 in m.
func (f *fileWriter) finish(m *meta, name string) error {
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
	if err == nil {
		if m.Files == nil {
			m.Files = map[string]fileSum{}
		}
		m.Files[name] = fileSum{Size: f.n, SHA256: hex.EncodeToString(f.h.Sum(nil))}
	}
	return err
}

// finish finishes both output files.
func (w *entryWriter) finish() error {
	return errors.Join(w.x.finish(&w.meta, xFile), w.y.finish(&w.meta, yFile))
}

// commit writes the model and meta, fsyncs everything and renames the
// entry to dst. Where another run stored dst first, its entry is kept and
// this one dropped (both are the same fit of the same data).
func (w *entryWriter) commit(dst string, model []byte) error {
	err := w.finish()
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

// fileReader reads one output file of an entry with minibatch's IPC
// stream reader, which checks every message before arrow decodes it and
// bounds what a batch may allocate (meta.readLimit): a file damaged on
// disk is an error, never a crash or an allocation of what a corrupt
// length asks for.
type fileReader struct {
	s *minibatch.IPCStreamSource
}

// open opens the entry in dir, all its files at once, or reports a miss
// (false) where it is absent, incomplete or being evicted.
func openEntry(dir string, mem memory.Allocator) (*entryReader, bool, error) {
	return openOutputs(dir, mem, true, true)
}

// openOutputs opens the outputs in dir, and the model where withModel;
// with verify, an entry whose files are not those its meta describes (see
// meta.verify) is a miss, and is removed.
func openOutputs(dir string, mem memory.Allocator, withModel, verify bool) (*entryReader, bool, error) {
	e := &entryReader{dir: dir, mem: mem}
	mb, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, false, nil
	}
	if err := json.Unmarshal(mb, &e.meta); err != nil || e.meta.Format != formatVersion {
		return nil, false, nil // a foreign or older entry: a miss, overwritten by the next store
	}
	if verify && !e.meta.verify(dir) {
		// Damaged on disk: a miss. The entry goes, so that the next store
		// (which keeps an entry it finds in place) replaces it.
		return nil, false, removeEntry(dir)
	}
	if withModel {
		if e.model, err = os.ReadFile(filepath.Join(dir, modelFile)); err != nil {
			return nil, false, nil
		}
	}
	if len(e.meta.Batches) > 0 {
		if err := e.x.open(filepath.Join(dir, xFile), mem, e.meta.readLimit()); err != nil {
			return nil, false, nil
		}
		if e.meta.HasY {
			if err := e.y.open(filepath.Join(dir, yFile), mem, e.meta.readLimit()); err != nil {
				e.x.close()
				return nil, false, nil
			}
		}
	}
	return e, true, nil
}

func (f *fileReader) open(path string, mem memory.Allocator, limit int64) error {
	s, err := minibatch.OpenIPCStream(path, minibatch.WithAllocator(mem), minibatch.WithMaxBatchBytes(limit))
	if err != nil {
		return err
	}
	f.s = s
	return nil
}

func (f *fileReader) read(ctx context.Context, name string) (arrow.RecordBatch, error) {
	b, err := f.s.Next(ctx)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if b.Y != nil {
		b.Y.Release()
	}
	return b.X, nil
}

func (f *fileReader) close() {
	if f.s != nil {
		f.s.Close()
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
	if b.X, err = e.x.read(ctx, xFile); err == nil && e.meta.HasY {
		b.Y, err = e.y.read(ctx, yFile)
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
		if f.s == nil {
			continue
		}
		if err := f.s.Rewind(); err != nil {
			return fmt.Errorf("checkpoint: rewind %s: %w", e.dir, err)
		}
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
	err = w.finish()
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
	e, ok, err := openOutputs(w.tmp, mem, false, false)
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
