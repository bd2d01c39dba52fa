package flow

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// replay is the source of a run, readable once per pass. A replayable
// source (see Replayable) is rewound; any other is spilled to disk (Arrow IPC) on the
// first pass and read back from there on later passes, so that memory stays
// bounded however long the stream.
//
// close may come while a read abandoned by Close (see Stream) is still
// inside the source: mu orders the spill's writes and reads after it, and
// makes them no-ops once closed.
type replay struct {
	src   Source
	spill *spill // nil unless the source cannot rewind and a pass follows
	pass  int

	mu     sync.Mutex // guards spill and closed
	closed bool
	errEnd error // what a read after close returns: the run's ErrClosed
}

func newReplay(src Source, passes int, alloc memory.Allocator, dir string, errEnd error) *replay {
	r := &replay{src: src, errEnd: errEnd}
	if !Replayable(src) && passes > 1 {
		r.spill = &spill{alloc: alloc, dir: dir}
	}
	return r
}

// Next reads the next batch of the current pass.
func (r *replay) Next(ctx context.Context) (Batch, error) {
	if r.spill != nil && r.pass > 0 {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			return Batch{}, r.errEnd
		}
		return r.spill.next(ctx)
	}
	b, err := r.read(ctx)
	if err != nil {
		b.Release() // a source may return a batch with its error
		if atEnd(err) {
			return Batch{}, io.EOF
		}
		if errors.Is(err, ErrCut) {
			return Batch{}, ErrCut
		}
		return Batch{}, fmt.Errorf("penstock: source: %w", err)
	}
	if r.spill != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			b.Release()
			return Batch{}, r.errEnd
		}
		if err := r.spill.write(b); err != nil {
			b.Release()
			return Batch{}, err
		}
	}
	return b, nil
}

// read calls the source's Next, turning a panic into a *PanicError: the
// source is user code, and the streaming engine calls it in a goroutine of
// its own, where a panic would end the program.
func (r *replay) read(ctx context.Context) (b Batch, err error) {
	defer recovered(&err)
	return r.src.Next(ctx)
}

// spilling reports whether this pass writes the spill that later passes
// read: it must then read the source to its end.
func (r *replay) spilling() bool { return r.spill != nil && r.pass == 0 }

// rewind starts the next pass.
func (r *replay) rewind() error {
	r.pass++
	if r.spill != nil {
		return r.spill.rewind()
	}
	if err := r.src.(Rewinder).Rewind(); err != nil {
		return fmt.Errorf("penstock: source: rewind: %w", err)
	}
	return nil
}

// close removes the spill, if any. The source is the caller's.
func (r *replay) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.spill == nil {
		return nil
	}
	return r.spill.close()
}

// spill is a stream of batches on disk: X and Y in two Arrow IPC stream
// files, Seq and Epoch in memory (16 bytes a batch).
type spill struct {
	alloc memory.Allocator
	dir   string

	x, y   spillFile
	hasY   bool
	meta   [][2]int64 // Seq, Epoch of each batch
	pos    int
	reread bool
}

type spillFile struct {
	f  *os.File
	bw *bufio.Writer
	w  *ipc.Writer
	r  *ipc.Reader
	sc *arrow.Schema
}

func (s *spill) write(b Batch) error {
	if len(s.meta) == 0 {
		s.hasY = b.Y != nil
	}
	if (b.Y != nil) != s.hasY {
		return fmt.Errorf("penstock: spill: batch %d has Y=%v, the first batch Y=%v; a stream has labels on every batch or none", b.Seq, b.Y != nil, s.hasY)
	}
	if err := s.x.write(s, "x", b.X); err != nil {
		return err
	}
	if s.hasY {
		if err := s.y.write(s, "y", b.Y); err != nil {
			return err
		}
	}
	s.meta = append(s.meta, [2]int64{b.Seq, int64(b.Epoch)})
	return nil
}

func (f *spillFile) write(s *spill, part string, rec arrow.RecordBatch) error {
	if rec == nil {
		return fmt.Errorf("penstock: spill: batch %d has no %s", len(s.meta), part)
	}
	if f.w == nil {
		var err error
		if f.f, err = os.CreateTemp(s.dir, "penstock-spill-"+part+"-*.arrows"); err != nil {
			return fmt.Errorf("penstock: spill: %w", err)
		}
		f.bw = bufio.NewWriterSize(f.f, 1<<20)
		f.sc = rec.Schema()
		f.w = ipc.NewWriter(f.bw, ipc.WithSchema(f.sc), ipc.WithAllocator(s.alloc))
	}
	if !rec.Schema().Equal(f.sc) {
		return fmt.Errorf("penstock: spill: batch %d: %s schema %v differs from the first batch's %v", len(s.meta), part, rec.Schema(), f.sc)
	}
	if err := f.w.Write(rec); err != nil {
		return fmt.Errorf("penstock: spill %s: %w", f.f.Name(), err)
	}
	return nil
}

// rewind finishes writing (after the first pass) and reopens for reading.
func (s *spill) rewind() error {
	s.pos = 0
	for _, f := range []*spillFile{&s.x, &s.y} {
		if err := f.rewind(s.alloc); err != nil {
			return err
		}
	}
	s.reread = true
	return nil
}

func (f *spillFile) rewind(alloc memory.Allocator) error {
	if f.f == nil {
		return nil
	}
	if f.w != nil {
		err := errors.Join(f.w.Close(), f.bw.Flush())
		f.w = nil
		if err != nil {
			return fmt.Errorf("penstock: spill %s: %w", f.f.Name(), err)
		}
	}
	if f.r != nil {
		f.r.Release()
		f.r = nil
	}
	if _, err := f.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("penstock: spill %s: %w", f.f.Name(), err)
	}
	r, err := ipc.NewReader(bufio.NewReaderSize(f.f, 1<<20), ipc.WithAllocator(alloc))
	if err != nil {
		return fmt.Errorf("penstock: spill %s: %w", f.f.Name(), err)
	}
	f.r = r
	return nil
}

func (s *spill) next(ctx context.Context) (Batch, error) {
	if err := ctx.Err(); err != nil {
		return Batch{}, context.Cause(ctx)
	}
	if s.pos >= len(s.meta) {
		return Batch{}, io.EOF
	}
	var b Batch
	var err error
	if b.X, err = s.x.read(); err == nil && s.hasY {
		b.Y, err = s.y.read()
	}
	if err != nil {
		b.Release()
		return Batch{}, err
	}
	b.Seq, b.Epoch = s.meta[s.pos][0], int(s.meta[s.pos][1])
	s.pos++
	return b, nil
}

func (f *spillFile) read() (arrow.RecordBatch, error) {
	if !f.r.Next() {
		err := f.r.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("penstock: spill %s: %w", f.f.Name(), err)
	}
	rec := f.r.RecordBatch()
	rec.Retain()
	return rec, nil
}

func (s *spill) close() error {
	var errs []error
	for _, f := range []*spillFile{&s.x, &s.y} {
		if f.r != nil {
			f.r.Release()
		}
		if f.w != nil {
			errs = append(errs, f.w.Close())
		}
		if f.f != nil {
			errs = append(errs, f.f.Close(), os.Remove(f.f.Name()))
		}
		*f = spillFile{}
	}
	return errors.Join(errs...)
}
