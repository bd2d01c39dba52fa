package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/internal/ipcguard"
)

// wideSchema has a column of every layout the fast path reads: nullable
// primitives of several widths, a boolean, a fixed-size list; "y" is the
// label.
func wideSchema() source.Schema {
	fields := []arrow.Field{
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
		{Name: "vec", Type: arrow.FixedSizeListOf(3, arrow.PrimitiveTypes.Float32), Nullable: true},
		{Name: "f64", Type: arrow.PrimitiveTypes.Float64},
		{Name: "y", Type: arrow.PrimitiveTypes.Int64},
	}
	return source.Schema{Fields: arrow.NewSchema(fields, nil), Inputs: []string{"f32", "b", "i16", "vec", "f64"}, Labels: []string{"y"}}
}

// wideBody encodes batches of rows each in sc (wideSchema's fields, in
// any order), with nulls every nullEvery rows (0: none), written with
// opts.
func wideBody(t testing.TB, sc *arrow.Schema, nullEvery int, opts []ipc.Option, rows ...int) []byte {
	t.Helper()
	return ipcBody(t, sc, opts, rows, func(bld array.Builder, f arrow.Field, b, r, c int) {
		null := nullEvery > 0 && (r+b)%nullEvery == 0
		v := float64(b*1000 + r*10 + c)
		switch bld := bld.(type) {
		case *array.Float32Builder:
			if null {
				bld.AppendNull()
			} else {
				bld.Append(float32(v))
			}
		case *array.BooleanBuilder:
			if null {
				bld.AppendNull()
			} else {
				bld.Append(r%3 == 0)
			}
		case *array.Int16Builder:
			if null && f.Nullable {
				bld.AppendNull()
			} else {
				bld.Append(int16(v))
			}
		case *array.FixedSizeListBuilder:
			vb := bld.ValueBuilder().(*array.Float32Builder)
			if null && r%2 == 0 {
				bld.AppendNull() // appends 3 null values
			} else {
				bld.Append(true)
				vb.AppendValues([]float32{float32(v), float32(v + 1), float32(v + 2)}, []bool{true, !null, true})
			}
		case *array.Float64Builder:
			bld.Append(v)
		case *array.Int64Builder:
			bld.Append(label(1, b, r))
		default:
			t.Fatalf("wideBody: no builder for %s", f.Type)
		}
	})
}

// testDecoder is a decoder of sc with allocator mem.
func testDecoder(t testing.TB, sc source.Schema, mem memory.Allocator) *decoder {
	t.Helper()
	o, err := Options{Dir: "unused", Schema: sc, Alloc: mem, MaxBody: 1 << 16}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newDecoder(&o)
}

// decodeWith collects what one decode function makes of body.
func decodeWith(ctx context.Context, f func(context.Context, []byte, func(int, flow.Batch) error) error, body []byte) ([]flow.Batch, error) {
	var bs []flow.Batch
	err := f(ctx, body, func(i int, b flow.Batch) error {
		if b.Seq != int64(i) {
			return fmt.Errorf("batch %d has Seq %d", i, b.Seq)
		}
		bs = append(bs, b)
		return nil
	})
	return bs, err
}

func (d *decoder) fastOnly(ctx context.Context, body []byte, each func(int, flow.Batch) error) error {
	ok, err := d.decodeFast(ctx, body, each)
	if !ok {
		return errNotFast
	}
	return err
}

var errNotFast = errors.New("not for the fast path")

// sameData says how g differs from w, bit for bit (NaNs included), or
// "": type, length, offset, null count, validity of every slot, the
// bytes of every valid value, and children.
func sameData(g, w arrow.ArrayData) string {
	if !arrow.TypeEqual(g.DataType(), w.DataType()) || g.Len() != w.Len() || g.Offset() != w.Offset() || g.NullN() != w.NullN() ||
		len(g.Buffers()) != len(w.Buffers()) || len(g.Children()) != len(w.Children()) {
		return fmt.Sprintf("%s of %d (offset %d, %d nulls, %d buffers, %d children); want %s of %d (%d, %d, %d, %d)",
			g.DataType(), g.Len(), g.Offset(), g.NullN(), len(g.Buffers()), len(g.Children()),
			w.DataType(), w.Len(), w.Offset(), w.NullN(), len(w.Buffers()), len(w.Children()))
	}
	ga, wa := array.MakeFromData(g), array.MakeFromData(w)
	defer ga.Release()
	defer wa.Release()
	fw, fixed := g.DataType().(arrow.FixedWidthDataType)
	for i := range g.Len() {
		if ga.IsValid(i) != wa.IsValid(i) {
			return fmt.Sprintf("row %d: valid %v; want %v", i, ga.IsValid(i), wa.IsValid(i))
		}
		if !fixed || !ga.IsValid(i) {
			continue
		}
		gv, wv := g.Buffers()[1].Bytes(), w.Buffers()[1].Bytes()
		if bits := fw.BitWidth(); bits == 1 {
			if bitutil.BitIsSet(gv, g.Offset()+i) != bitutil.BitIsSet(wv, w.Offset()+i) {
				return fmt.Sprintf("row %d: another boolean", i)
			}
		} else if n := bits / 8; !bytes.Equal(gv[(g.Offset()+i)*n:][:n], wv[(w.Offset()+i)*n:][:n]) {
			return fmt.Sprintf("row %d: value %x; want %x", i, gv[(g.Offset()+i)*n:][:n], wv[(w.Offset()+i)*n:][:n])
		}
	}
	for c := range g.Children() {
		if diff := sameData(g.Children()[c], w.Children()[c]); diff != "" {
			return fmt.Sprintf("child %d: %s", c, diff)
		}
	}
	return ""
}

// sameBatches says how got (the fast path's) differs from want (the full
// reader's), or "" when they hold the same schemas, rows, values and
// nulls.
func sameBatches(got, want []flow.Batch) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d batches; want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Seq != w.Seq {
			return fmt.Sprintf("batch %d: Seq %d; want %d", i, g.Seq, w.Seq)
		}
		for _, p := range []struct {
			what string
			g, w arrow.RecordBatch
		}{{"X", g.X, w.X}, {"Y", g.Y, w.Y}} {
			if (p.g == nil) != (p.w == nil) {
				return fmt.Sprintf("batch %d: %s is %v; want %v", i, p.what, p.g, p.w)
			}
			if p.g == nil {
				continue
			}
			if !p.g.Schema().Equal(p.w.Schema()) || p.g.NumRows() != p.w.NumRows() {
				return fmt.Sprintf("batch %d: %s is %s with %d rows; want %s with %d", i, p.what, p.g.Schema(), p.g.NumRows(), p.w.Schema(), p.w.NumRows())
			}
			for c := range p.g.Columns() {
				if diff := sameData(p.g.Column(c).Data(), p.w.Column(c).Data()); diff != "" {
					return fmt.Sprintf("batch %d: %s column %d: %s", i, p.what, c, diff)
				}
			}
		}
	}
	return ""
}

func TestFastPathMatchesFull(t *testing.T) {
	ctx := ctxT(t)
	wide := wideSchema()
	// The same columns in another order: another schema message.
	shuffled := arrow.NewSchema([]arrow.Field{wide.Fields.Field(5), wide.Fields.Field(3), wide.Fields.Field(0),
		wide.Fields.Field(4), wide.Fields.Field(2), wide.Fields.Field(1)}, nil)
	for _, c := range []struct {
		name string
		sc   source.Schema
		body []byte
	}{
		{"float32 columns", testSchema(3), body(t, testSchema(3).Fields, 1, 4, 0, 7)},
		{"benchmark post", testSchema(32), body(t, testSchema(32).Fields, 1, 64)},
		{"nulls, booleans, lists", wide, wideBody(t, wide.Fields, 3, nil, 9, 1, 0, 17)},
		{"no nulls", wide, wideBody(t, wide.Fields, 0, nil, 5)},
		{"all null", wide, wideBody(t, wide.Fields, 1, nil, 4)},
		{"columns in another order", wide, wideBody(t, shuffled, 2, nil, 6, 3)},
		{"no end marker", wide, noEOS(wideBody(t, wide.Fields, 2, nil, 6, 3))},
	} {
		t.Run(c.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			d := testDecoder(t, c.sc, mem)
			if err := d.fastOnly(ctx, c.body, nil); !errors.Is(err, errNotFast) {
				t.Fatalf("fast path before the schema was seen: %v; want it to leave the body to the full reader", err)
			}
			want, err := decodeWith(ctx, d.decodeFull, c.body)
			defer releaseAll(want)
			if err != nil {
				t.Fatalf("full reader: %v", err)
			}
			got, err := decodeWith(ctx, d.fastOnly, c.body)
			defer releaseAll(got)
			if err != nil {
				t.Fatalf("fast path after the full reader read the same body: %v; want it taken", err)
			}
			if diff := sameBatches(got, want); diff != "" {
				t.Error(diff)
			}
			// decode itself takes the fast path now: the body's bytes
			// are copied, so the batches outlive it.
			again := bytes.Clone(c.body)
			viaDecode, err := decodeWith(ctx, d.decode, again)
			defer releaseAll(viaDecode)
			clear(again)
			if err != nil {
				t.Fatal(err)
			}
			if diff := sameBatches(viaDecode, want); diff != "" {
				t.Errorf("after the body was overwritten: %s", diff)
			}
		})
	}
}

// TestFastPathDeclines: bodies with a remembered schema that the fast
// path leaves to the full reader, which reads them (compressed) or gives
// the error (the rest).
func TestFastPathDeclines(t *testing.T) {
	ctx := ctxT(t)
	sc := wideSchema()
	good := wideBody(t, sc.Fields, 3, nil, 5, 2)
	schemaEnd := 8 + int(binary.LittleEndian.Uint32(good[4:]))
	firstBatch := func() (meta, end int) { // the first batch's metadata and end offsets
		n := int(binary.LittleEndian.Uint32(good[schemaEnd+4:]))
		msg, _ := ipcguard.Root(good[schemaEnd+8 : schemaEnd+8+n])
		bl, _ := msg.Int64(3)
		return schemaEnd + 8, schemaEnd + 8 + n + int(bl)
	}
	_, end1 := firstBatch()
	for _, c := range []struct {
		name    string
		body    []byte
		fullErr bool // the full reader refuses it
	}{
		{"lz4 compressed", wideBody(t, sc.Fields, 3, []ipc.Option{ipc.WithLZ4()}, 5), false},
		{"zstd compressed", wideBody(t, sc.Fields, 0, []ipc.Option{ipc.WithZstd()}, 5), false},
		{"no batch", good[:schemaEnd], true},
		{"cut in a batch", good[:len(good)-30], true},
		{"cut in the end marker", good[:len(good)-4], true},
		{"trailing bytes after the end marker", append(bytes.Clone(good), 1, 2, 3), false},
		{"first batch only, then garbage", append(bytes.Clone(good[:end1]), []byte("garbage!")...), true},
		{"a null count that the bitmap does not hold", flipNullCount(t, good, schemaEnd), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			d := testDecoder(t, sc, mem)
			if bs, err := decodeWith(ctx, d.decode, good); err != nil {
				t.Fatal(err)
			} else {
				releaseAll(bs)
			}
			if _, ok := d.fast.lookup(good[:schemaEnd]); !ok {
				t.Fatal("the schema message was not remembered")
			}
			if err := d.fastOnly(ctx, c.body, nil); !errors.Is(err, errNotFast) {
				t.Fatalf("fast path: %v; want it to leave the body to the full reader", err)
			}
			bs, err := decodeWith(ctx, d.decode, c.body)
			releaseAll(bs)
			if (err != nil) != c.fullErr {
				t.Errorf("decode: %v; want an error: %v", err, c.fullErr)
			}
		})
	}
}

// noEOS cuts the end-of-stream marker off an IPC stream.
func noEOS(b []byte) []byte { return b[:len(b)-8] }

// flipNullCount returns good with the null count of the first column of
// its first batch one more than its bitmap holds.
func flipNullCount(t *testing.T, good []byte, schemaEnd int) []byte {
	t.Helper()
	b := bytes.Clone(good)
	n := int(binary.LittleEndian.Uint32(b[schemaEnd+4:]))
	meta := b[schemaEnd+8 : schemaEnd+8+n]
	msg, _ := ipcguard.Root(meta)
	rb, _, _ := msg.Sub(2)
	nodes, count, err := rb.Vector(1, fastNodeBytes)
	if err != nil || count == 0 {
		t.Fatal("no field nodes in the first batch")
	}
	nulls := binary.LittleEndian.Uint64(meta[nodes+8:])
	binary.LittleEndian.PutUint64(meta[nodes+8:], nulls+1)
	return b
}

func TestSchemaCacheBounded(t *testing.T) {
	ctx := ctxT(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sc := testSchema(2)
	d := testDecoder(t, sc, mem)
	var keys [][]byte
	for i := range maxFastSchemas + 3 {
		// Schemas that differ only in their metadata: other bytes.
		md := arrow.NewMetadata([]string{"writer"}, []string{fmt.Sprint(i)})
		b := body(t, arrow.NewSchema(sc.Fields.Fields(), &md), 1, 2)
		bs, err := decodeWith(ctx, d.decode, b)
		releaseAll(bs)
		if err != nil {
			t.Fatal(err)
		}
		key, _, _ := schemaMessage(b)
		keys = append(keys, key)
	}
	for i, k := range keys {
		if _, ok := d.fast.lookup(k); ok != (i < maxFastSchemas) {
			t.Errorf("schema %d remembered: %v; want %v (at most %d)", i, ok, i < maxFastSchemas, maxFastSchemas)
		}
	}
}

func TestPosMarshal(t *testing.T) {
	for _, p := range []Pos{{1, 8, 1, 0}, {20, 1 << 40, 123456789, 7}} {
		want, _ := json.Marshal(p)
		if got := p.marshal(); !bytes.Equal(got, want) {
			t.Errorf("%+v: %s; want %s", p, got, want)
		}
	}
}

// FuzzFastPath is the fast path against the full reader (the reference)
// on bodies whose schema message the decoder remembers: whatever the
// fast path takes, the full reader takes too with the same batches;
// never a panic or a leak.
func FuzzFastPath(f *testing.F) {
	wide := wideSchema()
	seeds := map[string][]byte{
		"float32": body(f, testSchema(3).Fields, 1, 4, 0, 3),
		"wide":    wideBody(f, wide.Fields, 3, nil, 5, 0, 2),
		"nonulls": wideBody(f, wide.Fields, 0, nil, 3),
	}
	for _, b := range seeds {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareFast(t, []source.Schema{testSchema(3), wide}, [][]byte{seeds["float32"], seeds["wide"]}, data)
	})
}

// compareFast checks the fast path against the full reader on data, with
// a decoder for each of schemas that has remembered the schema messages
// of seeds: where the fast path takes data, the full reader takes it too,
// with the same batches; never a leak.
func compareFast(t *testing.T, schemas []source.Schema, seeds [][]byte, data []byte) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := t.Context()
	for _, sc := range schemas {
		d := testDecoder(t, sc, mem)
		for _, s := range seeds {
			bs, _ := decodeWith(ctx, d.decodeFull, s)
			releaseAll(bs)
		}
		got, err := decodeWith(ctx, d.fastOnly, data)
		if errors.Is(err, errNotFast) {
			releaseAll(got)
			continue
		}
		want, werr := decodeWith(ctx, d.decodeFull, data)
		switch {
		case err != nil:
			t.Errorf("fast path took the body and failed: %v", err)
		case werr != nil:
			t.Errorf("fast path took a body that the full reader refuses: %v", werr)
		default:
			if diff := sameBatches(got, want); diff != "" {
				t.Error(diff)
			}
		}
		releaseAll(got)
		releaseAll(want)
	}
}

// FuzzFastPathFields is FuzzFastPath on the fields that the fast path
// checks: it writes v (8, 4, 2 or 1 bytes of it, by width) at byte at of
// a seed body's record batch metadata or body (the fuzzer rarely gets a
// mutation there past the checks at random), then compares the fast
// path with the full reader as FuzzFastPath does.
func FuzzFastPathFields(f *testing.F) {
	wide := wideSchema()
	seeds := [][]byte{
		body(f, testSchema(3).Fields, 1, 4, 0, 3),
		wideBody(f, wide.Fields, 3, nil, 5, 0, 2),
	}
	for s := range seeds {
		for _, at := range []uint16{0, 40, 100, 200, 300} {
			f.Add(uint8(s), at, uint8(8), uint64(0))
			f.Add(uint8(s), at, uint8(1), uint64(0xff))
		}
	}
	f.Fuzz(func(t *testing.T, seed uint8, at uint16, width uint8, v uint64) {
		good := seeds[int(seed)%len(seeds)]
		key, _, _ := schemaMessage(good)
		data := bytes.Clone(good)
		rest := data[len(key):] // the batches, which the fast path reads
		var word [8]byte
		binary.LittleEndian.PutUint64(word[:], v)
		n := []int{1, 2, 4, 8}[width%4]
		p := int(at) % len(rest)
		copy(rest[p:], word[:n])
		compareFast(t, []source.Schema{testSchema(3), wide}, seeds, data)
	})
}

// TestHandlerFastPath: the first post of a schema is read by the full
// reader, the next ones with the same schema message by the fast path;
// Run sends the same batches either way, and a refused post is answered
// by the full reader's error.
func TestHandlerFastPath(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	e := newEnv(t, "", mem, nil)
	sc := e.opts.Schema.Fields
	posts := [][]int{{3}, {2, 0, 4}, {1}}
	for p, rows := range posts {
		if r := e.post(ctx, body(t, sc, p+1, rows...), fmt.Sprint("k", p), ContentType); r.code != 202 {
			t.Fatalf("post %d: %d %+v", p+1, r.code, r.answer)
		}
	}
	if got := e.log.fastPosts.Load(); got != int64(len(posts)-1) {
		t.Errorf("%d posts by the fast path; want %d (all but the first)", got, len(posts)-1)
	}
	bad := body(t, sc, 9, 2)
	bad = bad[:len(bad)-20]
	if r := e.post(ctx, bad, "", ContentType); r.code != 400 || !strings.Contains(r.answer.Error, "bad Arrow IPC stream") {
		t.Errorf("cut post: %d %q; want 400 from the full reader", r.code, r.answer.Error)
	}
	run := e.run(ctx, nil)
	gs, err := run.drainAll(t, ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var want [][]int64
	for p, rows := range posts {
		for _, ls := range labelsOf(p+1, rows...) {
			if len(ls) > 0 {
				want = append(want, ls)
			}
		}
	}
	if got := gotLabels(gs); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Run sent %v; want %v", got, want)
	}
}

// TestSameBatchesTellsApart: the comparison of the fast path's batches
// with the full reader's sees a value, a null, a row count.
func TestSameBatchesTellsApart(t *testing.T) {
	ctx := ctxT(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	wide := wideSchema()
	d := testDecoder(t, wide, mem)
	base := wideBody(t, wide.Fields, 3, nil, 5)
	for name, other := range map[string][]byte{
		"other nulls": wideBody(t, wide.Fields, 2, nil, 5),
		"other rows":  wideBody(t, wide.Fields, 3, nil, 4),
		"no nulls":    wideBody(t, wide.Fields, 0, nil, 5),
	} {
		a, err := decodeWith(ctx, d.decodeFull, base)
		if err != nil {
			t.Fatal(err)
		}
		b, err := decodeWith(ctx, d.decodeFull, other)
		if err != nil {
			t.Fatal(err)
		}
		if sameBatches(a, b) == "" {
			t.Errorf("%s: no difference found", name)
		}
		if diff := sameBatches(a, a); diff != "" {
			t.Errorf("a body against itself: %s", diff)
		}
		releaseAll(a)
		releaseAll(b)
	}
}

// TestRecordBufPool: a record buffer from the pool holds the key and
// room for the body, and at most twice the record's size (what
// MaxPending counts of a kept post).
func TestRecordBufPool(t *testing.T) {
	for i, n := range []int{9000, 100, 50000, 100, 9000, 5000} {
		key := fmt.Sprint("key-", i)
		b := getRecordBuf(key, n)
		head, need := recHeader+payloadFixed+len(key), recHeader+payloadFixed+len(key)+n
		if len(b) != head || cap(b) < need || cap(b) > 2*need {
			t.Errorf("body of %d: buffer of length %d, capacity %d; want %d and [%d, %d]", n, len(b), cap(b), head, need, 2*need)
		}
		if k := int(binary.LittleEndian.Uint16(b[recHeader+8:])); k != len(key) || string(b[recHeader+payloadFixed:head]) != key {
			t.Errorf("body of %d: key %q (length %d); want %q", n, b[recHeader+payloadFixed:head], k, key)
		}
		putRecordBuf(b[:need])
	}
}
