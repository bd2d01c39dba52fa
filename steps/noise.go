package steps

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
)

// This file holds GaussianNoise, a train-only augmentation.

// GaussianNoise adds independent normal noise of standard deviation
// "stddev" to every value of a tensor column (FixedSizeList<float32>) of
// X, on the fit path only: FitTransform returns the noisy batch, Transform
// passes the batch through, so inference sees clean data. The other
// columns of X, and Y, pass through.
//
// The noise comes from a math/rand/v2 PCG seeded with the seed given to
// NewGaussianNoise: the same seed and stream give the same noise in both
// engines. The generator's state is the step's state: Copy copies it (the
// copy draws what the original would), Reset re-seeds it. A replica for a
// replicated fit (Replica) draws from its own stream (the seed, and the
// replica's number), so a replicated fit is reproducible but differs from
// an unreplicated one; Merge has nothing to fold.
//
// Hyperparameters: "stddev" (float64, 0 or more; space Uniform(0, 0.5),
// widened to Uniform(0, stddev) for a larger stddev, so that the space
// holds the step's own value and hparams.Set of hparams.Get succeeds).
// FitTransform is called from one goroutine at a time
// (flow.Fitter's contract) and Transform is safe for concurrent use.
// Cost: one pass over the column and one normal draw per value.
type GaussianNoise struct {
	column string
	stddev float64
	seed   uint64

	mu       sync.Mutex // guards rng and replicas
	pcg      *rand.PCG
	rng      *rand.Rand
	replicas uint64 // Replicas made so far, for their streams
	stream   uint64 // this value's stream: 0, or a replica's number
}

var (
	_ flow.FitTransformer = (*GaussianNoise)(nil)
	_ flow.Merger         = (*GaussianNoise)(nil)
	_ flow.Copier         = (*GaussianNoise)(nil)
	_ flow.Resetter       = (*GaussianNoise)(nil)
	_ hparams.Tunable     = (*GaussianNoise)(nil)
	_ hparams.Spacer      = (*GaussianNoise)(nil)
)

// NewGaussianNoise returns the step that adds noise of standard deviation
// stddev to the tensor column column of X, drawn from a PCG seeded with
// seed. The error names a stddev that is negative or not finite, or an
// empty column name.
func NewGaussianNoise(column string, stddev float64, seed uint64) (*GaussianNoise, error) {
	if column == "" {
		return nil, fmt.Errorf("steps: NewGaussianNoise: empty column name")
	}
	if err := noiseCheckStddev(stddev); err != nil {
		return nil, fmt.Errorf("steps: NewGaussianNoise: %w", err)
	}
	g := &GaussianNoise{column: column, stddev: stddev, seed: seed}
	g.reseed()
	return g, nil
}

func noiseCheckStddev(s float64) error {
	if !(s >= 0) || math.IsInf(s, 0) {
		return fmt.Errorf("stddev %v, want a finite number, 0 or more", s)
	}
	return nil
}

func (g *GaussianNoise) reseed() {
	g.pcg = rand.NewPCG(g.seed, 0x9e3779b97f4a7c15^g.stream)
	g.rng = rand.New(g.pcg)
}

// Transform passes in through: no noise at inference.
func (g *GaussianNoise) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	return wrapPass(in), nil
}

// FitTransform returns in with noise added to the column.
func (g *GaussianNoise) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	x, err := minibatch.Features(in, g.column)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("steps.GaussianNoise: fit: %w", err)
	}
	out := minibatch.NewMatrix(flow.Allocator(ctx), x.Rows, x.Cols)
	defer out.Release()
	g.mu.Lock()
	for i, v := range x.Data {
		out.Data[i] = v + float32(g.stddev*g.rng.NormFloat64())
	}
	g.mu.Unlock()
	rec := out.Record(g.column)
	defer rec.Release()
	return in.WithX(wrapReplaceColumn(in.X, g.column, rec.Column(0))), nil
}

// wrapReplaceColumn returns a new record like rec (borrowed) with the column
// called name replaced by col (retained by the record). The caller owns
// it.
func wrapReplaceColumn(rec arrow.RecordBatch, name string, col arrow.Array) arrow.RecordBatch {
	i := rec.Schema().FieldIndices(name)[0]
	cols := make([]arrow.Array, rec.NumCols())
	fields := make([]arrow.Field, rec.NumCols())
	copy(fields, rec.Schema().Fields())
	for j := range cols {
		cols[j] = rec.Column(j)
	}
	cols[i] = col
	fields[i].Type = col.DataType()
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(col.Len()))
}

// Replica returns a GaussianNoise with g's parameters and seed that draws
// from a stream of its own (the n-th replica made from g gets stream n).
func (g *GaussianNoise) Replica() flow.Step {
	g.mu.Lock()
	g.replicas++
	n := g.replicas
	g.mu.Unlock()
	r := &GaussianNoise{column: g.column, stddev: g.stddev, seed: g.seed, stream: g.stream<<16 | n}
	r.reseed()
	return r
}

// Merge has nothing to fold: the noise learns nothing. It checks that the
// replicas are GaussianNoise steps.
func (g *GaussianNoise) Merge(replicas []flow.Step) error {
	for i, r := range replicas {
		if _, ok := r.(*GaussianNoise); !ok {
			return fmt.Errorf("steps.GaussianNoise: merge: replica %d is a %T", i, r)
		}
	}
	return nil
}

// Copy returns a GaussianNoise in g's state: the copy's generator is at
// the same point of the same stream, so it draws what g would.
func (g *GaussianNoise) Copy() flow.Step {
	g.mu.Lock()
	defer g.mu.Unlock()
	pcg := *g.pcg
	c := &GaussianNoise{column: g.column, stddev: g.stddev, seed: g.seed, stream: g.stream, replicas: g.replicas, pcg: &pcg}
	c.rng = rand.New(c.pcg)
	return c
}

// Reset re-seeds the generator: the next fit draws the noise of a fresh
// step.
func (g *GaussianNoise) Reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reseed()
}

// Params returns "stddev".
func (g *GaussianNoise) Params() hparams.Values { return hparams.Values{"stddev": g.stddev} }

// SetParams sets "stddev", 0 or more.
func (g *GaussianNoise) SetParams(p hparams.Values) error {
	s := g.stddev
	for k, v := range p {
		f, ok := v.(float64)
		if k != "stddev" || !ok {
			return fmt.Errorf("steps.GaussianNoise: no float parameter %q (%T); it has \"stddev\"", k, v)
		}
		s = f
	}
	if err := noiseCheckStddev(s); err != nil {
		return fmt.Errorf("steps.GaussianNoise: %w", err)
	}
	g.stddev = s
	return nil
}

// Space returns "stddev": Uniform(0, 0.5), or Uniform(0, stddev) where
// the step's stddev is larger.
func (g *GaussianNoise) Space() hparams.Space {
	return hparams.Space{"stddev": hparams.Uniform(0, max(0.5, g.stddev))}
}
