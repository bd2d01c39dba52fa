package serve

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// JSON's -0 is zero, for unsigned columns as for the others; a negative
// number other than zero is still refused.
func TestJSONNegativeZeroUnsigned(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sc := arrow.NewSchema([]arrow.Field{{Name: "u", Type: arrow.PrimitiveTypes.Uint8}, {Name: "i", Type: arrow.PrimitiveTypes.Int32}}, nil)
	rec, _, err := decodeJSONRows([]byte(`[{"u":-0,"i":-0}]`), sc, mem)
	if err != nil {
		t.Fatalf("decode -0: %v", err)
	}
	if u := rec.Column(0).(*array.Uint8).Value(0); u != 0 {
		t.Errorf("u = %d; want 0", u)
	}
	rec.Release()
	if rec, _, err := decodeJSONRows([]byte(`[{"u":-1,"i":0}]`), sc, mem); err == nil {
		rec.Release()
		t.Error("decode of -1 into a uint8 column: no error")
	}
}
