package flow

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ints is a source of n one-row batches of an int64 column.
type ints struct {
	mem  memory.Allocator
	n, i int64
}

func (s *ints) Next(context.Context) (Batch, error) {
	if s.i >= s.n {
		return Batch{}, io.EOF
	}
	b := array.NewInt64Builder(s.mem)
	defer b.Release()
	b.Append(s.i)
	col := b.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int64}}, nil), []arrow.Array{col}, 1)
	s.i++
	return Batch{Seq: s.i - 1, X: rec}, nil
}

type keep struct{}

func (keep) Transform(_ context.Context, in Batch) (Batch, error) {
	in.Retain()
	return in, nil
}

// TestNextRacingCloseIsNotEOF plays the one interleaving of a Next that
// races Close that a test cannot time from outside: Stream.Next has seen
// the stream open, then Close runs to its end, then the engine's next
// runs. The run had produced batches that Close dropped, so the reader
// must hear ErrClosed, not io.EOF (the end of a stream that it did not
// read to the end), in both engines.
func TestNextRacingCloseIsNotEOF(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, e := range []Engine{Sequential, Streaming} {
		t.Run(e.String(), func(t *testing.T) {
			p, err := NewPipeline([]Node{Named("keep", keep{})})
			if err != nil {
				t.Fatal(err)
			}
			s, err := Runner{Engine: e, Allocator: mem}.Transform(ctx, p, &ints{mem: mem, n: 4})
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.Next(ctx) // one batch read, three not
			if err != nil {
				t.Fatal(err)
			}
			b.Release()
			if e == Streaming {
				select {
				case <-s.Done(): // the run has produced them all
				case <-ctx.Done():
					t.Fatal("the run never ended")
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			b, err = s.next(ctx) // what a Next that raced Close does next
			b.Release()
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("a Next racing Close after 1 of 4 batches: got %v; want ErrClosed", err)
			}
		})
	}
}
