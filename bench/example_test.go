package bench_test

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/bench"
	"github.com/penstock-ml/penstock/flow"
)

// The reference workload, on a thousand rows: the three-step pipeline with
// two replicas of its (here idle) middle step, run by the streaming engine.
func Example() {
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	p, err := bench.Pipeline(mem, 0, flow.Replicas(2))
	if err != nil {
		panic(err)
	}
	src := &bench.Generator{Mem: mem, Rows: 1000}
	rows, err := bench.Drain(ctx, flow.Runner{Engine: flow.Streaming}, p, src)
	if err != nil {
		panic(err)
	}
	fmt.Println(rows, "rows through", len(p.Nodes()), "stages")
	// Output: 1000 rows through 3 stages
}
