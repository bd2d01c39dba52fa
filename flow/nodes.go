package flow

import (
	"context"
	"errors"
	"fmt"
)

// The lifecycle of a list of nodes, shared by Pipeline and Union.

// setupNodes sets up every node's step, in order; if one fails, those
// already set up are torn down.
func setupNodes(ctx context.Context, nodes []Node) error {
	for i, n := range nodes {
		if err := setup(ctx, n.Name, n.Step); err != nil {
			_ = teardownNodes(ctx, nodes[:i])
			return err
		}
	}
	return nil
}

// teardownNodes tears down every node's step, in reverse order, and
// returns their errors joined.
func teardownNodes(ctx context.Context, nodes []Node) error {
	var errs []error
	for i := len(nodes) - 1; i >= 0; i-- {
		errs = append(errs, teardown(ctx, nodes[i].Name, nodes[i].Step))
	}
	return errors.Join(errs...)
}

// replicaNodes returns nodes with every fittable step replaced by its
// replica; the other steps are shared.
func replicaNodes(nodes []Node) []Node {
	out := make([]Node, len(nodes))
	for i, n := range nodes {
		if fittable(n.Step) {
			n.Step = n.Step.(Merger).Replica()
		}
		out[i] = n
	}
	return out
}

// mergeNodes merges, for every fittable node, the matching node of each
// replica (found by nodesOf) into it.
func mergeNodes(nodes []Node, replicas []Step, nodesOf func(Step) []Node) error {
	for i, n := range nodes {
		if !fittable(n.Step) {
			continue
		}
		parts := make([]Step, len(replicas))
		for j, r := range replicas {
			rn := nodesOf(r)
			if len(rn) != len(nodes) {
				return fmt.Errorf("penstock: merge: replica %d is %T, not a replica of this step", j, r)
			}
			parts[j] = rn[i].Step
		}
		if err := n.Step.(Merger).Merge(parts); err != nil {
			return stepError(n.Name, n.Step, "merge", nil, err)
		}
	}
	return nil
}
