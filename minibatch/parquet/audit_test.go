package parquet_test

// An adversarial audit of the Parquet source's promises: both engines of
// flow.Runner with a checked allocator, Close at any moment, cancellation
// with a cause, Rewind after partial reads and errors, corrupt footers.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/minibatch/parquet"
)

func auditCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// auditFile writes a Parquet file of rows rows (x0 = row × 0.5, y, s) in
// row groups of 100 rows and returns its path.
func auditFile(t *testing.T, rows int) string {
	t.Helper()
	schema, recs := srcTable(memory.NewGoAllocator(), rows, 64, 1)
	path := filepath.Join(t.TempDir(), "audit.parquet")
	writeParquet(t, path, schema, recs, 100)
	releaseAll(recs)
	return path
}

// ids reads the rows of b (x0 × 2).
func ids(b flow.Batch) []int {
	var out []int
	for _, v := range b.X.Column(0).(*array.Float64).Float64Values() {
		out = append(out, int(v*2))
	}
	return out
}

func readIDs(t *testing.T, ctx context.Context, src flow.Source) []int {
	t.Helper()
	var out []int
	for {
		b, err := src.Next(ctx)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, ids(b)...)
		b.Release()
	}
}

type passThrough struct{}

func (passThrough) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

// TestAuditParquetBothEngines: the rows through either engine are the
// rows read directly, every one once and in order; after a partial read,
// and after a run closed early, Rewind gives them again; nothing is left
// in the allocator.
func TestAuditParquetBothEngines(t *testing.T) {
	defer goleak.VerifyNone(t)
	const rows = 333
	path := auditFile(t, rows)
	for _, e := range []flow.Engine{flow.Sequential, flow.Streaming} {
		t.Run(e.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := auditCtx(t)
			src, err := parquet.Open(path, minibatch.WithAllocator(mem), minibatch.WithLabels("y"), minibatch.WithInputs("x0"), minibatch.WithBatchRows(40))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			direct := readIDs(t, ctx, src)
			want := make([]int, rows)
			for i := range want {
				want[i] = i
			}
			if !slices.Equal(direct, want) {
				t.Fatalf("read directly: %v; want 0 … %d", direct, rows-1)
			}
			p, err := flow.NewPipeline([]flow.Node{flow.Named("pass", passThrough{}, flow.Replicas(2))})
			if err != nil {
				t.Fatal(err)
			}
			run := func(stopAfter int) []int {
				if err := src.Rewind(); err != nil {
					t.Fatalf("Rewind: %v", err)
				}
				s, err := flow.Runner{Engine: e, Allocator: mem}.Transform(ctx, p, src)
				if err != nil {
					t.Fatal(err)
				}
				var got []int
				for n := 0; stopAfter == 0 || n < stopAfter; n++ {
					b, err := s.Next(ctx)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("stream Next: %v", err)
					}
					got = append(got, ids(b)...)
					b.Release()
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				return got
			}
			if got := run(0); !slices.Equal(got, want) {
				t.Errorf("through the runner: %v; want %v", got, want)
			}
			run(2)
			if err := src.Rewind(); err != nil {
				t.Fatal(err)
			}
			b, err := src.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b.Release()
			if err := src.Rewind(); err != nil {
				t.Fatal(err)
			}
			if got := readIDs(t, ctx, src); !slices.Equal(got, want) {
				t.Errorf("after a partial read and Rewind: %v; want %v", got, want)
			}
		})
	}
}

// TestAuditParquetCloseAtAnyMoment: Close before the first Next, after a
// partial read, after the end of the stream and after an error; in every
// case Next and Rewind after Close are errors saying so, Close again is
// nil, and nothing is left in the allocator.
func TestAuditParquetCloseAtAnyMoment(t *testing.T) {
	path := auditFile(t, 250)
	for _, at := range []string{"before Next", "after one batch", "at the end", "after an error"} {
		t.Run(at, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := auditCtx(t)
			src, err := parquet.Open(path, minibatch.WithAllocator(mem), minibatch.WithBatchRows(64))
			if err != nil {
				t.Fatal(err)
			}
			switch at {
			case "after one batch":
				b, err := src.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				b.Release()
			case "at the end":
				if err := nextErr(ctx, src); err != io.EOF {
					t.Fatalf("reading to the end: %v; want io.EOF", err)
				}
			case "after an error":
				cctx, cancel := context.WithCancelCause(ctx)
				cancel(errors.New("audit: cause"))
				if _, err := src.Next(cctx); err == nil {
					t.Fatal("Next with a cancelled ctx: nil error")
				}
			}
			for i := range 3 {
				if err := src.Close(); err != nil {
					t.Fatalf("Close #%d: %v", i+1, err)
				}
			}
			b, err := src.Next(ctx)
			if err == nil || err == io.EOF || !strings.Contains(err.Error(), "after Close") {
				if err == nil {
					b.Release()
				}
				t.Errorf("Next after Close: %v; want an error saying after Close", err)
			}
			if err := src.Rewind(); err == nil {
				t.Error("Rewind after Close: nil; want an error")
			}
			if src.Replayable() {
				t.Error("Replayable after Close: true; want false")
			}
		})
	}
}

// TestAuditParquetCancelCause: a Next whose ctx was cancelled with a
// cause returns the cause, before the first batch and mid-pass; Rewind
// then reads every row.
func TestAuditParquetCancelCause(t *testing.T) {
	path := auditFile(t, 250)
	cause := errors.New("audit: the caller's cause")
	for _, reads := range []int{0, 1} {
		t.Run(fmt.Sprint(reads), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := auditCtx(t)
			src, err := parquet.Open(path, minibatch.WithAllocator(mem), minibatch.WithBatchRows(64))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			for range reads {
				b, err := src.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				b.Release()
			}
			cctx, cancel := context.WithCancelCause(ctx)
			cancel(cause)
			if b, err := src.Next(cctx); !errors.Is(err, cause) {
				if err == nil {
					b.Release()
				}
				t.Errorf("Next with a ctx cancelled with a cause: %v; want the cause", err)
			}
			if err := src.Rewind(); err != nil {
				t.Fatal(err)
			}
			if got := readIDs(t, ctx, src); len(got) != 250 {
				t.Errorf("after Rewind: %d rows; want 250", len(got))
			}
		})
	}
}

// TestAuditParquetCorruptFooter: a file whose footer (the metadata, its
// length or the magic) is corrupt, in many ways chosen by a seeded
// generator, fails to open or read with an error naming the file — no
// panic, no leak.
func TestAuditParquetCorruptFooter(t *testing.T) {
	path := auditFile(t, 250)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	metaLen := int(binary.LittleEndian.Uint32(data[len(data)-8:]))
	metaStart := len(data) - 8 - metaLen
	rng := rand.New(rand.NewPCG(1, 2))
	type mutation struct {
		name string
		data []byte
	}
	muts := []mutation{
		{"magic", append(bytes.Clone(data[:len(data)-4]), "PARX"...)},
		{"length past the start", binary.LittleEndian.AppendUint32(bytes.Clone(data[:len(data)-8]), uint32(len(data)))},
		{"length huge", binary.LittleEndian.AppendUint32(bytes.Clone(data[:len(data)-8]), 0xfffffff0)},
		{"length zero", binary.LittleEndian.AppendUint32(bytes.Clone(data[:len(data)-8]), 0)},
		{"metadata truncated", append(append(bytes.Clone(data[:metaStart]), data[metaStart:metaStart+metaLen/2]...), binary.LittleEndian.AppendUint32(nil, uint32(metaLen/2))...)},
	}
	muts[len(muts)-1].data = append(muts[len(muts)-1].data, "PAR1"...)
	for k := range 60 {
		bad := bytes.Clone(data)
		for range 1 + k%4 {
			bad[metaStart+rng.IntN(metaLen)] = byte(rng.Uint32())
		}
		muts = append(muts, mutation{fmt.Sprintf("metadata bytes %d", k), bad})
	}
	for _, m := range muts {
		t.Run(m.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			p := filepath.Join(t.TempDir(), "bad.parquet")
			if err := os.WriteFile(p, m.data, 0o644); err != nil {
				t.Fatal(err)
			}
			err := func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
						t.Errorf("a corrupt footer panicked: %v", r)
					}
				}()
				src, err := parquet.Open(p, minibatch.WithAllocator(mem), minibatch.WithBatchRows(64))
				if err != nil {
					return err
				}
				defer src.Close()
				err = nextErr(auditCtx(t), src)
				if err == io.EOF {
					return nil
				}
				return err
			}()
			if err == nil && !strings.HasPrefix(m.name, "metadata bytes") {
				t.Errorf("a file with a corrupt footer (%s) read without error", m.name)
			}
			if err != nil && !strings.Contains(err.Error(), `"`+p+`"`) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// zigzagVarint is v in Thrift's compact encoding of an i64.
func zigzagVarint(v int64) []byte {
	return binary.AppendUvarint(nil, uint64(v<<1)^uint64(v>>63))
}

// TestAuditParquetLyingChunkSize: a footer that gives a column chunk a
// length of 16 GiB in a file of a few KiB is an error when the source is
// made — arrow-go alone allocates a buffer of that length and the process
// dies.
func TestAuditParquetLyingChunkSize(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	data := parquetSeed(t, compress.Codecs.Snappy)
	metaLen := int(binary.LittleEndian.Uint32(data[len(data)-8:]))
	metaStart := len(data) - 8 - metaLen
	meta := data[metaStart : metaStart+metaLen]
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var bad []byte
	for g := 0; g < pf.NumRowGroups() && bad == nil; g++ {
		for c := 0; c < pf.MetaData().Schema.NumColumns() && bad == nil; c++ {
			col, err := pf.MetaData().RowGroup(g).ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			// Field 7 (total_compressed_size, i64) after field 6: header 0x16.
			pat := append([]byte{0x16}, zigzagVarint(col.TotalCompressedSize())...)
			if bytes.Count(meta, pat) != 1 {
				continue
			}
			lie := bytes.Replace(meta, pat, append([]byte{0x16}, zigzagVarint(16<<30)...), 1)
			bad = append(append(bytes.Clone(data[:metaStart]), lie...), binary.LittleEndian.AppendUint32(nil, uint32(len(lie)))...)
			bad = append(bad, "PAR1"...)
		}
	}
	pf.Close()
	if bad == nil {
		t.Fatal("found no column chunk size to change in the footer")
	}
	src, err := parquet.New(bytes.NewReader(bad), minibatch.WithAllocator(mem), minibatch.WithName("lying"))
	if err == nil {
		src.Close()
		t.Fatal("a footer with a column chunk of 16 GiB: no error")
	}
	wantErr(t, err, `"lying"`, "row group", "column", "17179869184 bytes", "does not fit in the file", "corrupt footer")
}

// lyingCodec encodes as its inner codec does, with the decoded size that
// the block claims replaced by claim.
type lyingCodec struct {
	compress.Codec
	claim func(block []byte) []byte
}

func (l lyingCodec) Encode(dst, src []byte) []byte { return l.claim(l.Codec.Encode(dst, src)) }
func (l lyingCodec) EncodeLevel(dst, src []byte, level int) []byte {
	return l.claim(l.Codec.Encode(dst, src))
}

// TestAuditParquetDecompressionBomb: a page whose compressed block claims
// far more bytes than its page header (Snappy: 4 GiB; Zstd: a frame of 1
// TiB) is an error naming the source and the batch, before anything of
// that size is allocated.
func TestAuditParquetDecompressionBomb(t *testing.T) {
	snappyLie := func(block []byte) []byte {
		_, n := binary.Uvarint(block)
		return append(binary.AppendUvarint(nil, 0xfffffff0), block[n:]...)
	}
	zstdLie := func(block []byte) []byte {
		// One frame of one raw block holding the bytes, which claims a
		// content size of 1 TiB.
		raw, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		plain, err := raw.DecodeAll(block, nil)
		if err != nil {
			t.Fatal(err)
		}
		f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0}
		f = binary.LittleEndian.AppendUint64(f, 1<<40)
		h := uint32(len(plain))<<3 | 1 // raw block, the last
		f = append(f, byte(h), byte(h>>8), byte(h>>16))
		return append(f, plain...)
	}
	for _, c := range []struct {
		kind compress.Compression
		lie  func([]byte) []byte
		want string
	}{
		{compress.Codecs.Snappy, snappyLie, "claims 4294967280 bytes"},
		{compress.Codecs.Zstd, zstdLie, "claims 1099511627776 bytes"},
	} {
		t.Run(c.kind.String(), func(t *testing.T) {
			inner, err := compress.GetCodec(c.kind)
			if err != nil {
				t.Fatal(err)
			}
			compress.RegisterCodec(c.kind, lyingCodec{inner, c.lie})
			data := parquetSeed(t, c.kind)
			compress.RegisterCodec(c.kind, inner)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src, err := parquet.New(bytes.NewReader(data), minibatch.WithAllocator(mem), minibatch.WithName("bomb"))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			err = nextErr(auditCtx(t), src)
			wantErr(t, err, `"bomb"`, "batch 0", c.want)
		})
	}
}

// TestAuditParquetFooterPanic: a footer that makes arrow-go panic (a
// schema element with an invalid logical type) is an error naming the
// source, not a crash.
func TestAuditParquetFooterPanic(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "audit", "invalid-logical-type.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src, err := parquet.New(bytes.NewReader(data), minibatch.WithAllocator(mem), minibatch.WithName("panicky"))
	if err == nil {
		src.Close()
		t.Fatal("no error")
	}
	wantErr(t, err, `"panicky"`, "not a readable Parquet file", "corrupt file", "invalid logical type")
}
