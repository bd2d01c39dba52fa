package wal

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/endian"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/internal/ipcguard"
)

// The fast path of decode: the common post, read without arrow-go's
// reader. It takes a body only when
//
//   - its schema message is byte for byte one that the full reader (the
//     reference: minibatch's IPC stream, then Schema.Check) accepted in a
//     post before, which the log remembers with its parsed schema (at most
//     maxFastSchemas of them, each at most maxFastSchemaBytes);
//   - every column of that schema is of a fixed-width primitive type
//     (boolean, integers, floats, dates, times, timestamps, durations) or
//     a fixed-size list of one, little-endian like this machine;
//   - the messages after it are uncompressed record batches of metadata
//     version V5 without custom metadata, their metadata at most
//     ipcguard.MaxMetadataBytes, each with exactly the field
//     nodes and buffers that the schema needs, every column as long as
//     the batch, every buffer 8-byte aligned and inside the message body,
//     long enough for its values, null counts matching the validity
//     bitmaps, a fixed-size list's values exactly as long as its rows ×
//     its size; and the stream ends at an end-of-stream marker or right
//     after a message;
//   - it holds at least one record batch.
//
// Anything else goes to the full reader, which gives the errors. So the
// fast path never refuses a body: what it takes, the full reader takes
// too, with the same values (FuzzFastPath checks it). Each batch's body is
// copied into one buffer of Options.Alloc, which its arrays slice, as
// arrow-go's reader does.

const (
	// maxFastSchemas bounds the schema messages remembered for the fast
	// path; once full, new ones are not remembered.
	maxFastSchemas = 16
	// maxFastSchemaBytes bounds one remembered schema message (framing
	// included).
	maxFastSchemaBytes = 64 << 10
	// ipcContinuation starts a framed IPC message (then its length).
	ipcContinuation = 0xFFFFFFFF
	// flatbuffer enums of Message.fbs.
	metadataV5      = 4
	headerSchema    = 1
	headerRecBatch  = 3
	fastNodeBytes   = 16 // FieldNode {length, null_count}
	fastBufferBytes = 16 // Buffer {offset, length}
)

// fastSchemas are the remembered schema messages: a copy-on-write map
// from the message's bytes to its layout (nil when the fast path cannot
// read it), read without a lock.
type fastSchemas struct {
	m  atomic.Pointer[map[string]*fastSchema]
	mu sync.Mutex // serializes writers
}

// fastSchema is how a remembered stream schema lays out its batches.
type fastSchema struct {
	cols   []fastCol // the stream's columns, in order
	nodes  int       // field nodes of a batch
	bufs   int       // buffers of a batch
	ix, iy []int     // positions of the Inputs and Labels
}

// fastCol is one column: a fixed-width primitive (list 0) or a
// fixed-size list of list values of one.
type fastCol struct {
	dt   arrow.DataType // the column's type, as the full reader parsed it
	bits int64          // bits of a value (of an element, for a list)
	elem arrow.DataType // the element type of a list
	list int64          // values per row of a list; 0: a primitive
}

// fixedBits is the width in bits of a value of dt when arrow-go's reader
// loads dt as a primitive (one validity bitmap, one values buffer).
func fixedBits(dt arrow.DataType) (int64, bool) {
	switch dt.ID() {
	case arrow.BOOL:
		return 1, true
	case arrow.INT8, arrow.UINT8:
		return 8, true
	case arrow.INT16, arrow.UINT16, arrow.FLOAT16:
		return 16, true
	case arrow.INT32, arrow.UINT32, arrow.FLOAT32, arrow.DATE32, arrow.TIME32:
		return 32, true
	case arrow.INT64, arrow.UINT64, arrow.FLOAT64, arrow.DATE64, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION:
		return 64, true
	}
	return 0, false
}

// newFastSchema lays out sc, the stream schema that the full reader
// parsed, or returns nil when the fast path cannot read it.
func newFastSchema(sc *arrow.Schema, ix, iy []int) *fastSchema {
	if endian.IsBigEndian {
		return nil
	}
	fs := &fastSchema{cols: make([]fastCol, sc.NumFields()), ix: ix, iy: iy}
	for i, f := range sc.Fields() {
		c := fastCol{dt: f.Type}
		if l, ok := f.Type.(*arrow.FixedSizeListType); ok && l.ID() == arrow.FIXED_SIZE_LIST {
			bits, ok := fixedBits(l.Elem())
			if !ok || l.Len() <= 0 {
				return nil
			}
			c.bits, c.elem, c.list = bits, l.Elem(), int64(l.Len())
			fs.nodes += 2
			fs.bufs += 3
		} else {
			bits, ok := fixedBits(f.Type)
			if !ok {
				return nil
			}
			c.bits = bits
			fs.nodes++
			fs.bufs += 2
		}
		fs.cols[i] = c
	}
	return fs
}

// lookup returns the layout of the schema message key, if remembered.
func (s *fastSchemas) lookup(key []byte) (*fastSchema, bool) {
	m := s.m.Load()
	if m == nil {
		return nil, false
	}
	fs, ok := (*m)[string(key)]
	return fs, ok
}

// remember adds the schema message key with its layout fs (nil: not for
// the fast path), unless it is known or the map is full.
func (s *fastSchemas) remember(key []byte, fs *fastSchema) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m.Load()
	var m map[string]*fastSchema
	if old != nil {
		if _, ok := (*old)[string(key)]; ok || len(*old) >= maxFastSchemas {
			return
		}
		m = make(map[string]*fastSchema, len(*old)+1)
		for k, v := range *old {
			m[k] = v
		}
	} else {
		m = map[string]*fastSchema{}
	}
	m[string(key)] = fs
	s.m.Store(&m)
}

// schemaMessage returns the framed schema message that body starts with
// (the key of fastSchemas) and the bytes after it, when it is a framed
// message of at most maxFastSchemaBytes.
func schemaMessage(body []byte) (key, rest []byte, ok bool) {
	if len(body) < 8 || binary.LittleEndian.Uint32(body) != ipcContinuation {
		return nil, nil, false
	}
	n := int64(binary.LittleEndian.Uint32(body[4:]))
	if n == 0 || 8+n > int64(len(body)) || 8+n > maxFastSchemaBytes {
		return nil, nil, false
	}
	return body[:8+n], body[8+n:], true
}

// rememberSchema remembers the schema message of body, which the full
// reader read with the stream schema sc and Schema.Check accepted, when
// it is a V5, little-endian schema message without a body.
func (d *decoder) rememberSchema(body []byte, sc *arrow.Schema, ix, iy []int) {
	key, _, ok := schemaMessage(body)
	if !ok {
		return
	}
	if _, known := d.fast.lookup(key); known {
		return
	}
	msg, err := ipcguard.Root(key[8:])
	if err != nil {
		return
	}
	version, err1 := msg.Int16(0)
	kind, err2 := msg.Uint8(1)
	bodyLen, err3 := msg.Int64(3)
	schema, present, err4 := msg.Sub(2)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || !present || version != metadataV5 || kind != headerSchema || bodyLen != 0 {
		return
	}
	var fs *fastSchema
	if e, err := schema.Int16(0); err == nil && e == 0 { // Schema.endianness: Little
		fs = newFastSchema(sc, ix, iy)
	}
	d.fast.remember(key, fs)
}

// fastBatch is one record batch message that the fast path checked.
type fastBatch struct {
	rows  int64
	nodes int    // position of the first FieldNode in meta
	bufs  int    // position of the first Buffer in meta
	meta  []byte // the Message flatbuffer
	body  []byte // the message body
}

// decodeFast reads body by the fast path: ok false when it is not a body
// for the fast path (nothing was called, nothing allocated); else the
// result of the read as decode reports it.
func (d *decoder) decodeFast(ctx context.Context, body []byte, each func(i int, b flow.Batch) error) (ok bool, err error) {
	fp, ok := d.checkFast(body)
	if !ok {
		return false, nil
	}
	return true, d.buildFast(ctx, fp, each)
}

// fastPost is a body that checkFast took: buildFast makes its batches.
type fastPost struct {
	fs      *fastSchema
	batches []byte // the messages after the schema
	n       int    // record batches
}

// checkFast checks every message of body for the fast path, so that a
// body is taken whole or not at all (ok false: for the full reader).
func (d *decoder) checkFast(body []byte) (fp fastPost, ok bool) {
	key, rest, ok := schemaMessage(body)
	if !ok {
		return fp, false
	}
	fs, _ := d.fast.lookup(key)
	if fs == nil {
		return fp, false
	}
	n := 0
	for r := rest; ; n++ {
		_, next, end, ok := d.nextBatch(fs, r)
		if !ok {
			return fp, false
		}
		if end {
			break
		}
		r = next
	}
	return fastPost{fs: fs, batches: rest, n: n}, n > 0
}

// buildFast makes the batches of a body that checkFast took (its bytes
// unchanged since) and calls each for them, as decode does.
func (d *decoder) buildFast(ctx context.Context, fp fastPost, each func(i int, b flow.Batch) error) error {
	r := fp.batches
	for i := range fp.n {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		b, next, _, _ := d.nextBatch(fp.fs, r)
		r = next
		split := d.build(fp.fs, b)
		split.Seq = int64(i)
		if each == nil {
			split.Release()
			continue
		}
		if err := each(i, split); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	return nil
}

// nextBatch checks the message at the start of r: a record batch (b, and
// the bytes after it), or the end of the stream (end), or ok false when
// it is not for the fast path.
func (d *decoder) nextBatch(fs *fastSchema, r []byte) (b fastBatch, next []byte, end, ok bool) {
	if len(r) == 0 {
		return b, nil, true, true
	}
	if len(r) < 8 || binary.LittleEndian.Uint32(r) != ipcContinuation {
		return b, nil, false, false
	}
	n := int64(binary.LittleEndian.Uint32(r[4:]))
	if n == 0 { // end-of-stream marker: nothing may follow
		return b, nil, len(r) == 8, len(r) == 8
	}
	if n > int64(len(r))-8 || n > ipcguard.MaxMetadataBytes { // the full reader's bound on metadata
		return b, nil, false, false
	}
	meta := r[8 : 8+n]
	msg, err := ipcguard.Root(meta)
	if err != nil {
		return b, nil, false, false
	}
	version, err1 := msg.Int16(0)
	kind, err2 := msg.Uint8(1)
	bodyLen, err3 := msg.Int64(3)
	_, hasMeta, err4 := msg.Field(4, 4)
	rb, present, err5 := msg.Sub(2)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil || !present || hasMeta ||
		version != metadataV5 || kind != headerRecBatch || bodyLen < 0 || bodyLen > int64(len(r))-8-n {
		return b, nil, false, false
	}
	body := r[8+n : 8+n+bodyLen]
	// RecordBatch: length (0), nodes (1), buffers (2), compression (3),
	// variadicBufferCounts (4).
	rows, err1 := rb.Int64(0)
	nodes, nn, err2 := rb.Vector(1, fastNodeBytes)
	bufs, nb, err3 := rb.Vector(2, fastBufferBytes)
	_, compressed, err4 := rb.Field(3, 4)
	_, nv, err5 := rb.Vector(4, 8)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil || compressed || nv != 0 ||
		nn != fs.nodes || nb != fs.bufs || rows < 0 || rows > d.maxRows() {
		return b, nil, false, false
	}
	b = fastBatch{rows: rows, nodes: nodes, bufs: bufs, meta: meta, body: body}
	ni, bi := 0, 0
	for _, c := range fs.cols {
		length, nulls := b.node(ni)
		if length != rows || !b.checkArray(bi, length, nulls, c.bits, c.list) {
			return b, nil, false, false
		}
		if c.list > 0 {
			clen, cnulls := b.node(ni + 1)
			if length > d.maxRows()/c.list || clen != length*c.list || !b.checkArray(bi+1, clen, cnulls, c.bits, 0) {
				return b, nil, false, false
			}
		}
		ni, bi = ni+1+boolInt(c.list > 0), bi+2+boolInt(c.list > 0)
	}
	return b, r[8+n+bodyLen:], false, true
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// maxRows bounds the rows of a batch as minibatch's reader does: one per
// byte of its WithMaxBatchBytes.
func (d *decoder) maxRows() int64 { return 8 * d.o.MaxBody }

func (b fastBatch) node(i int) (length, nulls int64) {
	p := b.nodes + fastNodeBytes*i
	return int64(binary.LittleEndian.Uint64(b.meta[p:])), int64(binary.LittleEndian.Uint64(b.meta[p+8:]))
}

// buffer returns buffer i: its offset and length in the body, checked to
// lie inside it, 8-byte aligned.
func (b fastBatch) buffer(i int) (off, n int64, ok bool) {
	p := b.bufs + fastBufferBytes*i
	off, n = int64(binary.LittleEndian.Uint64(b.meta[p:])), int64(binary.LittleEndian.Uint64(b.meta[p+8:]))
	return off, n, off >= 0 && n >= 0 && off%8 == 0 && off <= int64(len(b.body)) && n <= int64(len(b.body))-off
}

// checkArray checks the array of length values (nulls of them null) whose
// validity bitmap is buffer bi: and, when list is 0, its bits-wide values
// in buffer bi+1 (a list's values are its child's).
func (b fastBatch) checkArray(bi int, length, nulls, bits, list int64) bool {
	if nulls < 0 || nulls > length {
		return false
	}
	off, n, ok := b.buffer(bi)
	if !ok {
		return false
	}
	if nulls > 0 {
		bytes := (length + 7) / 8
		if n < bytes || length-int64(bitutil.CountSetBits(b.body[off:off+bytes], 0, int(length))) != nulls {
			return false
		}
	}
	if list > 0 {
		return true
	}
	_, n, ok = b.buffer(bi + 1)
	return ok && (length == 0 || n >= (length*bits+7)/8)
}

// build makes the batch of b (checked by nextBatch): its body copied into
// one buffer of Options.Alloc, sliced by the arrays as arrow-go's reader
// slices it: no validity bitmap when nothing is null, no values buffer
// when there are no rows.
func (d *decoder) build(fs *fastSchema, b fastBatch) flow.Batch {
	var whole *memory.Buffer
	if len(b.body) > 0 {
		mem := d.o.Alloc.Allocate(len(b.body))
		copy(mem, b.body)
		whole = memory.NewBufferWithAllocator(mem[:len(b.body)], d.o.Alloc)
		defer whole.Release()
	}
	slice := func(bi int) *memory.Buffer {
		off, n, _ := b.buffer(bi)
		return memory.SliceBuffer(whole, int(off), int(n))
	}
	// one allocation for the buffer slots of every array
	slots := make([]*memory.Buffer, 0, fs.bufs)
	take := func(k int) []*memory.Buffer {
		s := slots[len(slots) : len(slots)+k : len(slots)+k]
		slots = slots[:len(slots)+k]
		return s
	}
	primitive := func(dt arrow.DataType, ni, bi int) arrow.ArrayData {
		length, nulls := b.node(ni)
		bufs := take(2)
		if nulls > 0 {
			bufs[0] = slice(bi)
		}
		if length > 0 {
			bufs[1] = slice(bi + 1)
		}
		data := array.NewData(dt, int(length), bufs, nil, int(nulls), 0)
		memory.ReleaseBuffers(bufs) // data holds them
		return data
	}
	cols := make([]arrow.Array, len(fs.cols))
	ni, bi := 0, 0
	for i, c := range fs.cols {
		var data arrow.ArrayData
		if c.list == 0 {
			data = primitive(c.dt, ni, bi)
			ni, bi = ni+1, bi+2
		} else {
			length, nulls := b.node(ni)
			bufs := take(1)
			if nulls > 0 {
				bufs[0] = slice(bi)
			}
			child := primitive(c.elem, ni+1, bi+1)
			data = array.NewData(c.dt, int(length), bufs, []arrow.ArrayData{child}, int(nulls), 0)
			memory.ReleaseBuffers(bufs)
			child.Release()
			ni, bi = ni+2, bi+3
		}
		cols[i] = array.MakeFromData(data)
		data.Release()
	}
	split := flow.Batch{X: projectCols(d.x, cols, fs.ix, b.rows)}
	if d.y != nil {
		split.Y = projectCols(d.y, cols, fs.iy, b.rows)
	}
	for _, c := range cols {
		c.Release()
	}
	return split
}

// projectCols makes a record of schema sc from cols idx (retained).
func projectCols(sc *arrow.Schema, cols []arrow.Array, idx []int, rows int64) arrow.RecordBatch {
	sel := make([]arrow.Array, len(idx))
	for i, j := range idx {
		sel[i] = cols[j]
	}
	return array.NewRecordBatch(sc, sel, rows)
}
