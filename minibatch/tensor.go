package minibatch

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// Pack returns a record with the numeric columns cols of rec packed into one
// FixedSizeList<float32> column named outName, of width len(cols): row r of
// the new column holds the values of cols, in the order given, at row r,
// converted to float32. The other columns of rec are kept, in their order and
// retained (not copied); the packed column comes last. Schema metadata is
// kept.
//
// Supported column types: int8 to int64, uint8 to uint64, float16, float32
// and float64. The error names a missing column, a column of another type (and
// its type), or a column with nulls (a tensor cannot hold them: fill them
// first).
//
// rec is borrowed; the caller owns the returned record and releases it. Cost:
// one buffer of rows × len(cols) float32 allocated from mem (nil means
// memory.DefaultAllocator), filled in O(rows × len(cols)).
func Pack(rec arrow.RecordBatch, mem memory.Allocator, outName string, cols ...string) (arrow.RecordBatch, error) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	if len(cols) == 0 {
		return nil, errors.New("minibatch: pack: no columns to pack, want at least one")
	}
	if outName == "" {
		return nil, errors.New("minibatch: pack: output column name is empty")
	}
	schema := rec.Schema()
	packed := make([]bool, schema.NumFields())
	srcs := make([]arrow.Array, len(cols))
	for j, name := range cols {
		idx := schema.FieldIndices(name)
		if len(idx) == 0 {
			return nil, fmt.Errorf("minibatch: pack: no column %q (the batch has %s)", name, columnNames(schema))
		}
		if len(idx) > 1 {
			return nil, fmt.Errorf("minibatch: pack: column %q appears %d times in the batch; names must be unique", name, len(idx))
		}
		i := idx[0]
		if packed[i] {
			return nil, fmt.Errorf("minibatch: pack: column %q is listed twice", name)
		}
		packed[i] = true
		col := rec.Column(i)
		if !isNumeric(col.DataType()) {
			return nil, fmt.Errorf("minibatch: pack: column %q has type %s, want a numeric type (integer or float)", name, col.DataType())
		}
		if n := col.NullN(); n > 0 {
			return nil, fmt.Errorf("minibatch: pack: column %q has %d nulls; a tensor cannot hold nulls, fill them first", name, n)
		}
		srcs[j] = col
	}

	kept := schema.NumFields() - len(cols)
	fields := make([]arrow.Field, 0, kept+1)
	out := make([]arrow.Array, 0, kept+1)
	for i := range schema.NumFields() { // Schema.Fields would copy them all
		if packed[i] {
			continue
		}
		f := schema.Field(i)
		if f.Name == outName {
			return nil, fmt.Errorf("minibatch: pack: output column %q would duplicate a column that is kept; pack it too or choose another name", outName)
		}
		fields = append(fields, f)
		out = append(out, rec.Column(i))
	}

	rows, width := int(rec.NumRows()), len(cols)
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(rows * width * arrow.Float32SizeBytes)
	vals := arrow.Float32Traits.CastFromBytes(buf.Bytes())
	for j, col := range srcs {
		packColumn(vals, col, j, width)
	}
	child := array.NewData(arrow.PrimitiveTypes.Float32, rows*width, []*memory.Buffer{nil, buf}, nil, 0, 0)
	buf.Release()
	dt := arrow.FixedSizeListOf(int32(width), arrow.PrimitiveTypes.Float32)
	data := array.NewData(dt, rows, []*memory.Buffer{nil}, []arrow.ArrayData{child}, 0, 0)
	child.Release()
	tensor := array.MakeFromData(data)
	data.Release()
	defer tensor.Release()

	fields = append(fields, arrow.Field{Name: outName, Type: dt})
	out = append(out, tensor)
	md := schema.Metadata()
	return array.NewRecordBatch(arrow.NewSchema(fields, &md), out, rec.NumRows()), nil
}

// packColumn writes col into column j of the row-major rows × width matrix
// vals.
func packColumn(vals []float32, col arrow.Array, j, width int) {
	put := func(n int, at func(i int) float32) {
		for i := range n {
			vals[i*width+j] = at(i)
		}
	}
	n := col.Len()
	switch c := col.(type) {
	case *array.Float32:
		v := c.Float32Values()
		put(n, func(i int) float32 { return v[i] })
	case *array.Float64:
		v := c.Float64Values()
		put(n, func(i int) float32 { return float32(v[i]) })
	case *array.Float16:
		put(n, func(i int) float32 { return c.Value(i).Float32() })
	case *array.Int8:
		put(n, func(i int) float32 { return float32(c.Value(i)) })
	case *array.Int16:
		put(n, func(i int) float32 { return float32(c.Value(i)) })
	case *array.Int32:
		put(n, func(i int) float32 { return float32(c.Value(i)) })
	case *array.Int64:
		put(n, func(i int) float32 { return float32(c.Value(i)) })
	case *array.Uint8:
		put(n, func(i int) float32 { return float32(c.Value(i)) })
	case *array.Uint16:
		put(n, func(i int) float32 { return float32(c.Value(i)) })
	case *array.Uint32:
		put(n, func(i int) float32 { return float32(c.Value(i)) })
	case *array.Uint64:
		put(n, func(i int) float32 { return float32(c.Value(i)) })
	default:
		panic(fmt.Sprintf("minibatch: pack: unexpected column type %s", col.DataType())) // types are checked by Pack
	}
}

func columnNames(s *arrow.Schema) string {
	if s.NumFields() == 0 {
		return "no columns"
	}
	names := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		names[i] = fmt.Sprintf("%q", f.Name)
	}
	return "columns " + strings.Join(names, ", ")
}

// PackStep is a flow.Step that packs the columns Cols of a batch's X into
// one FixedSizeList<float32> column named Out (see Pack); Y, Seq and Epoch
// pass through (Y retained). Empty Cols packs every column of X, in
// order, each of which must then be numeric: X becomes the one tensor
// column. Mem is the allocator of the packed buffer; nil means the run's,
// flow.Allocator(ctx).
// Transform does not change the step, so replicas may share one PackStep.
type PackStep struct {
	Out  string
	Cols []string
	Mem  memory.Allocator
}

var _ flow.Step = (*PackStep)(nil)

// Transform borrows in and returns a batch that the caller owns: X packed
// (cost of Pack), Y retained.
func (s *PackStep) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if ctx.Err() != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	if in.X == nil {
		return flow.Batch{}, errors.New("minibatch: pack: batch has no X")
	}
	mem := s.Mem
	if mem == nil {
		mem = flow.Allocator(ctx)
	}
	cols := s.Cols
	if len(cols) == 0 {
		cols = make([]string, in.X.NumCols())
		for i, f := range in.X.Schema().Fields() {
			cols[i] = f.Name
		}
	}
	x, err := Pack(in.X, mem, s.Out, cols...)
	if err != nil {
		return flow.Batch{}, err
	}
	out := flow.Batch{Seq: in.Seq, Epoch: in.Epoch, X: x, Y: in.Y}
	if in.Y != nil {
		in.Y.Retain()
	}
	return out, nil
}

// Float32View returns the values of a FixedSizeList<float32> column as one
// row-major []float32 of rows × width values, with no copy: the slice aliases
// the column's Arrow buffer (writes through it change the column) and is
// valid only while the caller holds a reference to col. A sliced column
// (non-zero offset) gives the view of its own rows. The error names the type
// when col is not a FixedSizeList<float32>, and reports nulls (in the list
// or in its values), which a dense view cannot represent. Cost: O(1), plus
// O(rows × width) only when the values carry a validity bitmap.
func Float32View(col arrow.Array) (values []float32, rows, width int, err error) {
	fsl, ok := col.(*array.FixedSizeList)
	if !ok {
		return nil, 0, 0, fmt.Errorf("minibatch: float32 view: column has type %s, want fixed_size_list<float32>", col.DataType())
	}
	child, ok := fsl.ListValues().(*array.Float32)
	if !ok {
		return nil, 0, 0, fmt.Errorf("minibatch: float32 view: column has type %s, want fixed_size_list<float32>", col.DataType())
	}
	if n := fsl.NullN(); n > 0 {
		return nil, 0, 0, fmt.Errorf("minibatch: float32 view: column has %d null rows; a dense view cannot hold nulls", n)
	}
	rows, width = fsl.Len(), int(fsl.DataType().(*arrow.FixedSizeListType).Len())
	start := fsl.Offset() * width
	end := start + rows*width
	if child.NullN() > 0 {
		for i := start; i < end; i++ {
			if child.IsNull(i) {
				return nil, 0, 0, fmt.Errorf("minibatch: float32 view: value %d of row %d is null; a dense view cannot hold nulls", (i-start)%width, (i-start)/width)
			}
		}
	}
	all := child.Float32Values()
	return all[start:end:end], rows, width, nil
}
