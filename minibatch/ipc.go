package minibatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/internal/ipcguard"
)

// This file reads Arrow IPC files and streams (the standard format, as
// written by pyarrow, Arrow C++, arrow-js or arrow-go) with arrow-go's own
// readers, ipc.NewFileReader and ipc.NewReaderFromMessageReader. What
// arrow-go trusts in its input and should not, package ipcguard checks
// before arrow-go reads it (footer, metadata, decompressed sizes); what its
// decoded arrays may still get wrong, validateRecord checks after
// (ipc_validate.go).

// IPCFileSource reads the record batches of an Arrow IPC file (random
// access format, ".arrow" / ".feather" v2), in the order of the file's
// footer. It is replayable.
//
// Each batch is the file's record batch as written (re-batch it to change
// its size), split into X and Y by the source's Roles. Its buffers come
// from the WithAllocator allocator: the message body, read whole, and the
// decompressed buffers of a compressed batch. Reading a batch costs one
// read of its metadata (checked), one of its message, the decompression of
// its buffers if any, and a validation of its arrays that is O(columns) for
// fixed-width columns and O(rows) for variable-length and dictionary ones.
// A source is read by one goroutine at a time.
type IPCFileSource struct {
	ipcPass
	r      *io.SectionReader
	fr     *ipc.FileReader
	blocks []ipcguard.Block
	next   int
}

var (
	_ flow.Source   = (*IPCFileSource)(nil)
	_ flow.Rewinder = (*IPCFileSource)(nil)
)

// OpenIPCFile opens the Arrow IPC file at path. The source owns the open
// file and Close closes it. Errors name the path.
func OpenIPCFile(path string, opts ...SourceOption) (*IPCFileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("minibatch: ipc: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("minibatch: ipc %q: %w", path, err)
	}
	s, err := newIPCFile(f, st.Size(), path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.file = f
	return s, nil
}

// NewIPCFile reads an Arrow IPC file of size bytes from r, which the caller
// keeps open while the source is used and closes after Close. Errors name
// the source by WithName (default "<reader>").
func NewIPCFile(r io.ReaderAt, size int64, opts ...SourceOption) (*IPCFileSource, error) {
	return newIPCFile(r, size, "<reader>", opts)
}

func newIPCFile(r io.ReaderAt, size int64, name string, opts []SourceOption) (*IPCFileSource, error) {
	p, err := newIPCPass("ipc file", name, opts)
	if err != nil {
		return nil, err
	}
	s := &IPCFileSource{ipcPass: p, r: io.NewSectionReader(r, 0, size)}
	if err := s.open(); err != nil {
		return nil, err
	}
	if err := s.adoptSchema(s.fr.Schema()); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// open checks the file's footer and dictionaries and opens arrow's reader.
func (s *IPCFileSource) open() error {
	f, err := ipcguard.CheckFile(s.r, s.r.Size(), s.cfg.maxBatchBytes)
	if err != nil {
		return s.errorf("%w", limitHint(err))
	}
	err = s.mem.Read(func() (err error) {
		for _, b := range f.Dictionaries {
			s.mem.Allow(b.MetaLen)
			s.mem.Allow(b.BodyLen)
		}
		s.fr, err = ipc.NewFileReader(s.r, ipc.WithAllocator(s.mem),
			ipc.WithBodySizeLimit(s.cfg.maxBatchBytes), ipc.WithMetadataSizeLimit(ipcguard.MaxMetadataBytes))
		return err
	})
	if err != nil {
		s.fr = nil
		s.mem.ReleaseReader(false)
		return s.errorf("%w", limitHint(err))
	}
	s.blocks, s.next = f.Records, 0
	return nil
}

// NumBatches returns the number of record batches in the file.
func (s *IPCFileSource) NumBatches() int { return len(s.blocks) }

// Next returns the next record batch, split into X and Y, with Seq 0, 1, 2,
// … in this pass and Epoch 0; the caller owns and releases it. It returns
// io.EOF after the last batch; an error names the file, the batch, its byte
// offset and what is wrong, and ends the pass (Rewind starts a new one).
// After Close it returns an error.
func (s *IPCFileSource) Next(ctx context.Context) (flow.Batch, error) {
	if err := s.ready(ctx); err != nil {
		return flow.Batch{}, err
	}
	if s.next == len(s.blocks) {
		s.done = true
		return flow.Batch{}, io.EOF
	}
	i, b := s.next, s.blocks[s.next]
	s.next++
	if err := ipcguard.CheckBlock(s.r, b); err != nil {
		return flow.Batch{}, s.fail("batch %d: %w", i, err)
	}
	var rec arrow.RecordBatch
	err := s.mem.Read(func() (err error) {
		s.mem.Allow(b.MetaLen)
		s.mem.Allow(b.BodyLen)
		rec, err = s.fr.RecordBatchAt(i)
		return err
	})
	if err != nil {
		return flow.Batch{}, s.fail("batch %d at byte %d: %w", i, b.Offset, limitHint(err))
	}
	defer rec.Release()
	return s.emit(rec, fmt.Sprintf("batch %d at byte %d", i, b.Offset))
}

// Rewind starts a new pass from the first record batch, with arrow's
// reader opened anew (what a failed pass left behind is freed). It fails
// only if the source is closed or the file no longer reads.
func (s *IPCFileSource) Rewind() error {
	if s.closed {
		return s.errorf("rewind after Close")
	}
	s.closeReader()
	if err := s.open(); err != nil {
		s.err = err
		return err
	}
	if !s.fr.Schema().Equal(s.schema) {
		return s.fail("rewind: the schema changed (the file was rewritten?)")
	}
	s.restart()
	return nil
}

// Replayable reports true until Close: an IPC file can always be read again.
func (s *IPCFileSource) Replayable() bool { return !s.closed }

// Close releases arrow's reader and what it holds, and closes the file if
// the source opened it. Batches already returned stay valid. Close may be
// called more than once; Next after Close returns an error.
func (s *IPCFileSource) Close() error {
	s.closeReader()
	return s.close()
}

func (s *IPCFileSource) closeReader() {
	if s.fr != nil {
		s.fr.Close()
		s.fr = nil
	}
	s.mem.ReleaseReader(s.handedOut)
	s.handedOut = false
}

// IPCStreamSource reads the record batches of an Arrow IPC stream (the
// streaming format, ".arrows"). It is replayable when it was opened from a
// path or made from an io.Seeker (see Replayable).
//
// Each batch is the stream's record batch as written, split into X and Y by
// the source's Roles; its buffers come from the WithAllocator allocator.
// Reading a batch costs one read of its message (and of the dictionary
// batches before it), the decompression of its buffers if any, and the
// validation of its arrays (see IPCFileSource). Next blocks while the
// underlying reader does; it checks ctx only between batches. A source is
// read by one goroutine at a time.
type IPCStreamSource struct {
	ipcPass
	r      io.Reader
	seeker io.Seeker // nil when not replayable
	start  int64
	rd     *ipc.Reader
	msgs   *ipcguard.MessageReader // rd's, to name the message of an error
}

var (
	_ flow.Source   = (*IPCStreamSource)(nil)
	_ flow.Rewinder = (*IPCStreamSource)(nil)
)

// OpenIPCStream opens the Arrow IPC stream at path; the source is
// replayable. The source owns the open file and Close closes it. Errors name
// the path.
func OpenIPCStream(path string, opts ...SourceOption) (*IPCStreamSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("minibatch: ipc: %w", err)
	}
	s, err := newIPCStream(f, path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.file = f
	return s, nil
}

// NewIPCStream reads an Arrow IPC stream from r, from its current position.
// The source is replayable if r is an io.Seeker. The caller keeps r open
// while the source is used and closes it after Close. Errors name the source
// by WithName (default "<reader>").
func NewIPCStream(r io.Reader, opts ...SourceOption) (*IPCStreamSource, error) {
	return newIPCStream(r, "<reader>", opts)
}

func newIPCStream(r io.Reader, name string, opts []SourceOption) (*IPCStreamSource, error) {
	p, err := newIPCPass("ipc stream", name, opts)
	if err != nil {
		return nil, err
	}
	s := &IPCStreamSource{ipcPass: p, r: r}
	if sk, ok := r.(io.Seeker); ok {
		if s.start, err = sk.Seek(0, io.SeekCurrent); err == nil {
			s.seeker = sk
		}
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	if err := s.adoptSchema(s.rd.Schema()); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// open starts arrow's reader on the stream, which reads the schema.
func (s *IPCStreamSource) open() error {
	msgs := ipcguard.NewMessageReader(s.r, s.mem, s.cfg.maxBatchBytes)
	err := s.mem.Read(func() (err error) {
		s.rd, err = ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(s.mem))
		return err // on error, arrow released msgs
	})
	s.msgs = msgs
	if err != nil {
		if _, at, ok := msgs.Last(); ok {
			err = fmt.Errorf("schema at byte %d: %w", at, err)
		}
		s.rd, s.msgs = nil, nil
		s.mem.ReleaseReader(false)
		return s.errorf("%w", limitHint(err))
	}
	return nil
}

// Next returns the next record batch, split into X and Y, with Seq 0, 1, 2,
// … in this pass and Epoch 0; the caller owns and releases it. It returns
// io.EOF after the last batch; an error names the stream, the message, its
// byte offset and what is wrong, and ends the pass. After Close it returns
// an error.
func (s *IPCStreamSource) Next(ctx context.Context) (flow.Batch, error) {
	if err := s.ready(ctx); err != nil {
		return flow.Batch{}, err
	}
	var ok bool
	err := s.mem.Read(func() error {
		ok = s.rd.Next()
		return s.rd.Err()
	})
	if err != nil {
		if i, at, ok := s.msgs.Last(); ok { // the message read, and failed to decode
			return flow.Batch{}, s.fail("batch %d (message %d at byte %d): %w", s.seq, i, at, limitHint(err))
		}
		return flow.Batch{}, s.fail("batch %d: %w", s.seq, limitHint(err))
	}
	if !ok {
		s.done = true
		return flow.Batch{}, io.EOF
	}
	i, at, _ := s.msgs.Last()
	return s.emit(s.rd.RecordBatch(), fmt.Sprintf("batch %d (message %d at byte %d)", s.seq, i, at)) // the reader keeps its reference
}

// Replayable reports whether Rewind can work: the source was opened from a
// path or made from an io.Seeker, and is not closed.
func (s *IPCStreamSource) Replayable() bool { return !s.closed && s.seeker != nil }

// Rewind seeks back to where the stream started and starts a new pass. It
// returns an error wrapping ErrNotReplayable when the input is not an
// io.Seeker.
func (s *IPCStreamSource) Rewind() error {
	if s.closed {
		return s.errorf("rewind after Close")
	}
	if s.seeker == nil {
		return s.errorf("rewind: %w (made from an io.Reader that is not an io.Seeker)", ErrNotReplayable)
	}
	s.closeReader()
	if _, err := s.seeker.Seek(s.start, io.SeekStart); err != nil {
		return s.fail("rewind: %w", err)
	}
	if err := s.open(); err != nil {
		s.err = err
		return err
	}
	if !s.rd.Schema().Equal(s.schema) {
		return s.fail("rewind: the schema changed (the stream was rewritten?)")
	}
	s.restart()
	return nil
}

// Close releases arrow's reader and what it holds, and closes the file if
// the source opened it. Batches already returned stay valid. Close may be
// called more than once; Next after Close returns an error.
func (s *IPCStreamSource) Close() error {
	s.closeReader()
	return s.close()
}

func (s *IPCStreamSource) closeReader() {
	if s.rd != nil {
		s.rd.Release()
		s.rd, s.msgs = nil, nil
	}
	s.mem.ReleaseReader(s.handedOut)
	s.handedOut = false
}

// ipcPass is what the two IPC sources share: their name, configuration,
// allocator and file, and where the current pass stands.
type ipcPass struct {
	kind string // "ipc file" or "ipc stream", for errors
	// handedOut: a batch of the current arrow reader was given out, so
	// its buffers may still be in use after the reader is released.
	handedOut bool
	name      string
	cfg       *sourceConfig
	mem       *ipcguard.Allocator // cfg.mem, bounded and cleaned up per read
	file      *os.File            // owned, when opened from a path
	schema    *arrow.Schema
	xSchema   *arrow.Schema // the inputs of schema

	seq    int64
	err    error // sticky: the pass failed
	done   bool
	closed bool
}

func newIPCPass(kind, name string, opts []SourceOption) (ipcPass, error) {
	cfg, err := newSourceConfig(opts)
	if err != nil {
		return ipcPass{}, err
	}
	if cfg.name != "" {
		name = cfg.name
	}
	return ipcPass{kind: kind, name: name, cfg: cfg, mem: ipcguard.NewAllocator(cfg.mem, cfg.maxBatchBytes)}, nil
}

func (p *ipcPass) errorf(format string, args ...any) error {
	return fmt.Errorf("minibatch: %s %q: "+format, append([]any{p.kind, p.name}, args...)...)
}

// fail ends the pass with an error.
func (p *ipcPass) fail(format string, args ...any) error {
	p.err = p.errorf(format, args...)
	return p.err
}

// limitHint names the option that sets a limit that err reports.
func limitHint(err error) error {
	if _, ok := errors.AsType[*ipcguard.LimitError](err); ok {
		return fmt.Errorf("%w (WithMaxBatchBytes)", err)
	}
	return err
}

// Schema returns the schema of X, the input columns, as every source's
// Schema does.
func (p *ipcPass) Schema() *arrow.Schema { return p.xSchema }

// TableSchema returns the schema of the record batches as stored (before
// the split into X and Y).
func (p *ipcPass) TableSchema() *arrow.Schema { return p.schema }

// adoptSchema takes the schema of the first pass and checks that the
// source's roles name columns of it.
func (p *ipcPass) adoptSchema(schema *arrow.Schema) error {
	p.schema = schema
	inputs, _, err := p.cfg.roles.Columns(schema)
	if err != nil {
		return p.errorf("%w", err)
	}
	p.xSchema = fieldsSchema(schema, inputs)
	return nil
}

func (p *ipcPass) restart() { p.seq, p.err, p.done = 0, nil, false }

// ready reports why the pass cannot go on, if it cannot.
func (p *ipcPass) ready(ctx context.Context) error {
	switch {
	case p.closed:
		return p.errorf("read after Close")
	case p.err != nil:
		return p.err
	case p.done:
		return io.EOF
	case ctx.Err() != nil:
		return context.Cause(ctx)
	}
	return nil
}

// emit validates rec (borrowed) and returns it split by the source's roles.
func (p *ipcPass) emit(rec arrow.RecordBatch, where string) (flow.Batch, error) {
	if err := validateRecord(rec, p.cfg.maxBatchBytes); err != nil {
		return flow.Batch{}, p.fail("%s: %w", where, err)
	}
	x, y, err := p.cfg.roles.Split(rec)
	if err != nil {
		return flow.Batch{}, p.fail("%s: %w", where, err)
	}
	b := flow.Batch{Seq: p.seq, X: x, Y: y}
	p.seq++
	p.handedOut = true
	return b, nil
}

// close marks the source closed and closes the file if the source opened
// it.
func (p *ipcPass) close() error {
	p.closed = true
	if p.file != nil {
		err := p.file.Close()
		p.file = nil
		if err != nil {
			return p.errorf("close: %w", err)
		}
	}
	return nil
}
