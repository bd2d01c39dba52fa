package daemon

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
)

// burst sends n one-row inputs as fast as it can, then returns at once.
type burst struct {
	name string
	n    int
	mem  memory.Allocator
}

func (b burst) Name() string { return b.name }

func (b burst) Run(ctx context.Context, _ []byte, _ <-chan struct{}, out chan<- source.Input) error {
	for i := range b.n {
		bld := array.NewFloat32Builder(b.mem)
		bld.Append(float32(i))
		col := bld.NewArray()
		bld.Release()
		rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float32}}, nil), []arrow.Array{col}, 1)
		col.Release()
		select {
		case out <- source.Input{Batch: flow.Batch{X: rec}, Pos: []byte(strconv.Itoa(i))}:
		case <-ctx.Done():
			rec.Release()
			return context.Cause(ctx)
		}
	}
	return nil
}

func (burst) Durable([]byte) error { return nil }

// The multiplexer hands over every input of a source before it hears of
// the source's end, however the goroutines are scheduled: the drain's
// final cut comes after the last batch, which it covers. (A source that
// returned right after its last send once had its end overtake that send.)
func TestMuxEndAfterInputs(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for round := range 300 {
		m := newMux([]source.Source{burst{"a", 3, mem}, burst{"b", 2, mem}}, 0, nil)
		var wg sync.WaitGroup
		m.start(ctx, nil, make(chan struct{}), &wg)
		got := 0
		for {
			b, err := m.Next(ctx)
			if errors.Is(err, flow.ErrCut) {
				if !m.final {
					continue
				}
				if got != 5 {
					t.Fatalf("round %d: the final cut came after %d of 5 inputs", round, got)
				}
				continue
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got++
			b.Release()
		}
		if got != 5 || string(m.pos[0]) != "2" || string(m.pos[1]) != "1" {
			t.Fatalf("round %d: %d inputs, positions %q %q", round, got, m.pos[0], m.pos[1])
		}
		wg.Wait()
		m.discard()
	}
}
