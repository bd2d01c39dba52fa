package ipcguard

import (
	"encoding/binary"
	"fmt"
)

// Table is a bounds-checked view of a flatbuffer table, for reading the
// headers of Arrow IPC messages (Message.fbs, Schema.fbs, File.fbs) without
// arrow-go's generated code, which panics on malformed input: every access
// is checked against the buffer, so malformed input is an error, never a
// panic. An absent field reads as its zero value.
type Table struct {
	buf []byte
	pos int // the table's position
	vt  int // its vtable's position
	vtn int // the vtable's size in bytes
}

// Root returns the root table of the flatbuffer buf.
func Root(buf []byte) (Table, error) {
	if len(buf) < 4 {
		return Table{}, fmt.Errorf("flatbuffer of %d bytes is too short", len(buf))
	}
	return tableAt(buf, int64(binary.LittleEndian.Uint32(buf)))
}

func tableAt(buf []byte, pos int64) (Table, error) {
	if pos < 0 || pos > int64(len(buf))-4 {
		return Table{}, fmt.Errorf("flatbuffer table at %d is outside %d bytes", pos, len(buf))
	}
	vt := pos - int64(int32(binary.LittleEndian.Uint32(buf[pos:])))
	if vt < 0 || vt > int64(len(buf))-4 {
		return Table{}, fmt.Errorf("flatbuffer vtable at %d is outside %d bytes", vt, len(buf))
	}
	vtn := int64(binary.LittleEndian.Uint16(buf[vt:]))
	if vtn < 4 || vtn%2 != 0 || vt+vtn > int64(len(buf)) {
		return Table{}, fmt.Errorf("flatbuffer vtable at %d has invalid size %d", vt, vtn)
	}
	return Table{buf: buf, pos: int(pos), vt: int(vt), vtn: int(vtn)}, nil
}

// Field returns the position in the buffer of field id, which holds size
// bytes, or ok false when it is absent.
func (t Table) Field(id, size int) (pos int, ok bool, err error) {
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

// Uint8 reads the one-byte field id (an enum, a union's type).
func (t Table) Uint8(id int) (byte, error) {
	p, ok, err := t.Field(id, 1)
	if !ok {
		return 0, err
	}
	return t.buf[p], nil
}

// Int16 reads the two-byte field id.
func (t Table) Int16(id int) (int16, error) {
	p, ok, err := t.Field(id, 2)
	if !ok {
		return 0, err
	}
	return int16(binary.LittleEndian.Uint16(t.buf[p:])), nil
}

// Int64 reads the eight-byte field id.
func (t Table) Int64(id int) (int64, error) {
	p, ok, err := t.Field(id, 8)
	if !ok {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(t.buf[p:])), nil
}

// Sub returns the table that field id refers to; ok is false when the
// field is absent.
func (t Table) Sub(id int) (Table, bool, error) {
	p, ok, err := t.Field(id, 4)
	if !ok {
		return Table{}, false, err
	}
	s, err := tableAt(t.buf, int64(p)+int64(binary.LittleEndian.Uint32(t.buf[p:])))
	return s, err == nil, err
}

// Vector returns the position of the first element and the length of the
// vector of elemSize-byte elements in field id (0 elements when absent),
// checked to lie inside the buffer.
func (t Table) Vector(id, elemSize int) (start, n int, err error) {
	p, ok, err := t.Field(id, 4)
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

// Element returns the table that element i of the vector of tables at
// start (from Vector) refers to.
func (t Table) Element(start, i int) (Table, error) {
	p := start + 4*i
	return tableAt(t.buf, int64(p)+int64(binary.LittleEndian.Uint32(t.buf[p:])))
}
