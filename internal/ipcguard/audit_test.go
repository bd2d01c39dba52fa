package ipcguard

// An adversarial audit of the package's promises with crafted input:
// metadata lengths at and past MaxMetadataBytes, bodies that claim more
// than the input holds or than the limit, compressed buffers that claim
// terabytes or negative sizes, dictionary batches, vectors that claim more
// elements than their buffer holds, fields that share tables, lengths
// that overflow, every truncation and every byte changed of a stream and
// a file: an error that says what was wrong, never a panic, no allocation
// past the bound, nothing left allocated.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// peakAllocator counts what is allocated from it now and at most, and the
// largest single allocation asked for.
type peakAllocator struct {
	mem memory.Allocator

	mu              sync.Mutex
	cur, peak, most int
}

func (p *peakAllocator) note(delta, asked int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur += delta
	p.peak = max(p.peak, p.cur)
	p.most = max(p.most, asked)
}

func (p *peakAllocator) Allocate(size int) []byte {
	p.note(size, size)
	return p.mem.Allocate(size)
}

func (p *peakAllocator) Reallocate(size int, b []byte) []byte {
	p.note(size-len(b), size)
	return p.mem.Reallocate(size, b)
}

func (p *peakAllocator) Free(b []byte) {
	p.note(-len(b), 0)
	p.mem.Free(b)
}

// readGuarded reads an IPC stream (or file) data as the package doc says
// to, with the bound limit (and maxBody limit), touching every batch, and
// returns the number of batches read and the first error. It fails the
// test if anything is left allocated, and returns the peak allocated.
func readGuarded(t *testing.T, stream bool, data []byte, limit int64) (batches int, peak, most int, err error) {
	t.Helper()
	checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer checked.AssertSize(t, 0)
	pa := &peakAllocator{mem: checked}
	guard := NewAllocator(pa, limit)
	if stream {
		batches, err = readStream(guard, data, limit)
	} else {
		batches, err = readFile(guard, data, limit)
	}
	return batches, pa.peak, pa.most, err
}

func readStream(guard *Allocator, data []byte, limit int64) (int, error) {
	msgs := NewMessageReader(bytes.NewReader(data), guard, limit)
	var rd *ipc.Reader
	err := guard.Read(func() (err error) {
		rd, err = ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(guard))
		return err
	})
	if err != nil {
		guard.ReleaseReader(false)
		return 0, err
	}
	n := 0
	for {
		var ok bool
		err = guard.Read(func() error {
			ok = rd.Next()
			if ok {
				if err := array.ValidateFull(rd.RecordBatch().Column(0)); err != nil {
					return err
				}
			}
			return rd.Err()
		})
		if err != nil || !ok {
			break
		}
		n++
	}
	rd.Release()
	guard.ReleaseReader(false)
	return n, err
}

func readFile(guard *Allocator, data []byte, limit int64) (int, error) {
	r := bytes.NewReader(data)
	f, err := CheckFile(r, int64(len(data)), limit)
	if err != nil {
		return 0, err
	}
	var fr *ipc.FileReader
	err = guard.Read(func() (err error) {
		for _, b := range f.Dictionaries {
			guard.Allow(b.MetaLen)
			guard.Allow(b.BodyLen)
		}
		fr, err = ipc.NewFileReader(r, ipc.WithAllocator(guard),
			ipc.WithBodySizeLimit(limit), ipc.WithMetadataSizeLimit(MaxMetadataBytes))
		return err
	})
	if err != nil {
		guard.ReleaseReader(false)
		return 0, err
	}
	n := 0
	for i, b := range f.Records {
		if err = CheckBlock(r, b); err != nil {
			break
		}
		err = guard.Read(func() error {
			guard.Allow(b.MetaLen)
			guard.Allow(b.BodyLen)
			rec, err := fr.RecordBatchAt(i)
			if err != nil {
				return err
			}
			defer rec.Release()
			return array.ValidateFull(rec.Column(0))
		})
		if err != nil {
			break
		}
		n++
	}
	fr.Close()
	guard.ReleaseReader(false)
	return n, err
}

// message is where one message of an IPC stream lies.
type message struct {
	at, meta, metaLen, body, bodyLen int
}

// messages splits a stream into its messages (with continuation markers).
func messages(t *testing.T, stream []byte) []message {
	t.Helper()
	var out []message
	for at := 0; at+8 <= len(stream) && binary.LittleEndian.Uint32(stream[at:]) == continuation; {
		n := int(binary.LittleEndian.Uint32(stream[at+4:]))
		if n == 0 {
			break
		}
		msg, err := Root(stream[at+8 : at+8+n])
		if err != nil {
			t.Fatal(err)
		}
		bl, err := msg.Int64(3)
		if err != nil {
			t.Fatal(err)
		}
		m := message{at: at, meta: at + 8, metaLen: n, body: at + 8 + n, bodyLen: int(bl)}
		out = append(out, m)
		at = m.body + m.bodyLen
	}
	return out
}

// header returns the header table of message m of data (a view of data).
func header(t *testing.T, data []byte, m message) Table {
	t.Helper()
	msg, err := Root(data[m.meta : m.meta+m.metaLen])
	if err != nil {
		t.Fatal(err)
	}
	h, ok, err := msg.Sub(2)
	if err != nil || !ok {
		t.Fatalf("message without header: %v", err)
	}
	return h
}

// setVectorCount sets the length of the vector in field id of t.
func setVectorCount(t *testing.T, tb Table, id int, n uint32) {
	t.Helper()
	p, ok, err := tb.Field(id, 4)
	if err != nil || !ok {
		t.Fatalf("no vector in field %d: %v", id, err)
	}
	binary.LittleEndian.PutUint32(tb.buf[p+int(binary.LittleEndian.Uint32(tb.buf[p:])):], n)
}

// dictStream is a stream (or file) of one batch of a dictionary column
// (int8 → string) and a list column, written with opts.
func dictStream(t *testing.T, stream bool, opts ...ipc.Option) []byte {
	t.Helper()
	db := array.NewDictionaryBuilder(memory.DefaultAllocator, &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}).(*array.BinaryDictionaryBuilder)
	defer db.Release()
	lb := array.NewListBuilder(memory.DefaultAllocator, arrow.PrimitiveTypes.Int32)
	defer lb.Release()
	vb := lb.ValueBuilder().(*array.Int32Builder)
	for i := range 200 {
		if err := db.AppendString(fmt.Sprintf("word %d", i%7)); err != nil {
			t.Fatal(err)
		}
		lb.Append(true)
		vb.AppendValues([]int32{int32(i), int32(i) * 2}, nil)
	}
	dict, list := db.NewArray(), lb.NewArray()
	defer dict.Release()
	defer list.Release()
	return write(t, stream, []arrow.Array{dict, list}, opts...)
}

// The stream's metadata length is bounded by MaxMetadataBytes (past it,
// an error naming the message and its offset, without allocating it);
// the end of the input anywhere inside a message is an unexpected EOF
// naming the message; a negative body length is refused; both framings
// (with and without the continuation marker) read, and both
// end-of-stream markers end the stream.
func TestAuditMessageFraming(t *testing.T) {
	col := int64s(10)
	defer col.Release()
	stream := write(t, true, []arrow.Array{col})
	ms := messages(t, stream)
	if len(ms) != 2 {
		t.Fatalf("%d messages; want 2", len(ms))
	}
	read := func(data []byte, limit int64) (n int, err error) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		guard := NewAllocator(mem, limit)
		m := NewMessageReader(bytes.NewReader(data), guard, limit)
		defer guard.Reclaim()
		defer m.Release()
		for {
			err = guard.Read(func() error {
				_, err := m.Message()
				return err
			})
			if err != nil {
				return n, err
			}
			n++
		}
	}
	frame := func(n uint32) []byte {
		b := binary.LittleEndian.AppendUint32([]byte{0xff, 0xff, 0xff, 0xff}, n)
		return append(b, make([]byte, 16)...)
	}
	_, err := read(frame(MaxMetadataBytes+1), 1<<20)
	wantErr(t, err, "message 0 at byte 0", fmt.Sprintf("metadata length %d is out of range [1, %d]", MaxMetadataBytes+1, MaxMetadataBytes))
	_, err = read(frame(MaxMetadataBytes), 1<<20)
	wantErr(t, err, "message 0 at byte 0", fmt.Sprintf("reading %d bytes of metadata: unexpected EOF", MaxMetadataBytes))
	// Old framing: the length alone.
	_, err = read(binary.LittleEndian.AppendUint32(nil, 1<<31), 1<<20)
	wantErr(t, err, "message 0 at byte 0", "metadata length -2147483648 is out of range")

	second := fmt.Sprintf("message 1 at byte %d", ms[1].at)
	for _, tc := range []struct {
		cut  int
		want string
	}{
		{ms[1].at + 2, "unexpected EOF"},
		{ms[1].at + 6, "reading the metadata length: unexpected EOF"},
		{ms[1].meta + 3, fmt.Sprintf("reading %d bytes of metadata: unexpected EOF", ms[1].metaLen)},
		{ms[1].body + 1, fmt.Sprintf("reading %d bytes of body: unexpected EOF", ms[1].bodyLen)},
	} {
		n, err := read(stream[:tc.cut], 1<<20)
		wantErr(t, err, second, tc.want)
		if n != 1 {
			t.Errorf("cut at %d: %d messages before the error; want 1", tc.cut, n)
		}
	}
	// Cut between messages, or at either end-of-stream marker: io.EOF.
	for _, data := range [][]byte{stream[:ms[1].at], stream, append(bytes.Clone(stream[:ms[1].body+ms[1].bodyLen]), 0, 0, 0, 0)} {
		if n, err := read(data, 1<<20); err != io.EOF || n != len(messages(t, data)) {
			t.Errorf("a stream of %d bytes: %d messages, %v; want %d, io.EOF", len(data), n, err, len(messages(t, data)))
		}
	}
	// Old framing throughout: each message's length without the marker.
	var old []byte
	for _, m := range ms {
		old = binary.LittleEndian.AppendUint32(old, uint32(m.metaLen))
		old = append(old, stream[m.meta:m.body+m.bodyLen]...)
	}
	if n, err := read(old, 1<<20); err != io.EOF || n != 2 {
		t.Errorf("old framing: %d messages, %v; want 2, io.EOF", n, err)
	}
	// A negative body length, and one past the limit.
	bad := bytes.Clone(stream)
	msg, _ := Root(bad[ms[1].meta : ms[1].meta+ms[1].metaLen])
	p, ok, err := msg.Field(3, 8)
	if err != nil || !ok {
		t.Fatal("no body length")
	}
	binary.LittleEndian.PutUint64(msg.buf[p:], uint64(1)<<63)
	_, err = read(bad, 1<<20)
	wantErr(t, err, second, "negative body length -9223372036854775808")
	binary.LittleEndian.PutUint64(msg.buf[p:], 1<<40)
	_, err = read(bad, 1<<20)
	var lim *LimitError
	if !errors.As(err, &lim) || lim.Size != 1<<40 || lim.Limit != 1<<20 {
		t.Errorf("a body of 1 TiB: %v; want a *LimitError", err)
	}
}

// A compressed buffer whose length prefix claims terabytes is a
// *LimitError of the decompression, found before the memory is asked for;
// one that claims a negative size (other than -1, "not compressed"), or
// one that wraps to it, is an error; in a record batch or a dictionary batch, of a stream or a file,
// with lz4 or zstd. Nothing is left allocated.
func TestAuditCompressedClaims(t *testing.T) {
	const limit = 1 << 20
	for _, codec := range []struct {
		name string
		opt  ipc.Option
	}{{"lz4", ipc.WithLZ4()}, {"zstd", ipc.WithZstd()}} {
		for _, stream := range []bool{true, false} {
			data := dictStream(t, stream, codec.opt)
			if n, _, _, err := readGuarded(t, stream, data, limit); err != nil || n != 1 {
				t.Fatalf("%s stream=%v: %d batches, %v; want the batch", codec.name, stream, n, err)
			}
			// The messages: of a file, after its 8 bytes of magic.
			off := 0
			if !stream {
				off = 8
			}
			ms := messages(t, data[off:])
			for i := range ms {
				ms[i].at += off
				ms[i].meta += off
				ms[i].body += off
			}
			for i, m := range ms[1:] { // the dictionary batch, then the record batch
				h := header(t, data, m)
				kind := "record batch"
				if i == 0 {
					kind = "dictionary batch"
					h, _, _ = h.Sub(1)
				}
				start, nb, err := h.Vector(2, 16)
				if err != nil {
					t.Fatal(err)
				}
				// The first buffer that holds data.
				var at int
				for i := range nb {
					length := binary.LittleEndian.Uint64(h.buf[start+16*i+8:])
					if length >= 8 {
						at = m.body + int(binary.LittleEndian.Uint64(h.buf[start+16*i:]))
						break
					}
				}
				for _, claim := range []int64{1 << 44, math.MaxInt64, -5, math.MinInt64} {
					bad := bytes.Clone(data)
					binary.LittleEndian.PutUint64(bad[at:], uint64(claim))
					name := fmt.Sprintf("%s/stream=%v/%s/%d", codec.name, stream, kind, claim)
					_, _, most, err := readGuarded(t, stream, bad, limit)
					if err == nil {
						t.Errorf("%s: no error", name)
						continue
					}
					if most > 2*limit {
						t.Errorf("%s: asked the allocator for %d bytes at once; want at most %d", name, most, 2*limit)
					}
					// A claim within 63 bytes of math.MaxInt64 wraps to a
					// negative size when arrow-go rounds it up to 64
					// bytes; a negative claim arrow-go slices by before it
					// allocates: either is an error, not a *LimitError.
					var lim *LimitError
					if claim > 0 && claim < math.MaxInt64-63 && (!errors.As(err, &lim) || lim.What != "decompression" || lim.Limit != limit) {
						t.Errorf("%s: %v; want a *LimitError of the decompression", name, err)
					}
					if claim == math.MaxInt64 && !errors.Is(err, ErrNegativeSize) {
						t.Errorf("%s: %v; want ErrNegativeSize", name, err)
					}
				}
			}
		}
	}
}

// Vectors in the metadata that claim more elements than their buffer
// holds are refused before arrow-go parses them, naming what they are:
// the fields of a schema and of a field, custom metadata of a schema and
// of a field, a union's type ids, the nodes and buffers of a record batch
// and of a dictionary batch, and the footer's blocks of a file.
func TestAuditVectorCounts(t *testing.T) {
	md := arrow.NewMetadata([]string{"k"}, []string{"v"})
	ub := array.NewDenseUnionBuilder(memory.DefaultAllocator, arrow.DenseUnionOf(
		[]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int32}}, []arrow.UnionTypeCode{3}))
	ub.Append(3)
	ub.Child(0).(*array.Int32Builder).Append(1)
	union := ub.NewArray()
	ub.Release()
	defer union.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "u", Type: union.DataType(), Metadata: md}}, &md)
	rec := array.NewRecordBatch(schema, []arrow.Array{union}, 1)
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	stream := buf.Bytes()
	ms := messages(t, stream)
	for _, tc := range []struct {
		name string
		msg  int
		edit func(h Table)
		want []string
	}{
		{"schema metadata", 0, func(h Table) { setVectorCount(t, h, 2, 1<<30) }, []string{"schema: custom metadata", "outside"}},
		{"field metadata", 0, func(h Table) {
			s, _, _ := h.Vector(1, 4)
			f, _ := h.Element(s, 0)
			setVectorCount(t, f, 6, 1<<30)
		}, []string{"schema: field 0: custom metadata", "outside"}},
		{"union type ids", 0, func(h Table) {
			s, _, _ := h.Vector(1, 4)
			f, _ := h.Element(s, 0)
			typ, _, _ := f.Sub(3)
			setVectorCount(t, typ, 1, 1<<30)
		}, []string{"schema: field 0: union type ids", "outside"}},
		{"children", 0, func(h Table) {
			s, _, _ := h.Vector(1, 4)
			f, _ := h.Element(s, 0)
			setVectorCount(t, f, 5, 1<<30)
		}, []string{"schema: field 0: fields", "outside"}},
		{"nodes", 1, func(h Table) { setVectorCount(t, h, 1, 1<<28) }, []string{"record batch: field nodes", "outside"}},
		{"buffers", 1, func(h Table) { setVectorCount(t, h, 2, 1<<28) }, []string{"record batch: buffers", "outside"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(stream)
			tc.edit(header(t, bad, ms[tc.msg]))
			m := ms[tc.msg]
			wantErr(t, CheckMessage(bad[m.meta:m.meta+m.metaLen]), tc.want...)
			_, _, _, err := readGuarded(t, true, bad, 1<<20)
			wantErr(t, err, append([]string{fmt.Sprintf("message %d at byte %d: metadata: ", tc.msg, m.at)}, tc.want...)...)
		})
	}

	// A dictionary batch: in a stream, and in a file, whose CheckFile
	// checks the dictionaries' metadata.
	for _, stream := range []bool{true, false} {
		data := dictStream(t, stream)
		off := 0
		if !stream {
			off = 8
		}
		m := messages(t, data[off:])[1]
		m.at, m.meta, m.body = m.at+off, m.meta+off, m.body+off
		h := header(t, data, m)
		d, ok, err := h.Sub(1)
		if err != nil || !ok {
			t.Fatalf("dictionary batch without data: %v", err)
		}
		setVectorCount(t, d, 1, 1<<28)
		_, _, _, err = readGuarded(t, stream, data, 1<<20)
		if stream {
			wantErr(t, err, fmt.Sprintf("message 1 at byte %d: metadata: dictionary batch: field nodes", m.at), "outside")
		} else {
			wantErr(t, err, fmt.Sprintf("dictionary 0: metadata at byte %d: dictionary batch: field nodes", m.at), "outside")
		}
	}

	// The footer's vectors of blocks.
	file := dictStream(t, false)
	for _, tc := range []struct {
		id   int
		want string
	}{{2, "dictionary blocks"}, {3, "record batch blocks"}} {
		bad := bytes.Clone(file)
		f, _ := footer(t, bad)
		setVectorCount(t, f, tc.id, 1<<30)
		_, err := CheckFile(bytes.NewReader(bad), int64(len(bad)), 1<<20)
		wantErr(t, err, "footer at byte", tc.want, "vector of 1073741824 elements", "outside")
	}
}

// fbWriter lays out a flatbuffer front to back (every offset points
// forward, as flatbuffers' unsigned offsets must), for metadata that
// arrow-go's writer cannot make.
type fbWriter struct{ buf []byte }

func (w *fbWriter) u16(v uint16) { w.buf = binary.LittleEndian.AppendUint16(w.buf, v) }
func (w *fbWriter) u32(v uint32) { w.buf = binary.LittleEndian.AppendUint32(w.buf, v) }

// table writes a table whose fields (by id) are 4 bytes each, then its
// vtable, and returns the positions of the fields.
func (w *fbWriter) table(ids ...int) map[int]int {
	slots := 0
	for _, id := range ids {
		slots = max(slots, id+1)
	}
	tbl := len(w.buf)
	w.u32(0) // the offset to the vtable, below
	pos := map[int]int{}
	for i, id := range ids {
		pos[id] = tbl + 4 + 4*i
		w.u32(0)
	}
	vt := len(w.buf)
	binary.LittleEndian.PutUint32(w.buf[tbl:], uint32(int32(tbl-vt)))
	w.u16(uint16(4 + 2*slots))
	w.u16(uint16(4 + 4*len(ids)))
	offs := make([]uint16, slots)
	for i, id := range ids {
		offs[id] = uint16(4 + 4*i)
	}
	for _, o := range offs {
		w.u16(o)
	}
	return pos
}

// point makes the offset at p refer to the next thing written.
func (w *fbWriter) point(p int) {
	binary.LittleEndian.PutUint32(w.buf[p:], uint32(len(w.buf)-p))
}

// Fields that share tables would make the walk of a schema (arrow-go's and
// CheckMessage's) exponential: here 40 levels of fields, each with two
// children that are the same table (2^40 fields to walk in a few hundred
// bytes). CheckMessage refuses it at once.
func TestAuditSharedFieldTables(t *testing.T) {
	var w fbWriter
	w.u32(0) // the root offset
	w.point(0)
	msg := w.table(1, 2) // header_type, header
	binary.LittleEndian.PutUint32(w.buf[msg[1]:], headerSchema)
	w.point(msg[2])
	schema := w.table(1) // fields
	w.point(schema[1])
	w.u32(1) // one field
	link := len(w.buf)
	w.u32(0)
	const depth = 40
	for range depth {
		w.point(link)
		field := w.table(5) // children
		w.point(field[5])
		w.u32(2)
		a := len(w.buf)
		w.u32(0)
		w.u32(0)
		// Both children: the next field table, written after this.
		binary.LittleEndian.PutUint32(w.buf[a:], 8)
		link = a + 4
	}
	w.point(link)
	w.table() // the leaf: a field with nothing set

	done := make(chan error, 1)
	go func() { done <- CheckMessage(w.buf) }()
	select {
	case err := <-done:
		wantErr(t, err, "schema", "fields share tables")
	case <-time.After(10 * time.Second):
		t.Fatal("CheckMessage walked shared field tables for 10s")
	}
}

// The bodies that a file's footer claims for its blocks are checked
// against the file whatever the limit: with no limit to speak of
// (math.MaxInt64), a body length near math.MaxInt64 must not overflow the
// check that the block lies inside the file.
func TestAuditFileBlockLengthOverflow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		id    int
		block string
	}{{"record batch", 3, "record batch 0"}, {"dictionary", 2, "dictionary 0"}} {
		t.Run(tc.name, func(t *testing.T) {
			file := dictStream(t, false)
			f, start := footer(t, file)
			p, n, err := f.Vector(tc.id, 24)
			if err != nil || n != 1 {
				t.Fatalf("blocks: %d, %v", n, err)
			}
			binary.LittleEndian.PutUint64(file[start+p+16:], math.MaxInt64-100)
			_, err = CheckFile(bytes.NewReader(file), int64(len(file)), math.MaxInt64)
			wantErr(t, err, tc.block, "run past the footer")
		})
	}
}

// Every truncation of a stream and of a file (of a dictionary column and
// a list column, compressed or not) reads the whole batches before it and
// then fails, or ends cleanly between messages: no panic, nothing left
// allocated, the peak within the bound.
func TestAuditEveryTruncation(t *testing.T) {
	const limit = 64 << 10
	for _, stream := range []bool{true, false} {
		for _, opts := range [][]ipc.Option{nil, {ipc.WithLZ4()}, {ipc.WithZstd()}} {
			data := dictStream(t, stream, opts...)
			ends := map[int]bool{}
			if stream {
				for _, m := range messages(t, data) {
					ends[m.body+m.bodyLen] = true
				}
			}
			for cut := range len(data) {
				n, peak, _, err := readGuarded(t, stream, data[:cut], limit)
				switch {
				case err == nil && !(stream && ends[cut]):
					t.Fatalf("stream=%v, %d options: cut at %d of %d: no error", stream, len(opts), cut, len(data))
				case n > 1:
					t.Fatalf("cut at %d: %d batches of 1", cut, n)
				case peak > 2*limit+len(data):
					t.Fatalf("cut at %d: %d bytes allocated at the peak; want at most %d", cut, peak, 2*limit+len(data))
				}
			}
		}
	}
}

// Every byte of a stream and of a file changed, to 0, 0xff and with its
// top bit flipped: no panic, nothing left allocated, the peak within the
// bound (what the reads allow for their messages and the limit).
func TestAuditEveryByteChanged(t *testing.T) {
	if testing.Short() {
		t.Skip("a few thousand reads")
	}
	const limit = 64 << 10
	for _, stream := range []bool{true, false} {
		data := dictStream(t, stream, ipc.WithLZ4())
		for i := range data {
			for _, v := range []byte{0, 0xff, data[i] ^ 0x80} {
				if v == data[i] {
					continue
				}
				bad := bytes.Clone(data)
				bad[i] = v
				_, peak, _, err := readGuarded(t, stream, bad, limit)
				if peak > 2*limit+len(data) {
					t.Fatalf("stream=%v, byte %d = %#x: %d bytes allocated at the peak; want at most %d (%v)", stream, i, v, peak, 2*limit+len(data), err)
				}
			}
		}
	}
}

// What a message claims for its metadata and body is read as the input
// gives it, not allocated at once: a message of a few bytes that claims
// the most metadata there may be, or a body of 200 MiB (under a limit of
// 256 MiB, minibatch's default) and stops there, fails with an unexpected
// EOF after allocating about what the input held, not what it claimed.
func TestAuditClaimedLengthsNotAllocated(t *testing.T) {
	col := int64s(10)
	defer col.Release()
	stream := write(t, true, []arrow.Array{col})
	ms := messages(t, stream)
	const limit, claim = 256 << 20, 200 << 20

	// The body: the record batch's metadata claims 200 MiB, and the
	// stream ends after it.
	bad := bytes.Clone(stream[:ms[1].body+16])
	msg, _ := Root(bad[ms[1].meta : ms[1].meta+ms[1].metaLen])
	p, _, _ := msg.Field(3, 8)
	binary.LittleEndian.PutUint64(bad[p+ms[1].meta:], claim)
	_, peak, most, err := readGuarded(t, true, bad, limit)
	wantErr(t, err, fmt.Sprintf("message 1 at byte %d", ms[1].at), fmt.Sprintf("reading %d bytes of body: unexpected EOF", claim))
	if peak > 4<<20 || most > 4<<20 {
		t.Errorf("a body claiming %d bytes, of which 16 are there: %d bytes allocated at the peak, %d at once; want a few MiB at most", claim, peak, most)
	}

	// The metadata: a message that claims MaxMetadataBytes.
	bad = binary.LittleEndian.AppendUint32(bytes.Clone(stream[:ms[1].at]), continuation)
	bad = binary.LittleEndian.AppendUint32(bad, MaxMetadataBytes)
	bad = append(bad, make([]byte, 64)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, _, err = readGuarded(t, true, bad, limit)
	runtime.ReadMemStats(&after)
	wantErr(t, err, fmt.Sprintf("message 1 at byte %d", ms[1].at), fmt.Sprintf("reading %d bytes of metadata: unexpected EOF", MaxMetadataBytes))
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("metadata claiming %d bytes, of which 64 are there: %d bytes allocated; want a few MiB at most", MaxMetadataBytes, got)
	}
}

// A body larger than what MessageReader allocates before the input gives
// it (several times readChunk, not a power of two) reads whole and right,
// from an input that says how much it holds (a bytes.Reader: read at once)
// and from one that does not (read as it comes).
func TestAuditLargeBodyReadsRight(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const n = 5*readChunk/8 + 12345 // int64s: a body of 5 MiB and some
	b := array.NewInt64Builder(memory.DefaultAllocator)
	for i := range n {
		b.Append(int64(i) * 7)
	}
	col := b.NewArray()
	b.Release()
	defer col.Release()
	for i, opts := range [][]ipc.Option{nil, {ipc.WithLZ4()}, nil, {ipc.WithLZ4()}} {
		stream := write(t, true, []arrow.Array{col}, opts...)
		guard := NewAllocator(mem, 64<<20)
		var in io.Reader = bytes.NewReader(stream)
		if i >= 2 {
			in = struct{ io.Reader }{in} // no Len
		}
		msgs := NewMessageReader(in, guard, 64<<20)
		var rd *ipc.Reader
		if err := guard.Read(func() (err error) {
			rd, err = ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(guard))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var ok bool
		if err := guard.Read(func() error { ok = rd.Next(); return rd.Err() }); err != nil || !ok {
			t.Fatalf("%d options: Next: %v, %v", len(opts), ok, err)
		}
		got := rd.RecordBatch().Column(0).(*array.Int64)
		if got.Len() != n {
			t.Fatalf("%d rows; want %d", got.Len(), n)
		}
		for i := range n {
			if v := got.Value(i); v != int64(i)*7 {
				t.Fatalf("%d options: row %d = %d; want %d", len(opts), i, v, int64(i)*7)
			}
		}
		rd.Release()
		guard.ReleaseReader(false)
	}
}

// clearField marks field id of tb absent (its vtable slot 0).
func clearField(t *testing.T, tb Table, id int) {
	t.Helper()
	slot := 4 + 2*id
	if slot+2 > tb.vtn {
		t.Fatalf("no slot for field %d", id)
	}
	binary.LittleEndian.PutUint16(tb.buf[tb.vt+slot:], 0)
}

// Metadata with parts missing, or of one kind where another is said: a
// message without its header, a header type that does not match its
// table (a record batch said to be a schema, a schema said to be a
// dictionary batch, an unknown type), a footer without its schema or its
// blocks. CheckMessage passes what it need not check, arrow-go reports
// it: an error, never a panic or a leak.
func TestAuditMissingAndMismatchedParts(t *testing.T) {
	stream := dictStream(t, true)
	ms := messages(t, stream)
	setType := func(v byte) func(Table) {
		return func(msg Table) {
			p, ok, err := msg.Field(1, 1)
			if err != nil || !ok {
				t.Fatal("no header type")
			}
			msg.buf[p] = v
		}
	}
	for _, tc := range []struct {
		name string
		msg  int
		edit func(msg Table)
	}{
		{"schema without header", 0, func(msg Table) { clearField(t, msg, 2) }},
		{"dictionary without header", 1, func(msg Table) { clearField(t, msg, 2) }},
		{"batch without header", 2, func(msg Table) { clearField(t, msg, 2) }},
		{"batch said to be a schema", 2, setType(headerSchema)},
		{"schema said to be a dictionary", 0, setType(headerDictionaryBatch)},
		{"schema said to be a batch", 0, setType(headerRecordBatch)},
		{"dictionary said to be a batch", 1, setType(headerRecordBatch)},
		{"batch said to be a tensor", 2, setType(4)},
		{"batch of type 200", 2, setType(200)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(stream)
			m := ms[tc.msg]
			msg, err := Root(bad[m.meta : m.meta+m.metaLen])
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(msg)
			if _, _, _, err := readGuarded(t, true, bad, 1<<20); err == nil {
				t.Error("no error")
			}
		})
	}
	file := dictStream(t, false)
	for _, tc := range []struct {
		name string
		id   int
	}{{"footer without schema", 1}, {"footer without dictionaries", 2}, {"footer without batches", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(file)
			f, _ := footer(t, bad)
			clearField(t, f, tc.id)
			n, _, _, err := readGuarded(t, false, bad, 1<<20)
			if tc.id == 3 && (err != nil || n != 0) {
				t.Errorf("a file without batches: %d batches, %v; want none, no error", n, err)
			}
			if tc.id != 3 && err == nil {
				t.Error("no error")
			}
		})
	}
}

// ReleaseReader frees what failed reads left, and what successful reads
// left only where no batch was handed out; Reallocate keeps a buffer in
// the set it was in (a failed read's, a successful read's) and bounds
// its growth during a read; a negative Reallocate panics with
// ErrNegativeSize.
func TestAuditReleaseReaderAndReallocate(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	a := NewAllocator(mem, 1000)
	want := func(n int, when string) {
		t.Helper()
		if got := mem.CurrentAlloc(); got != n {
			t.Fatalf("%s: %d bytes allocated; want %d", when, got, n)
		}
	}

	// Handed out: the batch's buffers stay its own.
	var batch []byte
	if err := a.Read(func() error { batch = a.Reallocate(256, a.Allocate(64)); return nil }); err != nil {
		t.Fatal(err)
	}
	a.ReleaseReader(true)
	want(256, "after ReleaseReader(true)")
	a.Free(batch)
	want(0, "after the batch's Free")

	// Not handed out: what the reader kept (a dictionary of its memo,
	// reallocated outside a read) and what a failed read left both go.
	var memo []byte
	if err := a.Read(func() error { memo = a.Allocate(128); return nil }); err != nil {
		t.Fatal(err)
	}
	memo = a.Reallocate(512, memo)
	err := a.Read(func() error {
		b := a.Allocate(100)
		a.Reallocate(2000, b) // past the bound: panics before it allocates
		return nil
	})
	var lim *LimitError
	if !errors.As(err, &lim) || lim.Size != 2000 || lim.Limit != 1000 {
		t.Fatalf("Read = %v; want a *LimitError of 2000 bytes over 1000", err)
	}
	want(512+100, "after the failed read")
	a.ReleaseReader(false)
	want(0, "after ReleaseReader(false)")

	if err := a.Read(func() error { a.Reallocate(-1, nil); return nil }); !errors.Is(err, ErrNegativeSize) {
		t.Errorf("Reallocate(-1) in a read = %v; want ErrNegativeSize", err)
	}
}

// Each block of a file's footer lies inside the file, before the footer,
// with metadata of 8 to MaxMetadataBytes bytes and a body of at most the
// limit: a block that does not is an error naming it, dictionary or
// record batch, without reading what it claims.
func TestAuditFileBlockBounds(t *testing.T) {
	file := dictStream(t, false)
	for _, tc := range []struct {
		name            string
		off, meta, body int64 // added to the block's own
		set             bool  // or set as they are
		want            string
	}{
		{"negative offset", -1, 0, 0, true, "out of range"},
		{"offset past the footer", 1 << 40, 8, 0, true, "out of range"},
		{"metadata under 8 bytes", 8, 4, 0, true, "out of range"},
		{"metadata over the bound", 8, MaxMetadataBytes + 8, 0, true, "out of range"},
		{"negative body", 8, 8, -1, true, "out of range"},
		{"body over the limit", 8, 8, 1<<20 + 1, true, "body of 1048577 bytes exceeds the limit of 1048576 bytes"},
		{"body past the footer", 0, 0, int64(len(file)), false, "run past the footer"},
		{"metadata past the footer", 0, int64(len(file)), 0, false, "run past the footer"},
	} {
		for _, blk := range []struct {
			id   int
			name string
		}{{2, "dictionary 0"}, {3, "record batch 0"}} {
			t.Run(tc.name+"/"+blk.name, func(t *testing.T) {
				bad := bytes.Clone(file)
				f, start := footer(t, bad)
				p, n, err := f.Vector(blk.id, 24)
				if err != nil || n != 1 {
					t.Fatalf("blocks: %d, %v", n, err)
				}
				at := bad[start+p:]
				off, meta, body := tc.off, tc.meta, tc.body
				if !tc.set {
					off += int64(binary.LittleEndian.Uint64(at))
					meta += int64(int32(binary.LittleEndian.Uint32(at[8:])))
					body += int64(binary.LittleEndian.Uint64(at[16:]))
				}
				binary.LittleEndian.PutUint64(at, uint64(off))
				binary.LittleEndian.PutUint32(at[8:], uint32(int32(meta)))
				binary.LittleEndian.PutUint64(at[16:], uint64(body))
				_, err = CheckFile(bytes.NewReader(bad), int64(len(bad)), 1<<20)
				wantErr(t, err, "footer at byte", blk.name, tc.want)
			})
		}
	}
}

// Last names the message that Message read whole (so that an error of its
// decoding can name it), and is false before the first message, at the
// end of the stream, and after an error of Message itself.
func TestAuditLast(t *testing.T) {
	col := int64s(10)
	defer col.Release()
	stream := write(t, true, []arrow.Array{col})
	ms := messages(t, stream)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	guard := NewAllocator(mem, 1<<20)
	for _, data := range [][]byte{stream, stream[:ms[1].body+1]} {
		m := NewMessageReader(bytes.NewReader(data), guard, 1<<20)
		if _, _, ok := m.Last(); ok {
			t.Error("Last before the first message: ok")
		}
		for i, msg := range ms {
			_, err := m.Message()
			idx, at, ok := m.Last()
			switch {
			case len(data) < len(stream) && i == 1:
				if err == nil || ok {
					t.Errorf("a cut message: %v, Last ok %v; want an error, not ok", err, ok)
				}
			case err != nil || !ok || idx != i || at != int64(msg.at):
				t.Errorf("message %d: %v, Last %d, %d, %v; want %d, %d, true", i, err, idx, at, ok, i, msg.at)
			}
		}
		if len(data) == len(stream) {
			if _, err := m.Message(); err != io.EOF {
				t.Errorf("at the end: %v; want io.EOF", err)
			}
			if _, _, ok := m.Last(); ok {
				t.Error("Last at the end of the stream: ok")
			}
		}
		m.Release()
	}
}

// eofReaderAt is an io.ReaderAt that, as io.ReaderAt allows, returns
// io.EOF with a read that fills its buffer up to the end of the input.
type eofReaderAt struct{ data []byte }

func (r eofReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	if off+int64(n) == int64(len(r.data)) {
		return n, io.EOF
	}
	return n, nil
}

// An io.ReaderAt may return io.EOF with a whole read that ends at the end
// of its input; CheckFile and CheckBlock read such a file as any other
// (as arrow-go's file reader does), and still refuse one cut short.
func TestAuditReaderAtEOFAtEnd(t *testing.T) {
	file := dictStream(t, false)
	r := eofReaderAt{file}
	f, err := CheckFile(r, int64(len(file)), 1<<20)
	if err != nil {
		t.Fatalf("CheckFile of a good file through a ReaderAt that says io.EOF at its end: %v", err)
	}
	for _, b := range append(f.Dictionaries, f.Records...) {
		if err := CheckBlock(r, b); err != nil {
			t.Errorf("CheckBlock(%+v): %v", b, err)
		}
	}
	// A block whose metadata ends at the input's end reads whole.
	if err := CheckBlock(eofReaderAt{file[:f.Records[0].Offset+f.Records[0].MetaLen]}, f.Records[0]); err != nil {
		t.Errorf("CheckBlock of metadata that ends the input: %v", err)
	}
	// One cut short is still an error.
	_, err = CheckFile(r, int64(len(file))+1, 1<<20)
	wantErr(t, err, "EOF")
	err = CheckBlock(eofReaderAt{file[:f.Records[0].Offset+f.Records[0].MetaLen-1]}, f.Records[0])
	wantErr(t, err, "reading", "bytes of metadata at byte", "EOF")
}

// withDictionaryBlocks returns file with its footer's vector of
// dictionary blocks replaced by k copies of its first one: the footer is
// rewritten with the new vector after it, its field pointed there.
func withDictionaryBlocks(t *testing.T, file []byte, k int) []byte {
	t.Helper()
	f, start := footer(t, file)
	p, n, err := f.Vector(2, 24)
	if err != nil || n < 1 {
		t.Fatalf("dictionary blocks: %d, %v", n, err)
	}
	block := bytes.Clone(f.buf[p : p+24])
	field, _, _ := f.Field(2, 4)
	foot := bytes.Clone(f.buf)
	for len(foot)%8 != 4 { // the count before the 8-aligned blocks
		foot = append(foot, 0)
	}
	binary.LittleEndian.PutUint32(foot[field:], uint32(len(foot)-field))
	foot = binary.LittleEndian.AppendUint32(foot, uint32(k))
	for range k {
		foot = append(foot, block...)
	}
	out := append(bytes.Clone(file[:start]), foot...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(foot)))
	return append(out, magic...)
}

// Blocks of dictionaries that overlap (here thousands of copies of one
// block) would let a small file allow itself, through Allocator.Allow of
// each dictionary block as the package doc says to, far more than it
// holds for what arrow-go's NewFileReader decompresses: here 4 MiB claimed
// by a dictionary buffer under a limit of 64 KiB, in a file of some
// 500 KiB (in a file of a few tens of MB, terabytes: the process dies).
// CheckFile refuses dictionary blocks that overlap, so that what they
// allow is at most the file.
func TestAuditOverlappingDictionaryBlocks(t *testing.T) {
	const limit = 64 << 10
	file := dictStream(t, false, ipc.WithLZ4())
	// The dictionary's first buffer that holds data claims 4 MiB.
	m := messages(t, file[8:])[1]
	m.meta, m.body = m.meta+8, m.body+8
	h := header(t, file, m)
	d, _, _ := h.Sub(1)
	start, nb, err := d.Vector(2, 16)
	if err != nil {
		t.Fatal(err)
	}
	for i := range nb {
		if binary.LittleEndian.Uint64(d.buf[start+16*i+8:]) >= 8 {
			at := m.body + int(binary.LittleEndian.Uint64(d.buf[start+16*i:]))
			binary.LittleEndian.PutUint64(file[at:], 4<<20)
			break
		}
	}
	if _, peak, _, err := readGuarded(t, false, file, limit); err == nil || peak > 2*limit+len(file) {
		t.Fatalf("one dictionary block claiming 4 MiB: %v, peak %d; want an error within the bound", err, peak)
	}
	bad := withDictionaryBlocks(t, file, 20000)
	_, peak, most, err := readGuarded(t, false, bad, limit)
	if peak > 2*limit+len(bad) || most > 2*limit {
		t.Errorf("20000 copies of the dictionary block: %d bytes at the peak, %d at once; want at most %d (%v)", peak, most, 2*limit+len(bad), err)
	}
	wantErr(t, err, "dictionary 1", "overlaps dictionary 0")

	// Distinct dictionary blocks are fine: two columns' dictionaries.
	var dicts []arrow.Array
	for _, words := range [][]string{{"a", "b", "a"}, {"c", "c", "d"}} {
		db := array.NewDictionaryBuilder(memory.DefaultAllocator, &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}).(*array.BinaryDictionaryBuilder)
		for _, w := range words {
			if err := db.AppendString(w); err != nil {
				t.Fatal(err)
			}
		}
		d := db.NewArray()
		db.Release()
		defer d.Release()
		dicts = append(dicts, d)
	}
	two := write(t, false, dicts)
	if f, err := CheckFile(bytes.NewReader(two), int64(len(two)), 1<<20); err != nil || len(f.Dictionaries) != 2 {
		t.Fatalf("a file of two dictionaries: %v; want them checked", err)
	}
	if n, _, _, err := readGuarded(t, false, two, 1<<20); err != nil || n != 1 {
		t.Fatalf("a file of two dictionaries: %d batches, %v", n, err)
	}
	good := dictStream(t, false)
	one := withDictionaryBlocks(t, good, 1)
	if _, err := CheckFile(bytes.NewReader(one), int64(len(one)), 1<<20); err != nil {
		t.Errorf("the footer rewritten with its one dictionary block: %v", err)
	}
}
