package sourcetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
)

// Ctx returns a context that fails the test instead of letting it hang.
func Ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Table builds a table with float64 columns x0..x{cols-1}, an int64
// label column "y" and a string column "s" with some nulls, cut into
// records of per rows.
func Table(mem memory.Allocator, rows, per, cols int) (*arrow.Schema, []arrow.RecordBatch) {
	fields := make([]arrow.Field, 0, cols+2)
	for c := range cols {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("x%d", c), Type: arrow.PrimitiveTypes.Float64})
	}
	fields = append(fields,
		arrow.Field{Name: "y", Type: arrow.PrimitiveTypes.Int64},
		arrow.Field{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true})
	schema := arrow.NewSchema(fields, nil)
	var recs []arrow.RecordBatch
	for lo := 0; lo < rows; lo += per {
		hi := min(lo+per, rows)
		b := array.NewRecordBuilder(mem, schema)
		for r := lo; r < hi; r++ {
			for c := range cols {
				b.Field(c).(*array.Float64Builder).Append(float64(r)*0.5 + float64(c))
			}
			b.Field(cols).(*array.Int64Builder).Append(int64(r % 10))
			if r%7 == 3 {
				b.Field(cols + 1).AppendNull()
			} else {
				b.Field(cols + 1).(*array.StringBuilder).Append("row" + strings.Repeat("z", r%3))
			}
		}
		recs = append(recs, b.NewRecordBatch())
		b.Release()
	}
	return schema, recs
}

func ReleaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// Drain reads src to io.EOF, checks Seq and Epoch, and returns the
// batches (owned by the caller).
func Drain(t *testing.T, ctx context.Context, src flow.Source) []flow.Batch {
	t.Helper()
	var out []flow.Batch
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			ReleaseBatches(out)
			t.Fatalf("Next: %v", err)
		}
		if b.Seq != int64(len(out)) || b.Epoch != 0 {
			t.Errorf("batch %d: Seq %d, Epoch %d; want Seq %d, Epoch 0", len(out), b.Seq, b.Epoch, len(out))
		}
		out = append(out, b)
	}
}

func ReleaseBatches(bs []flow.Batch) {
	for _, b := range bs {
		b.Release()
	}
}

// NextErr reads src until an error other than nil and returns it, releasing
// the batches.
func NextErr(ctx context.Context, src flow.Source) error {
	for {
		b, err := src.Next(ctx)
		if err != nil {
			return err
		}
		b.Release()
	}
}

// ConcatColumn returns the values of column name, found in X or Y of the
// batches, as one array owned by the caller.
func ConcatColumn(t *testing.T, mem memory.Allocator, bs []flow.Batch, name string) arrow.Array {
	t.Helper()
	var parts []arrow.Array
	for _, b := range bs {
		found := false
		for _, rec := range []arrow.RecordBatch{b.X, b.Y} {
			if rec == nil {
				continue
			}
			if idx := rec.Schema().FieldIndices(name); len(idx) == 1 {
				parts = append(parts, rec.Column(idx[0]))
				found = true
			}
		}
		if !found {
			t.Fatalf("batch %d has no column %q", b.Seq, name)
		}
	}
	arr, err := array.Concatenate(parts, mem)
	if err != nil {
		t.Fatalf("concatenate %q: %v", name, err)
	}
	return arr
}

// ConcatRecordColumn returns column name of recs as one array.
func ConcatRecordColumn(t *testing.T, mem memory.Allocator, recs []arrow.RecordBatch, name string) arrow.Array {
	t.Helper()
	var parts []arrow.Array
	for _, r := range recs {
		idx := r.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("record has no column %q", name)
		}
		parts = append(parts, r.Column(idx[0]))
	}
	arr, err := array.Concatenate(parts, mem)
	if err != nil {
		t.Fatalf("concatenate %q: %v", name, err)
	}
	return arr
}

// SameRows checks that the batches hold, column by column, the same values
// as want (read by Arrow's own reader), and that inputs land in X and
// labels in Y.
func SameRows(t *testing.T, mem memory.Allocator, got []flow.Batch, want []arrow.RecordBatch, inputs, labels []string) {
	t.Helper()
	var gotRows, wantRows int64
	for _, b := range got {
		gotRows += b.Rows()
		if b.X == nil || int(b.X.NumCols()) != len(inputs) {
			t.Fatalf("batch %d: X has %v; want columns %v", b.Seq, b.X.Schema(), inputs)
		}
		for i, name := range inputs {
			if b.X.ColumnName(i) != name {
				t.Errorf("batch %d: X column %d is %q; want %q", b.Seq, i, b.X.ColumnName(i), name)
			}
		}
		switch {
		case len(labels) == 0 && b.Y != nil:
			t.Errorf("batch %d: Y = %v; want nil", b.Seq, b.Y.Schema())
		case len(labels) > 0 && (b.Y == nil || int(b.Y.NumCols()) != len(labels)):
			t.Fatalf("batch %d: Y lacks labels %v", b.Seq, labels)
		case len(labels) > 0 && b.Y.NumRows() != b.X.NumRows():
			t.Errorf("batch %d: Y has %d rows, X %d", b.Seq, b.Y.NumRows(), b.X.NumRows())
		}
	}
	for _, r := range want {
		wantRows += r.NumRows()
	}
	if gotRows != wantRows {
		t.Fatalf("got %d rows; want %d", gotRows, wantRows)
	}
	if gotRows == 0 {
		return
	}
	for _, name := range append(append([]string{}, inputs...), labels...) {
		g := ConcatColumn(t, mem, got, name)
		w := ConcatRecordColumn(t, mem, want, name)
		if !array.Equal(g, w) {
			t.Errorf("column %q differs from Arrow's reader:\n got %v\nwant %v", name, g, w)
		}
		g.Release()
		w.Release()
	}
}

// WantErr checks that err is not nil and its text holds every part.
func WantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want one containing %q", parts)
	}
	t.Logf("error: %v", err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
