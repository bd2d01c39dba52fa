package minibatch

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TensorType returns the type of a dense feature column of the given width:
// FixedSizeList<float32>.
func TensorType(width int) *arrow.FixedSizeListType {
	return arrow.FixedSizeListOf(int32(width), arrow.PrimitiveTypes.Float32)
}

// AllocTensor allocates from mem (nil means memory.DefaultAllocator) a
// FixedSizeList<float32> column of rows rows and width values each, and
// returns it with its values buffer as one zeroed []float32 of rows × width,
// row-major, for the caller to fill. The caller owns the column (Release)
// and finishes writing before it shares the column: Arrow arrays are
// immutable once shared. Cost: one buffer of rows × width × 4 bytes.
func AllocTensor(mem memory.Allocator, rows, width int) (*array.FixedSizeList, []float32) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	buf := memory.NewResizableBuffer(mem)
	defer buf.Release()
	buf.Resize(rows * width * arrow.Float32SizeBytes)
	vals := arrow.Float32Traits.CastFromBytes(buf.Bytes())
	clear(vals)
	values := array.NewData(arrow.PrimitiveTypes.Float32, rows*width, []*memory.Buffer{nil, buf}, nil, 0, 0)
	defer values.Release()
	data := array.NewData(TensorType(width), rows, []*memory.Buffer{nil}, []arrow.ArrayData{values}, 0, 0)
	defer data.Release()
	return array.NewFixedSizeListData(data), vals
}
