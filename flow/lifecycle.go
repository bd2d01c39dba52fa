package flow

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// The operations that reach every step of a tree, each one walk (see Walk).

// hasFitPath reports whether s has a fit path of its own.
func hasFitPath(s Step) bool {
	switch s.(type) {
	case Fitter, FitTransformer:
		return true
	}
	return false
}

// errFound stops a walk that has found what it looked for.
var errFound = errors.New("found")

// fittable reports whether fitting s differs from transforming it: s is a
// leaf with Fit or FitTransform, or a composite with one of them whose fit
// path differs on its own (see FitPather) or reaches an active fittable
// child. A composite without a fit path (a frozen wrapper) hides its
// children's, and so does a child frozen with FitEpochs(0).
func fittable(s Step) bool {
	if !hasFitPath(s) {
		return false
	}
	if _, ok := s.(Composite); !ok {
		return true
	}
	err := Walk(s, func(v Visit) error {
		st := v.Node.Step
		switch {
		case v.Depth > 0 && !fitReaches(v), !hasFitPath(st):
			return SkipChildren
		case ownsFitPath(st):
			return errFound
		case v.Depth > 0:
			if _, ok := st.(Composite); !ok {
				return errFound
			}
		}
		return nil
	})
	return errors.Is(err, errFound)
}

// ownsFitPath reports whether s is a composite whose fit path differs from
// its transform path whatever its children do.
func ownsFitPath(s Step) bool {
	fp, ok := s.(FitPather)
	return ok && fp.FitPathDiffers()
}

// fitReaches reports whether fitting v's parent fits v: v is active, not
// frozen with FitEpochs(0), and not a child that its parent's fit path
// leaves alone (see FitPather).
func fitReaches(v Visit) bool { return fitReachesAt(v, -1) }

// fitReachesAt is fitReaches for a batch of the given epoch: v is also not
// past its FitEpochs. An epoch below 0 is any epoch.
func fitReachesAt(v Visit, epoch int) bool {
	limit := configOf(v.Node.opts).fitLimit()
	if !v.Active || limit == 0 || (epoch >= 0 && limit >= 0 && epoch >= limit) {
		return false
	}
	fp, ok := v.Parent.(FitPather)
	return !ok || fp.FitsChild(v.Node.Name)
}

// fittableLeaves walks the part of s that fitting reaches and calls fn for
// each fittable leaf, with its path below s.
func fittableLeaves(s Step, fn func(Visit) error) error { return fittableLeavesAt(s, -1, fn) }

// fittableLeavesAt is fittableLeaves for a batch of the given epoch (below
// 0: any): it leaves out the nodes past their FitEpochs.
func fittableLeavesAt(s Step, epoch int, fn func(Visit) error) error {
	return Walk(s, func(v Visit) error {
		if (v.Depth > 0 && !fitReachesAt(v, epoch)) || !fittable(v.Node.Step) {
			return SkipChildren
		}
		if _, ok := v.Node.Step.(Composite); ok {
			return nil
		}
		return fn(v)
	})
}

// CanMerge reports whether s can be fitted as several replicas: every
// fittable leaf of its active tree is a Merger (a step that learns nothing
// is shared by the replicas). The error names the first step that is not.
func CanMerge(s Step) error {
	return fittableLeaves(s, func(v Visit) error {
		if _, ok := v.Node.Step.(Merger); !ok {
			what := fmt.Sprintf("step %q (%T)", v.Path, v.Node.Step)
			if len(v.Path) == 0 { // s itself, which the caller names
				what = fmt.Sprintf("%T", v.Node.Step)
			}
			return fmt.Errorf("%s does not implement flow.Merger, so its replicas' states cannot be merged", what)
		}
		return nil
	})
}

// rebuild returns a tree like root in which every node that descend
// accepts is rebuilt: a leaf is replaced by leaf(v), a composite by
// WithChildren of its rebuilt children. Nodes that descend refuses are
// kept as they are, shared with root. made receives every new step, parents
// after their children.
//
// With memo not nil, a step value that root holds at several places is
// rebuilt once: the later places get what the first became, so the new
// tree shares where root shares. memo maps the steps of root (by identity)
// to their rebuilt steps.
func rebuild(root Step, descend func(Visit) bool, leaf func(Visit) (Step, error), made func(Visit, Step), memo map[any]Step) (Step, error) {
	type frame struct {
		keep     bool
		same     Step // already rebuilt at another place (memo)
		children []Node
	}
	var stack []*frame
	var out Step
	w := walker{onPath: map[any]bool{}}
	w.pre = func(v Visit) error {
		f := &frame{}
		stack = append(stack, f)
		if memo != nil {
			if key, ok := identity(v.Node.Step); ok && memo[key] != nil {
				f.keep, f.same = true, memo[key]
				return SkipChildren
			}
		}
		if f.keep = !descend(v); f.keep {
			return SkipChildren
		}
		return nil
	}
	w.post = func(v Visit) error {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		s := v.Node.Step
		if f.same != nil {
			s = f.same
		}
		if !f.keep {
			var err error
			if c, ok := s.(Composite); ok {
				err = guard(func() error {
					nc, err := c.WithChildren(f.children)
					if err == nil && isNil(nc) {
						err = errors.New("its WithChildren method returned nil")
					}
					s = nc
					return err
				})
				if err != nil {
					return stepError(v.Path, c, "rebuild", nil, err)
				}
			} else if s, err = leaf(v); err != nil {
				return err
			}
			if made != nil {
				made(v, s)
			}
			if key, ok := identity(v.Node.Step); ok && memo != nil {
				memo[key] = s
			}
		}
		if len(stack) == 0 {
			out = s
			return nil
		}
		parent := stack[len(stack)-1]
		parent.children = append(parent.children, v.Node.WithStep(s))
		return nil
	}
	if err := w.visit(Visit{Node: Node{Step: root}, Active: true}); err != nil {
		return nil, err
	}
	return out, nil
}

// replicate returns a replica of s for one replica of a replicated stage:
// each fittable leaf of the active tree is replaced by its Merger.Replica
// and the composites above them are rebuilt; everything else is shared.
// fresh receives the new steps, which the replica's owner sets up. Check
// CanMerge first. The replica is for batches of the given epoch (below 0:
// any): a node past its FitEpochs is shared, as a step that learns
// nothing, with what the replicas of the epochs it fitted taught it.
func replicate(s Step, epoch int, fresh func(Visit, Step)) (Step, error) {
	return rebuild(s,
		func(v Visit) bool { return (v.Depth == 0 || fitReachesAt(v, epoch)) && fittable(v.Node.Step) },
		func(v Visit) (Step, error) {
			return makeStep(v, "replica", v.Node.Step.(Merger).Replica)
		}, fresh, nil) // a step at two places gets two replicas: each place's share is merged
}

// mergeReplicas merges, for every fittable leaf of s, the matching leaf of
// each replica (made by replicate for the same epoch) into it.
func mergeReplicas(s Step, replicas []Step, epoch int) error {
	var leaves []Visit
	if err := fittableLeavesAt(s, epoch, func(v Visit) error { leaves = append(leaves, v); return nil }); err != nil {
		return err
	}
	parts := make([][]Step, len(leaves))
	for j, r := range replicas {
		i := 0
		err := fittableLeavesAt(r, epoch, func(v Visit) error {
			if i >= len(leaves) || !v.Path.Equal(leaves[i].Path) {
				return fmt.Errorf("penstock: merge: replica %d (%T) is not a replica of %T: it has step %q", j, r, s, v.Path)
			}
			parts[i] = append(parts[i], v.Node.Step)
			i++
			return nil
		})
		if err == nil && i != len(leaves) {
			err = fmt.Errorf("penstock: merge: replica %d (%T) has %d fittable steps, want %d", j, r, i, len(leaves))
		}
		if err != nil {
			return err
		}
	}
	for i, v := range leaves {
		m := v.Node.Step.(Merger)
		if err := guard(func() error { return m.Merge(parts[i]) }); err != nil {
			return stepError(v.Path, m, "merge", nil, err)
		}
	}
	return nil
}

// Copy returns a copy of the step tree s, learned state included, that
// shares nothing that Fit, Setup or Teardown can change with s: every leaf
// that is a Copier is copied, every composite is rebuilt with WithChildren
// from its copied children (active or not). A leaf that is not a Copier is
// shared, which is safe only for a step that has no state: one that neither
// fits, nor sets up, nor tears down. Copy returns an error naming any other.
// A step value that s holds at several places (tied weights) is copied
// once, so the copy holds one value at those places too.
//
// Copy is how trials get their own pipeline, and how a serving copy of a
// model in training is published. The copy is not set up. Copy a tree that
// no run is changing: before a run, after it, or at a consistent cut of a
// fit (Runner.OnEpoch), where a Copier copies the host state of a set-up
// step (a step whose state lives on a device must download it first, or
// refuse).
func Copy(s Step) (Step, error) {
	if isNil(s) {
		return nil, errors.New("penstock: copy: nil step")
	}
	return rebuild(s, func(Visit) bool { return true }, func(v Visit) (Step, error) {
		st := v.Node.Step
		c, ok := st.(Copier)
		if !ok {
			if stateful(st) {
				return nil, fmt.Errorf("penstock: copy: step %q (%T) has state (it fits, sets up or tears down) but does not implement flow.Copier", v.Path, st)
			}
			return st, nil
		}
		return makeStep(v, "copy", c.Copy)
	}, nil, map[any]Step{})
}

// makeStep calls a step's method that makes a step (Replica, Copy), turning a
// panic or a nil result into the error of the step at v.
func makeStep(v Visit, op string, method func() Step) (Step, error) {
	var out Step
	err := guard(func() error {
		if out = method(); isNil(out) {
			return fmt.Errorf("its %s method returned nil", op)
		}
		return nil
	})
	if err != nil {
		return nil, stepError(v.Path, v.Node.Step, op, nil, err)
	}
	return out, nil
}

// stateful reports whether a leaf may hold something that a run changes.
func stateful(s Step) bool {
	switch s.(type) {
	case Fitter, FitTransformer, Setupper, Teardowner, Merger:
		return true
	}
	return false
}

// Reset makes every step of the tree s forget what it learned (see
// Resetter), so that the next Fit starts over. It changes nothing and
// returns an error naming the step if a fittable leaf is not a Resetter.
func Reset(s Step) error {
	var resetters []Resetter
	err := Walk(s, func(v Visit) error {
		st := v.Node.Step
		if r, ok := st.(Resetter); ok {
			resetters = append(resetters, r)
			return nil
		}
		if _, ok := st.(Composite); !ok && hasFitPath(st) {
			return fmt.Errorf("penstock: reset: step %q (%T) learns but does not implement flow.Resetter; start from a fresh copy instead", v.Path, st)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range resetters {
		r.Reset()
	}
	return nil
}

// setupLog sets up the active steps of trees, each step value once, and
// tears down what it set up, in reverse order.
type setupLog struct {
	seen map[any]bool
	done []setUpStep
}

type setUpStep struct {
	path Path
	step Step
}

// setup sets up every active step of root not yet seen, parents first;
// base is root's path in the run. On error, what this call set up stays in
// the log, for teardown.
func (l *setupLog) setup(ctx context.Context, root Step, base Path) error {
	return l.each(root, base, func(path Path, s Step) error { return l.setupOne(ctx, path, s) })
}

// each calls fn, parents first, for every active step value of root not
// yet seen by the log (a value held at several places once, its subtree
// with it), with its path in the run (base, then its path below root).
func (l *setupLog) each(root Step, base Path, fn func(Path, Step) error) error {
	if l.seen == nil {
		l.seen = map[any]bool{}
	}
	return Walk(root, func(v Visit) error {
		if !v.Active {
			return SkipChildren
		}
		s := v.Node.Step
		if key, ok := identity(s); ok {
			if l.seen[key] {
				return SkipChildren
			}
			l.seen[key] = true
		}
		return fn(join(base, v.Path), s)
	})
}

// setupOne sets up s alone (not its children) and logs it for teardown.
func (l *setupLog) setupOne(ctx context.Context, path Path, s Step) error {
	if su, ok := s.(Setupper); ok {
		if err := guard(func() error { return su.Setup(ctx) }); err != nil {
			return stepError(path, s, "setup", nil, runError(ctx, err))
		}
	}
	l.done = append(l.done, setUpStep{path, s})
	return nil
}

// teardown tears down what was set up, in reverse order, and empties the
// log. ctx is no longer cancelled for Teardown.
func (l *setupLog) teardown(ctx context.Context) error {
	var errs []error
	for i := len(l.done) - 1; i >= 0; i-- {
		d := l.done[i]
		td, ok := d.step.(Teardowner)
		if !ok {
			continue
		}
		if err := guard(func() error { return td.Teardown(context.WithoutCancel(ctx)) }); err != nil {
			errs = append(errs, stepError(d.path, d.step, "teardown", nil, err))
		}
	}
	l.done = nil
	return errors.Join(errs...)
}

// Setup sets up every active step of the tree s, each step value once,
// parents before children, as a runner does at the start of a run. If one
// fails, those already set up are torn down and the error is returned.
// Call it before using a pipeline directly as a step; call Teardown after.
func Setup(ctx context.Context, s Step) error {
	var l setupLog
	if err := l.setup(ctx, s, nil); err != nil {
		_ = l.teardown(ctx)
		return err
	}
	return nil
}

// Teardown tears down every active step of the tree s, each step value
// once, children before parents, and returns their errors joined.
func Teardown(ctx context.Context, s Step) error {
	var l setupLog
	err := l.each(s, nil, func(path Path, st Step) error {
		l.done = append(l.done, setUpStep{path, st})
		return nil
	})
	return errors.Join(err, l.teardown(ctx))
}

func join(base, p Path) Path {
	if len(base) == 0 {
		return p
	}
	out := make(Path, 0, len(base)+len(p))
	return append(append(out, base...), p...)
}

// ErrInUse is wrapped by the error of a run that would share a step with a
// run still going (see Runner).
var ErrInUse = errors.New("penstock: step in use by another run")

// claims are the step values that running runs hold: -1 for a run that
// may change the step (fits it, sets it up or tears it down), n > 0 for n
// runs that only read it (transform with a fitted step).
var claims = struct {
	sync.Mutex
	m map[any]int
}{m: map[any]int{}}

// claimTree claims every active step of root that a run could change or
// read while another changes it, all or none, and returns the release.
func claimTree(root Step, fitting bool) (func(), error) {
	type want struct {
		key       any
		exclusive bool
		v         Visit
	}
	var wants []want
	seen := map[any]bool{}
	err := Walk(root, func(v Visit) error {
		if !v.Active {
			return SkipChildren
		}
		s := v.Node.Step
		key, ok := identity(s)
		if !ok || seen[key] {
			return nil
		}
		seen[key] = true
		_, su := s.(Setupper)
		_, td := s.(Teardowner)
		_, comp := s.(Composite)
		switch {
		case su || td || (fitting && !comp && hasFitPath(s)):
			wants = append(wants, want{key, true, v})
		case !comp && hasFitPath(s):
			wants = append(wants, want{key, false, v})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	claims.Lock()
	defer claims.Unlock()
	for _, w := range wants {
		if n := claims.m[w.key]; n < 0 || (n > 0 && w.exclusive) {
			return nil, fmt.Errorf("penstock: step %q (%T): %w; run a copy (flow.Copy) to run one pipeline twice at once", w.v.Path, w.v.Node.Step, ErrInUse)
		}
	}
	for _, w := range wants {
		if w.exclusive {
			claims.m[w.key] = -1
		} else {
			claims.m[w.key]++
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			claims.Lock()
			defer claims.Unlock()
			for _, w := range wants {
				if w.exclusive || claims.m[w.key] == 1 {
					delete(claims.m, w.key)
				} else {
					claims.m[w.key]--
				}
			}
		})
	}, nil
}
