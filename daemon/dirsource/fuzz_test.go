package dirsource

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/daemon/source"
)

func fuzzSchema() source.Schema {
	return source.Schema{
		Fields: arrow.NewSchema([]arrow.Field{
			{Name: "x", Type: arrow.PrimitiveTypes.Float32},
			{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
			{Name: "y", Type: arrow.PrimitiveTypes.Int64},
		}, nil),
		Inputs: []string{"x", "s"},
		Labels: []string{"y"},
	}
}

// fuzzIPC returns a valid IPC file and stream of fuzzSchema.
func fuzzIPC(t testing.TB) (file, stream []byte) {
	sc := fuzzSchema().Fields
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	b.Field(0).(*array.Float32Builder).AppendValues([]float32{1, 2, 3}, nil)
	b.Field(1).(*array.StringBuilder).AppendValues([]string{"a", "", "ccc"}, []bool{true, false, true})
	b.Field(2).(*array.Int64Builder).AppendValues([]int64{1, 0, 1}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	var fb, sb bytes.Buffer
	fw, err := ipc.NewFileWriter(&fb, ipc.WithSchema(sc))
	if err != nil {
		t.Fatal(err)
	}
	sw := ipc.NewWriter(&sb, ipc.WithSchema(sc))
	for _, w := range []interface {
		Write(arrow.RecordBatch) error
		Close() error
	}{fw, sw} {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return fb.Bytes(), sb.Bytes()
}

// FuzzLoad reads arbitrary bytes as a file of each format: it never
// panics, any error is a rejection, and every byte allocated is freed.
func FuzzLoad(f *testing.F) {
	file, stream := fuzzIPC(f)
	f.Add(file)
	f.Add(stream)
	f.Add([]byte("s,x,y\nhi,1.5,1\n,2,0\n"))
	f.Add([]byte("x,y\n1,2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, format := range []string{"ipc", "csv", "parquet"} {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			d, err := New(Options{Dir: dir, Format: format, Schema: fuzzSchema(), Alloc: mem, MaxFileBytes: 1 << 20, BatchRows: 2})
			if err != nil {
				t.Fatal(err)
			}
			l, err := d.load(t.Context(), path, "f", false)
			if err == nil {
				for _, b := range l.batches {
					if err := fuzzSchema().Check(arrowSchemaOf(b.X, b.Y)); err != nil {
						t.Fatalf("%s: a batch taken does not match the schema: %v", format, err)
					}
				}
				l.release()
			} else if _, ok := errors.AsType[*rejection](err); !ok {
				t.Fatalf("%s: error %v is not a rejection", format, err)
			}
			mem.AssertSize(t, 0)
		}
	})
}

// arrowSchemaOf is the schema of the columns of x and y together.
func arrowSchemaOf(x, y arrow.RecordBatch) *arrow.Schema {
	fields := append([]arrow.Field(nil), x.Schema().Fields()...)
	if y != nil {
		fields = append(fields, y.Schema().Fields()...)
	}
	return arrow.NewSchema(fields, nil)
}

// FuzzPosition decodes arbitrary positions: a position that decodes
// encodes to one that decodes to the same.
func FuzzPosition(f *testing.F) {
	f.Add([]byte(`{"file":"a.arrow","batch":3}`))
	f.Add([]byte(`{"file":"a.arrow","batch":3,"last":true}`))
	f.Add([]byte(`{"file":"../a","batch":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decodePosition("fuzz", data)
		if err != nil {
			return
		}
		q, err := decodePosition("fuzz", p.encode())
		if err != nil || q != p {
			t.Fatalf("%q decodes to %+v, which encodes to %s, which decodes to %+v, %v", data, p, p.encode(), q, err)
		}
	})
}
