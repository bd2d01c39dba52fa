package ipcguard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// MaxMetadataBytes bounds the flatbuffer metadata of one message and the
// footer of a file, as arrow-go's readers do by default.
const MaxMetadataBytes = 64 << 20

// MaxFieldDepth bounds the nesting of a schema's fields. arrow-go parses a
// schema recursively without a bound (a deep enough one overflows the
// stack, which no recover catches) and loads arrays at most 64 deep.
const MaxFieldDepth = 64

// Message header types (Message.fbs).
const (
	headerSchema          = 1
	headerDictionaryBatch = 2
	headerRecordBatch     = 3
)

// Member of the Type union (Schema.fbs) whose table holds a vector.
const typeUnion = 14

// ErrNotFile is returned by CheckFile for input without the magic bytes
// that end an IPC file.
var ErrNotFile = errors.New("not an Arrow IPC file: no ARROW1 magic at its end (an IPC stream?)")

// CheckMessage checks the metadata of one IPC message (the Message
// flatbuffer, without its length prefix) before arrow-go decodes it: every
// vector whose length arrow-go uses to size an allocation or a loop lies
// inside meta, the fields of a schema nest at most MaxFieldDepth deep and
// are not shared, and each variadic buffer count of a batch is at most its
// number of buffers. It does not decode the message: what it does not
// check, arrow-go reports as an error or a panic (which Allocator.Read
// turns into an error).
func CheckMessage(meta []byte) error {
	msg, err := Root(meta)
	if err != nil {
		return err
	}
	// Message: version (0), header_type (1), header (2), bodyLength (3),
	// custom_metadata (4).
	if _, _, err := msg.Vector(4, 4); err != nil {
		return fmt.Errorf("custom metadata: %w", err)
	}
	kind, err := msg.Uint8(1)
	if err != nil {
		return err
	}
	header, ok, err := msg.Sub(2)
	if err != nil || !ok {
		return err // no header: arrow-go reports it
	}
	switch kind {
	case headerSchema:
		if err := checkSchema(header); err != nil {
			return fmt.Errorf("schema: %w", err)
		}
	case headerRecordBatch:
		if err := checkBatch(header); err != nil {
			return fmt.Errorf("record batch: %w", err)
		}
	case headerDictionaryBatch:
		// DictionaryBatch: id (0), data (1), isDelta (2).
		data, ok, err := header.Sub(1)
		if err == nil && ok {
			err = checkBatch(data)
		}
		if err != nil {
			return fmt.Errorf("dictionary batch: %w", err)
		}
	}
	return nil
}

// checkSchema checks a Schema table: endianness (0), fields (1),
// custom_metadata (2), features (3).
func checkSchema(schema Table) error {
	if _, _, err := schema.Vector(2, 4); err != nil {
		return fmt.Errorf("custom metadata: %w", err)
	}
	// Each field is reached through its own 4-byte slot of a vector unless
	// tables are shared, which would make the walk (arrow-go's and this
	// one) exponential.
	budget := len(schema.buf) / 4
	return checkFields(schema, 1, 0, &budget)
}

// checkFields checks the vector of Field tables in field id of t: name
// (0), nullable (1), type_type (2), type (3), dictionary (4), children
// (5), custom_metadata (6).
func checkFields(t Table, id, depth int, budget *int) error {
	start, n, err := t.Vector(id, 4)
	if err != nil {
		return fmt.Errorf("fields: %w", err)
	}
	if n > 0 && depth >= MaxFieldDepth {
		return fmt.Errorf("fields nested deeper than %d", MaxFieldDepth)
	}
	if *budget -= n; *budget < 0 {
		return errors.New("fields share tables")
	}
	for i := range n {
		f, err := t.Element(start, i)
		if err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
		if _, _, err := f.Vector(6, 4); err != nil {
			return fmt.Errorf("field %d: custom metadata: %w", i, err)
		}
		if kind, err := f.Uint8(2); err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		} else if kind == typeUnion {
			// Union: mode (0), typeIds (1).
			if typ, ok, err := f.Sub(3); err != nil {
				return fmt.Errorf("field %d: type: %w", i, err)
			} else if ok {
				if _, _, err := typ.Vector(1, 4); err != nil {
					return fmt.Errorf("field %d: union type ids: %w", i, err)
				}
			}
		}
		if err := checkFields(f, 5, depth+1, budget); err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
	}
	return nil
}

// checkBatch checks a RecordBatch table: length (0), nodes (1), buffers
// (2), compression (3), variadicBufferCounts (4).
func checkBatch(batch Table) error {
	if _, _, err := batch.Vector(1, 16); err != nil {
		return fmt.Errorf("field nodes: %w", err)
	}
	_, nbufs, err := batch.Vector(2, 16)
	if err != nil {
		return fmt.Errorf("buffers: %w", err)
	}
	start, n, err := batch.Vector(4, 8)
	if err != nil {
		return fmt.Errorf("variadic buffer counts: %w", err)
	}
	for i := range n {
		// arrow-go sizes a slice by each count.
		c := int64(binary.LittleEndian.Uint64(batch.buf[start+8*i:]))
		if c < 0 || c > int64(nbufs) {
			return fmt.Errorf("variadic buffer count %d is outside [0, %d] (the number of buffers)", c, nbufs)
		}
	}
	return nil
}

// Block is where one message of an IPC file lies: its offset, the length
// of its framed metadata and the length of its body.
type Block struct {
	Offset  int64
	MetaLen int64
	BodyLen int64
}

// File is the footer of an IPC file, checked by CheckFile.
type File struct {
	// End is the offset of the footer, where the messages end.
	End          int64
	Dictionaries []Block
	Records      []Block
}

var magic = []byte("ARROW1")

// CheckFile reads and checks the footer of the IPC file r of size bytes
// and the metadata of its dictionary batches (which arrow-go's
// ipc.NewFileReader reads and decodes at once): the footer's schema as
// CheckMessage checks one, its vectors of blocks inside the footer, each
// block inside the file with metadata of at most MaxMetadataBytes and a
// body of at most maxBody bytes, and no two dictionary blocks overlapping. It returns the blocks, so that each record
// batch's metadata can be checked (CheckBlock) before arrow-go reads it.
func CheckFile(r io.ReaderAt, size, maxBody int64) (*File, error) {
	const trailer = 4 + 6 // footer length, magic
	if size < 8+trailer {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrNotFile, size)
	}
	tail := make([]byte, trailer)
	if err := readAt(r, tail, size-trailer); err != nil {
		return nil, fmt.Errorf("reading the footer length at byte %d: %w", size-trailer, err)
	}
	if !bytes.Equal(tail[4:], magic) {
		return nil, ErrNotFile
	}
	n := int64(int32(binary.LittleEndian.Uint32(tail)))
	end := size - trailer - n
	if n <= 0 || n > MaxMetadataBytes || end < 8 {
		return nil, fmt.Errorf("footer length %d at byte %d is out of range for a %d-byte file", n, size-trailer, size)
	}
	buf := make([]byte, n)
	if err := readAt(r, buf, end); err != nil {
		return nil, fmt.Errorf("reading the footer at byte %d: %w", end, err)
	}
	f := &File{End: end}
	err := func() error {
		// Footer: version (0), schema (1), dictionaries (2),
		// recordBatches (3), custom_metadata (4).
		footer, err := Root(buf)
		if err != nil {
			return err
		}
		if schema, ok, err := footer.Sub(1); err != nil {
			return fmt.Errorf("schema: %w", err)
		} else if ok {
			if err := checkSchema(schema); err != nil {
				return fmt.Errorf("schema: %w", err)
			}
		}
		if f.Dictionaries, err = blocks(footer, 2, "dictionary", end, maxBody); err != nil {
			return err
		}
		f.Records, err = blocks(footer, 3, "record batch", end, maxBody)
		return err
	}()
	if err == nil {
		err = disjoint(f.Dictionaries)
	}
	if err != nil {
		return nil, fmt.Errorf("footer at byte %d: %w", end, err)
	}
	for i, b := range f.Dictionaries {
		if err := CheckBlock(r, b); err != nil {
			return nil, fmt.Errorf("dictionary %d: %w", i, err)
		}
	}
	return f, nil
}

// blocks reads the vector of Block structs (offset: long, metaDataLength:
// int, padding, bodyLength: long) in field id of the footer.
func blocks(footer Table, id int, what string, end, maxBody int64) ([]Block, error) {
	start, n, err := footer.Vector(id, 24)
	if err != nil {
		return nil, fmt.Errorf("%s blocks: %w", what, err)
	}
	out := make([]Block, n)
	for i := range out {
		p := footer.buf[start+24*i:]
		b := Block{
			Offset:  int64(binary.LittleEndian.Uint64(p)),
			MetaLen: int64(int32(binary.LittleEndian.Uint32(p[8:]))),
			BodyLen: int64(binary.LittleEndian.Uint64(p[16:])),
		}
		switch {
		case b.Offset < 0 || b.Offset > end || b.MetaLen < 8 || b.MetaLen > MaxMetadataBytes || b.BodyLen < 0:
			return nil, fmt.Errorf("%s %d: block (offset %d, metadata %d bytes, body %d bytes) is out of range", what, i, b.Offset, b.MetaLen, b.BodyLen)
		case b.BodyLen > maxBody:
			return nil, &LimitError{What: fmt.Sprintf("%s %d at byte %d: body", what, i, b.Offset), Size: b.BodyLen, Limit: maxBody}
		case b.BodyLen > end-b.Offset-b.MetaLen: // not MetaLen+BodyLen: BodyLen may be near math.MaxInt64
			return nil, fmt.Errorf("%s %d at byte %d: %d bytes of metadata and %d of body run past the footer at byte %d", what, i, b.Offset, b.MetaLen, b.BodyLen, end)
		}
		out[i] = b
	}
	return out, nil
}

// disjoint checks that no two dictionary blocks overlap: each is a message
// of its own, so that what Allocator.Allow grants for them together (they
// are all read by one call, ipc.NewFileReader) is at most the file, where
// copies of one block could make a small file allow itself terabytes.
func disjoint(dicts []Block) error {
	order := make([]int, len(dicts))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return dicts[order[a]].Offset < dicts[order[b]].Offset })
	for k := 1; k < len(order); k++ {
		p, b := dicts[order[k-1]], dicts[order[k]]
		if b.Offset-p.Offset < p.MetaLen+p.BodyLen { // all inside the file: no overflow
			return fmt.Errorf("dictionary %d at byte %d overlaps dictionary %d at byte %d (%d bytes)", order[k], b.Offset, order[k-1], p.Offset, p.MetaLen+p.BodyLen)
		}
	}
	return nil
}

// CheckBlock reads the framed metadata of block b of r (a block that
// CheckFile returned) and checks it with CheckMessage.
func CheckBlock(r io.ReaderAt, b Block) error {
	buf := make([]byte, b.MetaLen)
	if err := readAt(r, buf, b.Offset); err != nil {
		return fmt.Errorf("reading %d bytes of metadata at byte %d: %w", b.MetaLen, b.Offset, err)
	}
	prefix := 8 // continuation marker, length
	if binary.LittleEndian.Uint32(buf) != continuation {
		prefix = 4 // before Arrow 0.15: the length alone
	}
	if err := CheckMessage(buf[prefix:]); err != nil {
		return fmt.Errorf("metadata at byte %d: %w", b.Offset, err)
	}
	return nil
}

// readAt fills p from r at off. A read that fills p is whole even where
// r says io.EOF with it, as io.ReaderAt allows at the end of its input.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	switch {
	case n == len(p):
		return nil
	case err == nil:
		return io.ErrUnexpectedEOF // a ReaderAt that breaks its contract
	}
	return err
}

// continuation marks the start of a framed message (then its length).
const continuation = 0xFFFFFFFF

// LimitError reports input over a bound: a message body, or the buffers
// that reading one batch allocates.
type LimitError struct {
	What  string // what is over the limit: "…body", "decompression"
	Size  int64  // its size, or the bytes asked for so far
	Limit int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s of %d bytes exceeds the limit of %d bytes", e.What, e.Size, e.Limit)
}
