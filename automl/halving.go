package automl

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// SuccessiveHalving runs rungs of trials with more and more epochs, each
// rung keeping only the best 1/Eta of the one before: rung 0 is Configs
// trials proposed by Sampler, each fitted for MinEpochs epochs; rung i+1
// is the best floor(n_i / Eta) configurations of rung i (failed trials
// last), each fitted again from the start for Eta times the epochs of
// rung i (a fit restarts, so that steps fitted on their first epoch only,
// FitEpochs(1), are fitted as they would be in one run). It ends after the
// last rung with at least one trial, or the last within MaxEpochs.
//
// A rung starts when the rung before it has finished (ErrWait until
// then), so Parallel trials run at once within a rung. The best trial of
// a search is the best of the highest rung (see Result.Best).
//
// The zero value uses Sampler Random{}, Configs 27, MinEpochs 1, Eta 3,
// no MaxEpochs: rungs of 27, 9, 3 and 1 trials of 1, 3, 9 and 27 epochs.
type SuccessiveHalving struct {
	Sampler   Sampler
	Configs   int
	MinEpochs int
	Eta       int
	MaxEpochs int
}

// rung is one rung of the schedule.
type rung struct {
	first, n, epochs int // its first step, trials and epochs
}

func (h SuccessiveHalving) settings() SuccessiveHalving {
	if h.Sampler == nil {
		h.Sampler = Random{}
	}
	if h.Configs <= 0 {
		h.Configs = 27
	}
	if h.MinEpochs <= 0 {
		h.MinEpochs = 1
	}
	if h.Eta < 2 {
		h.Eta = 3
	}
	return h
}

// Rungs returns the trials and epochs of each rung.
func (h SuccessiveHalving) Rungs() (trials, epochs []int) {
	for _, r := range h.rungs() {
		trials, epochs = append(trials, r.n), append(epochs, r.epochs)
	}
	return trials, epochs
}

func (h SuccessiveHalving) rungs() []rung {
	h = h.settings()
	var out []rung
	first, n, e := 0, h.Configs, h.MinEpochs
	for n >= 1 && (h.MaxEpochs == 0 || e <= h.MaxEpochs) {
		out = append(out, rung{first: first, n: n, epochs: e})
		first += n
		n /= h.Eta
		if e > math.MaxInt/h.Eta {
			break
		}
		e *= h.Eta
	}
	return out
}

// Finite reports true: the rungs end.
func (SuccessiveHalving) Finite() bool { return true }

func (h SuccessiveHalving) String() string {
	s := h.settings()
	return fmt.Sprintf("SuccessiveHalving(%v, configs=%d, min_epochs=%d, eta=%d, max_epochs=%d)", s.Sampler, s.Configs, s.MinEpochs, s.Eta, s.MaxEpochs)
}

// Propose proposes step r.Step of the schedule.
func (h SuccessiveHalving) Propose(r Request) (Proposal, error) {
	s := h.settings()
	rungs := s.rungs()
	i := slices.IndexFunc(rungs, func(g rung) bool { return r.Step >= g.first && r.Step < g.first+g.n })
	if i < 0 {
		return Proposal{}, ErrExhausted
	}
	g := rungs[i]
	if i == 0 {
		inner := r
		inner.Trials = nil
		for _, t := range r.Trials {
			if t.Rung == 0 {
				inner.Trials = append(inner.Trials, t)
			}
		}
		p, err := s.Sampler.Propose(inner)
		if err != nil {
			return p, err
		}
		p.Epochs, p.Rung = g.epochs, 0
		return p, nil
	}
	var prev []Trial
	for _, t := range r.Trials {
		if t.Rung == i-1 && t.Step >= rungs[i-1].first && t.Step < rungs[i-1].first+rungs[i-1].n {
			prev = append(prev, t)
		}
	}
	if len(prev) < rungs[i-1].n {
		return Proposal{}, ErrWait
	}
	slices.SortStableFunc(prev, func(a, b Trial) int {
		switch {
		case better(a.Score, b.Score, r.Maximize):
			return -1
		case better(b.Score, a.Score, r.Maximize):
			return 1
		}
		return cmp.Compare(a.Step, b.Step)
	})
	return Proposal{Params: prev[r.Step-g.first].Params, Epochs: g.epochs, Rung: i}, nil
}
