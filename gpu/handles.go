package gpu

import "fmt"

// This file is for a Device implemented outside this package (package
// gpu/cuda): it makes and reads the handles that a Device hands out, and
// checks a launch's arguments as the CPU device does.

// NewBuffer returns the handle of allocation id (1 or more) of n values,
// for a Device to return from Alloc.
func NewBuffer(id uint64, n int) Buffer {
	if id == 0 || n < 0 {
		panic(fmt.Sprintf("gpu: buffer handle of allocation %d of %d values", id, n))
	}
	return Buffer{id: id, len: n}
}

// ID returns the allocation that b lies in (0 for no buffer).
func (b Buffer) ID() uint64 { return b.id }

// Offset returns the position of b's first value in its allocation.
func (b Buffer) Offset() int { return b.off }

// NewPinned returns the handle of pinned allocation id (1 or more) whose
// values are data (host memory that the device allocated), for a Device
// to return from AllocPinned.
func NewPinned(id uint64, data []float32) *Pinned {
	if id == 0 {
		panic("gpu: pinned handle of allocation 0")
	}
	return &Pinned{id: id, data: data}
}

// ID returns p's allocation.
func (p *Pinned) ID() uint64 { return p.id }

// NewEventHandle returns the handle of event id (1 or more), for a Device
// to return from NewEvent.
func NewEventHandle(id uint64) Event {
	if id == 0 {
		panic("gpu: event handle 0")
	}
	return Event{id: id}
}

// ID returns e's number.
func (e Event) ID() uint64 { return e.id }

// Kernels returns the fixed kernel set, in the order of their constants.
func Kernels() []Kernel {
	return []Kernel{Gemm, BiasAdd, ColSum, ReLU, ReLUGrad, SoftmaxXent, Adam, SumSquares, Axpy, Scale}
}

// CheckLaunch checks a launch of k as every Device must: k is a kernel,
// a has its numbers of buffers, integers and floats, no integer is
// negative and every buffer holds the values the integers say it reads
// or writes. The error names the kernel and the argument.
func CheckLaunch(k Kernel, a Args) error {
	spec, ok := kernels[k]
	if !ok {
		return fmt.Errorf("launch of %s, not a kernel", k)
	}
	if len(a.Bufs) != spec.bufs || len(a.Ints) != spec.ints || len(a.Floats) != spec.floats {
		return fmt.Errorf("launch of %s with %d buffers, %d integers and %d floats, want %d, %d and %d",
			k, len(a.Bufs), len(a.Ints), len(a.Floats), spec.bufs, spec.ints, spec.floats)
	}
	for i, b := range a.Bufs {
		if b.id == 0 {
			return fmt.Errorf("launch of %s: buffer %d is no buffer (the zero Buffer)", k, i)
		}
	}
	if err := spec.check(a); err != nil {
		return fmt.Errorf("launch of %s: %w", k, err)
	}
	return nil
}
