package minibatch_test

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// A PackStep without Mem packs with the run's allocator, flow.Allocator.
func TestPackStepUsesRunAllocator(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	run := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer run.AssertSize(t, 0)
	in := flow.Batch{X: tabular(t, mem)}
	defer in.Release()
	step := &minibatch.PackStep{Out: "features", Cols: []string{"a", "c"}}

	before := mem.CurrentAlloc()
	out, err := step.Transform(flow.WithAllocator(testCtx(t), run), in)
	if err != nil {
		t.Fatal(err)
	}
	if got := run.CurrentAlloc(); got < 4*2*4 {
		t.Errorf("the run's allocator holds %d bytes; want at least the 32 of the packed 4 × 2 tensor", got)
	}
	if got := mem.CurrentAlloc(); got != before {
		t.Errorf("the source's allocator grew by %d bytes; want 0", got-before)
	}
	out.Release()
}
