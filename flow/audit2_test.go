package flow_test

// The second pass of the adversarial audit of flow's doc comments:
// combinations of composites, options and hooks that the first pass
// (audit_test.go) did not put together.

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"go.uber.org/goleak"
)

// FitEpochs on a composite's node (a sub-pipeline, a feature union, a
// metastep) limits the fit of everything below it, as on a leaf: both
// engines honour it (FitEpochs' doc), as a pipeline used directly as a
// step does (Node.Fits).
func TestAuditCompositeFitEpochs(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer goleak.VerifyNone(t)
	ctx := flow.WithAllocator(deadline(t), mem)
	kinds := []string{"pipeline", "union", "metastep", "replicated-pipeline"}
	build := func(kind string, limit int) (*flow.Pipeline, *waitFit) {
		leaf := &waitFit{}
		var c flow.Step
		var opts []flow.Option
		switch kind {
		case "pipeline":
			c = pipeline(t, []flow.Node{flow.Named("keep", passThrough{}), flow.Named("leaf", leaf)})
		case "replicated-pipeline":
			c = pipeline(t, []flow.Node{flow.Named("keep", passThrough{}), flow.Named("leaf", leaf)})
			opts = append(opts, flow.Replicas(2))
		case "union":
			u, err := flow.NewUnion(flow.Named("leaf", leaf), flow.Named("plain", passThrough{}))
			if err != nil {
				t.Fatal(err)
			}
			c = u
		case "metastep":
			c = newTrainOnly(flow.Named("leaf", leaf))
		}
		opts = append(opts, flow.FitEpochs(limit))
		return pipeline(t, []flow.Node{flow.Named("c", c, opts...), flow.Named("after", &waitFit{})}), leaf
	}
	for _, limit := range []int{0, 1} {
		want := limit * 3
		for _, kind := range kinds {
			for _, r := range runners(mem) {
				t.Run(fmt.Sprintf("%s/FitEpochs(%d)/%v", kind, limit, r.Engine), func(t *testing.T) {
					p, leaf := build(kind, limit)
					if _, err := r.Fit(ctx, p, &gen{mem: mem, n: 9, rows: 2, epoch: 3}); err != nil {
						t.Fatal(err)
					}
					if leaf.fits != want {
						t.Errorf("the leaf fitted %d batches; want %d (FitEpochs(%d) on its composite)", leaf.fits, want, limit)
					}
				})
			}
			t.Run(fmt.Sprintf("%s/FitEpochs(%d)/direct", kind, limit), func(t *testing.T) {
				p, leaf := build(kind, limit)
				src := &gen{mem: mem, n: 9, rows: 2, epoch: 3}
				for {
					b, err := src.Next(ctx)
					if errors.Is(err, io.EOF) {
						break
					}
					err = p.Fit(ctx, b)
					b.Release()
					if err != nil {
						t.Fatal(err)
					}
				}
				if leaf.fits != want {
					t.Errorf("the leaf fitted %d batches; want %d (FitEpochs(%d) on its composite)", leaf.fits, want, limit)
				}
			})
		}
	}
}
