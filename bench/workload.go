package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// The reference workload's shape.
const (
	Rows      = 100_000
	Width     = 32
	BatchRows = 64
	Capacity  = 8
)

// featureType is the dense feature column's type.
var featureType = minibatch.TensorType(Width)

var schema = arrow.NewSchema([]arrow.Field{{Name: "features", Type: featureType}}, nil)

// Generator is a replayable source of rows × Width float32 features in
// batches of BatchRows, made on the fly: it holds no more than the batch
// it is building, whatever the number of rows.
type Generator struct {
	Mem  memory.Allocator
	Rows int64
	pos  int64
	seq  int64
}

var (
	_ flow.Source   = (*Generator)(nil)
	_ flow.Rewinder = (*Generator)(nil)
)

// Next returns the next batch, which the caller releases.
func (g *Generator) Next(ctx context.Context) (flow.Batch, error) {
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	if g.pos >= g.Rows {
		return flow.Batch{}, io.EOF
	}
	n := min(int64(BatchRows), g.Rows-g.pos)
	col, vals := newFeatures(g.Mem, n)
	for i := range vals {
		vals[i] = float32((g.pos*Width + int64(i)) % 1000)
	}
	rec := featuresFrom(col, n)
	b := flow.Batch{Seq: g.seq, X: rec}
	g.pos += n
	g.seq++
	return b, nil
}

// Replayable reports true: the generator can always start over.
func (g *Generator) Replayable() bool { return true }

// Rewind starts again from the first row.
func (g *Generator) Rewind() error {
	g.pos, g.seq = 0, 0
	return nil
}

// newFeatures allocates a rows × Width feature column to fill.
func newFeatures(mem memory.Allocator, rows int64) (arrow.Array, []float32) {
	return minibatch.AllocTensor(mem, int(rows), Width)
}

// featuresFrom wraps a filled feature column (taking over its reference)
// into a one-column record.
func featuresFrom(col arrow.Array, rows int64) arrow.RecordBatch {
	defer col.Release()
	return array.NewRecordBatch(schema, []arrow.Array{col}, rows)
}

// Materialize reads a Generator of rows into memory once, so that the
// benchmarks time the pipeline and not the data's creation.
func Materialize(ctx context.Context, mem memory.Allocator, rows int64) ([]flow.Batch, error) {
	g := &Generator{Mem: mem, Rows: rows}
	var out []flow.Batch
	for {
		b, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
}

// Replay is a replayable source over batches held in memory. Each batch it
// returns carries its own references.
type Replay struct {
	Batches []flow.Batch
	pos     int
}

// Next returns the next batch, retained for the caller.
func (r *Replay) Next(ctx context.Context) (flow.Batch, error) {
	if r.pos >= len(r.Batches) {
		return flow.Batch{}, io.EOF
	}
	b := r.Batches[r.pos]
	r.pos++
	b.Retain()
	return b, nil
}

// Rewind starts again from the first batch.
func (r *Replay) Rewind() error { r.pos = 0; return nil }

// Replayable reports true.
func (r *Replay) Replayable() bool { return true }

// Scale multiplies every feature by F into a new batch.
type Scale struct {
	Mem memory.Allocator
	F   float32
}

// Transform returns a new batch with every feature multiplied by F.
func (s Scale) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	col, ok := in.X.Column(0).(*array.FixedSizeList)
	if !ok {
		return flow.Batch{}, fmt.Errorf("bench: scale: column 0 is %v, want %v", in.X.Column(0).DataType(), featureType)
	}
	src := col.ListValues().(*array.Float32).Float32Values()
	off := col.Data().Offset() * Width
	src = src[off : off+col.Len()*Width]
	out, vals := newFeatures(s.Mem, int64(col.Len()))
	for i, v := range src {
		vals[i] = v * s.F
	}
	return flow.Batch{X: featuresFrom(out, int64(col.Len()))}, nil
}

// Spin burns CPU for D per batch and passes the batch on: the CPU-bound
// middle step. With D = 0 it does no work at all.
type Spin struct{ D time.Duration }

// Transform spins for D, then returns in, retained.
func (s Spin) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	if s.D > 0 {
		start := time.Now()
		x := uint64(1)
		for time.Since(start) < s.D {
			for range 64 {
				x = x*6364136223846793005 + 1442695040888963407
			}
		}
		sink.Store(x)
	}
	in.Retain()
	return in, nil
}

// Pipeline returns the reference three-step pipeline: ×2, Spin{spin}, ×0.5,
// queue capacity Capacity, with the given options on the middle step.
func Pipeline(mem memory.Allocator, spin time.Duration, middle ...flow.Option) (*flow.Pipeline, error) {
	return flow.NewPipeline([]flow.Node{
		flow.Named("double", Scale{mem, 2}),
		flow.Named("spin", Spin{spin}, middle...),
		flow.Named("half", Scale{mem, 0.5}),
	}, flow.QueueCapacity(Capacity))
}

// Drain runs p over src with r and releases every output batch; it
// returns the number of rows out.
func Drain(ctx context.Context, r flow.Runner, p *flow.Pipeline, src flow.Source) (int64, error) {
	s, err := r.Transform(ctx, p, src)
	if err != nil {
		return 0, err
	}
	var rows int64
	err = s.Each(ctx, func(b flow.Batch) error {
		rows += b.Rows()
		return nil
	})
	return rows, err
}

// Direct calls the steps of p one after the other on every batch of src,
// with no runner: the baseline of the overhead benchmark.
func Direct(ctx context.Context, p *flow.Pipeline, src flow.Source) (int64, error) {
	var rows int64
	nodes := p.Nodes()
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		for _, n := range nodes {
			out, err := n.Step.Transform(ctx, b)
			b.Release()
			if err != nil {
				return rows, err
			}
			b = out
		}
		rows += b.Rows()
		b.Release()
	}
}

// Channels runs the steps of p over src as the streaming engine lays them
// out, with nothing else: a goroutine reads src, one goroutine per step,
// linked by buffered channels of capacity Capacity, and the caller's
// goroutine consumes, with no cancellation, no statistics, no checks and
// no error handling (an error ends the run early, dropping batches). It is
// the floor that the Go runtime's channels and scheduler put under any
// such engine on this machine: the reference that the overhead benchmark
// reports the streaming engine against. Steps must not fail.
func Channels(ctx context.Context, p *flow.Pipeline, src flow.Source) int64 {
	type slot struct {
		b flow.Batch
		_ [16]byte // a cache line, like the engine's items
	}
	in := make(chan slot, Capacity)
	go func() {
		defer close(in)
		for {
			b, err := src.Next(ctx)
			if err != nil {
				return
			}
			in <- slot{b: b}
		}
	}()
	cur := in
	for _, n := range p.Nodes() {
		out := make(chan slot, Capacity)
		go func(s flow.Step, in <-chan slot) {
			defer close(out)
			for it := range in {
				res, err := s.Transform(ctx, it.b)
				it.b.Release()
				if err != nil {
					break
				}
				out <- slot{b: res}
			}
			for it := range in { // drain, so that the feeder ends
				it.b.Release()
			}
		}(n.Step, cur)
		cur = out
	}
	var rows int64
	for it := range cur {
		rows += it.b.Rows()
		it.b.Release()
	}
	return rows
}

// sink keeps Spin's arithmetic from being optimised away.
var sink atomic.Uint64
