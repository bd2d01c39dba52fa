package barrier_test

import (
	"fmt"

	"github.com/penstock-ml/penstock/barrier"
)

// Replicas finish batches 2, 0, 1 in that order; the reorder buffer hands
// them on as 0, 1, 2.
func ExampleReorder() {
	r := barrier.NewReorder[string](0, 4)
	for _, pos := range []int64{2, 0, 1} {
		if err := r.Push(pos, fmt.Sprintf("batch %d", pos)); err != nil {
			fmt.Println(err)
		}
		for {
			v, ok := r.Pop()
			if !ok {
				break
			}
			fmt.Println(v)
		}
	}
	// Output:
	// batch 0
	// batch 1
	// batch 2
}
