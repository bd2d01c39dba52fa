package automl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/penstock-ml/penstock/hparams"
)

// Repository records the trials of searches, so that a search can be
// resumed and its history read. Implementations: NewMemoryRepository (in
// memory) and OpenDir (a directory of JSON files); a SQL database
// implements it with one table keyed by (study, ID, a unique row id).
//
// Save records a finished trial. It never replaces or changes a trial
// already recorded, its own or another search's: two searches that share
// a repository each keep all their trials, even two trials with the same
// ID (both ran it). Trials returns every trial recorded for the study, in
// any order; the search orders them by step and keeps one trial per ID.
// Both may be called concurrently, by several searches at once.
type Repository interface {
	Save(ctx context.Context, t Trial) error
	Trials(ctx context.Context, study string) ([]Trial, error)
}

// ErrMismatch is wrapped by the error of a search whose repository holds
// trials of the same study made by a search of another configuration (a
// different space, sampler or seed): give the new search another Study
// or another repository.
var ErrMismatch = errors.New("automl: the repository holds trials of another search under this study")

// MemoryRepository is a Repository in memory, safe for concurrent use.
// It keeps copies of the trials it is given.
type MemoryRepository struct {
	mu     sync.Mutex
	trials []Trial
}

var _ Repository = (*MemoryRepository)(nil)

// NewMemoryRepository returns an empty repository in memory.
func NewMemoryRepository() *MemoryRepository { return &MemoryRepository{} }

// Save appends a copy of t.
func (m *MemoryRepository) Save(ctx context.Context, t Trial) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.Study == "" || t.ID == "" {
		return fmt.Errorf("automl: memory repository: trial of step %d has no study or no ID", t.Step)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.trials = append(m.trials, cloneTrial(t))
	return nil
}

// Trials returns copies of the trials of study, in the order saved.
func (m *MemoryRepository) Trials(ctx context.Context, study string) ([]Trial, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Trial
	for _, t := range m.trials {
		if t.Study == study {
			out = append(out, cloneTrial(t))
		}
	}
	return out, nil
}

func cloneTrial(t Trial) Trial {
	t.Params = maps.Clone(t.Params)
	t.Scores = slices.Clone(t.Scores)
	t.EpochsRun = slices.Clone(t.EpochsRun)
	return t
}

// history orders trials by step (then by start, then ID), keeps the first
// of each ID, checks that they all belong to the search search, and
// converts their hyperparameters to the types of space (a repository may
// give back a float where an int was saved).
func history(trials []Trial, search string, space hparams.Space) ([]Trial, error) {
	slices.SortStableFunc(trials, func(a, b Trial) int {
		if a.Step != b.Step {
			return a.Step - b.Step
		}
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	seen := map[string]bool{}
	var out []Trial
	for _, t := range trials {
		if t.Search != search {
			return nil, fmt.Errorf("automl: study %q: trial %s (step %d) was made by search %s, this search is %s: %w", t.Study, t.ID, t.Step, t.Search, search, ErrMismatch)
		}
		if seen[t.ID] {
			continue
		}
		seen[t.ID] = true
		for k, v := range t.Params {
			d, ok := space[k]
			if !ok {
				return nil, fmt.Errorf("automl: study %q: trial %s (step %d) has the parameter %q, which is not in the space: %w", t.Study, t.ID, t.Step, k, ErrMismatch)
			}
			c, err := hparams.Convert(v, d.Type())
			if err != nil {
				return nil, fmt.Errorf("automl: study %q: trial %s (step %d), parameter %q: %w", t.Study, t.ID, t.Step, k, err)
			}
			t.Params[k] = c
		}
		out = append(out, t)
	}
	return out, nil
}
