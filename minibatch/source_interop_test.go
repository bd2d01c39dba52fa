package minibatch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// TestIPCInterop reads IPC files written by Arrow's JavaScript
// implementation (see testdata/interop/README.md).
func TestIPCInterop(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		open func(mem memory.Allocator) (flow.Source, func() error, error)
	}{
		{"file", func(mem memory.Allocator) (flow.Source, func() error, error) {
			s, err := minibatch.OpenIPCFile("testdata/interop/arrowjs.arrow", minibatch.WithAllocator(mem), minibatch.WithLabels("label"))
			if err != nil {
				return nil, nil, err
			}
			return s, s.Close, nil
		}},
		{"stream", func(mem memory.Allocator) (flow.Source, func() error, error) {
			s, err := minibatch.OpenIPCStream("testdata/interop/arrowjs.arrows", minibatch.WithAllocator(mem), minibatch.WithLabels("label"))
			if err != nil {
				return nil, nil, err
			}
			return s, s.Close, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src, closeSrc, err := tc.open(mem)
			if err != nil {
				t.Fatal(err)
			}
			defer closeSrc()
			row := 0
			for {
				b, err := src.Next(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				x := b.X.Column(0).(*array.Float64)
				id := b.X.Column(1).(*array.Int64)
				// arrow-js dictionary-encodes strings.
				dict, ok := b.X.Column(2).(*array.Dictionary)
				if !ok {
					t.Fatalf("name column is %v; want a dictionary of utf8", b.X.Column(2).DataType())
				}
				names := dict.Dictionary().(*array.String)
				label := b.Y.Column(0).(*array.Int32)
				for i := range int(b.Rows()) {
					got := fmt.Sprint(x.Value(i), id.Value(i), names.Value(dict.GetValueIndex(i)), label.Value(i))
					want := fmt.Sprint(1.5*float64(row), row, fmt.Sprint("row", row), row%3)
					if got != want {
						t.Fatalf("row %d: got %s; want %s", row, got, want)
					}
					row++
				}
				b.Release()
			}
			if row != 10 {
				t.Fatalf("read %d rows; want 10", row)
			}
		})
	}
}
