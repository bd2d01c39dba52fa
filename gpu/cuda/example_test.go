//go:build cuda && cgo

package cuda_test

import (
	"fmt"

	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/gpu/cuda"
	_ "github.com/penstock-ml/penstock/gpu/cuda/internal/skipnogpu"
)

// The device is opened by an owner, on its locked thread; every call is
// made there, through Do.
func Example() {
	o, err := gpu.Start(func() (gpu.Device, error) { return cuda.Open(0) })
	if err != nil {
		fmt.Println(err)
		return
	}
	var out []float32
	err = o.Do(func(dev gpu.Device) error {
		b, err := dev.Alloc(4)
		if err != nil {
			return err
		}
		defer dev.Free(b)
		p, err := dev.AllocPinned(4)
		if err != nil {
			return err
		}
		defer dev.FreePinned(p)
		h, err := dev.Host(p)
		if err != nil {
			return err
		}
		copy(h, []float32{-1, 2, -3, 4})
		// One stream here: its operations run in order.
		for _, f := range []func() error{
			func() error { return dev.Upload(gpu.ComputeStream, b, p) },
			func() error {
				return dev.Launch(gpu.ComputeStream, gpu.ReLU, gpu.Args{Bufs: []gpu.Buffer{b}, Ints: []int{4}})
			},
			func() error { return dev.Download(gpu.ComputeStream, p, b) },
			dev.SynchronizeAll,
		} {
			if err := f(); err != nil {
				return err
			}
		}
		out = append(out, h...)
		return nil
	})
	fmt.Println(out, err, o.Close())
	// Output: [0 2 0 4] <nil> <nil>
}
