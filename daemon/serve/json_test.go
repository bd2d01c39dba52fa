package serve

import (
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// The answer's columns: X's, then Y's that X has no column of the name
// of; tensors are arrays, NaN and infinities null, nulls null.
func TestEncodeJSONRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tensor, vals := minibatch.AllocTensor(mem, 2, 2)
	copy(vals, []float32{1.5, float32(math.NaN()), -2, float32(math.Inf(1))})
	fb := array.NewFloat64Builder(mem)
	fb.AppendValues([]float64{0.1, 0}, []bool{true, false})
	score := fb.NewArray()
	fb.Release()
	sb := array.NewStringBuilder(mem)
	sb.AppendValues([]string{`a"b`, "c"}, nil)
	label := sb.NewArray()
	sb.Release()
	x := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{
		{Name: "x", Type: tensor.DataType()}, {Name: "score", Type: score.DataType(), Nullable: true},
	}, nil), []arrow.Array{tensor, score}, 2)
	y := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{
		{Name: "score", Type: score.DataType(), Nullable: true}, {Name: "label", Type: label.DataType()},
	}, nil), []arrow.Array{score, label}, 2)
	tensor.Release()
	score.Release()
	label.Release()
	b := flow.Batch{X: x, Y: y}
	defer b.Release()

	for _, tc := range []struct {
		wrapped bool
		want    string
	}{
		{false, `[{"x":[1.5,null],"score":0.1,"label":"a\"b"},{"x":[-2,null],"score":null,"label":"c"}]` + "\n"},
		{true, `{"rows":[{"x":[1.5,null],"score":0.1,"label":"a\"b"},{"x":[-2,null],"score":null,"label":"c"}]}` + "\n"},
	} {
		got, err := encodeJSONRows([]flow.Batch{b}, tc.wrapped)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("wrapped %v: %s; want %s", tc.wrapped, got, tc.want)
		}
	}
}
