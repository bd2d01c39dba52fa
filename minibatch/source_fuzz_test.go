package minibatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// touch reads every value of b, so that a batch whose buffers do not match
// its lengths panics here rather than in a step.
func touch(b flow.Batch) {
	for _, rec := range []arrow.RecordBatch{b.X, b.Y} {
		if rec == nil {
			continue
		}
		for _, col := range rec.Columns() {
			for i := range col.Len() {
				_ = col.IsNull(i)
				_ = col.ValueStr(i)
			}
		}
	}
}

// drainFuzz reads src to its end or first error, touching every batch.
func drainFuzz(ctx context.Context, src flow.Source) error {
	for {
		b, err := src.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		touch(b)
		b.Release()
	}
}

// drainCSV reads src to its end or first error and returns what it read,
// as text, and the error (nil at io.EOF).
func drainCSV(ctx context.Context, src flow.Source) (string, error) {
	var sb strings.Builder
	for {
		b, err := src.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return sb.String(), nil
			}
			return sb.String(), err
		}
		touch(b)
		for _, rec := range []arrow.RecordBatch{b.X, b.Y} {
			if rec != nil {
				for _, col := range rec.Columns() {
					fmt.Fprint(&sb, col, ";")
				}
			}
		}
		b.Release()
	}
}

func FuzzCSV(f *testing.F) {
	for _, seed := range []string{
		"a,b,c\n1,2.5,x\n3,NA,y\n",
		"x,y\n1,2\n3\n",
		"a\n\"quoted\nnewline\",\n",
		"a,b\ntrue,1e308\nFALSE,-0\n,\n",
		"1,2\n3,4\n",
		"a,b\n1,abc\n",
		"",
		"a,b\r1,2\r3,4\r",
		"a,b\r\n1,2\r\n\r\n",
		"\xef\xbb\xbfa,b\n1,2\n",
		"a\n1\n\n2\n",
		"a,b\n1,\"2\n",
		"a,b\n1,x\x00\n",
		"a,b\n1,\xff\n",
		"a,a\n1,2\n",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int8},
		{Name: "b", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	}, nil)
	f.Fuzz(func(t *testing.T, data []byte, withSchema bool) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		opts := []minibatch.SourceOption{minibatch.WithAllocator(mem), minibatch.WithBatchRows(3),
			minibatch.WithInferRows(4), minibatch.WithMaxRowBytes(256), minibatch.WithMaxInputBytes(1 << 20)}
		if withSchema {
			opts = append(opts, minibatch.WithSchema(schema), minibatch.WithHeader(false), minibatch.WithLabels("a"))
		}
		ctx := t.Context()
		// read reads data in two passes, which must agree.
		read := func(data []byte) (string, error) {
			src, err := minibatch.NewCSV(bytes.NewReader(data), opts...)
			if err != nil {
				return "", err
			}
			defer src.Close()
			got, first := drainCSV(ctx, src)
			if err := src.Rewind(); err != nil {
				if first == nil {
					t.Fatalf("Rewind after a clean pass: %v", err)
				}
				return got, first
			}
			again, second := drainCSV(ctx, src)
			if again != got || (first == nil) != (second == nil) || (first != nil && first.Error() != second.Error()) {
				t.Fatalf("replay differs: %q, %v, then %q, %v", got, first, again, second)
			}
			return got, first
		}
		got, err := read(data)
		// CR-only line endings read as LF ones do, where no quote makes a
		// CR data (and the input is not compressed).
		if !bytes.ContainsAny(data, "\r\"") && !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
			crGot, crErr := read(bytes.ReplaceAll(data, []byte("\n"), []byte("\r")))
			if crGot != got || (err == nil) != (crErr == nil) || (err != nil && err.Error() != crErr.Error()) {
				t.Fatalf("with CR line endings: %q, %v; with LF: %q, %v", crGot, crErr, got, err)
			}
		}
	})
}

// ipcSeeds returns small valid IPC streams and files: plain, lz4, zstd,
// with a dictionary column and with nulls.
func ipcSeeds(tb testing.TB) [][]byte {
	mem := memory.NewGoAllocator()
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "d", Type: dt},
		{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := range 5 {
		if i == 2 {
			b.Field(0).AppendNull()
			b.Field(1).AppendNull()
		} else {
			b.Field(0).(*array.Float64Builder).Append(float64(i) / 3)
			b.Field(1).(*array.StringBuilder).Append("v" + string(rune('a'+i)))
		}
		b.Field(2).(*array.BinaryDictionaryBuilder).AppendString([]string{"p", "q"}[i%2])
		lb := b.Field(3).(*array.ListBuilder)
		lb.Append(true)
		for j := range i {
			lb.ValueBuilder().(*array.Int32Builder).Append(int32(j))
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var out [][]byte
	for _, opts := range [][]ipc.Option{nil, {ipc.WithLZ4()}, {ipc.WithZstd()}} {
		opts = append(opts, ipc.WithSchema(schema), ipc.WithAllocator(mem))
		var s bytes.Buffer
		w := ipc.NewWriter(&s, opts...)
		if err := w.Write(rec); err != nil {
			tb.Fatal(err)
		}
		w.Close()
		out = append(out, s.Bytes())
		var fb bytes.Buffer
		fw, err := ipc.NewFileWriter(&fb, opts...)
		if err != nil {
			tb.Fatal(err)
		}
		if err := fw.Write(rec); err != nil {
			tb.Fatal(err)
		}
		fw.Close()
		out = append(out, fb.Bytes())
	}
	return out
}

// FuzzIPC reads arbitrary bytes as an IPC stream and as an IPC file: every
// input is an error or batches whose every value reads, nothing stays
// allocated, and a replay gives the same outcome.
func FuzzIPC(f *testing.F) {
	for _, seed := range ipcSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		ctx := t.Context()
		opts := []minibatch.SourceOption{minibatch.WithAllocator(mem), minibatch.WithMaxBatchBytes(1 << 16)}
		replay := func(src interface {
			flow.Source
			Rewind() error
		}) {
			first := drainFuzz(ctx, src)
			if err := src.Rewind(); err != nil {
				if first == nil {
					t.Fatalf("Rewind after a clean pass: %v", err)
				}
				return
			}
			second := drainFuzz(ctx, src)
			if (first == nil) != (second == nil) || (first != nil && first.Error() != second.Error()) {
				t.Fatalf("replay differs: %v, then %v", first, second)
			}
		}
		if s, err := minibatch.NewIPCStream(bytes.NewReader(data), opts...); err == nil {
			replay(s)
			s.Close()
		}
		if s, err := minibatch.NewIPCFile(bytes.NewReader(data), int64(len(data)), opts...); err == nil {
			replay(s)
			s.Close()
		}
	})
}
