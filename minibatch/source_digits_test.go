package minibatch_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/minibatch"
)

// TestDigits reads the UCI handwritten-digits table shipped in
// examples/data (gzip, no header) through the CSV source.
func TestDigits(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	names := make([]string, 65)
	for i := range 64 {
		names[i] = fmt.Sprintf("px%d_%d", i/8, i%8)
	}
	names[64] = "digit"
	src, err := minibatch.OpenCSV(filepath.Join("..", "examples", "data", "digits.csv.gz"),
		minibatch.WithAllocator(mem), minibatch.WithHeader(false), minibatch.WithColumnNames(names...),
		minibatch.WithLabels("digit"), minibatch.WithBatchRows(256))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := drainSource(t, srcCtx(t), src)
	defer releaseBatches(got)

	var rows int64
	classes := map[int64]int{}
	for _, b := range got {
		rows += b.Rows()
		if b.X.NumCols() != 64 {
			t.Fatalf("batch %d: %d features; want 64", b.Seq, b.X.NumCols())
		}
		for i, f := range b.X.Schema().Fields() {
			if f.Type != arrow.PrimitiveTypes.Int64 {
				t.Fatalf("feature %d has type %v; want int64", i, f.Type)
			}
			col := b.X.Column(i).(*array.Int64)
			for j := range col.Len() {
				if v := col.Value(j); v < 0 || v > 16 || col.IsNull(j) {
					t.Fatalf("batch %d row %d feature %d = %d; want 0..16", b.Seq, j, i, v)
				}
			}
		}
		y := b.Y.Column(0).(*array.Int64)
		for j := range y.Len() {
			classes[y.Value(j)]++
		}
	}
	if rows != 1797 {
		t.Errorf("%d rows; want 1797", rows)
	}
	if len(classes) != 10 {
		t.Errorf("%d classes %v; want 10", len(classes), classes)
	}
	for d := range int64(10) {
		if classes[d] < 170 || classes[d] > 190 {
			t.Errorf("digit %d: %d rows; want about 180", d, classes[d])
		}
	}
}
