package steps

import (
	"fmt"
	"math/rand/v2"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
)

// This file holds the saved state of GaussianNoise and Window
// (persist.Stater): the position of the noise's generator, the values a
// window carries between batches.

var (
	_ persist.Stater = (*GaussianNoise)(nil)
	_ persist.Stater = (*Window)(nil)
)

func stateNewGaussianNoise(spec persist.Spec) (flow.Step, error) {
	column, err := spec.State.String("column")
	if err != nil {
		return nil, err
	}
	seed, err := spec.State.Uint64("seed")
	if err != nil {
		return nil, err
	}
	return NewGaussianNoise(column, 0, seed) // "stddev" is set from the Params
}

// MarshalState writes "column", "seed", "stream", "replicas" and the
// state of the PCG generator, "rng", so that a loaded step draws what the
// saved one would have drawn next.
func (g *GaussianNoise) MarshalState(w *persist.StateWriter) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	w.String("column", g.column)
	w.Uint64("seed", g.seed)
	w.Uint64("stream", g.stream)
	w.Uint64("replicas", g.replicas)
	w.Binary("rng", g.pcg)
	return nil
}

// UnmarshalState reads the generator's state that MarshalState wrote.
func (g *GaussianNoise) UnmarshalState(r *persist.StateReader) error {
	stream, err := r.Uint64("stream")
	if err != nil {
		return err
	}
	replicas, err := r.Uint64("replicas")
	if err != nil {
		return err
	}
	pcg := new(rand.PCG)
	if err := r.Binary("rng", pcg); err != nil {
		return fmt.Errorf("steps.GaussianNoise: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stream, g.replicas, g.pcg = stream, replicas, pcg
	g.rng = rand.New(g.pcg)
	return nil
}

func stateNewWindow(spec persist.Spec) (flow.Step, error) {
	column, err := spec.State.String("column")
	if err != nil {
		return nil, err
	}
	k, _ := spec.Params["k"].(int)
	return NewWindow(column, k)
}

// MarshalState writes "column" and what the fit path carries to the next
// batch: the float32 tensor "carry" (at most k values), "last_seq",
// "last_epoch" and "have" (whether carry belongs to that batch).
func (w *Window) MarshalState(sw *persist.StateWriter) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	sw.String("column", w.column)
	sw.Float32s("carry", w.carry)
	sw.Int64("last_seq", w.lastSeq)
	sw.Int64("last_epoch", int64(w.lastEpoch))
	sw.Bool("have", w.have)
	return nil
}

// UnmarshalState reads what MarshalState wrote.
func (w *Window) UnmarshalState(r *persist.StateReader) error {
	carry, err := r.Float32s("carry")
	if err != nil {
		return err
	}
	seq, err := r.Int64("last_seq")
	if err != nil {
		return err
	}
	epoch, err := r.Int("last_epoch")
	if err != nil {
		return err
	}
	have, err := r.Bool("have")
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(carry) > w.k {
		return fmt.Errorf("steps.Window: %d carried values, more than k = %d", len(carry), w.k)
	}
	w.carry, w.lastSeq, w.lastEpoch, w.have = carry, seq, epoch, have
	if len(carry) == 0 {
		w.carry = nil
	}
	return nil
}
