package persist

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/internal/ipcguard"
)

// This file holds the form of a tensor in a blob: an Arrow IPC stream of
// one non-null column named after the tensor (float32, float64, int64 or
// utf8), in record batches of at most chunkElements values, each buffer
// compressed with zstd. The schema's metadata "penstock.shape" holds the
// shape as JSON ("[10,65]"), so that a reader without the manifest can
// reshape it.

// chunkElements is the most values of one record batch of a tensor blob:
// a reader holds one batch at a time.
const chunkElements = 1 << 20

// shapeKey is the schema metadata key of a tensor's shape.
const shapeKey = "penstock.shape"

func arrowType(d dtype) arrow.DataType {
	switch d {
	case dtFloat32:
		return arrow.PrimitiveTypes.Float32
	case dtFloat64:
		return arrow.PrimitiveTypes.Float64
	case dtInt64:
		return arrow.PrimitiveTypes.Int64
	}
	return arrow.BinaryTypes.String
}

func shapeString(shape []int64) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = strconv.FormatInt(d, 10)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// encodeTensor returns the IPC stream of t, called name.
func encodeTensor(name string, t tensor, mem memory.Allocator) ([]byte, error) {
	md := arrow.NewMetadata([]string{shapeKey}, []string{shapeString(t.shape)})
	schema := arrow.NewSchema([]arrow.Field{{Name: name, Type: arrowType(t.dtype)}}, &md)
	var buf bytes.Buffer
	buf.Grow(int(t.len()*max(t.dtype.width(), 8)) + 1<<12) // the compressed size, or a little more
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema), ipc.WithZstd(), ipc.WithAllocator(mem))
	n := t.len()
	write := func(col arrow.Array) error {
		defer col.Release()
		rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
		defer rec.Release()
		return w.Write(rec)
	}
	for lo := int64(0); lo < n || (n == 0 && lo == 0); lo += chunkElements {
		hi := min(lo+chunkElements, n)
		var err error
		switch d := t.data.(type) {
		case []float32:
			err = write(fixedArray(arrowType(t.dtype), arrow.Float32Traits.CastToBytes(d[lo:hi]), hi-lo))
		case []float64:
			err = write(fixedArray(arrowType(t.dtype), arrow.Float64Traits.CastToBytes(d[lo:hi]), hi-lo))
		case []int64:
			err = write(fixedArray(arrowType(t.dtype), arrow.Int64Traits.CastToBytes(d[lo:hi]), hi-lo))
		case []string:
			b := array.NewStringBuilder(mem)
			b.AppendValues(d[lo:hi], nil)
			err = write(b.NewArray())
			b.Release()
		default:
			err = fmt.Errorf("tensor of %T", t.data)
		}
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		if n == 0 {
			break
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	return buf.Bytes(), nil
}

// fixedArray wraps b, n values of the fixed-width type dt, with no copy.
func fixedArray(dt arrow.DataType, b []byte, n int64) arrow.Array {
	data := array.NewData(dt, int(n), []*memory.Buffer{nil, memory.NewBufferBytes(b)}, nil, 0, 0)
	defer data.Release()
	return array.MakeFromData(data)
}

// decodeTensor reads the IPC stream blob of the tensor name, whose
// manifest entry says it has dtype d and shape (already checked against
// the limits): anything else in the blob is an error. Decoding allocates
// from mem, bounded per record batch by what the declared shape needs, so
// a small blob that inflates beyond it fails before the memory is asked
// for; maxString bounds the bytes of a string tensor.
func decodeTensor(name string, blob []byte, d dtype, shape []int64, mem memory.Allocator, maxString int64) (tensor, error) {
	n := elements(shape)
	bound := n * d.width()
	if d == dtString {
		bound = maxString + 8*(n+1)
	}
	const slack = 1 << 12 // schema, validity-less buffers rounded up
	g := ipcguard.NewAllocator(mem, bound+slack)
	// Every value is copied out (strings cloned): no batch of the reader is
	// handed out, so what its reads left allocated can all be freed once it
	// is released (deferred below, so released first).
	defer g.ReleaseReader(false)
	msgs := ipcguard.NewMessageReader(bytes.NewReader(blob), g, int64(len(blob)))
	var rd *ipc.Reader
	err := g.Read(func() (err error) {
		rd, err = ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(g))
		return err
	})
	if err != nil {
		return tensor{}, fmt.Errorf("not an Arrow IPC stream: %w", err)
	}
	defer rd.Release()
	fields := rd.Schema().Fields()
	if len(fields) != 1 || fields[0].Name != name || !arrow.TypeEqual(fields[0].Type, arrowType(d)) {
		return tensor{}, fmt.Errorf("the stream's schema is %v; want one %s column %q", rd.Schema(), arrowType(d), name)
	}
	out := tensor{dtype: d, shape: shape}
	var got int64
	var strBytes int64
	// Allocate the declared size at once where the blob is large enough
	// to plausibly hold it (16 times its bytes: random weights do not
	// compress); else grow as values come, so that a small blob whose
	// manifest claims a large tensor costs little before it fails.
	prealloc := 0
	if d != dtString && n*d.width() <= 16*int64(len(blob))+1<<20 {
		prealloc = int(n)
	}
	f32 := make([]float32, 0, prealloc*boolInt(d == dtFloat32))
	f64 := make([]float64, 0, prealloc*boolInt(d == dtFloat64))
	i64 := make([]int64, 0, prealloc*boolInt(d == dtInt64))
	var strs []string
	for batch := 0; ; batch++ {
		var ok bool
		err := g.Read(func() error {
			ok = rd.Next()
			return rd.Err()
		})
		if err != nil {
			return tensor{}, fmt.Errorf("batch %d: %w", batch, err)
		}
		if !ok {
			break
		}
		rec := rd.RecordBatch()
		if rec.NumCols() != 1 {
			return tensor{}, fmt.Errorf("batch %d has %d columns, want 1", batch, rec.NumCols())
		}
		col := rec.Column(0)
		m := int64(col.Len())
		if m > n-got {
			return tensor{}, fmt.Errorf("batch %d: more than the %d values of shape %v", batch, n, shapeString(shape))
		}
		if err := validArray(col); err != nil {
			return tensor{}, fmt.Errorf("batch %d: %w", batch, err)
		}
		switch c := col.(type) {
		case *array.Float32:
			f32 = append(f32, c.Float32Values()...)
		case *array.Float64:
			f64 = append(f64, c.Float64Values()...)
		case *array.Int64:
			i64 = append(i64, c.Int64Values()...)
		case *array.String:
			for i := range c.Len() {
				s := c.Value(i)
				strBytes += int64(len(s))
				if strBytes > maxString {
					return tensor{}, fmt.Errorf("batch %d: the strings pass the limit of %d bytes", batch, maxString)
				}
				if !utf8.ValidString(s) {
					return tensor{}, fmt.Errorf("batch %d: string %d is not UTF-8", batch, i)
				}
				strs = append(strs, strings.Clone(s))
			}
		default:
			return tensor{}, fmt.Errorf("batch %d: a %s column", batch, col.DataType())
		}
		got += m
	}
	if got != n {
		return tensor{}, fmt.Errorf("%d values, want the %d of shape %s (truncated?)", got, n, shapeString(shape))
	}
	switch d {
	case dtFloat32:
		out.data = nonNil(f32)
	case dtFloat64:
		out.data = nonNil(f64)
	case dtInt64:
		out.data = nonNil(i64)
	default:
		out.data = nonNil(strs)
	}
	return out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// validArray checks a decoded column: no nulls, buffers and offsets
// consistent (arrow-go's ValidateFull, whose panics on corrupt offsets
// become errors).
func validArray(col arrow.Array) (err error) {
	if col.NullN() != 0 {
		return fmt.Errorf("%d nulls; a tensor has none", col.NullN())
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid array (arrow-go's validation panicked: %v)", r)
		}
	}()
	if err := array.ValidateFull(col); err != nil {
		return err
	}
	return nil
}

// errTruncated is wrapped by the error of a blob shorter than its
// manifest says.
var errTruncated = errors.New("truncated")

// readAllLimited reads r to its end, refusing more than limit bytes.
func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than %d bytes", limit)
	}
	return b, nil
}
