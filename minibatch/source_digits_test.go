package minibatch_test

import (
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/minibatch"
)

var digitsPath = filepath.Join("..", "examples", "data", "digits.csv.gz")

// The digits file has no header. Read with the default header, its first
// row would become column names ("0", "0", "5", …) and one row would go
// missing: that is an error that says what to do. Asked for explicitly,
// the header is taken, and its duplicate names are the error. Without a
// header, every row is read.
func TestDigitsHeader(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	_, err := minibatch.OpenCSV(digitsPath, minibatch.WithAllocator(mem))
	wantErr(t, err, `"`+digitsPath+`"`, "line 1", "all numbers", "WithHeader(false)")

	_, err = minibatch.OpenCSV(digitsPath, minibatch.WithAllocator(mem), minibatch.WithHeader(true))
	wantErr(t, err, "line 1", `header columns 1 and 2 are both named "0"`)

	src, err := minibatch.OpenCSV(digitsPath, minibatch.WithAllocator(mem), minibatch.WithHeader(false))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := srcCtx(t)
	for pass := range 2 {
		var rows int64
		for {
			b, err := src.Next(ctx)
			if err != nil {
				if err != io.EOF {
					t.Fatal(err)
				}
				break
			}
			rows += b.Rows()
			b.Release()
		}
		if rows != 1797 {
			t.Errorf("pass %d: %d rows; want 1797", pass, rows)
		}
		if n, name := src.Schema().NumFields(), src.Schema().Field(64).Name; n != 65 || name != "c64" {
			t.Errorf("pass %d: %d columns, the last %q; want 65, the last \"c64\"", pass, n, name)
		}
		if err := src.Rewind(); err != nil {
			t.Fatal(err)
		}
	}
}

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
	src, err := minibatch.OpenCSV(digitsPath,
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
