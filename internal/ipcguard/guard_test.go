package ipcguard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

// write returns one batch of schema's columns, as built by fill, written
// as an IPC stream or file.
func write(t *testing.T, stream bool, cols []arrow.Array, opts ...ipc.Option) []byte {
	t.Helper()
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: string(rune('a' + i)), Type: c.DataType(), Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	rec := array.NewRecordBatch(schema, cols, int64(cols[0].Len()))
	defer rec.Release()
	var buf bytes.Buffer
	opts = append(opts, ipc.WithSchema(schema))
	var w interface {
		Write(arrow.RecordBatch) error
		Close() error
	}
	if stream {
		w = ipc.NewWriter(&buf, opts...)
	} else {
		fw, err := ipc.NewFileWriter(&buf, opts...)
		if err != nil {
			t.Fatal(err)
		}
		w = fw
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func int64s(n int) arrow.Array {
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(make([]int64, n), nil)
	return b.NewArray()
}

// footer returns the footer flatbuffer of an IPC file and its offset.
func footer(t *testing.T, file []byte) (Table, int) {
	t.Helper()
	n := int(binary.LittleEndian.Uint32(file[len(file)-10:]))
	start := len(file) - 10 - n
	f, err := Root(file[start : len(file)-10])
	if err != nil {
		t.Fatal(err)
	}
	return f, start
}

// setFieldCount sets the length of the fields vector of the schema table
// s (a view of a slice of data) to n.
func setFieldCount(t *testing.T, s Table, n uint32) {
	t.Helper()
	p, ok, err := s.Field(1, 4)
	if err != nil || !ok {
		t.Fatalf("schema without fields: %v", err)
	}
	at := p + int(binary.LittleEndian.Uint32(s.buf[p:]))
	binary.LittleEndian.PutUint32(s.buf[at:], n)
}

// TestArrowTrustsFieldCount shows why a file's footer is checked before
// arrow-go's ipc.NewFileReader parses it: arrow-go allocates a slice of
// the length that the schema's vector of fields claims, whatever the size
// of the footer. Here 2^20 fields in a footer of a few hundred bytes make
// it allocate more than 80 MiB (with 2^32-1, some 380 GB: the process
// dies); CheckFile refuses the footer.
func TestArrowTrustsFieldCount(t *testing.T) {
	col := int64s(10)
	defer col.Release()
	file := write(t, false, []arrow.Array{col})
	f, _ := footer(t, file)
	schema, ok, err := f.Sub(1)
	if err != nil || !ok {
		t.Fatalf("footer without schema: %v", err)
	}
	setFieldCount(t, schema, 1<<20)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	func() {
		defer func() { recover() }() // it panics, after allocating
		if r, err := ipc.NewFileReader(bytes.NewReader(file)); err == nil {
			r.Close()
		}
	}()
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got < 80<<20 {
		t.Errorf("arrow-go allocated %d bytes for a %d-byte file; want > 80 MiB (else the check may be redundant now)", got, len(file))
	}

	_, err = CheckFile(bytes.NewReader(file), int64(len(file)), 1<<20)
	wantErr(t, err, "footer at byte", "schema", "fields", "outside")
}

func TestCheckMessage(t *testing.T) {
	col := int64s(10)
	defer col.Release()
	stream := write(t, true, []arrow.Array{col})
	// The first message: the schema, after the continuation marker and
	// length.
	n := binary.LittleEndian.Uint32(stream[4:])
	meta := stream[8 : 8+n]
	if err := CheckMessage(meta); err != nil {
		t.Fatalf("CheckMessage of a good schema = %v", err)
	}
	msg, _ := Root(meta)
	schema, _, _ := msg.Sub(2)
	setFieldCount(t, schema, 1<<31)
	wantErr(t, CheckMessage(meta), "schema", "fields", "vector of 2147483648 elements", "outside")

	// Fields nested deeper than MaxFieldDepth.
	var dt arrow.DataType = arrow.PrimitiveTypes.Int8
	for range MaxFieldDepth + 1 {
		dt = arrow.ListOf(dt)
	}
	var deep bytes.Buffer // a stream of no batches: its schema only
	w := ipc.NewWriter(&deep, ipc.WithSchema(arrow.NewSchema([]arrow.Field{{Name: "deep", Type: dt}}, nil)))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n = binary.LittleEndian.Uint32(deep.Bytes()[4:])
	wantErr(t, CheckMessage(deep.Bytes()[8:8+n]), "nested deeper than 64")

	// A variadic buffer count past the number of buffers: arrow-go sizes
	// a slice by it.
	vb := array.NewStringViewBuilder(memory.DefaultAllocator)
	vb.Append("a string longer than twelve bytes")
	views := vb.NewArray()
	vb.Release()
	defer views.Release()
	s := write(t, true, []arrow.Array{views})
	n = binary.LittleEndian.Uint32(s[4:])
	s = s[8+n:] // the record batch message
	n = binary.LittleEndian.Uint32(s[4:])
	meta = s[8 : 8+n]
	if err := CheckMessage(meta); err != nil {
		t.Fatalf("CheckMessage of a good string view batch = %v", err)
	}
	msg, _ = Root(meta)
	batch, _, _ := msg.Sub(2)
	start, count, err := batch.Vector(4, 8)
	if err != nil || count != 1 {
		t.Fatalf("variadic counts: %d, %v; want 1", count, err)
	}
	binary.LittleEndian.PutUint64(batch.buf[start:], 1<<40)
	wantErr(t, CheckMessage(meta), "record batch", "variadic buffer count 1099511627776 is outside [0, 3]")

	// Garbage.
	wantErr(t, CheckMessage([]byte{1, 2}), "too short")
	wantErr(t, CheckMessage([]byte{0xff, 0xff, 0, 0, 0, 0, 0, 0}), "outside")
}

func TestCheckFile(t *testing.T) {
	col := int64s(1000)
	defer col.Release()
	file := write(t, false, []arrow.Array{col})
	f, err := CheckFile(bytes.NewReader(file), int64(len(file)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Records) != 1 || len(f.Dictionaries) != 0 || f.Records[0].BodyLen < 8000 {
		t.Fatalf("CheckFile = %+v; want one record batch of 8000 bytes or more", f)
	}
	if err := CheckBlock(bytes.NewReader(file), f.Records[0]); err != nil {
		t.Errorf("CheckBlock of a good batch = %v", err)
	}

	_, err = CheckFile(bytes.NewReader(file), int64(len(file)), 4096)
	var lim *LimitError
	if !errors.As(err, &lim) || lim.Limit != 4096 || lim.Size != f.Records[0].BodyLen {
		t.Errorf("CheckFile with a limit of 4096 = %v; want a *LimitError of %d bytes over 4096", err, f.Records[0].BodyLen)
	}
	wantErr(t, err, "record batch 0 at byte", "body of", "exceeds the limit of 4096 bytes")

	stream := write(t, true, []arrow.Array{col})
	_, err = CheckFile(bytes.NewReader(stream), int64(len(stream)), 1<<20)
	if !errors.Is(err, ErrNotFile) {
		t.Errorf("CheckFile of a stream = %v; want ErrNotFile", err)
	}

	bad := bytes.Clone(file)
	binary.LittleEndian.PutUint32(bad[len(bad)-10:], 1<<30)
	_, err = CheckFile(bytes.NewReader(bad), int64(len(bad)), 1<<20)
	wantErr(t, err, "footer length 1073741824", "out of range")

	// A block that runs past the footer.
	bad = bytes.Clone(file)
	ft, start := footer(t, bad)
	p, n, err := ft.Vector(3, 24)
	if err != nil || n != 1 {
		t.Fatalf("record batch blocks: %d, %v", n, err)
	}
	binary.LittleEndian.PutUint64(bad[start+p+16:], uint64(len(bad)))
	_, err = CheckFile(bytes.NewReader(bad), int64(len(bad)), 1<<30)
	wantErr(t, err, "record batch 0", "run past the footer")
}

func TestMessageReader(t *testing.T) {
	col := int64s(1000)
	defer col.Release()
	stream := write(t, true, []arrow.Array{col})
	for _, tc := range []struct {
		name  string
		data  []byte
		limit int64
		want  []string // empty: reads
	}{
		{"good", stream, 1 << 20, nil},
		{"cut", stream[:len(stream)-100], 1 << 20, []string{"message 1 at byte", "bytes of body", "unexpected EOF"}},
		{"over the limit", stream, 4096, []string{"message 1 at byte", "body of 8000 bytes exceeds the limit of 4096 bytes"}},
		{"metadata length", append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, stream...), 1 << 20, []string{"message 0 at byte 0", "metadata length", "out of range"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			guard := NewAllocator(mem, tc.limit)
			m := NewMessageReader(bytes.NewReader(tc.data), guard, tc.limit)
			var err error
			var msgs int
			for err == nil {
				err = guard.Read(func() error {
					_, err := m.Message()
					return err
				})
				msgs++
			}
			m.Release()
			guard.Reclaim()
			if tc.want == nil {
				if err != io.EOF || msgs != 3 {
					t.Errorf("got %v after %d messages; want io.EOF after 2", err, msgs-1)
				}
				return
			}
			wantErr(t, err, tc.want...)
		})
	}
}

func TestAllocator(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	a := NewAllocator(mem, 1000)

	// A read within its bound keeps what it allocates.
	var kept []byte
	if err := a.Read(func() error { kept = a.Allocate(600); return nil }); err != nil {
		t.Fatal(err)
	}
	a.Reclaim()
	if got := mem.CurrentAlloc(); got != 600 {
		t.Errorf("after a good read and Reclaim, %d bytes allocated; want 600", got)
	}

	// Past the bound, Allocate panics before allocating; Read returns the
	// *LimitError; what the read left allocated waits for Reclaim.
	err := a.Read(func() error {
		a.Allocate(600)
		a.Allocate(600)
		return nil
	})
	var lim *LimitError
	if !errors.As(err, &lim) || lim.Size != 1200 || lim.Limit != 1000 {
		t.Fatalf("Read = %v; want a *LimitError of 1200 bytes over 1000", err)
	}
	if got := mem.CurrentAlloc(); got != 1200 {
		t.Errorf("after a failed read, %d bytes allocated; want 1200 (600 kept, 600 left)", got)
	}
	a.Reclaim()
	if got := mem.CurrentAlloc(); got != 600 {
		t.Errorf("after Reclaim, %d bytes allocated; want 600", got)
	}

	// Allow raises the bound of one read (by whole 64-byte buffers).
	if err := a.Read(func() error {
		a.Allow(1000)
		a.Free(a.Allocate(1900))
		return nil
	}); err != nil {
		t.Errorf("Read of 1900 bytes with 1000 allowed = %v; want nil", err)
	}
	if err := a.Read(func() error { a.Free(a.Allocate(1900)); return nil }); !errors.As(err, &lim) {
		t.Errorf("the next read of 1900 bytes = %v; want a *LimitError (Allow lasts one read)", err)
	}

	// Negative sizes and other panics become errors.
	if err := a.Read(func() error { a.Allocate(-5); return nil }); !errors.Is(err, ErrNegativeSize) {
		t.Errorf("Allocate(-5) in a read = %v; want ErrNegativeSize", err)
	}
	err = a.Read(func() error { panic("boom") })
	wantErr(t, err, "arrow-go panicked: boom")

	// Free from other goroutines while a read allocates.
	bufs := make(chan []byte, 100)
	var wg sync.WaitGroup
	wg.Go(func() {
		for b := range bufs {
			a.Free(b)
		}
	})
	for range 100 {
		if err := a.Read(func() error { bufs <- a.Allocate(8); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	close(bufs)
	wg.Wait()
	a.Free(kept)
	a.Reclaim()
}
