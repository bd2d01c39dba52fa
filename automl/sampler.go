package automl

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"

	"github.com/penstock-ml/penstock/hparams"
)

// Sampler proposes the trials of a search, one step at a time.
//
// Propose is called by the search's coordinating goroutine only, never
// concurrently, for steps 0, 1, 2, … (a resumed search skips the steps
// already recorded). A proposal must depend only on the Request: the step,
// the seed and the trials finished so far, so that a search started again
// with the same seed proposes the same trials where their history is the
// same. It returns ErrExhausted when there is nothing left to propose (a
// grid that has been enumerated) and ErrWait when the next proposal needs
// trials that are still running (a rung of successive halving); any other
// error ends the search.
type Sampler interface {
	Propose(r Request) (Proposal, error)
	// String names the sampler and its settings; it is part of the
	// search's identity (Trial.Search).
	String() string
}

// Request is what a Sampler knows when it proposes a step.
type Request struct {
	Space    hparams.Space
	Step     int
	Seed     uint64
	Maximize bool    // the metric's HigherIsBetter
	Trials   []Trial // every finished trial (done or failed), by step
	Running  int     // trials still running
}

// Rand returns the random source of the request's step: a PCG seeded from
// the search's seed and the step, so that each step draws the same values
// whatever happened before it.
func (r Request) Rand() *rand.Rand {
	return hparams.NewRand(mix(r.Seed, uint64(r.Step)))
}

// mix combines two numbers into a seed (splitmix64 of their combination).
func mix(a, b uint64) uint64 {
	z := a ^ (b+0x9e3779b97f4a7c15)*0xbf58476d1ce4e5b9
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// ErrExhausted, returned by Sampler.Propose, says that the sampler has
// nothing left to propose: the search ends when the running trials do.
var ErrExhausted = errors.New("automl: sampler exhausted")

// ErrWait, returned by Sampler.Propose, says that the next proposal needs
// the results of the trials that are running: the search proposes again
// when one finishes.
var ErrWait = errors.New("automl: sampler waits for running trials")

// Random samples every step independently from the space
// (hparams.Space.Sample with the step's Request.Rand).
type Random struct{}

// Propose draws one sample.
func (Random) Propose(r Request) (Proposal, error) {
	v, err := r.Space.Sample(r.Rand())
	if err != nil {
		return Proposal{}, fmt.Errorf("automl: random: %w", err)
	}
	return Proposal{Params: v}, nil
}

func (Random) String() string { return "Random" }

// Grid proposes every combination of a finite space, once each, in the
// order of hparams.Space.Grid (which counts only active combinations),
// then ErrExhausted. A space with a distribution that is not finite is an
// error wrapping hparams.ErrNotFinite: override it with a Choice.
type Grid struct {
	mu    sync.Mutex
	space string // the space enumerated in grid
	grid  []hparams.Values
}

// Propose returns combination r.Step of the grid.
func (g *Grid) Propose(r Request) (Proposal, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if key := r.Space.String(); g.grid == nil || g.space != key {
		seq, err := r.Space.Grid()
		if err != nil {
			return Proposal{}, fmt.Errorf("automl: grid: %w", err)
		}
		g.grid = g.grid[:0]
		for v := range seq {
			g.grid = append(g.grid, v)
		}
		g.space = key
	}
	if r.Step >= len(g.grid) {
		return Proposal{}, ErrExhausted
	}
	return Proposal{Params: maps.Clone(g.grid[r.Step])}, nil
}

// Len returns the number of combinations of the last space enumerated.
func (g *Grid) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.grid)
}

func (g *Grid) String() string { return "Grid" }

// Finite reports true: a grid ends.
func (g *Grid) Finite() bool { return true }
