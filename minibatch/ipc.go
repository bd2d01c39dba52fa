package minibatch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// This file reads Arrow IPC files and streams (the standard format, as
// written by pyarrow, Arrow C++ or arrow-go). Arrow's own ipc.Reader decodes
// the record batches, but the messages are framed and checked here first:
// arrow-go bounds the size of a message body but trusts the uncompressed
// length written in front of each compressed (lz4, zstd) buffer, so a small
// body could ask for an allocation of any size. Every record and dictionary
// batch is therefore checked against its metadata before arrow sees it: its
// buffers lie inside its body and the sum of their decompressed lengths is
// within WithMaxBatchBytes. Decoded arrays are then checked for buffers too
// short for their lengths, so that a corrupt input is an error, not a panic
// later in a step.

// maxMetadataBytes bounds the flatbuffer metadata of one IPC message (and
// the footer of an IPC file), as arrow-go does by default.
const maxMetadataBytes = 64 << 20

// Message header types of the Arrow IPC format (Message.fbs).
const (
	headerSchema          = 1
	headerDictionaryBatch = 2
	headerRecordBatch     = 3
)

var ipcFileMagic = []byte("ARROW1")

// IPCFileSource reads the record batches of an Arrow IPC file (random
// access format, ".arrow" / ".feather" v2), in the order of the file's
// footer. It is replayable.
//
// Each batch is the file's record batch as written (re-batch it to change
// its size), split into X and Y by the source's Roles. Reading a batch costs
// one read of its message, the decompression of its buffers if any, and
// O(columns) checks. A source is read by one goroutine at a time.
type IPCFileSource struct {
	name   string
	cfg    *sourceConfig
	file   *os.File // owned, when opened from a path
	r      io.ReaderAt
	end    int64 // offset of the footer: the end of the messages
	dicts  []ipcBlock
	blocks []ipcBlock
	schema *arrow.Schema

	rd   *ipc.Reader
	seq  int64
	err  error
	done bool
}

var (
	_ flow.Source   = (*IPCFileSource)(nil)
	_ flow.Rewinder = (*IPCFileSource)(nil)
)

type ipcBlock struct {
	offset  int64
	metaLen int64
	bodyLen int64
}

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
	cfg, err := newSourceConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.name != "" {
		name = cfg.name
	}
	s := &IPCFileSource{name: name, cfg: cfg, r: r}
	if err := s.readFooter(size); err != nil {
		return nil, s.errorf("%w", err)
	}
	if err := s.Rewind(); err != nil {
		return nil, err
	}
	s.schema = s.rd.Schema()
	if _, _, err := cfg.roles.Columns(s.schema); err != nil {
		s.Close()
		return nil, s.errorf("%w", err)
	}
	return s, nil
}

func (s *IPCFileSource) errorf(format string, args ...any) error {
	return fmt.Errorf("minibatch: ipc file %q: "+format, append([]any{s.name}, args...)...)
}

// readFooter reads and checks the file's magic numbers and footer.
func (s *IPCFileSource) readFooter(size int64) error {
	const trailer = 4 + 6 // footer length, magic
	if size < 8+trailer {
		return fmt.Errorf("not an Arrow IPC file: %d bytes is too short", size)
	}
	head := make([]byte, 6)
	if _, err := s.r.ReadAt(head, 0); err != nil {
		return fmt.Errorf("reading magic at byte 0: %w", err)
	}
	tail := make([]byte, trailer)
	if _, err := s.r.ReadAt(tail, size-trailer); err != nil {
		return fmt.Errorf("reading footer length at byte %d: %w", size-trailer, err)
	}
	if !bytes.Equal(head, ipcFileMagic) || !bytes.Equal(tail[4:], ipcFileMagic) {
		return errors.New("not an Arrow IPC file: no ARROW1 magic at both ends (an IPC stream? use OpenIPCStream)")
	}
	footerLen := int64(int32(binary.LittleEndian.Uint32(tail)))
	s.end = size - trailer - footerLen
	if footerLen <= 0 || footerLen > maxMetadataBytes || s.end < 8 {
		return fmt.Errorf("footer length %d at byte %d is out of range for a %d-byte file", footerLen, size-trailer, size)
	}
	buf := make([]byte, footerLen)
	if _, err := s.r.ReadAt(buf, s.end); err != nil {
		return fmt.Errorf("reading footer at byte %d: %w", s.end, err)
	}
	footer, err := fbRoot(buf)
	if err != nil {
		return fmt.Errorf("footer at byte %d: %w", s.end, err)
	}
	// Footer: version (0), schema (1), dictionaries (2), recordBatches (3).
	if s.dicts, err = s.readBlocks(footer, 2, "dictionary"); err != nil {
		return fmt.Errorf("footer at byte %d: %w", s.end, err)
	}
	if s.blocks, err = s.readBlocks(footer, 3, "record batch"); err != nil {
		return fmt.Errorf("footer at byte %d: %w", s.end, err)
	}
	return nil
}

func (s *IPCFileSource) readBlocks(footer fbTable, field int, what string) ([]ipcBlock, error) {
	// struct Block { offset: long; metaDataLength: int; bodyLength: long }
	const blockSize = 24
	start, n, err := footer.vector(field, blockSize)
	if err != nil {
		return nil, fmt.Errorf("%s blocks: %w", what, err)
	}
	blocks := make([]ipcBlock, n)
	for i := range blocks {
		p := footer.buf[start+i*blockSize:]
		b := ipcBlock{
			offset:  int64(binary.LittleEndian.Uint64(p)),
			metaLen: int64(int32(binary.LittleEndian.Uint32(p[8:]))),
			bodyLen: int64(binary.LittleEndian.Uint64(p[16:])),
		}
		switch {
		case b.offset < 8 || b.offset >= s.end || b.metaLen <= 0 || b.metaLen > maxMetadataBytes || b.bodyLen < 0:
			return nil, fmt.Errorf("%s %d: block (offset %d, metadata %d bytes, body %d bytes) is out of range", what, i, b.offset, b.metaLen, b.bodyLen)
		case b.bodyLen > s.cfg.maxBatchBytes:
			return nil, fmt.Errorf("%s %d at byte %d: body of %d bytes exceeds the limit of %d bytes (WithMaxBatchBytes)", what, i, b.offset, b.bodyLen, s.cfg.maxBatchBytes)
		case b.offset+b.metaLen+b.bodyLen > s.end:
			return nil, fmt.Errorf("%s %d at byte %d: %d bytes run past the footer at byte %d", what, i, b.offset, b.metaLen+b.bodyLen, s.end)
		}
		blocks[i] = b
	}
	return blocks, nil
}

// NumBatches returns the number of record batches in the file.
func (s *IPCFileSource) NumBatches() int { return len(s.blocks) }

// Schema returns the schema of the file's record batches (before the split
// into X and Y).
func (s *IPCFileSource) Schema() *arrow.Schema { return s.schema }

// Next returns the next record batch, split into X and Y, with Seq 0, 1, 2,
// … in this pass and Epoch 0; the caller owns and releases it. It returns
// io.EOF after the last batch; an error names the file, the batch, its byte
// offset and what is wrong, and ends the pass (Rewind starts a new one).
func (s *IPCFileSource) Next(ctx context.Context) (flow.Batch, error) {
	return nextIPC(ctx, s.rd, &s.seq, &s.err, &s.done, s.cfg.roles, s.errorf)
}

// Rewind starts a new pass from the first record batch. It fails only if
// the source is closed or the schema message cannot be read.
func (s *IPCFileSource) Rewind() error {
	if s.r == nil {
		return s.errorf("rewind after Close")
	}
	if s.rd != nil {
		s.rd.Release()
		s.rd = nil
	}
	s.seq, s.err, s.done = 0, nil, false
	msgs := &fileMessages{src: s}
	msgs.refs.Store(1)
	rd, err := ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(s.cfg.mem))
	if err != nil {
		msgs.Release()
		return s.errorf("%w", err)
	}
	s.rd = rd
	return nil
}

// Replayable reports true: an IPC file can always be read again.
func (s *IPCFileSource) Replayable() bool { return true }

// Close releases the decoder and what it holds, and closes the file if the
// source opened it. Batches already returned stay valid. Close is
// idempotent.
func (s *IPCFileSource) Close() error {
	if s.rd != nil {
		s.rd.Release()
		s.rd = nil
	}
	s.r = nil
	if s.file != nil {
		err := s.file.Close()
		s.file = nil
		if err != nil {
			return fmt.Errorf("minibatch: ipc file %q: close: %w", s.name, err)
		}
	}
	return nil
}

// fileMessages gives arrow's decoder the messages of an IPC file, checked:
// the schema message (which follows the magic), the dictionary batches, then
// the record batches in footer order.
type fileMessages struct {
	src  *IPCFileSource
	next int // 0: schema; then dictionaries, then record batches
	cur  *ipc.Message
	refs atomic.Int64
}

func (m *fileMessages) Message() (*ipc.Message, error) {
	m.releaseCur()
	s := m.src
	if s.r == nil {
		return nil, errors.New("source closed")
	}
	i := m.next
	var (
		r    io.Reader
		what string
		at   int64
		blk  ipcBlock
	)
	switch {
	case i == 0:
		r, what, at = io.NewSectionReader(s.r, 8, s.end-8), "schema message", 8
	case i-1 < len(s.dicts):
		blk = s.dicts[i-1]
		what = fmt.Sprintf("dictionary %d", i-1)
	case i-1-len(s.dicts) < len(s.blocks):
		blk = s.blocks[i-1-len(s.dicts)]
		what = fmt.Sprintf("record batch %d", i-1-len(s.dicts))
	default:
		return nil, io.EOF
	}
	if i > 0 {
		r, at = io.NewSectionReader(s.r, blk.offset, blk.metaLen+blk.bodyLen), blk.offset
	}
	m.next++
	msg, hdr, bodyLen, err := readMessage(r, s.cfg)
	if err == nil && i > 0 && bodyLen != blk.bodyLen {
		msg.Release()
		err = fmt.Errorf("body is %d bytes but the footer says %d", bodyLen, blk.bodyLen)
	}
	if err == nil && i > 0 && hdr != headerDictionaryBatch && hdr != headerRecordBatch {
		msg.Release()
		err = fmt.Errorf("message type %d is not a dictionary or record batch", hdr)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%s at byte %d: %w", what, at, err)
	}
	m.cur = msg
	return msg, nil
}

func (m *fileMessages) releaseCur() {
	if m.cur != nil {
		m.cur.Release()
		m.cur = nil
	}
}

func (m *fileMessages) Retain() { m.refs.Add(1) }

func (m *fileMessages) Release() {
	if m.refs.Add(-1) == 0 {
		m.releaseCur()
	}
}

// IPCStreamSource reads the record batches of an Arrow IPC stream (the
// streaming format, ".arrows"). It is replayable when it was opened from a
// path or made from an io.Seeker (see Replayable).
//
// Each batch is the stream's record batch as written, split into X and Y by
// the source's Roles. Reading a batch costs one read of its message, the
// decompression of its buffers if any, and O(columns) checks. Next blocks
// while the underlying reader does; it checks ctx only between batches. A
// source is read by one goroutine at a time.
type IPCStreamSource struct {
	name   string
	cfg    *sourceConfig
	file   *os.File // owned, when opened from a path
	r      io.Reader
	seeker io.Seeker // nil when not replayable
	start  int64
	schema *arrow.Schema

	rd   *ipc.Reader
	seq  int64
	err  error
	done bool
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
	cfg, err := newSourceConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.name != "" {
		name = cfg.name
	}
	s := &IPCStreamSource{name: name, cfg: cfg, r: r}
	if sk, ok := r.(io.Seeker); ok {
		if s.start, err = sk.Seek(0, io.SeekCurrent); err == nil {
			s.seeker = sk
		}
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	s.schema = s.rd.Schema()
	if _, _, err := cfg.roles.Columns(s.schema); err != nil {
		s.Close()
		return nil, s.errorf("%w", err)
	}
	return s, nil
}

func (s *IPCStreamSource) errorf(format string, args ...any) error {
	return fmt.Errorf("minibatch: ipc stream %q: "+format, append([]any{s.name}, args...)...)
}

func (s *IPCStreamSource) open() error {
	msgs := &streamMessages{r: s.r, cfg: s.cfg, pos: s.start}
	msgs.refs.Store(1)
	rd, err := ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(s.cfg.mem))
	if err != nil {
		msgs.Release()
		return s.errorf("%w", err)
	}
	s.rd = rd
	s.seq, s.err, s.done = 0, nil, false
	return nil
}

// Schema returns the schema of the stream's record batches (before the
// split into X and Y).
func (s *IPCStreamSource) Schema() *arrow.Schema { return s.schema }

// Next returns the next record batch, split into X and Y, with Seq 0, 1, 2,
// … in this pass and Epoch 0; the caller owns and releases it. It returns
// io.EOF after the last batch; an error names the stream, the message, its
// byte offset and what is wrong, and ends the pass.
func (s *IPCStreamSource) Next(ctx context.Context) (flow.Batch, error) {
	return nextIPC(ctx, s.rd, &s.seq, &s.err, &s.done, s.cfg.roles, s.errorf)
}

// Replayable reports whether Rewind can work: the source was opened from a
// path or made from an io.Seeker.
func (s *IPCStreamSource) Replayable() bool { return s.seeker != nil }

// Rewind seeks back to where the stream started and starts a new pass. It
// returns an error wrapping ErrNotReplayable when the input is not an
// io.Seeker.
func (s *IPCStreamSource) Rewind() error {
	if s.r == nil {
		return s.errorf("rewind after Close")
	}
	if s.seeker == nil {
		return s.errorf("rewind: %w (made from an io.Reader that is not an io.Seeker)", ErrNotReplayable)
	}
	if s.rd != nil {
		s.rd.Release()
		s.rd = nil
	}
	if _, err := s.seeker.Seek(s.start, io.SeekStart); err != nil {
		return s.errorf("rewind: %w", err)
	}
	return s.open()
}

// Close releases the decoder and what it holds, and closes the file if the
// source opened it. Batches already returned stay valid. Close is
// idempotent.
func (s *IPCStreamSource) Close() error {
	if s.rd != nil {
		s.rd.Release()
		s.rd = nil
	}
	s.r = nil
	if s.file != nil {
		err := s.file.Close()
		s.file = nil
		if err != nil {
			return fmt.Errorf("minibatch: ipc stream %q: close: %w", s.name, err)
		}
	}
	return nil
}

// streamMessages gives arrow's decoder the messages of an IPC stream,
// checked.
type streamMessages struct {
	r     io.Reader
	cfg   *sourceConfig
	pos   int64 // byte offset of the next message, for errors
	index int
	cur   *ipc.Message
	refs  atomic.Int64
}

func (m *streamMessages) Message() (*ipc.Message, error) {
	if m.cur != nil {
		m.cur.Release()
		m.cur = nil
	}
	cr := &countingReader{r: m.r}
	msg, _, _, err := readMessage(cr, m.cfg)
	at := m.pos
	m.pos += cr.n
	i := m.index
	m.index++
	if err != nil {
		if err == io.EOF { // an end-of-stream marker, or the end of r between messages
			return nil, io.EOF
		}
		return nil, fmt.Errorf("message %d at byte %d: %w", i, at, err)
	}
	m.cur = msg
	return msg, nil
}

func (m *streamMessages) Retain() { m.refs.Add(1) }

func (m *streamMessages) Release() {
	if m.refs.Add(-1) == 0 && m.cur != nil {
		m.cur.Release()
		m.cur = nil
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// nextIPC is Next for both IPC sources.
func nextIPC(ctx context.Context, rd *ipc.Reader, seq *int64, stuck *error, done *bool, roles Roles,
	errorf func(string, ...any) error) (flow.Batch, error) {
	switch {
	case *stuck != nil:
		return flow.Batch{}, *stuck
	case *done:
		return flow.Batch{}, io.EOF
	case rd == nil:
		return flow.Batch{}, errorf("read after Close")
	}
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	if !rd.Next() {
		if err := rd.Err(); err != nil {
			*stuck = errorf("batch %d: %w", *seq, err)
			return flow.Batch{}, *stuck
		}
		*done = true
		return flow.Batch{}, io.EOF
	}
	rec := rd.RecordBatch()
	if err := validateRecord(rec); err != nil {
		*stuck = errorf("batch %d: %w", *seq, err)
		return flow.Batch{}, *stuck
	}
	x, y, err := roles.Split(rec)
	if err != nil {
		*stuck = errorf("batch %d: %w", *seq, err)
		return flow.Batch{}, *stuck
	}
	b := flow.Batch{Seq: *seq, X: x, Y: y}
	*seq++
	return b, nil
}

// readMessage reads one framed IPC message from r and checks it: the
// metadata is a well-formed Message flatbuffer, the body is within the
// limit, and a record or dictionary batch's buffers lie within its body and
// decompress to at most the limit. It returns io.EOF at an end-of-stream
// marker or at the end of r before the first byte. The message's body is
// allocated from cfg.mem; the caller releases the message.
func readMessage(r io.Reader, cfg *sourceConfig) (msg *ipc.Message, header byte, bodyLen int64, err error) {
	var word [4]byte
	if _, err := io.ReadFull(r, word[:]); err != nil {
		return nil, 0, 0, err
	}
	n := int32(binary.LittleEndian.Uint32(word[:]))
	if n == -1 { // continuation marker, then the length
		if _, err := io.ReadFull(r, word[:]); err != nil {
			return nil, 0, 0, fmt.Errorf("reading metadata length: %w", noEOF(err))
		}
		n = int32(binary.LittleEndian.Uint32(word[:]))
	}
	switch {
	case n == 0:
		return nil, 0, 0, io.EOF
	case n < 0 || n > maxMetadataBytes:
		return nil, 0, 0, fmt.Errorf("metadata length %d is out of range [1, %d]", n, maxMetadataBytes)
	}
	meta := make([]byte, n)
	if _, err := io.ReadFull(r, meta); err != nil {
		return nil, 0, 0, fmt.Errorf("reading %d bytes of metadata: %w", n, noEOF(err))
	}
	info, err := parseMessage(meta)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("metadata: %w", err)
	}
	if info.bodyLen > cfg.maxBatchBytes {
		return nil, 0, 0, fmt.Errorf("body of %d bytes exceeds the limit of %d bytes (WithMaxBatchBytes)", info.bodyLen, cfg.maxBatchBytes)
	}
	body := memory.NewResizableBuffer(cfg.mem)
	defer body.Release()
	body.Resize(int(info.bodyLen))
	if _, err := io.ReadFull(r, body.Bytes()); err != nil {
		return nil, 0, 0, fmt.Errorf("reading %d bytes of body: %w", info.bodyLen, noEOF(err))
	}
	if err := info.checkBody(body.Bytes(), cfg.maxBatchBytes); err != nil {
		return nil, 0, 0, err
	}
	metaBuf := memory.NewBufferBytes(meta)
	defer metaBuf.Release()
	return ipc.NewMessage(metaBuf, body), info.header, info.bodyLen, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// messageInfo is what readMessage needs from a Message flatbuffer.
type messageInfo struct {
	header  byte
	bodyLen int64
	batch   fbTable // the RecordBatch table, for record and dictionary batches
	isBatch bool
}

// parseMessage reads the Message table (Message.fbs): version (0),
// header_type (1), header (2), bodyLength (3).
func parseMessage(meta []byte) (messageInfo, error) {
	var info messageInfo
	msg, err := fbRoot(meta)
	if err != nil {
		return info, err
	}
	if info.header, err = msg.uint8(1); err != nil {
		return info, err
	}
	if info.bodyLen, err = msg.int64(3); err != nil {
		return info, err
	}
	if info.bodyLen < 0 {
		return info, fmt.Errorf("negative body length %d", info.bodyLen)
	}
	switch info.header {
	case headerSchema:
		return info, nil
	case headerRecordBatch:
		info.batch, err = msg.table(2)
	case headerDictionaryBatch:
		// DictionaryBatch: id (0), data (1), isDelta (2).
		var dict fbTable
		if dict, err = msg.table(2); err == nil {
			info.batch, err = dict.table(1)
		}
	default:
		return info, fmt.Errorf("unsupported message type %d (want a schema, dictionary or record batch)", info.header)
	}
	if err != nil {
		return info, fmt.Errorf("batch header: %w", err)
	}
	info.isBatch = true
	return info, nil
}

// checkBody checks a record batch's buffers (RecordBatch: length (0), nodes
// (1), buffers (2), compression (3)) against its body: each lies inside it,
// and, when compressed, the uncompressed lengths written in front of the
// buffers are valid and sum to at most limit.
func (info messageInfo) checkBody(body []byte, limit int64) error {
	if !info.isBatch {
		return nil
	}
	rows, err := info.batch.int64(0)
	if err != nil {
		return err
	}
	if rows < 0 {
		return fmt.Errorf("negative row count %d", rows)
	}
	// struct FieldNode { length: long; null_count: long }
	start, n, err := info.batch.vector(1, 16)
	if err != nil {
		return fmt.Errorf("field nodes: %w", err)
	}
	for i := range n {
		p := info.batch.buf[start+16*i:]
		length, nulls := int64(binary.LittleEndian.Uint64(p)), int64(binary.LittleEndian.Uint64(p[8:]))
		if length < 0 || nulls < 0 || nulls > length {
			return fmt.Errorf("field node %d: length %d, null count %d", i, length, nulls)
		}
	}
	compressed := false
	if comp, ok, err := info.batch.optTable(3); err != nil {
		return fmt.Errorf("compression: %w", err)
	} else if ok {
		codec, err := comp.uint8(0) // BodyCompression: codec (0), LZ4_FRAME = 0, ZSTD = 1
		if err != nil {
			return fmt.Errorf("compression: %w", err)
		}
		if codec > 1 {
			return fmt.Errorf("unsupported compression codec %d (want lz4 frame or zstd)", codec)
		}
		compressed = true
	}
	// struct Buffer { offset: long; length: long }
	start, n, err = info.batch.vector(2, 16)
	if err != nil {
		return fmt.Errorf("buffers: %w", err)
	}
	var total int64
	for i := range n {
		p := info.batch.buf[start+16*i:]
		off, length := int64(binary.LittleEndian.Uint64(p)), int64(binary.LittleEndian.Uint64(p[8:]))
		if off < 0 || length < 0 || off > int64(len(body)) || length > int64(len(body))-off {
			return fmt.Errorf("buffer %d (offset %d, %d bytes) lies outside the %d-byte body", i, off, length, len(body))
		}
		if !compressed || length == 0 {
			continue
		}
		if length < 8 {
			return fmt.Errorf("compressed buffer %d has %d bytes, too few for its 8-byte length prefix", i, length)
		}
		size := int64(binary.LittleEndian.Uint64(body[off:]))
		switch {
		case size == -1: // stored uncompressed
			size = length - 8
		case size < 0:
			return fmt.Errorf("compressed buffer %d: invalid uncompressed length %d", i, size)
		}
		if size > limit-total {
			return fmt.Errorf("buffers decompress to more than the limit of %d bytes (WithMaxBatchBytes)", limit)
		}
		total += size
	}
	return nil
}

// fbTable is a bounds-checked view of a flatbuffer table: every access is
// checked against buf, so malformed input is an error, never a panic.
type fbTable struct {
	buf []byte
	pos int // the table's position
	vt  int // its vtable's position
	vtn int // the vtable's size in bytes
}

func fbRoot(buf []byte) (fbTable, error) {
	if len(buf) < 4 {
		return fbTable{}, fmt.Errorf("flatbuffer of %d bytes is too short", len(buf))
	}
	return fbAt(buf, int64(binary.LittleEndian.Uint32(buf)))
}

func fbAt(buf []byte, pos int64) (fbTable, error) {
	if pos < 0 || pos > int64(len(buf))-4 {
		return fbTable{}, fmt.Errorf("flatbuffer table at %d is outside %d bytes", pos, len(buf))
	}
	vt := pos - int64(int32(binary.LittleEndian.Uint32(buf[pos:])))
	if vt < 0 || vt > int64(len(buf))-4 {
		return fbTable{}, fmt.Errorf("flatbuffer vtable at %d is outside %d bytes", vt, len(buf))
	}
	vtn := int64(binary.LittleEndian.Uint16(buf[vt:]))
	if vtn < 4 || vtn%2 != 0 || vt+vtn > int64(len(buf)) {
		return fbTable{}, fmt.Errorf("flatbuffer vtable at %d has invalid size %d", vt, vtn)
	}
	return fbTable{buf: buf, pos: int(pos), vt: int(vt), vtn: int(vtn)}, nil
}

// field returns the position of field id holding size bytes, or ok false
// when it is absent.
func (t fbTable) field(id, size int) (pos int, ok bool, err error) {
	slot := 4 + 2*id
	if slot+2 > t.vtn {
		return 0, false, nil
	}
	off := int(binary.LittleEndian.Uint16(t.buf[t.vt+slot:]))
	if off == 0 {
		return 0, false, nil
	}
	pos = t.pos + off
	if pos+size > len(t.buf) {
		return 0, false, fmt.Errorf("flatbuffer field %d at %d is outside %d bytes", id, pos, len(t.buf))
	}
	return pos, true, nil
}

func (t fbTable) uint8(id int) (byte, error) {
	p, ok, err := t.field(id, 1)
	if !ok {
		return 0, err
	}
	return t.buf[p], nil
}

func (t fbTable) int64(id int) (int64, error) {
	p, ok, err := t.field(id, 8)
	if !ok {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(t.buf[p:])), nil
}

// optTable returns the table that field id refers to, if present.
func (t fbTable) optTable(id int) (fbTable, bool, error) {
	p, ok, err := t.field(id, 4)
	if !ok {
		return fbTable{}, false, err
	}
	sub, err := fbAt(t.buf, int64(p)+int64(binary.LittleEndian.Uint32(t.buf[p:])))
	return sub, err == nil, err
}

func (t fbTable) table(id int) (fbTable, error) {
	sub, ok, err := t.optTable(id)
	if err == nil && !ok {
		err = fmt.Errorf("flatbuffer table field %d is missing", id)
	}
	return sub, err
}

// vector returns the position of the first element and the length of the
// vector of elemSize-byte structs in field id (0 elements when absent).
func (t fbTable) vector(id, elemSize int) (start, n int, err error) {
	p, ok, err := t.field(id, 4)
	if !ok {
		return 0, 0, err
	}
	at := int64(p) + int64(binary.LittleEndian.Uint32(t.buf[p:]))
	if at > int64(len(t.buf))-4 {
		return 0, 0, fmt.Errorf("flatbuffer vector at %d is outside %d bytes", at, len(t.buf))
	}
	count := int64(binary.LittleEndian.Uint32(t.buf[at:]))
	if count > (int64(len(t.buf))-at-4)/int64(elemSize) {
		return 0, 0, fmt.Errorf("flatbuffer vector of %d elements at %d is outside %d bytes", count, at, len(t.buf))
	}
	return int(at + 4), int(count), nil
}

// validateRecord checks that every array of rec has buffers long enough for
// its length, offsets and validity bitmap, so that reading its values cannot
// panic. Its cost is O(columns) for fixed-width columns and O(rows) for
// variable-length ones (their offsets are checked).
func validateRecord(rec arrow.RecordBatch) error {
	for i, col := range rec.Columns() {
		if int64(col.Len()) != rec.NumRows() {
			return fmt.Errorf("column %q has %d rows, want %d", rec.Schema().Field(i).Name, col.Len(), rec.NumRows())
		}
		if err := validateArray(col.Data()); err != nil {
			return fmt.Errorf("column %q: %w", rec.Schema().Field(i).Name, err)
		}
		if v, ok := col.(interface{ ValidateFull() error }); ok {
			if err := v.ValidateFull(); err != nil {
				return fmt.Errorf("column %q: %w", rec.Schema().Field(i).Name, err)
			}
		}
	}
	return nil
}

func validateArray(d arrow.ArrayData) error {
	end := int64(d.Offset()) + int64(d.Len())
	bufs := d.Buffers()
	if d.NullN() > 0 && len(bufs) > 0 && d.DataType().ID() != arrow.NULL && d.DataType().ID() != arrow.SPARSE_UNION && d.DataType().ID() != arrow.DENSE_UNION && d.DataType().ID() != arrow.RUN_END_ENCODED {
		if bufs[0] == nil || int64(bufs[0].Len())*8 < end {
			return fmt.Errorf("validity bitmap too short for %d rows", end)
		}
	}
	if fw, ok := d.DataType().(arrow.FixedWidthDataType); ok && len(bufs) > 1 {
		bits := int64(fw.BitWidth())
		need := (end*bits + 7) / 8
		if end > 0 && bits > 0 && (bufs[1] == nil || int64(bufs[1].Len()) < need) {
			return fmt.Errorf("values buffer of %d bytes too short for %d rows of %s", bufLen(bufs[1]), end, d.DataType())
		}
	}
	for _, c := range d.Children() {
		if err := validateArray(c); err != nil {
			return err
		}
	}
	if dict, ok := d.Dictionary().(*array.Data); ok && dict != nil {
		if err := validateArray(dict); err != nil {
			return fmt.Errorf("dictionary: %w", err)
		}
	}
	return nil
}

func bufLen(b *memory.Buffer) int {
	if b == nil {
		return 0
	}
	return b.Len()
}
