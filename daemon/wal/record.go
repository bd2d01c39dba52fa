package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
)

// The segment and record format (all integers little-endian):
//
//	segment: magic "PSWAL001" (8 bytes), then records back to back
//	record:  length n (uint32) | crc32c (uint32) | payload (n bytes)
//	payload: seq (uint64) | key length k (uint16) | key (k bytes) | IPC stream body
//
// The CRC (Castagnoli) covers the length field and the payload, so that a
// corrupt length is found like corrupt data.
const (
	segMagic     = "PSWAL001"
	recHeader    = 8  // length + crc
	payloadFixed = 10 // seq + key length
	// MaxKeyBytes bounds the Idempotency-Key header; a longer key is a 400.
	MaxKeyBytes = 256
	// maxPayload bounds one record's payload whatever MaxBody was when it
	// was written, so that a corrupt length never asks for more.
	maxPayload = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt is wrapped by every error about a record that does not
// verify (torn, cut short or corrupt).
var errCorrupt = errors.New("record does not verify")

// record is one decoded record: one post.
type record struct {
	seq  int64
	key  []byte // nil when the post had no Idempotency-Key
	body []byte // the Arrow IPC stream
	off  int64  // byte offset of the record in its segment
	size int64  // bytes of the record, header included
}

// newRecordBuf returns a buffer for a record with key and room for a body
// of bodyHint bytes: the header and the fixed payload are left to
// sealRecord (the writer fills in seq and crc), the body is appended.
func newRecordBuf(key string, bodyHint int) []byte {
	b := make([]byte, recHeader+payloadFixed+len(key), recHeader+payloadFixed+len(key)+bodyHint)
	binary.LittleEndian.PutUint16(b[recHeader+8:], uint16(len(key)))
	copy(b[recHeader+payloadFixed:], key)
	return b
}

// Record buffers of posts up to maxPooledRecord bytes are reused: the
// handler takes one for each post (getRecordBuf) and gives it back when
// the post is not appended, the writer once it has written it, or Run
// once it has made the batches of a fast-path post from it.
const maxPooledRecord = 1 << 20

var recordPool sync.Pool // of *[]byte

// getRecordBuf is newRecordBuf for a body of exactly n bytes, from the
// pool when one fits: at least the record's size and at most twice it,
// so that a record kept for Run (counted by its size in MaxPending) holds
// at most twice that memory. Its body bytes are not cleared.
func getRecordBuf(key string, n int) []byte {
	need := recHeader + payloadFixed + len(key) + n
	if need > maxPooledRecord {
		return newRecordBuf(key, n)
	}
	p, _ := recordPool.Get().(*[]byte)
	if p == nil {
		return newRecordBuf(key, n)
	}
	if c := cap(*p); c < need || c > 2*need {
		recordPool.Put(p)
		return newRecordBuf(key, n)
	}
	b := (*p)[:recHeader+payloadFixed+len(key)]
	binary.LittleEndian.PutUint16(b[recHeader+8:], uint16(len(key)))
	copy(b[recHeader+payloadFixed:], key)
	return b
}

// putRecordBuf gives a record buffer back to the pool; nobody may use it
// after.
func putRecordBuf(b []byte) {
	if cap(b) > maxPooledRecord || cap(b) < recHeader+payloadFixed {
		return
	}
	b = b[:0]
	recordPool.Put(&b)
}

// sealRecord writes the length, seq and crc of a record made by
// newRecordBuf with its body appended.
func sealRecord(b []byte, seq int64) {
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)-recHeader))
	binary.LittleEndian.PutUint64(b[recHeader:], uint64(seq))
	crc := crc32.Update(0, castagnoli, b[0:4])
	crc = crc32.Update(crc, castagnoli, b[recHeader:])
	binary.LittleEndian.PutUint32(b[4:], crc)
}

// recordReader reads the records of one segment from its first record on.
type recordReader struct {
	r    *bufio.Reader
	off  int64 // offset of the next record in the segment
	end  int64 // the segment's size: no record reaches past it
	hdr  [recHeader]byte
	buf  []byte
	copy bool // each record gets its own payload (else it reuses buf)
}

// newRecordReader reads records from r, which is positioned at byte off of
// a segment that ends at byte end.
func newRecordReader(r io.Reader, off, end int64) *recordReader {
	return &recordReader{r: bufio.NewReaderSize(r, 64<<10), off: off, end: end}
}

// reset makes rr read from r, positioned at byte off of a segment that
// ends at byte end, reusing its buffers.
func (rr *recordReader) reset(r io.Reader, off, end int64) {
	rr.r.Reset(r)
	rr.off, rr.end = off, end
}

// next returns the next record, io.EOF at the end of the segment (exactly
// at a record boundary), or an error wrapping errCorrupt that names the
// record's offset. A record's key and body stay valid until the next
// call, unless rr.copy is set.
func (rr *recordReader) next() (record, error) {
	at := rr.off
	left := rr.end - at
	if left == 0 {
		return record{}, io.EOF
	}
	if left < recHeader+payloadFixed {
		return record{}, fmt.Errorf("record at byte %d: %w: %d bytes left, less than a record header (torn write?)", at, errCorrupt, left)
	}
	if _, err := io.ReadFull(rr.r, rr.hdr[:]); err != nil {
		return record{}, fmt.Errorf("record at byte %d: reading the header: %w", at, noEOF(err))
	}
	n := int64(binary.LittleEndian.Uint32(rr.hdr[0:]))
	if n < payloadFixed || n > maxPayload || n > left-recHeader {
		return record{}, fmt.Errorf("record at byte %d: %w: payload length %d, want %d to %d (torn write?)",
			at, errCorrupt, n, payloadFixed, min(maxPayload, left-recHeader))
	}
	if rr.copy || int64(cap(rr.buf)) < n {
		rr.buf = make([]byte, n)
	}
	p := rr.buf[:n]
	if _, err := io.ReadFull(rr.r, p); err != nil {
		return record{}, fmt.Errorf("record at byte %d: reading %d bytes of payload: %w", at, n, noEOF(err))
	}
	crc := crc32.Update(0, castagnoli, rr.hdr[0:4])
	crc = crc32.Update(crc, castagnoli, p)
	if want := binary.LittleEndian.Uint32(rr.hdr[4:]); crc != want {
		return record{}, fmt.Errorf("record at byte %d: %w: crc32c %08x, want %08x", at, errCorrupt, crc, want)
	}
	k := int64(binary.LittleEndian.Uint16(p[8:]))
	if k > MaxKeyBytes || payloadFixed+k > n {
		return record{}, fmt.Errorf("record at byte %d: %w: key length %d, want at most %d", at, errCorrupt, k, min(MaxKeyBytes, n-payloadFixed))
	}
	rec := record{
		seq:  int64(binary.LittleEndian.Uint64(p[0:])),
		body: p[payloadFixed+k:],
		off:  at,
		size: recHeader + n,
	}
	if rec.seq < 0 {
		return record{}, fmt.Errorf("record at byte %d: %w: sequence number %d", at, errCorrupt, rec.seq)
	}
	if k > 0 {
		rec.key = p[payloadFixed : payloadFixed+k]
	}
	rr.off += rec.size
	return rec, nil
}

// noEOF turns an end of input in the middle of something into
// io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
