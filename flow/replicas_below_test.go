package flow_test

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"go.uber.org/goleak"
)

// TestReplicasBelowMetastep: a metastep (and a replicated sub-pipeline)
// runs its children itself, batch by batch in its stage's goroutines, so
// Replicas on a node below it cannot be honoured. NewPipeline, NewUnion and
// WithChildren refuse it, naming the node's path, and so does the start of
// a run in either engine where the tree changed after NewPipeline.
func TestReplicasBelowMetastep(t *testing.T) {
	rep := func() flow.Node { return flow.Named("c", &mean{}, flow.Replicas(2)) }
	for _, tc := range []struct {
		name  string
		build func() error
		path  string
	}{
		{"child", func() error {
			_, err := flow.NewPipeline([]flow.Node{flow.Named("train", newTrainOnly(rep()))})
			return err
		}, "train/c"},
		{"in a pipeline below", func() error {
			inner := pipeline(t, []flow.Node{rep(), flow.Named("d", &tally{})}) // replicas in a pipeline are fine
			_, err := flow.NewPipeline([]flow.Node{flow.Named("train", newTrainOnly(flow.Named("inner", inner)))})
			return err
		}, "train/inner/c"},
		{"below a choice, not chosen", func() error {
			ch := &choose{branches: []flow.Node{flow.Named("a", &tally{}), rep()}, pick: "a"}
			_, err := flow.NewPipeline([]flow.Node{flow.Named("x", &tally{}), flow.Named("pick", ch)})
			return err
		}, "pick/c"},
		{"in a replicated sub-pipeline", func() error {
			sub := pipeline(t, []flow.Node{rep()})
			_, err := flow.NewPipeline([]flow.Node{flow.Named("sub", sub, flow.Replicas(3))})
			return err
		}, "sub/c"},
		{"in a union branch", func() error {
			_, err := flow.NewUnion(flow.Named("train", newTrainOnly(rep())), flow.Named("id", &tally{}))
			return err
		}, "train/c"},
		{"through WithChildren", func() error {
			p := pipeline(t, []flow.Node{flow.Named("train", newTrainOnly(flow.Named("c", &mean{})))})
			_, err := p.WithChildren([]flow.Node{flow.Named("train", newTrainOnly(rep()))})
			return err
		}, "train/c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.build()
			if err == nil || !strings.Contains(err.Error(), "Replicas(2)") || !strings.Contains(err.Error(), `"`+tc.path+`"`) {
				t.Fatalf("got %v; want a refusal of Replicas(2) naming %q", err, tc.path)
			}
		})
	}

	// Replicas(1) is the default: nothing to refuse.
	if _, err := flow.NewPipeline([]flow.Node{flow.Named("train", newTrainOnly(flow.Named("c", &mean{}, flow.Replicas(1))))}); err != nil {
		t.Errorf("Replicas(1) below a metastep: %v; want it accepted", err)
	}

	// A metastep whose child changes after NewPipeline: the run refuses
	// at its start, in both engines, and runs nothing.
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t)
	for _, r := range runners(mem) {
		t.Run("run/"+r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			c := &mean{mem: mem}
			to := newTrainOnly(flow.Named("c", c))
			p := pipeline(t, []flow.Node{flow.Named("x2", scale{mem, 2}), flow.Named("train", to)})
			to.child = flow.Named("c", c, flow.Replicas(2))
			src := numbers(t, mem, 0, 20, 5)
			defer src.Close()
			for _, run := range []func() error{
				func() error { _, err := r.Fit(ctx, p, again(t, src)); return err },
				func() error {
					s, err := r.FitTransform(ctx, p, again(t, src))
					if err == nil {
						s.Close()
					}
					return err
				},
				func() error {
					s, err := r.Transform(ctx, p, again(t, src))
					if err == nil {
						s.Close()
					}
					return err
				},
			} {
				if err := run(); err == nil || !strings.Contains(err.Error(), "Replicas(2)") || !strings.Contains(err.Error(), `"train/c"`) {
					t.Errorf("run with Replicas(2) below a metastep: got %v; want a refusal naming train/c", err)
				}
			}
			counts(t, "child", &c.life, 0, 0, 0)
			counts(t, "trainOnly", &to.life, 0, 0, 0)
		})
	}
}
