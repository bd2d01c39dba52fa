package gpu_test

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/steps/nn"
)

// A stage fitted on the CPU device with modelled latencies: uploads and
// training take 2 ms each, and two slots hide the uploads.
func Example() {
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	model := gpu.WithLatency(func(op gpu.Op) time.Duration {
		if op.Kind == gpu.OpUpload || op.Kernel == gpu.Adam {
			return 2 * time.Millisecond
		}
		return 0
	})
	spec := nn.Default(nn.CrossEntropy)
	spec.Hidden = []int{16}
	st, err := gpu.NewStage(2, spec, gpu.WithDevice(func() (gpu.Device, error) { return gpu.CPU(model), nil }))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := st.Setup(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for i := range 10 {
		// Two features; the class is whether the first exceeds the second.
		xs := make([]float32, 0, 64)
		ys := make([]int64, 0, 32)
		for r := range 32 {
			a, b := float32((i*7+r*3)%11), float32((i*5+r*13)%11)
			xs = append(xs, a, b)
			if a > b {
				ys = append(ys, 1)
			} else {
				ys = append(ys, 0)
			}
		}
		batch := makeBatch(mem, 2, xs, ys)
		err := st.Fit(ctx, batch) // returns before the device has trained
		batch.Release()
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := st.Teardown(ctx); err != nil {
		fmt.Println(err)
		return
	}
	s, _ := st.Stats()
	fmt.Printf("%d steps, %d batches in %v of device time\n", st.Steps(), s.Batches, s.Span)
	fmt.Printf("busy %.0f%%, uploads hidden %.0f%%\n", 100*s.Busy, 100*s.Overlap)
	// Output:
	// 10 steps, 10 batches in 22ms of device time
	// busy 91%, uploads hidden 90%
}
