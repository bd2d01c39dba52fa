package minibatch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

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
// its size), split into X and Y by the source's Roles. Its buffers are
// slices of the message body, which is held in Go memory (freed by the
// garbage collector once every batch that uses it is released), not in the
// WithAllocator allocator: arrow's decoder can drop references to a body on
// corrupt input, which a counting allocator would report as a leak. Reading a batch costs
// one read of its message, the decompression of its buffers if any, and
// O(columns) checks. A source is read by one goroutine at a time.
type IPCFileSource struct {
	ipcPass
	r      io.ReaderAt
	end    int64 // offset of the footer: the end of the messages
	dicts  []ipcBlock
	blocks []ipcBlock
	// schemaMsg is the framed schema message that the decoder reads first,
	// made from the footer's schema (see footerSchemaMessage).
	schemaMsg []byte
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
	s := &IPCFileSource{ipcPass: ipcPass{kind: "ipc file", name: name, cfg: cfg}, r: r}
	if err := s.readFooter(size); err != nil {
		return nil, s.errorf("%w", err)
	}
	if err := s.Rewind(); err != nil {
		return nil, err
	}
	if err := s.adoptSchema(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
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
	if footerLen <= 0 || footerLen > maxMetadataBytes-48 || s.end < 8 { // 48: footerSchemaMessage's frame
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
	schema, ok, err := footer.optTable(1)
	if err == nil && !ok {
		err = errors.New("no schema")
	}
	if err == nil {
		err = verifySchema(schema)
	}
	if err != nil {
		return fmt.Errorf("footer at byte %d: schema: %w", s.end, err)
	}
	version, err := footer.int16(0)
	if err != nil {
		return fmt.Errorf("footer at byte %d: version: %w", s.end, err)
	}
	s.schemaMsg = footerSchemaMessage(buf, schema.pos, version)
	if s.dicts, err = s.readBlocks(footer, 2, "dictionary"); err != nil {
		return fmt.Errorf("footer at byte %d: %w", s.end, err)
	}
	if s.blocks, err = s.readBlocks(footer, 3, "record batch"); err != nil {
		return fmt.Errorf("footer at byte %d: %w", s.end, err)
	}
	return nil
}

// footerSchemaMessage returns a framed IPC schema message for the schema
// table at schemaPos of footer (a file's footer flatbuffer, verified).
//
// The file format's footer holds the authoritative schema; the schema
// message after the leading magic is optional, and some writers (Arrow's
// JavaScript implementation) leave it out. Flatbuffer offsets are relative
// and point forward, so a Message table placed in front of a copy of the
// footer bytes can refer to the footer's schema table as its header
// without rebuilding it.
func footerSchemaMessage(footer []byte, schemaPos int, version int16) []byte {
	const (
		vtPos   = 4  // the Message vtable: 4 fields
		tabPos  = 16 // the Message table
		copyPos = 40 // the footer's bytes, 8-aligned
	)
	metaLen := (copyPos + len(footer) + 7) &^ 7
	frame := make([]byte, 8+metaLen)
	le := binary.LittleEndian
	le.PutUint32(frame, 0xFFFFFFFF) // continuation marker
	le.PutUint32(frame[4:], uint32(metaLen))
	m := frame[8:]
	le.PutUint32(m, tabPos)                // root: the Message table
	le.PutUint16(m[vtPos:], 4+2*4)         // vtable size
	le.PutUint16(m[vtPos+2:], 24)          // table size
	le.PutUint16(m[vtPos+4:], 4)           // version at +4
	le.PutUint16(m[vtPos+6:], 6)           // header_type at +6
	le.PutUint16(m[vtPos+8:], 8)           // header at +8
	le.PutUint16(m[vtPos+10:], 16)         // bodyLength at +16
	le.PutUint32(m[tabPos:], tabPos-vtPos) // soffset to the vtable
	le.PutUint16(m[tabPos+4:], uint16(version))
	m[tabPos+6] = headerSchema
	le.PutUint32(m[tabPos+8:], uint32(copyPos+schemaPos-(tabPos+8)))
	le.PutUint64(m[tabPos+16:], 0) // no body
	copy(m[copyPos:], footer)
	return frame
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

// Next returns the next record batch, split into X and Y, with Seq 0, 1, 2,
// … in this pass and Epoch 0; the caller owns and releases it. It returns
// io.EOF after the last batch; an error names the file, the batch, its byte
// offset and what is wrong, and ends the pass (Rewind starts a new one).
func (s *IPCFileSource) Next(ctx context.Context) (flow.Batch, error) { return s.next(ctx) }

// Rewind starts a new pass from the first record batch. It fails only if
// the source is closed or the schema message cannot be read.
func (s *IPCFileSource) Rewind() error {
	if s.r == nil {
		return s.errorf("rewind after Close")
	}
	msgs := &fileMessages{src: s, dec: ipcDecoder{cfg: s.cfg}}
	msgs.refs.Store(1)
	return s.begin(msgs)
}

// Replayable reports true: an IPC file can always be read again.
func (s *IPCFileSource) Replayable() bool { return true }

// Close releases the decoder and what it holds, and closes the file if the
// source opened it. Batches already returned stay valid. Close is
// idempotent.
func (s *IPCFileSource) Close() error {
	s.r = nil
	return s.close()
}

// fileMessages gives arrow's decoder the messages of an IPC file, checked:
// the schema message (which follows the magic), the dictionary batches, then
// the record batches in footer order.
type fileMessages struct {
	src  *IPCFileSource
	dec  ipcDecoder
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
		r, what, at = bytes.NewReader(s.schemaMsg), "footer schema", s.end
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
	msg, hdr, bodyLen, err := m.dec.readMessage(r)
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
		m.dec.close()
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
	ipcPass
	r      io.Reader
	seeker io.Seeker // nil when not replayable
	start  int64
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
	s := &IPCStreamSource{ipcPass: ipcPass{kind: "ipc stream", name: name, cfg: cfg}, r: r}
	if sk, ok := r.(io.Seeker); ok {
		if s.start, err = sk.Seek(0, io.SeekCurrent); err == nil {
			s.seeker = sk
		}
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	if err := s.adoptSchema(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *IPCStreamSource) open() error {
	msgs := &streamMessages{r: s.r, dec: ipcDecoder{cfg: s.cfg}, pos: s.start}
	msgs.refs.Store(1)
	return s.begin(msgs)
}

// Next returns the next record batch, split into X and Y, with Seq 0, 1, 2,
// … in this pass and Epoch 0; the caller owns and releases it. It returns
// io.EOF after the last batch; an error names the stream, the message, its
// byte offset and what is wrong, and ends the pass.
func (s *IPCStreamSource) Next(ctx context.Context) (flow.Batch, error) { return s.next(ctx) }

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
	s.end()
	if _, err := s.seeker.Seek(s.start, io.SeekStart); err != nil {
		return s.errorf("rewind: %w", err)
	}
	return s.open()
}

// Close releases the decoder and what it holds, and closes the file if the
// source opened it. Batches already returned stay valid. Close is
// idempotent.
func (s *IPCStreamSource) Close() error {
	s.r = nil
	return s.close()
}

// streamMessages gives arrow's decoder the messages of an IPC stream,
// checked.
type streamMessages struct {
	r     io.Reader
	dec   ipcDecoder
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
	msg, _, _, err := m.dec.readMessage(cr)
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
	if m.refs.Add(-1) == 0 {
		if m.cur != nil {
			m.cur.Release()
			m.cur = nil
		}
		m.dec.close()
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

// ipcPass is what the two IPC sources share: their name, configuration and
// file, and the decoder of the current pass with its position in it.
type ipcPass struct {
	kind   string // "ipc file" or "ipc stream", for errors
	name   string
	cfg    *sourceConfig
	file   *os.File // owned, when opened from a path
	schema *arrow.Schema

	rd   *ipc.Reader
	seq  int64
	err  error // sticky: the pass failed
	done bool
}

func (p *ipcPass) errorf(format string, args ...any) error {
	return fmt.Errorf("minibatch: %s %q: "+format, append([]any{p.kind, p.name}, args...)...)
}

// Schema returns the schema of the record batches (before the split into X
// and Y).
func (p *ipcPass) Schema() *arrow.Schema { return p.schema }

// adoptSchema takes the schema of the first pass's decoder and checks that
// the source's roles name columns of it.
func (p *ipcPass) adoptSchema() error {
	p.schema = p.rd.Schema()
	if _, _, err := p.cfg.roles.Columns(p.schema); err != nil {
		return p.errorf("%w", err)
	}
	return nil
}

// begin starts a pass that decodes the messages of msgs, which it owns.
func (p *ipcPass) begin(msgs ipc.MessageReader) error {
	p.end()
	p.seq, p.err, p.done = 0, nil, false
	rd, err := ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(p.cfg.mem))
	if err != nil {
		msgs.Release()
		return p.errorf("%w", err)
	}
	p.rd = rd
	return nil
}

// end releases the decoder of the current pass, if any.
func (p *ipcPass) end() {
	if p.rd != nil {
		p.rd.Release()
		p.rd = nil
	}
}

// close ends the pass and closes the file if the source opened it.
func (p *ipcPass) close() error {
	p.end()
	if p.file != nil {
		err := p.file.Close()
		p.file = nil
		if err != nil {
			return p.errorf("close: %w", err)
		}
	}
	return nil
}

// next returns the pass's next record batch, split by the source's roles.
func (p *ipcPass) next(ctx context.Context) (flow.Batch, error) {
	switch {
	case p.err != nil:
		return flow.Batch{}, p.err
	case p.done:
		return flow.Batch{}, io.EOF
	case p.rd == nil:
		return flow.Batch{}, p.errorf("read after Close")
	}
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	if !p.rd.Next() {
		if err := p.rd.Err(); err != nil {
			p.err = p.errorf("batch %d: %w", p.seq, err)
			return flow.Batch{}, p.err
		}
		p.done = true
		return flow.Batch{}, io.EOF
	}
	rec := p.rd.RecordBatch()
	if err := validateRecord(rec); err != nil {
		p.err = p.errorf("batch %d: %w", p.seq, err)
		return flow.Batch{}, p.err
	}
	x, y, err := p.cfg.roles.Split(rec)
	if err != nil {
		p.err = p.errorf("batch %d: %w", p.seq, err)
		return flow.Batch{}, p.err
	}
	b := flow.Batch{Seq: p.seq, X: x, Y: y}
	p.seq++
	return b, nil
}

// ipcDecoder frames and checks the messages of one pass over an IPC file or
// stream. It learns the schema's layout from the schema message and checks
// each record and dictionary batch against it, so that arrow's decoder never
// runs out of field nodes or buffers (it panics then, and the buffers it had
// taken are lost to the allocator). It decompresses the buffers of
// compressed batches itself, into the sizes that were checked, and hands
// arrow bodies whose buffers are marked as stored uncompressed.
type ipcDecoder struct {
	cfg    *sourceConfig
	layout *schemaLayout // nil before the schema message
	zstd   *zstd.Decoder
	lz4    *lz4.Reader
}

func (d *ipcDecoder) close() {
	if d.zstd != nil {
		d.zstd.Close()
		d.zstd = nil
	}
	d.lz4 = nil
}

// batchLayout is what arrow's decoder takes from a batch of a schema: field
// nodes, buffers, variadic buffer counts (one per binary or string view
// array) and the extra validity buffers of unions and run-end encoded
// arrays in metadata before version 5.
type batchLayout struct {
	nodes, buffers, variadic, preV5 int
}

type schemaLayout struct {
	record batchLayout
	dicts  map[int64]batchLayout // by dictionary id: the dictionary's values
}

// Metadata version 5 (MetadataVersion.V5 in Schema.fbs).
const metadataV5 = 4

// readMessage reads one framed IPC message from r and checks it: the
// metadata is a well-formed Message flatbuffer, the body is within the
// limit, and a record or dictionary batch has the nodes and buffers of its
// schema, lying inside its body and decompressing to at most the limit. It
// returns io.EOF at an end-of-stream marker or at the end of r before the
// first byte. The caller releases the message.
//
// The body is Go memory, not cfg.mem's: on some corrupt batches arrow's
// decoder panics (and recovers) after taking references to the body that
// it never drops, which an allocator that counts (memory.CheckedAllocator,
// a C allocator) would see as a leak. The garbage collector frees such a
// body; arrow's own allocations (dictionary deltas) still use cfg.mem.
func (d *ipcDecoder) readMessage(r io.Reader) (msg *ipc.Message, header byte, bodyLen int64, err error) {
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
	limit := d.cfg.maxBatchBytes
	if info.bodyLen > limit {
		return nil, 0, 0, fmt.Errorf("body of %d bytes exceeds the limit of %d bytes (WithMaxBatchBytes)", info.bodyLen, limit)
	}
	var want batchLayout
	switch {
	case info.header == headerSchema && d.layout != nil:
		return nil, 0, 0, errors.New("a second schema message")
	case info.header == headerSchema:
		if d.layout, err = layoutOf(info.schema); err != nil {
			return nil, 0, 0, fmt.Errorf("schema: %w", err)
		}
	case d.layout == nil:
		return nil, 0, 0, errors.New("a batch before the schema message")
	case info.header == headerRecordBatch:
		want = d.layout.record
	default:
		var ok bool
		if want, ok = d.layout.dicts[info.dictID]; !ok {
			return nil, 0, 0, fmt.Errorf("dictionary batch for id %d, which the schema does not have", info.dictID)
		}
	}
	body := memory.NewBufferBytes(make([]byte, info.bodyLen))
	defer func() { body.Release() }()
	if _, err := io.ReadFull(r, body.Bytes()); err != nil {
		return nil, 0, 0, fmt.Errorf("reading %d bytes of body: %w", info.bodyLen, noEOF(err))
	}
	if info.isBatch {
		sizes, err := info.checkBatch(body.Bytes(), want, limit)
		if err != nil {
			return nil, 0, 0, err
		}
		if info.codec >= 0 {
			plain, err := d.decompress(info, body.Bytes(), sizes)
			if err != nil {
				return nil, 0, 0, err
			}
			body.Release()
			body = plain
		}
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

// decompress returns a new body holding the batch's buffers uncompressed,
// each behind the 8-byte length -1 that marks a buffer stored uncompressed,
// and points the metadata's buffers at them (the metadata is the decoder's
// own copy). sizes are the checked uncompressed sizes.
func (d *ipcDecoder) decompress(info messageInfo, body []byte, sizes []int64) (*memory.Buffer, error) {
	var total int64
	for _, size := range sizes {
		if size >= 0 {
			total += pad8(8 + size)
		}
	}
	out := memory.NewBufferBytes(make([]byte, total))
	dst := out.Bytes()
	var at int64
	for i, size := range sizes {
		p := info.batch.buf[info.bufStart+16*i:]
		if size < 0 { // an empty buffer
			binary.LittleEndian.PutUint64(p, uint64(at))
			continue
		}
		off, length := int64(binary.LittleEndian.Uint64(p)), int64(binary.LittleEndian.Uint64(p[8:]))
		src := body[off+8 : off+length]
		binary.LittleEndian.PutUint64(dst[at:], math.MaxUint64) // -1: stored uncompressed
		into := dst[at+8 : at+8+size]
		if int64(binary.LittleEndian.Uint64(body[off:])) == -1 {
			copy(into, src)
		} else if err := d.decode(info.codec, src, into); err != nil {
			out.Release()
			return nil, fmt.Errorf("buffer %d: %w", i, err)
		}
		binary.LittleEndian.PutUint64(p, uint64(at))
		binary.LittleEndian.PutUint64(p[8:], uint64(8+size))
		at += pad8(8 + size)
	}
	return out, nil
}

func pad8(n int64) int64 { return (n + 7) &^ 7 }

// decode decompresses src, which must hold exactly len(dst) bytes.
func (d *ipcDecoder) decode(codec int, src, dst []byte) error {
	var r io.Reader
	switch codec {
	case 0:
		if d.lz4 == nil {
			d.lz4 = lz4.NewReader(nil)
		}
		d.lz4.Reset(bytes.NewReader(src))
		r = d.lz4
	default:
		if d.zstd == nil {
			dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(d.cfg.maxBatchBytes)))
			if err != nil {
				return fmt.Errorf("zstd: %w", err)
			}
			d.zstd = dec
		}
		if err := d.zstd.Reset(bytes.NewReader(src)); err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		r = d.zstd
	}
	if _, err := io.ReadFull(r, dst); err != nil {
		return fmt.Errorf("%s: %d bytes expected: %w", [2]string{"lz4", "zstd"}[codec], len(dst), noEOF(err))
	}
	return nil
}

// messageInfo is what readMessage needs from a Message flatbuffer.
type messageInfo struct {
	version  int
	header   byte
	bodyLen  int64
	schema   fbTable // the Schema table, for a schema message
	batch    fbTable // the RecordBatch table, for record and dictionary batches
	isBatch  bool
	dictID   int64
	codec    int // -1: uncompressed; 0: lz4 frame; 1: zstd
	bufStart int // position of the buffers vector in the metadata
}

// parseMessage reads the Message table (Message.fbs): version (0),
// header_type (1), header (2), bodyLength (3), custom_metadata (4).
func parseMessage(meta []byte) (messageInfo, error) {
	info := messageInfo{codec: -1}
	msg, err := fbRoot(meta)
	if err != nil {
		return info, err
	}
	p, ok, err := msg.field(0, 2)
	if err != nil {
		return info, err
	}
	if ok {
		info.version = int(int16(binary.LittleEndian.Uint16(meta[p:])))
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
	if err := verifyKeyValues(msg, 4); err != nil {
		return info, fmt.Errorf("custom metadata: %w", err)
	}
	switch info.header {
	case headerSchema:
		info.schema, err = msg.table(2)
		if err == nil {
			err = verifySchema(info.schema)
		}
		if err != nil {
			return info, fmt.Errorf("schema: %w", err)
		}
		return info, nil
	case headerRecordBatch:
		info.batch, err = msg.table(2)
	case headerDictionaryBatch:
		// DictionaryBatch: id (0), data (1), isDelta (2).
		var dict fbTable
		if dict, err = msg.table(2); err == nil {
			if info.dictID, err = dict.int64(0); err == nil {
				info.batch, err = dict.table(1)
			}
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

// checkBatch checks a record batch (RecordBatch: length (0), nodes (1),
// buffers (2), compression (3), variadicBufferCounts (4)) against the
// layout of its schema and against its body: it has the nodes and buffers
// that the schema needs, each buffer lies inside the body, and, when
// compressed, the uncompressed lengths written in front of the buffers are
// valid and sum to at most limit. It returns each buffer's size once
// uncompressed (-1 for an empty buffer) when the batch is compressed.
func (info *messageInfo) checkBatch(body []byte, want batchLayout, limit int64) ([]int64, error) {
	rows, err := info.batch.int64(0)
	if err != nil {
		return nil, err
	}
	if rows < 0 || rows > limit {
		return nil, fmt.Errorf("row count %d is out of range [0, %d] (one row per byte of WithMaxBatchBytes at most)", rows, limit)
	}
	// struct FieldNode { length: long; null_count: long }
	start, n, err := info.batch.vector(1, 16)
	if err != nil {
		return nil, fmt.Errorf("field nodes: %w", err)
	}
	if n < want.nodes {
		return nil, fmt.Errorf("%d field nodes; the schema needs %d", n, want.nodes)
	}
	for i := range n {
		p := info.batch.buf[start+16*i:]
		length, nulls := int64(binary.LittleEndian.Uint64(p)), int64(binary.LittleEndian.Uint64(p[8:]))
		if length < 0 || nulls < 0 || nulls > length || length > limit {
			return nil, fmt.Errorf("field node %d: length %d, null count %d", i, length, nulls)
		}
	}
	// struct Buffer { offset: long; length: long }
	bufStart, nbufs, err := info.batch.vector(2, 16)
	if err != nil {
		return nil, fmt.Errorf("buffers: %w", err)
	}
	info.bufStart = bufStart
	needBufs := want.buffers
	if info.version < metadataV5 {
		needBufs += want.preV5
	}
	vstart, vn, err := info.batch.vector(4, 8)
	if err != nil {
		return nil, fmt.Errorf("variadic buffer counts: %w", err)
	}
	if vn < want.variadic {
		return nil, fmt.Errorf("%d variadic buffer counts; the schema needs %d", vn, want.variadic)
	}
	for i := range vn {
		c := int64(binary.LittleEndian.Uint64(info.batch.buf[vstart+8*i:]))
		if c < 0 || c > int64(nbufs) {
			return nil, fmt.Errorf("variadic buffer count %d is out of range [0, %d]", c, nbufs)
		}
		if i < want.variadic {
			needBufs += int(c)
		}
	}
	if nbufs < needBufs {
		return nil, fmt.Errorf("%d buffers; the schema needs %d", nbufs, needBufs)
	}
	if comp, ok, err := info.batch.optTable(3); err != nil {
		return nil, fmt.Errorf("compression: %w", err)
	} else if ok {
		codec, err := comp.uint8(0) // BodyCompression: codec (0), LZ4_FRAME = 0, ZSTD = 1
		if err != nil {
			return nil, fmt.Errorf("compression: %w", err)
		}
		if codec > 1 {
			return nil, fmt.Errorf("unsupported compression codec %d (want lz4 frame or zstd)", codec)
		}
		info.codec = int(codec)
	}
	var sizes []int64
	if info.codec >= 0 {
		sizes = make([]int64, nbufs)
	}
	var total int64
	for i := range nbufs {
		p := info.batch.buf[bufStart+16*i:]
		off, length := int64(binary.LittleEndian.Uint64(p)), int64(binary.LittleEndian.Uint64(p[8:]))
		if off < 0 || length < 0 || off > int64(len(body)) || length > int64(len(body))-off {
			return nil, fmt.Errorf("buffer %d (offset %d, %d bytes) lies outside the %d-byte body", i, off, length, len(body))
		}
		if info.codec < 0 {
			continue
		}
		if length == 0 {
			sizes[i] = -1
			continue
		}
		if length < 8 {
			return nil, fmt.Errorf("compressed buffer %d has %d bytes, too few for its 8-byte length prefix", i, length)
		}
		size := int64(binary.LittleEndian.Uint64(body[off:]))
		switch {
		case size == -1: // stored uncompressed
			size = length - 8
		case size < 0:
			return nil, fmt.Errorf("compressed buffer %d: invalid uncompressed length %d", i, size)
		}
		if size > limit-total {
			return nil, fmt.Errorf("buffers decompress to more than the limit of %d bytes (WithMaxBatchBytes)", limit)
		}
		total += pad8(8 + size)
		sizes[i] = size
	}
	return sizes, nil
}

// Arrow's decoder trusts the lengths of the vectors in a schema's
// flatbuffer and allocates them up front, so a few corrupt bytes could ask
// for any amount of memory. verifySchema checks that every vector and
// string of a Schema table (Schema.fbs) lies inside the buffer.
func verifySchema(schema fbTable) error {
	// Schema: endianness (0), fields (1), custom_metadata (2), features (3).
	if err := verifyFields(schema, 1, 0); err != nil {
		return err
	}
	if err := verifyKeyValues(schema, 2); err != nil {
		return fmt.Errorf("custom metadata: %w", err)
	}
	_, _, err := schema.vector(3, 8)
	return err
}

// maxFieldDepth bounds the nesting of a schema's fields, below arrow's own
// bound of 64 (which it enforces by panicking mid-batch).
const maxFieldDepth = 32

// Members of the Type union of Schema.fbs.
const (
	typeNull = iota + 1
	typeInt
	typeFloatingPoint
	typeBinary
	typeUtf8
	typeBool
	typeDecimal
	typeDate
	typeTime
	typeTimestamp
	typeInterval
	typeList
	typeStruct
	typeUnion
	typeFixedSizeBinary
	typeFixedSizeList
	typeMap
	typeDuration
	typeLargeBinary
	typeLargeUtf8
	typeLargeList
	typeRunEndEncoded
	typeBinaryView
	typeUtf8View
	typeListView
	typeLargeListView
)

func verifyFields(t fbTable, id, depth int) error {
	if depth > maxFieldDepth {
		return fmt.Errorf("fields nested deeper than %d", maxFieldDepth)
	}
	start, n, err := t.vector(id, 4)
	if err != nil {
		return fmt.Errorf("fields: %w", err)
	}
	for i := range n {
		// Field: name (0), nullable (1), type_type (2), type (3),
		// dictionary (4), children (5), custom_metadata (6).
		f, err := t.vectorTable(start, i)
		if err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
		if _, _, err := f.vector(0, 1); err != nil {
			return fmt.Errorf("field %d: name: %w", i, err)
		}
		kind, err := f.uint8(2)
		if err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
		typ, ok, err := f.optTable(3)
		if err != nil {
			return fmt.Errorf("field %d: type: %w", i, err)
		}
		if ok {
			switch kind {
			case typeTimestamp: // Timestamp: unit (0), timezone (1)
				_, _, err = typ.vector(1, 1)
			case typeUnion: // Union: mode (0), typeIds (1)
				_, _, err = typ.vector(1, 4)
			}
			if err != nil {
				return fmt.Errorf("field %d: type: %w", i, err)
			}
		}
		// DictionaryEncoding: id (0), indexType (1), isOrdered (2).
		if dict, ok, err := f.optTable(4); err != nil {
			return fmt.Errorf("field %d: dictionary: %w", i, err)
		} else if ok {
			if _, _, err := dict.optTable(1); err != nil {
				return fmt.Errorf("field %d: dictionary index type: %w", i, err)
			}
		}
		if err := verifyFields(f, 5, depth+1); err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
		if err := verifyKeyValues(f, 6); err != nil {
			return fmt.Errorf("field %d: custom metadata: %w", i, err)
		}
	}
	return nil
}

// layoutOf returns the layout of the batches of a verified Schema table,
// following arrow's decoder: one field node per array, and per type the
// buffers that it reads.
func layoutOf(schema fbTable) (*schemaLayout, error) {
	l := &schemaLayout{dicts: map[int64]batchLayout{}}
	if err := l.fields(schema, 1, &l.record, 0); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *schemaLayout) fields(t fbTable, id int, out *batchLayout, depth int) error {
	if depth > maxFieldDepth {
		return fmt.Errorf("fields nested deeper than %d", maxFieldDepth)
	}
	start, n, err := t.vector(id, 4)
	if err != nil {
		return err
	}
	for i := range n {
		f, err := t.vectorTable(start, i)
		if err != nil {
			return err
		}
		dict, ok, err := f.optTable(4)
		if err != nil {
			return err
		}
		if !ok {
			if err := l.values(f, out, depth); err != nil {
				return err
			}
			continue
		}
		// A dictionary-encoded array carries its indices: a node, the
		// validity and the values buffers. Its values come in dictionary
		// batches.
		out.nodes++
		out.buffers += 2
		dictID, err := dict.int64(0)
		if err != nil {
			return err
		}
		if _, dup := l.dicts[dictID]; dup {
			return fmt.Errorf("dictionary id %d used twice", dictID)
		}
		var values batchLayout
		if err := l.values(f, &values, depth); err != nil {
			return err
		}
		l.dicts[dictID] = values
	}
	return nil
}

// values adds the layout of field f's values (ignoring a dictionary
// encoding).
func (l *schemaLayout) values(f fbTable, out *batchLayout, depth int) error {
	kind, err := f.uint8(2)
	if err != nil {
		return err
	}
	out.nodes++
	switch kind {
	case typeNull:
	case typeInt, typeFloatingPoint, typeBool, typeDecimal, typeDate, typeTime, typeTimestamp,
		typeInterval, typeFixedSizeBinary, typeDuration:
		out.buffers += 2
	case typeBinary, typeUtf8, typeLargeBinary, typeLargeUtf8:
		out.buffers += 3
	case typeBinaryView, typeUtf8View:
		out.buffers += 2
		out.variadic++
	case typeList, typeLargeList, typeMap:
		out.buffers += 2
	case typeListView, typeLargeListView:
		out.buffers += 3
	case typeFixedSizeList, typeStruct:
		out.buffers++
	case typeUnion:
		out.preV5++
		out.buffers++ // type ids
		typ, ok, err := f.optTable(3)
		if err != nil {
			return err
		}
		if ok {
			p, has, err := typ.field(0, 2) // Union: mode (0), Sparse = 0, Dense = 1
			if err != nil {
				return err
			}
			if has && binary.LittleEndian.Uint16(typ.buf[p:]) == 1 {
				out.buffers++ // offsets
			}
		}
	case typeRunEndEncoded:
		out.preV5++
	default:
		return fmt.Errorf("unsupported type %d", kind)
	}
	return l.fields(f, 5, out, depth+1)
}

// verifyKeyValues checks the vector of KeyValue tables (key (0), value (1))
// in field id of t.
func verifyKeyValues(t fbTable, id int) error {
	start, n, err := t.vector(id, 4)
	if err != nil {
		return err
	}
	for i := range n {
		kv, err := t.vectorTable(start, i)
		if err != nil {
			return err
		}
		for f := range 2 {
			if _, _, err := kv.vector(f, 1); err != nil {
				return err
			}
		}
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

func (t fbTable) int16(id int) (int16, error) {
	p, ok, err := t.field(id, 2)
	if !ok {
		return 0, err
	}
	return int16(binary.LittleEndian.Uint16(t.buf[p:])), nil
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

// vectorTable returns the table that element i of a vector of tables
// starting at start refers to.
func (t fbTable) vectorTable(start, i int) (fbTable, error) {
	p := start + 4*i
	return fbAt(t.buf, int64(p)+int64(binary.LittleEndian.Uint32(t.buf[p:])))
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
// its length, offsets within its values and dictionary indices within its
// dictionary, so that reading its values cannot panic (arrow's decoder and
// its ValidateFull trust the offsets). Its cost is O(columns) for
// fixed-width columns and O(rows) for variable-length and dictionary ones.
// View, union and run-end encoded types are refused.
func validateRecord(rec arrow.RecordBatch) error {
	for i, col := range rec.Columns() {
		if int64(col.Len()) != rec.NumRows() {
			return fmt.Errorf("column %q has %d rows, want %d", rec.Schema().Field(i).Name, col.Len(), rec.NumRows())
		}
		if err := validateArray(col.Data(), 0); err != nil {
			return fmt.Errorf("column %q: %w", rec.Schema().Field(i).Name, err)
		}
	}
	return nil
}

func validateArray(d arrow.ArrayData, depth int) error {
	if depth > maxFieldDepth {
		return fmt.Errorf("nested deeper than %d", maxFieldDepth)
	}
	dt := d.DataType()
	off, n := int64(d.Offset()), int64(d.Len())
	if off < 0 || n < 0 || n > math.MaxInt64/2-off {
		return fmt.Errorf("invalid offset %d or length %d", off, n)
	}
	end := off + n
	bufs := d.Buffers()
	buf := func(i int) []byte {
		if i < len(bufs) && bufs[i] != nil {
			return bufs[i].Bytes()
		}
		return nil
	}
	switch dt.ID() {
	case arrow.BINARY_VIEW, arrow.STRING_VIEW, arrow.LIST_VIEW, arrow.LARGE_LIST_VIEW,
		arrow.SPARSE_UNION, arrow.DENSE_UNION, arrow.RUN_END_ENCODED:
		return fmt.Errorf("type %s is not supported by the IPC sources", dt)
	}
	if d.NullN() > 0 && dt.ID() != arrow.NULL && int64(len(buf(0)))*8 < end {
		return fmt.Errorf("validity bitmap of %d bytes too short for %d rows", len(buf(0)), end)
	}
	if dt.ID() == arrow.NULL || n == 0 {
		return nil
	}
	children := d.Children()
	switch dt := dt.(type) {
	case *arrow.DictionaryType:
		dict, ok := d.Dictionary().(*array.Data)
		if !ok || dict == nil {
			return errors.New("dictionary missing")
		}
		if err := validateArray(dict, depth+1); err != nil {
			return fmt.Errorf("dictionary: %w", err)
		}
		return validateIndices(d, dt.IndexType, buf, int64(dict.Len()))
	case arrow.FixedWidthDataType:
		bits := int64(dt.BitWidth())
		if bits > 0 && end > int64(len(buf(1)))*8/bits {
			return fmt.Errorf("values buffer of %d bytes too short for %d rows of %s", len(buf(1)), end, dt)
		}
	case *arrow.StringType, *arrow.BinaryType:
		return validateOffsets(buf(1), 4, off, n, int64(len(buf(2))))
	case *arrow.LargeStringType, *arrow.LargeBinaryType:
		return validateOffsets(buf(1), 8, off, n, int64(len(buf(2))))
	case *arrow.ListType, *arrow.MapType:
		if len(children) != 1 {
			return errors.New("list without its values")
		}
		if err := validateOffsets(buf(1), 4, off, n, int64(children[0].Len())); err != nil {
			return err
		}
	case *arrow.LargeListType:
		if len(children) != 1 {
			return errors.New("list without its values")
		}
		if err := validateOffsets(buf(1), 8, off, n, int64(children[0].Len())); err != nil {
			return err
		}
	case *arrow.FixedSizeListType:
		if len(children) != 1 || (dt.Len() > 0 && end > int64(children[0].Len())/int64(dt.Len())) {
			return fmt.Errorf("fixed-size list of %d rows × %d without enough values", end, dt.Len())
		}
	case *arrow.StructType:
		for i, c := range children {
			if int64(c.Len()) < end {
				return fmt.Errorf("struct field %d has %d rows, want %d", i, c.Len(), end)
			}
		}
	}
	for _, c := range children {
		if err := validateArray(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// validateOffsets checks n+1 offsets of width bytes from row off: inside
// the buffer, non-decreasing, and within [0, limit].
func validateOffsets(b []byte, width int, off, n, limit int64) error {
	if off < 0 || n < 0 || off+n+1 > int64(len(b))/int64(width) {
		return fmt.Errorf("offsets buffer of %d bytes too short for %d rows", len(b), off+n)
	}
	prev := int64(0)
	for i := off; i <= off+n; i++ {
		var v int64
		if width == 4 {
			v = int64(int32(binary.LittleEndian.Uint32(b[i*4:])))
		} else {
			v = int64(binary.LittleEndian.Uint64(b[i*8:]))
		}
		if v < prev || v > limit {
			return fmt.Errorf("offset %d at row %d is out of order or past the %d values", v, i-off, limit)
		}
		prev = v
	}
	return nil
}

// validateIndices checks that the non-null indices of a dictionary array
// are within [0, size).
func validateIndices(d arrow.ArrayData, it arrow.DataType, buf func(int) []byte, size int64) error {
	fw, ok := it.(arrow.FixedWidthDataType)
	if !ok {
		return fmt.Errorf("dictionary index type %s", it)
	}
	w := int64(fw.BitWidth() / 8)
	off, n := int64(d.Offset()), int64(d.Len())
	vals, valid := buf(1), buf(0)
	if w == 0 || off+n > int64(len(vals))/w {
		return fmt.Errorf("indices buffer of %d bytes too short for %d rows", len(vals), off+n)
	}
	signed := arrow.IsSignedInteger(it.ID())
	for i := off; i < off+n; i++ {
		if d.NullN() > 0 && valid[i/8]&(1<<(i%8)) == 0 {
			continue
		}
		var v int64
		switch w {
		case 1:
			v = int64(vals[i])
			if signed {
				v = int64(int8(vals[i]))
			}
		case 2:
			u := binary.LittleEndian.Uint16(vals[i*2:])
			v = int64(u)
			if signed {
				v = int64(int16(u))
			}
		case 4:
			u := binary.LittleEndian.Uint32(vals[i*4:])
			v = int64(u)
			if signed {
				v = int64(int32(u))
			}
		default:
			v = int64(binary.LittleEndian.Uint64(vals[i*8:]))
		}
		if v < 0 || v >= size {
			return fmt.Errorf("dictionary index %d at row %d is outside the %d values", v, i-off, size)
		}
	}
	return nil
}
