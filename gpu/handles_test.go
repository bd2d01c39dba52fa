package gpu_test

import (
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/gpu"
)

func TestHandles(t *testing.T) {
	b := gpu.NewBuffer(7, 10).Slice(3, 4)
	if b.ID() != 7 || b.Offset() != 3 || b.Len() != 4 {
		t.Errorf("slice of buffer 7: id %d, offset %d, len %d; want 7, 3, 4", b.ID(), b.Offset(), b.Len())
	}
	p := gpu.NewPinned(9, make([]float32, 5))
	if p.ID() != 9 || p.Len() != 5 {
		t.Errorf("pinned 9: id %d, len %d; want 9, 5", p.ID(), p.Len())
	}
	if e := gpu.NewEventHandle(11); e.ID() != 11 {
		t.Errorf("event 11: id %d", e.ID())
	}
	if n := len(gpu.Kernels()); n != 10 {
		t.Errorf("Kernels: %d kernels, want 10", n)
	}
}

func TestCheckLaunch(t *testing.T) {
	buf := gpu.NewBuffer(1, 6)
	for _, c := range []struct {
		k    gpu.Kernel
		a    gpu.Args
		want string // "" for no error
	}{
		{gpu.ReLU, gpu.Args{Bufs: []gpu.Buffer{buf}, Ints: []int{6}}, ""},
		{gpu.ReLU, gpu.Args{Bufs: []gpu.Buffer{buf}, Ints: []int{7}}, "buffer X has 6 values, want 7"},
		{gpu.ReLU, gpu.Args{Bufs: []gpu.Buffer{buf}, Ints: []int{-1}}, "integer argument 0 is -1"},
		{gpu.ReLU, gpu.Args{Bufs: []gpu.Buffer{{}}, Ints: []int{0}}, "buffer 0 is no buffer"},
		{gpu.Axpy, gpu.Args{Bufs: []gpu.Buffer{buf}, Ints: []int{1}}, "with 1 buffers, 1 integers and 0 floats, want 2, 1 and 1"},
		{gpu.Kernel(99), gpu.Args{}, "kernel(99), not a kernel"},
		{gpu.Gemm, gpu.Args{Bufs: []gpu.Buffer{buf, buf, buf}, Ints: []int{2, 3, 1, 0, 0}, Floats: []float64{1, 0}}, ""},
		{gpu.Gemm, gpu.Args{Bufs: []gpu.Buffer{buf, buf, buf}, Ints: []int{3, 3, 1, 0, 0}, Floats: []float64{1, 0}}, "buffer C has 6 values, want 9"},
	} {
		err := gpu.CheckLaunch(c.k, c.a)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("CheckLaunch(%s, %v): %v; want nil", c.k, c.a, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("CheckLaunch(%s, %v): %v; want an error containing %q", c.k, c.a, err, c.want)
		}
	}
}
