package parquet

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestOneValuePerRow: a record whose column holds more values than the
// record has rows (which arrow-go's record accepts) is refused, naming the
// column and both counts; one with a value per row passes.
func TestOneValuePerRow(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewInt64Builder(mem)
	b.AppendValues([]int64{1, 2, 3}, nil)
	col := b.NewArray()
	b.Release()
	defer col.Release()
	sc := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)
	for _, tc := range []struct {
		rows int64
		want string
	}{
		{3, ""},
		{2, "column 0 (n) holds 3 values in a batch of 2 rows; want one per row"},
	} {
		rec := array.NewRecordBatch(sc, []arrow.Array{col}, tc.rows)
		err := oneValuePerRow(rec)
		rec.Release()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d rows: %v; want nil", tc.rows, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%d rows: %v; want an error containing %q", tc.rows, err, tc.want)
		}
	}
}
