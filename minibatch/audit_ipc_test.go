package minibatch_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/internal/ipcguard"
	"github.com/penstock-ml/penstock/minibatch"
)

// int64Rec makes a record of one int64 column name = v.
func int64Rec(mem memory.Allocator, name string, v []int64) arrow.RecordBatch {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.AppendValues(v, nil)
	a := b.NewArray()
	defer a.Release()
	return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: name, Type: arrow.PrimitiveTypes.Int64}}, nil), []arrow.Array{a}, int64(len(v)))
}

// streamWithoutEOS is an IPC stream of recs without its end-of-stream
// marker, so that another stream can follow it.
func streamWithoutEOS(t *testing.T, recs ...arrow.RecordBatch) []byte {
	t.Helper()
	data := ipcBytes(t, true, recs[0].Schema(), recs)
	eos := []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}
	if !bytes.HasSuffix(data, eos) {
		t.Fatalf("stream does not end with the end-of-stream marker")
	}
	return data[:len(data)-len(eos)]
}

// TestAuditIPCSchemaChangeMidStream: a stream that holds a second schema
// message after its batches (two streams concatenated) is an error naming
// the stream and the batch, after the batches of the first schema; with
// another schema or with the same one.
func TestAuditIPCSchemaChangeMidStream(t *testing.T) {
	defer goleak.VerifyNone(t)
	gm := memory.NewGoAllocator()
	first := int64Rec(gm, "a", []int64{1, 2, 3})
	defer first.Release()
	for _, second := range []arrow.RecordBatch{int64Rec(gm, "b", []int64{4, 5}), int64Rec(gm, "a", []int64{4, 5})} {
		t.Run(second.Schema().Field(0).Name, func(t *testing.T) {
			defer second.Release()
			data := append(streamWithoutEOS(t, first), ipcBytes(t, true, second.Schema(), []arrow.RecordBatch{second})...)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src, err := minibatch.NewIPCStream(bytes.NewReader(data), minibatch.WithAllocator(mem), minibatch.WithName("two schemas"))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			ctx := auditCtx(t)
			var rows int64
			for {
				b, err := src.Next(ctx)
				if err == nil {
					rows += b.Rows()
					b.Release()
					continue
				}
				if err == io.EOF {
					t.Fatalf("read %d rows and io.EOF; want an error at the second schema", rows)
				}
				wantErr(t, err, `"two schemas"`, "batch 1", "message 2 at byte ")
				break
			}
			if rows != 3 {
				t.Errorf("read %d rows before the error; want the first stream's 3", rows)
			}
		})
	}
}

// dictRec makes a record of a dictionary column "c" (int8 → string).
func dictRec(t *testing.T, mem memory.Allocator, dict []string, idx []int8) arrow.RecordBatch {
	t.Helper()
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	sb := array.NewStringBuilder(mem)
	sb.AppendValues(dict, nil)
	d := sb.NewArray()
	sb.Release()
	ib := array.NewInt8Builder(mem)
	ib.AppendValues(idx, nil)
	ia := ib.NewArray()
	ib.Release()
	col := array.NewDictionaryArray(dt, ia, d)
	d.Release()
	ia.Release()
	rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "c", Type: dt}}, nil), []arrow.Array{col}, int64(len(idx)))
	col.Release()
	return rec
}

func dictStrings(t *testing.T, rec arrow.RecordBatch) []string {
	t.Helper()
	col := rec.Column(0).(*array.Dictionary)
	d := col.Dictionary().(*array.String)
	var out []string
	for i := range col.Len() {
		out = append(out, d.Value(col.GetValueIndex(i)))
	}
	return out
}

// TestAuditIPCDictionaryReplacedAndDelta: a stream whose dictionary is
// replaced, or extended by a delta, between batches reads each batch with
// its own dictionary; the batches stay valid after later batches, after
// Close, and after Rewind; nothing is left in the allocator.
func TestAuditIPCDictionaryReplacedAndDelta(t *testing.T) {
	defer goleak.VerifyNone(t)
	gm := memory.NewGoAllocator()
	cases := []struct {
		name  string
		dicts [][]string
		opts  []ipc.Option
	}{
		{"replaced", [][]string{{"a", "b"}, {"x", "y", "z"}, {"p"}}, nil},
		{"delta", [][]string{{"a", "b"}, {"a", "b", "c"}, {"a", "b", "c", "d"}}, []ipc.Option{ipc.WithDictionaryDeltas(true)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var recs []arrow.RecordBatch
			var want [][]string
			for _, d := range tc.dicts {
				idx := make([]int8, 0, 4)
				var w []string
				for k := range 4 {
					idx = append(idx, int8((k*7)%len(d)))
					w = append(w, d[(k*7)%len(d)])
				}
				recs = append(recs, dictRec(t, gm, d, idx))
				want = append(want, w)
			}
			data := ipcBytes(t, true, recs[0].Schema(), recs, tc.opts...)
			releaseAll(recs)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src, err := minibatch.NewIPCStream(bytes.NewReader(data), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			ctx := auditCtx(t)
			var kept []flow.Batch
			for pass := range 2 {
				for {
					b, err := src.Next(ctx)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("pass %d: Next: %v", pass, err)
					}
					kept = append(kept, b)
				}
				if err := src.Rewind(); err != nil {
					t.Fatalf("Rewind: %v", err)
				}
			}
			src.Close()
			if len(kept) != 2*len(want) {
				t.Fatalf("%d batches over two passes; want %d", len(kept), 2*len(want))
			}
			for i, b := range kept {
				if got := dictStrings(t, b.X); !slices.Equal(got, want[i%len(want)]) {
					t.Errorf("batch %d after Close: %q; want %q", i, got, want[i%len(want)])
				}
			}
			releaseBatches(kept)
		})
	}
}

// TestAuditIPCLyingUncompressedSize: the length written in front of a
// compressed buffer may say less, or more, than the buffer decompresses
// to; either is an error naming the source and the batch (or reads
// right), never a panic, wrong values or a leak.
func TestAuditIPCLyingUncompressedSize(t *testing.T) {
	const rows = 1000
	v := make([]int64, rows)
	for i := range v {
		v[i] = int64(i) * 3
	}
	rec := int64Rec(memory.NewGoAllocator(), "v", v)
	defer rec.Release()
	for _, stream := range []bool{false, true} {
		for _, codec := range []struct {
			name string
			opt  ipc.Option
		}{{"zstd", ipc.WithZstd()}, {"lz4", ipc.WithLZ4()}} {
			for _, lie := range []uint64{8, rows*8 - 8, rows*8 + 8, rows * 16} {
				t.Run(fmt.Sprintf("stream %v/%s/%d", stream, codec.name, lie), func(t *testing.T) {
					data := ipcBytes(t, stream, rec.Schema(), []arrow.RecordBatch{rec}, codec.opt)
					var want, bad [8]byte
					binary.LittleEndian.PutUint64(want[:], rows*8)
					binary.LittleEndian.PutUint64(bad[:], lie)
					if bytes.Count(data, want[:]) != 1 {
						t.Fatalf("the uncompressed length occurs %d times; want once", bytes.Count(data, want[:]))
					}
					data = bytes.Replace(data, want[:], bad[:], 1)
					mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					defer mem.AssertSize(t, 0)
					err := readIPCValues(t, mem, stream, data, v)
					if err == nil {
						t.Fatalf("a buffer whose uncompressed length says %d of %d bytes read without error", lie, rows*8)
					}
					wantErr(t, err, `"crafted"`, "batch 0", "at byte ")
				})
			}
		}
	}
}

// readIPCValues reads data and checks that every value read is want's;
// it returns the first error.
func readIPCValues(t *testing.T, mem memory.Allocator, stream bool, data []byte, want []int64) error {
	t.Helper()
	opts := []minibatch.SourceOption{minibatch.WithAllocator(mem), minibatch.WithName("crafted")}
	var src ipcSource
	var err error
	if stream {
		src, err = minibatch.NewIPCStream(bytes.NewReader(data), opts...)
	} else {
		src, err = minibatch.NewIPCFile(bytes.NewReader(data), int64(len(data)), opts...)
	}
	if err != nil {
		return err
	}
	defer src.Close()
	ctx := auditCtx(t)
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		got := b.X.Column(0).(*array.Int64).Int64Values()
		if !slices.Equal(got, want) {
			t.Errorf("read %d values (first %v); want %d values %v…", len(got), got[:min(3, len(got))], len(want), want[:3])
		}
		b.Release()
	}
}

// TestAuditIPCStreamErrorIsReplayable: a truncated stream gives its whole
// batches, then an error, again on every Next; Rewind gives the same
// batches and the same error.
func TestAuditIPCStreamErrorIsReplayable(t *testing.T) {
	defer goleak.VerifyNone(t)
	gm := memory.NewGoAllocator()
	var recs []arrow.RecordBatch
	for k := range 4 {
		recs = append(recs, int64Rec(gm, "i", []int64{int64(3 * k), int64(3*k + 1), int64(3*k + 2)}))
	}
	data := ipcBytes(t, true, recs[0].Schema(), recs)
	releaseAll(recs)
	data = data[:len(data)-40] // into the last batch
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src, err := minibatch.NewIPCStream(bytes.NewReader(data), minibatch.WithAllocator(mem), minibatch.WithName("cut"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := auditCtx(t)
	var first error
	for pass := range 3 {
		var ids []int
		var end error
		for {
			b, err := src.Next(ctx)
			if err != nil {
				end = err
				break
			}
			ids = append(ids, auditIDs(t, b)...)
			b.Release()
		}
		if !slices.Equal(ids, iota(9)) {
			t.Errorf("pass %d: rows %v; want 0 … 8", pass, ids)
		}
		wantErr(t, end, `"cut"`, "batch 3")
		if pass == 0 {
			first = end
		} else if end.Error() != first.Error() {
			t.Errorf("pass %d: error %q; want the first pass's %q", pass, end, first)
		}
		if _, again := src.Next(ctx); again == nil || again.Error() != end.Error() {
			t.Errorf("Next after the error: %v; want it again", again)
		}
		if err := src.Rewind(); err != nil {
			t.Fatalf("Rewind after the error: %v", err)
		}
	}
}

// TestAuditIPCFileLyingBlocks: a footer whose record-batch block lies
// about its body or metadata length, or its offset, is an error naming
// the file (and the batch, where the footer itself is sound), after the
// batches before it — no panic, no allocation of what the block claims,
// no leak.
func TestAuditIPCFileLyingBlocks(t *testing.T) {
	gm := memory.NewGoAllocator()
	var recs []arrow.RecordBatch
	for k := range 3 {
		recs = append(recs, int64Rec(gm, "i", []int64{int64(2 * k), int64(2*k + 1)}))
	}
	data := ipcBytes(t, false, recs[0].Schema(), recs)
	releaseAll(recs)
	f, err := ipcguard.CheckFile(bytes.NewReader(data), int64(len(data)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	b := f.Records[1]
	// The footer's Block struct: offset (int64), metaDataLength (int32),
	// padding, bodyLength (int64).
	block := binary.LittleEndian.AppendUint64(nil, uint64(b.Offset))
	block = binary.LittleEndian.AppendUint32(block, uint32(b.MetaLen))
	block = append(block, 0, 0, 0, 0)
	block = binary.LittleEndian.AppendUint64(block, uint64(b.BodyLen))
	if bytes.Count(data, block) != 1 {
		t.Fatalf("the footer block of batch 1 occurs %d times; want once", bytes.Count(data, block))
	}
	lies := map[string]func(off, meta, body int64) (int64, int64, int64){
		"body of 1 TiB":        func(o, m, b int64) (int64, int64, int64) { return o, m, 1 << 40 },
		"body 8 bytes longer":  func(o, m, b int64) (int64, int64, int64) { return o, m, b + 8 },
		"body 8 bytes shorter": func(o, m, b int64) (int64, int64, int64) { return o, m, b - 8 },
		"negative body":        func(o, m, b int64) (int64, int64, int64) { return o, m, -8 },
		"metadata of 2 GiB":    func(o, m, b int64) (int64, int64, int64) { return o, 1<<31 - 8, b },
		"offset past the end":  func(o, m, b int64) (int64, int64, int64) { return 1 << 40, m, b },
		"offset into batch 0":  func(o, m, b int64) (int64, int64, int64) { return o - 8, m, b },
		"negative offset":      func(o, m, b int64) (int64, int64, int64) { return -64, m, b },
	}
	for name, lie := range lies {
		t.Run(name, func(t *testing.T) {
			o, m, bl := lie(b.Offset, b.MetaLen, b.BodyLen)
			bad := binary.LittleEndian.AppendUint64(nil, uint64(o))
			bad = binary.LittleEndian.AppendUint32(bad, uint32(m))
			bad = append(bad, 0, 0, 0, 0)
			bad = binary.LittleEndian.AppendUint64(bad, uint64(bl))
			crafted := bytes.Replace(data, block, bad, 1)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src, err := minibatch.NewIPCFile(bytes.NewReader(crafted), int64(len(crafted)), minibatch.WithAllocator(mem), minibatch.WithName("lying"))
			if err != nil {
				wantErr(t, err, `"lying"`)
				return
			}
			defer src.Close()
			ctx := auditCtx(t)
			var ids []int
			var end error
			for {
				b, err := src.Next(ctx)
				if err != nil {
					end = err
					break
				}
				ids = append(ids, auditIDs(t, b)...)
				b.Release()
			}
			if end == io.EOF {
				t.Fatalf("read %v and io.EOF; want an error at batch 1", ids)
			}
			wantErr(t, end, `"lying"`, "batch 1")
			if !slices.Equal(ids, []int{0, 1}) {
				t.Errorf("rows before the error: %v; want batch 0's [0 1]", ids)
			}
		})
	}
}
