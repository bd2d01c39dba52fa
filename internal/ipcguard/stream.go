package ipcguard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// MessageReader reads the messages of an IPC stream for arrow-go's
// ipc.NewReaderFromMessageReader, as arrow-go's own message reader does,
// but checks each one before arrow-go decodes it: its metadata with
// CheckMessage, its body against a limit. Bodies are allocated from the
// Allocator (and allowed for in its bound), so a failed read leaves them
// to Allocator.Reclaim. The metadata and body of a message are allocated
// as the input gives them (a MiB, then doubling, unless the input has a
// Len method that says it holds them), so that a message that claims more
// than the input holds costs about what it holds, not what it claims.
// Errors name the message and its byte offset.
type MessageReader struct {
	r       io.Reader
	mem     *Allocator
	maxBody int64
	pos     int64 // byte offset of the next message
	index   int
	cur     *ipc.Message
	refs    atomic.Int64
	// The last message read: its index, its byte offset, and whether it
	// was read without error (so an error about it is its decoder's).
	lastIndex int
	lastAt    int64
	lastOK    bool
}

var _ ipc.MessageReader = (*MessageReader)(nil)

// NewMessageReader returns a MessageReader of the stream r, from its
// current position, whose bodies are allocated from mem and hold at most
// maxBody bytes. Its reference count is 1; the ipc.Reader that it is given
// to releases it.
func NewMessageReader(r io.Reader, mem *Allocator, maxBody int64) *MessageReader {
	m := &MessageReader{r: r, mem: mem, maxBody: maxBody}
	m.refs.Store(1)
	return m
}

// Message returns the next message, valid until the next call, or io.EOF
// at an end-of-stream marker or at the end of the input between messages.
func (m *MessageReader) Message() (*ipc.Message, error) {
	m.releaseCur()
	at, i := m.pos, m.index
	m.index++
	msg, err := m.read()
	m.lastIndex, m.lastAt, m.lastOK = i, at, err == nil
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("message %d at byte %d: %w", i, at, err)
	}
	m.cur = msg
	return msg, nil
}

// Last returns the index and byte offset of the last message that Message
// read, and whether it read it whole (true: an error about that message
// comes from its decoding, and does not name it yet). ok is false before
// the first message, at the end of the stream and after an error of
// Message, whose error names the message itself.
func (m *MessageReader) Last() (index int, at int64, ok bool) {
	return m.lastIndex, m.lastAt, m.lastOK
}

func (m *MessageReader) full(p []byte) error {
	n, err := io.ReadFull(m.r, p)
	m.pos += int64(n)
	return err
}

func (m *MessageReader) read() (*ipc.Message, error) {
	var word [4]byte
	if err := m.full(word[:]); err != nil {
		return nil, err // io.EOF: the end between messages
	}
	n := binary.LittleEndian.Uint32(word[:])
	if n == continuation {
		if err := m.full(word[:]); err != nil {
			return nil, fmt.Errorf("reading the metadata length: %w", noEOF(err))
		}
		n = binary.LittleEndian.Uint32(word[:])
	}
	if n == 0 {
		return nil, io.EOF // an end-of-stream marker
	}
	if n > MaxMetadataBytes {
		return nil, fmt.Errorf("metadata length %d is out of range [1, %d]", int32(n), MaxMetadataBytes)
	}
	meta, err := m.readMeta(int(n))
	if err != nil {
		return nil, fmt.Errorf("reading %d bytes of metadata: %w", n, noEOF(err))
	}
	if err := CheckMessage(meta); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	msg, _ := Root(meta) // checked by CheckMessage
	bodyLen, err := msg.Int64(3)
	switch {
	case err != nil:
		return nil, fmt.Errorf("metadata: %w", err)
	case bodyLen < 0:
		return nil, fmt.Errorf("negative body length %d", bodyLen)
	case bodyLen > m.maxBody:
		return nil, &LimitError{What: "body", Size: bodyLen, Limit: m.maxBody}
	}
	m.mem.Allow(bodyLen)
	body := memory.NewResizableBuffer(m.mem)
	defer body.Release()
	if err := m.readBody(body, int(bodyLen)); err != nil {
		return nil, fmt.Errorf("reading %d bytes of body: %w", bodyLen, noEOF(err))
	}
	metaBuf := memory.NewBufferBytes(meta)
	defer metaBuf.Release()
	return ipc.NewMessage(metaBuf, body), nil
}

// readChunk is the most that MessageReader allocates for a message's
// metadata or body before the input has given that much: it grows the
// buffer as the bytes come (doubling it), so that a few bytes that claim
// a large message cost about what they hold, not what they claim.
const readChunk = 1 << 20

// first is the size of the first buffer for n bytes of a message: all n
// when the input says that it holds them (a bytes.Reader, a bytes.Buffer,
// a strings.Reader: in memory, whole), else at most readChunk.
func (m *MessageReader) first(n int) int {
	if l, ok := m.r.(interface{ Len() int }); ok && l.Len() >= n {
		return n
	}
	return min(n, readChunk)
}

// readMeta reads n bytes of metadata.
func (m *MessageReader) readMeta(n int) ([]byte, error) {
	meta := make([]byte, m.first(n))
	for have := 0; ; {
		if err := m.full(meta[have:]); err != nil {
			return nil, err
		}
		if have = len(meta); have == n {
			return meta, nil
		}
		meta = append(meta, make([]byte, min(n, 2*have)-have)...)
	}
}

// readBody reads n bytes into body, resizing it as the bytes come.
func (m *MessageReader) readBody(body *memory.Buffer, n int) error {
	body.Resize(m.first(n))
	for have := 0; ; {
		if err := m.full(body.Bytes()[have:]); err != nil {
			return err
		}
		if have = body.Len(); have == n {
			return nil
		}
		body.Resize(min(n, 2*have))
	}
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (m *MessageReader) releaseCur() {
	if m.cur != nil {
		m.cur.Release()
		m.cur = nil
	}
}

// Retain adds a reference.
func (m *MessageReader) Retain() { m.refs.Add(1) }

// Release drops a reference; the last one releases the current message.
func (m *MessageReader) Release() {
	if m.refs.Add(-1) == 0 {
		m.releaseCur()
	}
}
