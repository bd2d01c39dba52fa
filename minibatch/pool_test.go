package minibatch_test

import (
	"sync"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/minibatch"
)

// A Pool's buffers are aligned and zeroed, also when reused and grown,
// and a freed buffer serves the next allocation of its class.
func TestPool(t *testing.T) {
	p := minibatch.NewPool()
	for _, size := range []int{0, 1, 63, 64, 65, 1000, 4096, 1 << 20, 1<<26 + 1} {
		b := p.Allocate(size)
		if len(b) != size {
			t.Fatalf("Allocate(%d): len %d", size, len(b))
		}
		if size > 0 && uintptr(unsafe.Pointer(&b[0]))%64 != 0 {
			t.Errorf("Allocate(%d) not 64-byte aligned", size)
		}
		for i := range b {
			b[i] = 0xff
		}
		p.Free(b)
	}
	// Reuse within one goroutine: sync.Pool keeps a per-P private slot.
	before := p.Reused()
	b := p.Allocate(1000)
	if p.Reused() == before {
		t.Log("no reuse (the runtime may drop pooled values); skipping the reuse check")
	}
	for i, v := range b {
		if v != 0 {
			t.Fatalf("reused buffer not zeroed at %d: %#x", i, v)
		}
	}
	b = b[:10]
	for i := range b {
		b[i] = 7
	}
	g := p.Reallocate(900, b)
	if g[9] != 7 || g[10] != 0 || g[899] != 0 {
		t.Errorf("Reallocate in place: %v … %v", g[:12], g[899])
	}
	h := p.Reallocate(5000, g)
	if len(h) != 5000 || h[9] != 7 || h[10] != 0 || h[4999] != 0 {
		t.Errorf("Reallocate to a larger class lost or left data")
	}
	p.Free(h)
}

// Arrow arrays built on a Pool from many goroutines at once are correct
// and their buffers go back to it (a checked allocator over the pool ends
// at zero).
func TestPoolConcurrentArrays(t *testing.T) {
	p := minibatch.NewPool()
	mem := memory.NewCheckedAllocator(p)
	defer mem.AssertSize(t, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				bld := array.NewFloat32Builder(mem)
				n := 1 + (i*37+g)%3000
				for j := range n {
					if j%7 == 0 {
						bld.AppendNull()
					} else {
						bld.Append(float32(j + g))
					}
				}
				arr := bld.NewFloat32Array()
				bld.Release()
				for j := range n {
					if j%7 == 0 {
						if !arr.IsNull(j) {
							t.Errorf("row %d not null", j)
						}
					} else if arr.IsNull(j) || arr.Value(j) != float32(j+g) {
						t.Errorf("row %d: %v", j, arr.Value(j))
					}
				}
				arr.Release()
			}
		}()
	}
	wg.Wait()
}

func BenchmarkPoolAllocate(b *testing.B) {
	for _, a := range []struct {
		name string
		mem  memory.Allocator
	}{{"go", memory.NewGoAllocator()}, {"pool", minibatch.NewPool()}} {
		b.Run(a.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf := a.mem.Allocate(8192)
				a.mem.Free(buf)
			}
		})
	}
}
