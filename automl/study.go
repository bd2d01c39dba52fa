package automl

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
)

// A search numbers its trials by step, skipping the steps recorded in its
// repository when it starts; two searches of one study on one repository
// at once would number them alike. So the searches of a study that run at
// once in this process share a studyState: every step is claimed under
// its lock before it is proposed, so no two trials of the study have one
// step, and every trial that one of them records is added to the others'
// history (so that samplers and the budget see the whole study).

// studyKey names a study in a repository.
type studyKey struct {
	repo  any // the repository's identity (repoIdentity)
	study string
}

// studies are the studies that searches of this process run, each with
// the number of searches that hold it.
var studies struct {
	mu      sync.Mutex
	running map[studyKey]*studyState
}

// studyState is what the searches of one study, running at once in this
// process, share.
type studyState struct {
	search string // the searches' configuration (Trial.Search)
	users  int    // searches holding it; under studies.mu

	mu      sync.Mutex
	claimed map[int]bool  // steps claimed by any search: false while proposed, true while running
	done    []Trial       // recorded by any search since the state was made
	changed chan struct{} // closed (and replaced) when a trial is recorded or a running one given up
}

// repoIdentity returns what identifies repo among the repositories: the
// absolute directory of a DirRepository (two opened on one directory are
// one), else the value itself where it is comparable (a pointer, as every
// other repository of this package). A value that is not comparable
// cannot be recognised: it gets a key of its own, shared with no other
// search.
func repoIdentity(repo Repository) any {
	if d, ok := repo.(*DirRepository); ok {
		if abs, err := filepath.Abs(d.dir); err == nil {
			return "dir:" + abs
		}
		return "dir:" + filepath.Clean(d.dir)
	}
	if reflect.ValueOf(repo).Comparable() {
		return repo
	}
	return new(int)
}

// joinStudy returns the state of study in repo shared with the other
// searches of it that run now, and the function that leaves it. A search
// of another configuration (search) is refused with ErrMismatch, as the
// repository would refuse it once the first has recorded a trial.
func joinStudy(repo Repository, study, search string) (*studyState, func(), error) {
	key := studyKey{repoIdentity(repo), study}
	studies.mu.Lock()
	defer studies.mu.Unlock()
	st := studies.running[key]
	if st == nil {
		st = &studyState{search: search, claimed: map[int]bool{}, changed: make(chan struct{})}
		if studies.running == nil {
			studies.running = map[studyKey]*studyState{}
		}
		studies.running[key] = st
	} else if st.search != search {
		return nil, nil, fmt.Errorf("automl: search %q: another search of this study, of another configuration (search %s, this one is %s: another space, sampler or seed), is running on the same repository: %w",
			study, st.search, search, ErrMismatch)
	}
	st.users++
	return st, func() {
		studies.mu.Lock()
		defer studies.mu.Unlock()
		if st.users--; st.users == 0 {
			delete(studies.running, key)
		}
	}, nil
}

// broadcast wakes the searches that wait for the study to change; under
// st.mu.
func (st *studyState) broadcast() {
	close(st.changed)
	st.changed = make(chan struct{})
}

// pull merges into s's history the trials that the other searches
// recorded since s last looked; under st.mu.
func (st *studyState) pull(s *search, recorded map[int]bool) {
	for ; s.seen < len(st.done); s.seen++ {
		t := st.done[s.seen]
		if !recorded[t.Step] {
			recorded[t.Step] = true
			s.history = insertTrial(s.history, cloneTrial(t))
		}
	}
}

// claim merges the other searches' new trials into s's history, then,
// unless the budget is spent (the study's trials, recorded, running and
// being proposed, reach s's Trials), claims the first step that is
// neither recorded nor claimed. It returns the step and the number of
// trials running in the study; ok is false where the budget is spent.
func (st *studyState) claim(s *search, recorded map[int]bool) (step, running int, ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.pull(s, recorded)
	for _, r := range st.claimed {
		if r {
			running++
		}
	}
	if s.cfg.Trials > 0 && len(s.history)+len(st.claimed) >= s.cfg.Trials {
		return 0, running, false
	}
	for recorded[step] || hasKey(st.claimed, step) {
		step++
	}
	st.claimed[step] = false
	return step, running, true
}

func hasKey(m map[int]bool, k int) bool { _, ok := m[k]; return ok }

// start marks the claimed step as running.
func (st *studyState) start(step int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.claimed[step] = true
}

// drop gives up the claim of step, which was not proposed (the sampler
// waits, is exhausted or failed): no trial ran, nothing changed.
func (st *studyState) drop(step int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.claimed, step)
}

// release gives up the claim of step, whose trial ran but was not
// recorded (stopped, or not saved).
func (st *studyState) release(step int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.claimed, step)
	st.broadcast()
}

// record adds t, just saved, to the study's trials and ends its claim.
func (st *studyState) record(t Trial) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.claimed, t.Step)
	st.done = append(st.done, cloneTrial(t))
	st.broadcast()
}

// wait is asked by a search whose sampler waits for a trial to end, own
// of them its own: it returns whether another search recorded a trial
// since s last looked (then propose again), whether another search has a
// trial running, and the channel closed at the study's next change.
func (st *studyState) wait(s *search, own int) (fresh, others bool, changed <-chan struct{}) {
	st.mu.Lock()
	defer st.mu.Unlock()
	running := 0
	for _, r := range st.claimed {
		if r {
			running++
		}
	}
	return s.seen < len(st.done), running > own, st.changed
}
