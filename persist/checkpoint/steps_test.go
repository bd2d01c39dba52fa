package checkpoint_test

import (
	"context"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist/checkpoint"
	"github.com/penstock-ml/penstock/steps"
)

// rowCounter is a suffix that learns the number of rows it saw.
type rowCounter struct{ rows int64 }

func (r *rowCounter) Fit(_ context.Context, in flow.Batch) error { r.rows += in.Rows(); return nil }
func (r *rowCounter) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

// With the library's own steps and the default registry: pack → standard
// scaler → checkpoint → counter; the hit restores a scaler that scales new
// data as the fitted one does.
func TestLibraryStepsRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) }) // after the sources' Close
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	data := func(n int, off float64) *minibatch.Memory {
		a, b := make([]float64, n), make([]float64, n)
		for i := range a {
			a[i], b[i] = float64(i)+off, math.Sin(float64(i))*10
		}
		m, err := minibatch.FromSlices(8, []minibatch.Column{minibatch.Float64s("a", a), minibatch.Float64s("b", b)}, nil, minibatch.WithAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	cache, err := checkpoint.Open(t.TempDir(), checkpoint.ModuleVersion("test"))
	if err != nil {
		t.Fatal(err)
	}
	build := func() *checkpoint.Pipeline {
		sc, err := steps.NewStandardScaler(steps.ScaleColumn("x"))
		if err != nil {
			t.Fatal(err)
		}
		full, err := flow.NewPipeline([]flow.Node{
			flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: []string{"a", "b"}}),
			flow.Named("scale", sc),
			flow.Named("count", &rowCounter{}),
		})
		if err != nil {
			t.Fatal(err)
		}
		p, err := checkpoint.Split(cache, full, "count")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	transform := func(p *checkpoint.Pipeline) []float32 {
		full, err := p.Full()
		if err != nil {
			t.Fatal(err)
		}
		s, err := flow.Runner{Allocator: mem}.Transform(ctx, full, data(20, 3))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var out []float32
		for {
			b, err := s.Next(ctx)
			if errors.Is(err, io.EOF) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			m, err := minibatch.Features(b, "x")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m.Data...)
			b.Release()
		}
	}
	var want []float32
	for i, e := range []flow.Engine{flow.Sequential, flow.Streaming} {
		p := build()
		res, err := p.Fit(ctx, flow.Runner{Engine: e, Allocator: mem}, data(100, 0))
		if err != nil {
			t.Fatal(err)
		}
		if res.Hit != (i == 1) {
			t.Fatalf("fit %d (%v): hit=%v; want %v", i, e, res.Hit, i == 1)
		}
		if got := p.Suffix().Step("count").(*rowCounter).rows; got != 100 {
			t.Errorf("fit %d: the suffix saw %d rows; want 100", i, got)
		}
		got := transform(p)
		if i == 0 {
			want = got
			continue
		}
		if len(got) != len(want) || len(got) != 40 {
			t.Fatalf("transform after the hit: %d values; want %d", len(got), len(want))
		}
		for j := range got {
			if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
				t.Fatalf("value %d after the hit: %v; after the miss %v", j, got[j], want[j])
			}
		}
	}
}
