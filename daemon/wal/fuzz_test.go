package wal

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// FuzzSegment reads a segment's records (the bytes after its magic) as
// recovery and Run do, and decodes the IPC body of every record that
// verifies as Run does: never a panic, a runaway allocation or a leak;
// a record that verifies encodes back to its bytes.
func FuzzSegment(f *testing.F) {
	sc := testSchema(3).Fields
	f.Add(sealed(1, "", body(f, sc, 1, 3)))
	f.Add(append(sealed(1, "key", body(f, sc, 1, 2, 0, 1)), sealed(2, "", body(f, sc, 2, 1))...))
	f.Add(sealed(7, "", []byte("not an arrow stream")))
	torn := sealed(1, "", body(f, sc, 1, 3))
	f.Add(torn[:len(torn)-9])
	flipped := sealed(1, "", body(f, sc, 1, 3))
	flipped[40] ^= 1
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		o, err := Options{Dir: "unused", Schema: testSchema(3), Alloc: mem, MaxBody: 1 << 16}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		start := int64(len(segMagic))
		rr := newRecordReader(bytes.NewReader(data), start, start+int64(len(data)))
		for {
			rec, err := rr.next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, errCorrupt) {
					t.Fatalf("reading from memory: %v; want only errors wrapping errCorrupt", err)
				}
				return
			}
			at := rec.off - start
			if again := sealed(rec.seq, string(rec.key), rec.body); !bytes.Equal(again, data[at:at+rec.size]) {
				t.Fatalf("record at %d does not encode back to its bytes", rec.off)
			}
			_ = newDecoder(&o).decode(t.Context(), rec.body, func(_ int, b flow.Batch) error {
				b.Release()
				return nil
			})
		}
	})
}

// sealed is a record of seq, key and body as the writer makes it.
func sealed(seq int64, key string, body []byte) []byte {
	b := append(newRecordBuf(key, len(body)), body...)
	sealRecord(b, seq)
	return b
}

// FuzzRecordBody decodes any body, with any key, through a record, as
// Run does: the body decoder behind a record that verifies.
func FuzzRecordBody(f *testing.F) {
	sc := testSchema(3).Fields
	f.Add("", body(f, sc, 1, 3))
	f.Add("k", body(f, sc, 1, 2, 0, 1))
	f.Add("", body(f, testSchema(2).Fields, 1, 2))
	f.Add("", []byte("not an arrow stream"))
	f.Fuzz(func(t *testing.T, key string, data []byte) {
		if len(key) > MaxKeyBytes {
			return
		}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		o, err := Options{Dir: "unused", Schema: testSchema(3), Alloc: mem, MaxBody: 1 << 16}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		seg := sealed(3, key, data)
		rec, err := newRecordReader(bytes.NewReader(seg), 8, 8+int64(len(seg))).next()
		if err != nil || rec.seq != 3 || string(rec.key) != key || !bytes.Equal(rec.body, data) {
			t.Fatalf("record read back as %d %q (%d bytes), %v; want 3 %q (%d bytes)", rec.seq, rec.key, len(rec.body), err, key, len(data))
		}
		rows := int64(0)
		err = newDecoder(&o).decode(t.Context(), rec.body, func(_ int, b flow.Batch) error {
			rows += b.Rows()
			if b.X.NumCols() != 3 || b.Y.NumCols() != 1 || b.Y.NumRows() != b.X.NumRows() {
				t.Errorf("batch of %d X and %d Y columns; want 3 and 1", b.X.NumCols(), b.Y.NumCols())
			}
			b.Release()
			return nil
		})
		_ = err
	})
}
