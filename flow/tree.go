package flow

import (
	"errors"
	"fmt"
	"reflect"
)

// Node is a named step of a composite (a pipeline's step, a union's
// branch, a metastep's child), with the options of its stage.
type Node struct {
	Name string
	Step Step
	opts []Option
}

// Named returns the node called name that runs s. Options set how the
// runners run it (Replicas, QueueCapacity, Barrier, FitEpochs).
func Named(name string, s Step, opts ...Option) Node {
	return Node{Name: name, Step: s, opts: opts}
}

// WithStep returns n with its step replaced by s, keeping its name and
// options: what a composite's WithChildren receives.
func (n Node) WithStep(s Step) Node {
	n.Step = s
	return n
}

// Composite is a step that contains steps: a Pipeline, a Union, or a
// metastep of any package (a wrapper that runs its child only when
// fitting, a choice between branches, …).
//
// A composite runs its children itself, in its own Transform, Fit or
// FitTransform. Everything else that must reach every step of a tree is one
// walk over Children (see Walk), done by this package: setup and teardown,
// replicas and merging, copying, resetting. So a composite never forwards
// lifecycle calls (Setup, Teardown, Replica, Merge) to its children; the
// runner sets up and tears down every active step of the tree exactly once
// per run, composites and their children alike.
//
// A composite names the child in an error that comes from it, as Pipeline
// and Union do: a *StepError whose Path is the child's name, or, where the
// child's error is already a *StepError (from a composite below, with a
// path relative to the child), that error with the child's name put in
// front of its Path. The runner puts the composite's own path in front in
// turn, so that the error names the step where it happened; an error
// passed up unchanged is the composite's own, and one of a composite below
// it names a path that is not in the tree.
type Composite interface {
	Step
	// Children returns the composite's children, all of them (active or
	// not), in a fixed order. The slice is the caller's.
	Children() []Node
	// WithChildren returns a new composite of the same kind and
	// configuration whose children are children: the same names in the
	// same order, each step replaced (by a copy or a replica). The
	// receiver is not changed.
	WithChildren(children []Node) (Composite, error)
}

// Chooser is a composite that runs only some of its children: a choice
// step runs the branch it picked, an optional step may run none. A child
// that is not active is neither set up, nor fitted, nor run, nor counted in
// a cache key; a walk reports it with Visit.Active false.
type Chooser interface {
	Composite
	// Active reports whether the child called name runs.
	Active(name string) bool
}

// FitPather is a composite that says how its fit path treats its
// children, where the default does not fit. By default a composite's fit
// path differs from its transform path only through its children: it is
// fitted when an active child is fittable, and fitting reaches every
// active child. A train-only wrapper's fit path differs on its own (it runs
// its child only when fitting, even a child that learns nothing); a
// test-only wrapper's never reaches its child, which is then neither
// fitted nor replicated.
type FitPather interface {
	Composite
	// FitPathDiffers reports whether fitting the composite differs from
	// transforming it even where no child learns.
	FitPathDiffers() bool
	// FitsChild reports whether fitting the composite fits the child
	// called name.
	FitsChild(name string) bool
}

// Visit is one node of a step tree, as Walk meets it.
type Visit struct {
	Path   Path      // from the root; nil for the root
	Node   Node      // the node (the root's has no name and no options)
	Parent Composite // nil for the root
	// Active is false under a child that a Chooser above leaves out.
	Active bool
	Depth  int // 0 for the root
}

// SkipChildren, returned by a Walk callback, skips the children of the node
// just visited. Like fs.SkipDir it is a signal, not a failure, hence its
// name.
//
//lint:ignore ST1012 named like fs.SkipDir and filepath.SkipDir
var SkipChildren = errors.New("penstock: skip children")

// MaxDepth bounds the depth of a step tree that Walk follows.
const MaxDepth = 256

// Walk calls fn for root and for every node below it, depth first, parents
// before children, children in the order of Children. A callback that
// returns SkipChildren skips the node's children; any other error stops the
// walk and is returned. Walk refuses a tree that contains itself or that
// is deeper than MaxDepth.
//
// Walk is the one recursion over step trees: every operation of this
// package that reaches every step (setup, teardown, replicas, merging,
// copying, checks) is a walk, so a composite defined in any package takes
// part in all of them by implementing Composite.
func Walk(root Step, fn func(Visit) error) error {
	w := walker{pre: fn, onPath: map[any]bool{}}
	return w.visit(Visit{Node: Node{Step: root}, Active: true})
}

// walker is Walk's traversal; post, if set, is called after a node's
// children (also when pre skipped them), for bottom-up work (rebuild).
type walker struct {
	pre, post func(Visit) error
	onPath    map[any]bool
}

func (w *walker) visit(v Visit) error {
	err := w.pre(v)
	if errors.Is(err, SkipChildren) {
		return w.after(v)
	}
	if err != nil {
		return err
	}
	if err := w.children(v); err != nil {
		return err
	}
	return w.after(v)
}

func (w *walker) after(v Visit) error {
	if w.post == nil {
		return nil
	}
	return w.post(v)
}

func (w *walker) children(v Visit) error {
	c, ok := v.Node.Step.(Composite)
	if !ok {
		return nil
	}
	if v.Depth >= MaxDepth {
		return fmt.Errorf("penstock: step %q: the step tree is deeper than %d", v.Path, MaxDepth)
	}
	if key, ok := identity(c); ok {
		if w.onPath[key] {
			return fmt.Errorf("penstock: step %q (%T) contains itself", v.Path, c)
		}
		w.onPath[key] = true
		defer delete(w.onPath, key)
	}
	ch, _ := c.(Chooser)
	for _, n := range c.Children() {
		cv := Visit{
			Path:   v.Path.Child(n.Name),
			Node:   n,
			Parent: c,
			Active: v.Active && (ch == nil || ch.Active(n.Name)),
			Depth:  v.Depth + 1,
		}
		if err := w.visit(cv); err != nil {
			return err
		}
	}
	return nil
}

// identity returns a key that identifies the step value s where it is a
// reference (a pointer, map or channel): two nodes hold the same step when
// their keys are equal. A step held by value has no identity: its copies
// share nothing that Setup, Fit or Teardown could change.
func identity(s Step) (any, bool) {
	if s == nil {
		return nil, false
	}
	switch reflect.TypeOf(s).Kind() {
	case reflect.Pointer, reflect.Map, reflect.Chan:
		return s, true
	}
	return nil, false
}

// isNil reports whether s is nil or a typed nil pointer (or map, slice,
// func, chan).
func isNil(s Step) bool {
	if s == nil {
		return true
	}
	v := reflect.ValueOf(s)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
}
