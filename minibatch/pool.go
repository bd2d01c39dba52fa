package minibatch

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Size classes of a Pool: powers of two from 64 B to 64 MiB. Larger
// buffers are allocated and dropped as memory.GoAllocator's are.
const (
	poolMinClass = 6
	poolMaxClass = 26
	poolAlign    = 64
)

// Pool is a memory.Allocator that keeps the buffers that Arrow frees (a
// batch released to zero references) and hands them out again, by
// power-of-two size class, instead of leaving them to the garbage
// collector. A pipeline that allocates a new matrix for every batch (a
// scaler's output, a model's scores) then reuses a few buffers over and
// over: with several fits at once (parallel trials), the collector no
// longer competes with them for the cores.
//
// Buffers are 64-byte aligned and zeroed, as memory.GoAllocator's are.
// Idle buffers live in sync.Pools, so the garbage collector still reclaims
// what stays unused for two cycles: a Pool never holds memory that no one
// has used lately. Its methods are safe for concurrent use; the zero Pool
// is ready to use.
type Pool struct {
	classes [poolMaxClass + 1]sync.Pool
	reused  atomic.Int64
}

// NewPool returns an empty Pool.
func NewPool() *Pool { return &Pool{} }

var _ memory.Allocator = (*Pool)(nil)

// poolClass is the smallest class that holds size bytes.
func poolClass(size int) int {
	if size <= 1<<poolMinClass {
		return poolMinClass
	}
	return bits.Len(uint(size - 1))
}

// aligned allocates a zeroed, 64-byte aligned buffer of capacity n.
func aligned(n int) []byte {
	buf := make([]byte, n+poolAlign)
	off := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(buf))) % poolAlign); r != 0 {
		off = poolAlign - r
	}
	return buf[off : off+n : off+n]
}

// Allocate returns a zeroed buffer of size bytes.
func (p *Pool) Allocate(size int) []byte {
	if size < 0 {
		panic("minibatch: Pool.Allocate: negative size")
	}
	c := poolClass(size)
	if c > poolMaxClass {
		return aligned(size)
	}
	if v := p.classes[c].Get(); v != nil {
		b := *v.(*[]byte)
		p.reused.Add(1)
		b = b[:size]
		clear(b)
		return b
	}
	return aligned(1 << c)[:size]
}

// Reallocate resizes b to size bytes, keeping its contents; the bytes
// beyond the old length are zero.
func (p *Pool) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		old := len(b)
		b = b[:size]
		if size > old {
			clear(b[old:])
		}
		return b
	}
	nb := p.Allocate(size)
	copy(nb, b)
	p.Free(b)
	return nb
}

// Free keeps b for reuse when it is one of the Pool's classes; other
// buffers are left to the garbage collector.
func (p *Pool) Free(b []byte) {
	n := cap(b)
	if n < 1<<poolMinClass || n > 1<<poolMaxClass || n&(n-1) != 0 {
		return
	}
	b = b[:n]
	p.classes[bits.Len(uint(n))-1].Put(&b)
}

// Reused reports how many allocations a freed buffer has served.
func (p *Pool) Reused() int64 { return p.reused.Load() }
