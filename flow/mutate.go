package flow

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// This file holds mutation: a step of a tree that becomes another step
// after a phase (an autoencoder, pre-trained, becomes a classifier that
// reuses its encoder), or that is frozen, in place in its tree, by path.

// Mutator is a step that knows what it becomes after a phase: Mutate
// returns the new step, which may share learned state with the receiver
// (the pre-trained weights it reuses). Mutate does not change the
// receiver; it is not called while the step runs. Become calls it;
// Mutate(root, path, Become) puts its result in place.
type Mutator interface {
	Mutate() (Step, error)
}

// Become returns what s becomes (see Mutator): s.Mutate(), a panic turned
// into an error. It returns an error naming s's type where s is not a
// Mutator or Mutate returns nil. Become is the usual fn of Mutate.
func Become(s Step) (Step, error) {
	m, ok := s.(Mutator)
	if !ok {
		return nil, fmt.Errorf("penstock: become: %T does not implement flow.Mutator; give Mutate a function that builds the new step", s)
	}
	var out Step
	err := guard(func() error {
		var err error
		out, err = m.Mutate()
		if err == nil && isNil(out) {
			err = errors.New("its Mutate method returned nil")
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("penstock: become: %T: %w", s, err)
	}
	return out, nil
}

// Mutate returns a tree like root in which the node at path holds
// fn(its step), keeping the node's name and options (FitEpochs, Replicas,
// …). The composites from root down to the node are rebuilt with
// WithChildren, so they check the new step as they check any child (a
// Pipeline's WithChildren refuses a Joiner where none may be); every other
// step is shared with root, which is not changed. Use the returned tree
// from then on: root and it share steps, so one run at a time (see
// Runner), and a step value that root holds at several places is replaced
// at path only.
//
// path is from root's children down (root itself is the empty path: then
// Mutate returns fn(root)). The error names the path and what is wrong: a
// name that is not a child (with the children there are), a step on the
// way that is not a Composite, fn's error, a nil step, or the error of a
// WithChildren. Mutate is not called while the tree runs.
//
//	p2, err := flow.Mutate(p, flow.Path{"model"}, flow.Become) // a Mutator
func Mutate(root Step, path Path, fn func(Step) (Step, error)) (Step, error) {
	if fn == nil {
		return nil, errors.New("penstock: mutate: nil function")
	}
	return MutateNode(root, path, func(n Node) (Node, error) {
		s, err := fn(n.Step)
		if err != nil {
			return Node{}, err
		}
		return n.WithStep(s), nil
	})
}

// MutateNode is Mutate with fn given the whole node: it may change the
// node's options as well as its step (Freeze it: n.WithOptions(
// FitEpochs(0))), not its name. For the root (the empty path) fn gets a
// node with no name and no options, and options it adds are dropped:
// options belong to a node of a composite.
func MutateNode(root Step, path Path, fn func(Node) (Node, error)) (Step, error) {
	if fn == nil {
		return nil, errors.New("penstock: mutate: nil function")
	}
	if isNil(root) {
		return nil, errors.New("penstock: mutate: nil root step")
	}
	out, err := mutateAt(root, nil, path, fn)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// mutateAt mutates s, at path done from the root, at the path rest below
// it. The recursion follows one path, at most len(path) deep: it is not a
// walk of the tree.
func mutateAt(s Step, done, rest Path, fn func(Node) (Node, error)) (Step, error) {
	if len(rest) == 0 {
		n, err := callMutation(done, Node{Step: s}, fn)
		if err != nil {
			return nil, err
		}
		return n.Step, nil
	}
	here := done.Child(rest[0])
	c, ok := s.(Composite)
	if !ok {
		return nil, fmt.Errorf("penstock: mutate %q: step %q (%T) is not a composite, so it has no child %q", join(done, rest), done, s, rest[0])
	}
	children := c.Children()
	i := slices.IndexFunc(children, func(n Node) bool { return n.Name == rest[0] })
	if i < 0 {
		names := make([]string, len(children))
		for j, n := range children {
			names[j] = fmt.Sprintf("%q", n.Name)
		}
		return nil, fmt.Errorf("penstock: mutate %q: step %q (%T) has no child %q (it has %s)", join(done, rest), done, s, rest[0], strings.Join(names, ", "))
	}
	if len(rest) == 1 {
		n, err := callMutation(here, children[i], fn)
		if err != nil {
			return nil, err
		}
		children[i] = n
	} else {
		sub, err := mutateAt(children[i].Step, here, rest[1:], fn)
		if err != nil {
			return nil, err
		}
		children[i] = children[i].WithStep(sub)
	}
	var nc Composite
	err := guard(func() error {
		var err error
		nc, err = c.WithChildren(children)
		if err == nil && isNil(nc) {
			err = errors.New("its WithChildren method returned nil")
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("penstock: mutate %q: %w", join(done, rest), stepError(done, c, "rebuild", nil, err))
	}
	return nc, nil
}

// callMutation calls fn on the node at path and checks what it returns:
// the same name, a step that is not nil, a subtree whose names are valid.
func callMutation(path Path, n Node, fn func(Node) (Node, error)) (Node, error) {
	var out Node
	err := guard(func() error {
		var err error
		out, err = fn(n)
		return err
	})
	switch {
	case err != nil:
		return Node{}, fmt.Errorf("penstock: mutate %q (%T): %w", path, n.Step, err)
	case out.Name != n.Name:
		return Node{}, fmt.Errorf("penstock: mutate %q: the new node is called %q; a mutation keeps the node's name", path, out.Name)
	case isNil(out.Step):
		return Node{}, fmt.Errorf("penstock: mutate %q (%T): the new step is nil", path, n.Step)
	}
	if c := configOf(out.opts); c.err != nil {
		return Node{}, fmt.Errorf("penstock: mutate %q: %w", path, c.err)
	}
	if err := checkTree(path, out.Step); err != nil {
		return Node{}, fmt.Errorf("penstock: mutate %q: %w", path, err)
	}
	if len(path) == 0 {
		out.opts = nil
	}
	return out, nil
}

// WithOptions returns n with opts added after its own options; where two
// set the same thing, the later wins. n is not changed.
func (n Node) WithOptions(opts ...Option) Node {
	n.opts = append(slices.Clip(n.opts), opts...)
	return n
}

// Fits reports whether fitting on a batch of the given epoch fits the
// node's step: the step is fittable (it has Fit or FitTransform, and a
// composite has an active fittable child) and the node's FitEpochs, if
// any, is above epoch. A composite that runs its children itself asks it
// before it fits a child, so that a child frozen with FitEpochs(0) is
// transformed, never fitted, as the runners do with a stage.
func (n Node) Fits(epoch int) bool { return nodeFits(n, epoch) }
