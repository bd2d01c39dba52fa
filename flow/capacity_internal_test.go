package flow

import (
	"context"
	"maps"
	"testing"
)

// same is a stateless step for plan tests.
type same struct{}

func (same) Transform(_ context.Context, in Batch) (Batch, error) { in.Retain(); return in, nil }

// capacities returns the input-queue capacity of every stage of p's plan,
// branches included, by path.
func capacities(t *testing.T, p *Pipeline) map[string]int {
	t.Helper()
	pl, err := buildPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	pl.each(func(s *stage) { out[s.path.String()] = s.capacity })
	return out
}

func mustPipeline(t *testing.T, nodes []Node, opts ...Option) *Pipeline {
	t.Helper()
	p, err := NewPipeline(nodes, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestQueueCapacityOnSubPipelineNode: QueueCapacity on a node sets the
// queue in front of that node only. On a sub-pipeline's node that is the
// queue in front of its first step; the sub-pipeline's other steps keep
// their own, the sub-pipeline's default or the outer pipeline's default
// (a NewPipeline option), as if the node had none.
func TestQueueCapacityOnSubPipelineNode(t *testing.T) {
	abc := func(opts ...Option) *Pipeline {
		return mustPipeline(t, []Node{Named("a", same{}), Named("b", same{}), Named("c", same{})}, opts...)
	}
	d := DefaultQueueCapacity
	for _, tc := range []struct {
		name string
		p    *Pipeline
		want map[string]int
	}{
		{"leaf", mustPipeline(t, []Node{Named("x", same{}, QueueCapacity(2)), Named("y", same{})}),
			map[string]int{"x": 2, "y": d}},
		{"sub, no defaults", mustPipeline(t, []Node{Named("sub", abc(), QueueCapacity(1)), Named("z", same{})}),
			map[string]int{"sub/a": 1, "sub/b": d, "sub/c": d, "z": d}},
		{"sub, outer default", mustPipeline(t, []Node{Named("sub", abc(), QueueCapacity(1)), Named("z", same{})}, QueueCapacity(3)),
			map[string]int{"sub/a": 1, "sub/b": 3, "sub/c": 3, "z": 3}},
		{"sub without the option, outer default", mustPipeline(t, []Node{Named("sub", abc())}, QueueCapacity(3)),
			map[string]int{"sub/a": 3, "sub/b": 3, "sub/c": 3}},
		{"sub with its own default", mustPipeline(t, []Node{Named("sub", abc(QueueCapacity(5)), QueueCapacity(1))}, QueueCapacity(3)),
			map[string]int{"sub/a": 1, "sub/b": 5, "sub/c": 5}},
		{"sub whose first step sets its own", mustPipeline(t, []Node{Named("sub", mustPipeline(t, []Node{
			Named("a", same{}, QueueCapacity(7)), Named("b", same{}, QueueCapacity(6))}), QueueCapacity(0))}),
			map[string]int{"sub/a": 0, "sub/b": 6}},
		{"two levels", mustPipeline(t, []Node{Named("x", same{}), Named("outer", mustPipeline(t, []Node{
			Named("inner", abc()), Named("w", same{})}), QueueCapacity(0))}, QueueCapacity(4)),
			map[string]int{"x": 4, "outer/inner/a": 0, "outer/inner/b": 4, "outer/inner/c": 4, "outer/w": 4}},
		{"union branch", mustPipeline(t, []Node{Named("u", mustUnion(t, Named("p", abc(), QueueCapacity(1)), Named("q", same{})), QueueCapacity(2))}),
			map[string]int{"u": 2, "u/p/a": 1, "u/p/b": d, "u/p/c": d, "u/q": d}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := capacities(t, tc.p); !maps.Equal(got, tc.want) {
				t.Errorf("capacities %v; want %v", got, tc.want)
			}
		})
	}
}

func mustUnion(t *testing.T, branches ...Node) *Union {
	t.Helper()
	u, err := NewUnion(branches...)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
