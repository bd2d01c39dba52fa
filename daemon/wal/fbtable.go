package wal

import "encoding/binary"

// fbTable is a bounds-checked view of a flatbuffer table, for the fast
// path's reading of IPC message headers (fast.go): every access is
// checked against buf, and anything out of bounds is ok false, never a
// panic.
type fbTable struct {
	buf []byte
	pos int // the table's position
	vt  int // its vtable's position
	vtn int // the vtable's size in bytes
}

func fbRoot(buf []byte) (fbTable, bool) {
	if len(buf) < 4 {
		return fbTable{}, false
	}
	return fbAt(buf, int64(binary.LittleEndian.Uint32(buf)))
}

func fbAt(buf []byte, pos int64) (fbTable, bool) {
	if pos < 0 || pos > int64(len(buf))-4 {
		return fbTable{}, false
	}
	vt := pos - int64(int32(binary.LittleEndian.Uint32(buf[pos:])))
	if vt < 0 || vt > int64(len(buf))-4 {
		return fbTable{}, false
	}
	vtn := int64(binary.LittleEndian.Uint16(buf[vt:]))
	if vtn < 4 || vtn%2 != 0 || vt+vtn > int64(len(buf)) {
		return fbTable{}, false
	}
	return fbTable{buf: buf, pos: int(pos), vt: int(vt), vtn: int(vtn)}, true
}

// field returns the position of field id holding size bytes: present
// false when it is absent, ok false when it lies outside the buffer.
func (t fbTable) field(id, size int) (pos int, present, ok bool) {
	slot := 4 + 2*id
	if slot+2 > t.vtn {
		return 0, false, true
	}
	off := int(binary.LittleEndian.Uint16(t.buf[t.vt+slot:]))
	if off == 0 {
		return 0, false, true
	}
	pos = t.pos + off
	if pos+size > len(t.buf) {
		return 0, false, false
	}
	return pos, true, true
}

func (t fbTable) uint8(id int, def uint8) (uint8, bool) {
	p, present, ok := t.field(id, 1)
	if !present {
		return def, ok
	}
	return t.buf[p], true
}

func (t fbTable) int16(id int, def int16) (int16, bool) {
	p, present, ok := t.field(id, 2)
	if !present {
		return def, ok
	}
	return int16(binary.LittleEndian.Uint16(t.buf[p:])), true
}

func (t fbTable) int64(id int, def int64) (int64, bool) {
	p, present, ok := t.field(id, 8)
	if !present {
		return def, ok
	}
	return int64(binary.LittleEndian.Uint64(t.buf[p:])), true
}

// sub returns the table that field id refers to, if present.
func (t fbTable) sub(id int) (s fbTable, present, ok bool) {
	p, present, ok := t.field(id, 4)
	if !present {
		return fbTable{}, false, ok
	}
	s, ok = fbAt(t.buf, int64(p)+int64(binary.LittleEndian.Uint32(t.buf[p:])))
	return s, ok, ok
}

// vector returns the position of the first element and the length of the
// vector of elemSize-byte elements in field id (0 elements when absent),
// checked to lie inside the buffer.
func (t fbTable) vector(id, elemSize int) (start, n int, ok bool) {
	p, present, ok := t.field(id, 4)
	if !present {
		return 0, 0, ok
	}
	at := int64(p) + int64(binary.LittleEndian.Uint32(t.buf[p:]))
	if at > int64(len(t.buf))-4 {
		return 0, 0, false
	}
	count := int64(binary.LittleEndian.Uint32(t.buf[at:]))
	if count > (int64(len(t.buf))-at-4)/int64(elemSize) {
		return 0, 0, false
	}
	return int(at + 4), int(count), true
}
