package serve

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// Copies is at most Pool at every moment, also while requests that find
// every copy busy race to make one more.
func TestAuditCopiesNeverOverPool(t *testing.T) {
	ctx := deadline(t)
	const pool = 2
	m := NewModels(ModelOptions{Pool: pool, Log: quiet})
	if err := m.Publish(newPipe(t, nil, 1, 8), 1); err != nil {
		t.Fatal(err)
	}
	v, err := m.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var most atomic.Int64
	var watch sync.WaitGroup
	watch.Go(func() {
		for !stop.Load() {
			if n := int64(v.Copies()); n > most.Load() {
				most.Store(n)
			}
		}
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				p, err := v.Take(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				runtime.Gosched()
				v.Put(p)
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	watch.Wait()
	v.Release(ctx)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := most.Load(); got > pool {
		t.Errorf("Copies reached %d; want at most Pool (%d)", got, pool)
	}
}
