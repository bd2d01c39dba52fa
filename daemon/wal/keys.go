package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// keyIndex remembers the idempotency keys of the most recent posts: key →
// the sequence number of its record, in the order of the records, at most
// max of them (the oldest is forgotten first).
type keyIndex struct {
	max   int
	seqs  map[string]int64
	order []keyEntry // ascending seq; order[head:] are live
	head  int
}

type keyEntry struct {
	seq int64
	key string
}

func newKeyIndex(max int) *keyIndex {
	return &keyIndex{max: max, seqs: map[string]int64{}}
}

func (k *keyIndex) len() int { return len(k.order) - k.head }

// add remembers key for record seq; seqs come in ascending order.
func (k *keyIndex) add(key string, seq int64) {
	if _, ok := k.seqs[key]; ok {
		return // a record of a key seen before (cannot happen through the handler)
	}
	k.seqs[key] = seq
	k.order = append(k.order, keyEntry{seq, key})
	for k.len() > k.max {
		delete(k.seqs, k.order[k.head].key)
		k.order[k.head] = keyEntry{}
		k.head++
	}
	if k.head > 1024 && k.head > len(k.order)/2 {
		k.order = append(k.order[:0], k.order[k.head:]...)
		k.head = 0
	}
}

func (k *keyIndex) lastSeq() int64 {
	if k.len() == 0 {
		return -1
	}
	return k.order[len(k.order)-1].seq
}

// The keys file ("keys" in the log's directory) holds the index when
// Durable deletes segments, so that the keys of deleted records survive:
//
//	magic "PSWALKEY" | count (uint32) | count × (seq uint64 | key length uint16 | key) | crc32c of all before (uint32)
//
// It is written to "keys.tmp", fsynced, renamed over "keys" and the
// directory fsynced: it is the old file or the new one, whole.
const (
	keysMagic = "PSWALKEY"
	keysName  = "keys"
	keysTemp  = "keys.tmp"
)

func (k *keyIndex) marshal() []byte {
	var b bytes.Buffer
	b.WriteString(keysMagic)
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(k.len())))
	var e [10]byte
	for _, ke := range k.order[k.head:] {
		binary.LittleEndian.PutUint64(e[0:], uint64(ke.seq))
		binary.LittleEndian.PutUint16(e[8:], uint16(len(ke.key)))
		b.Write(e[:])
		b.WriteString(ke.key)
	}
	sum := crc32.Checksum(b.Bytes(), castagnoli)
	b.Write(binary.LittleEndian.AppendUint32(nil, sum))
	return b.Bytes()
}

// unmarshalKeys adds the keys of a keys file to k. Errors say what is
// wrong and where.
func (k *keyIndex) unmarshal(data []byte) error {
	if len(data) < len(keysMagic)+8 || string(data[:len(keysMagic)]) != keysMagic {
		return errors.New("not a keys file (bad magic or too short)")
	}
	body, tail := data[:len(data)-4], data[len(data)-4:]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(tail); got != want {
		return fmt.Errorf("crc32c %08x, want %08x", got, want)
	}
	n := int(binary.LittleEndian.Uint32(body[len(keysMagic):]))
	p := body[len(keysMagic)+4:]
	prev := int64(-1)
	for i := range n {
		if len(p) < 10 {
			return fmt.Errorf("key %d of %d: cut short", i, n)
		}
		seq := int64(binary.LittleEndian.Uint64(p))
		kl := int(binary.LittleEndian.Uint16(p[8:]))
		if kl == 0 || kl > MaxKeyBytes || len(p) < 10+kl || seq <= prev {
			return fmt.Errorf("key %d of %d: bad entry (length %d, seq %d after %d)", i, n, kl, seq, prev)
		}
		k.add(string(p[10:10+kl]), seq)
		prev = seq
		p = p[10+kl:]
	}
	if len(p) != 0 {
		return fmt.Errorf("%d bytes after the last key", len(p))
	}
	return nil
}

// writeKeys writes the keys file atomically (see above).
func writeKeys(dir string, data []byte) error {
	tmp := filepath.Join(dir, keysTemp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, keysName))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing the keys file: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
