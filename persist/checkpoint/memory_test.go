package checkpoint

import (
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
)

// peakAllocator records the most bytes it held at once.
type peakAllocator struct {
	memory.Allocator
	mu        sync.Mutex
	cur, peak int
}

func (p *peakAllocator) add(n int) {
	p.mu.Lock()
	p.cur += n
	p.peak = max(p.peak, p.cur)
	p.mu.Unlock()
}

func (p *peakAllocator) Allocate(n int) []byte { p.add(n); return p.Allocator.Allocate(n) }
func (p *peakAllocator) Reallocate(n int, b []byte) []byte {
	p.add(n - len(b))
	return p.Allocator.Reallocate(n, b)
}
func (p *peakAllocator) Free(b []byte) { p.add(-len(b)); p.Allocator.Free(b) }

// The memory that a fit holds does not grow with the length of the
// stream, on a miss (storing) or a hit (reading back): batches are
// written and read one at a time.
func TestMemoryBounded(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			peaks := map[int][2]int{}
			for _, n := range []int{400, 8000} {
				w := newWorld(t, 1)
				c := w.cache(t.TempDir())
				src := w.data(n, -1, 0) // the source's own records are not counted
				var got [2]int
				for i := range 2 {
					pa := &peakAllocator{Allocator: w.mem}
					p := w.pipeline(c, 2, 0)
					res, err := p.Fit(deadline(t), flow.Runner{Engine: e, Allocator: pa}, src)
					if err != nil || res.Hit != (i == 1) {
						t.Fatalf("%d rows, fit %d: hit=%v, %v", n, i, res.Hit, err)
					}
					if err := src.Rewind(); err != nil {
						t.Fatal(err)
					}
					got[i] = pa.peak
				}
				peaks[n] = got
			}
			for i, what := range []string{"miss", "hit"} {
				small, large := peaks[400][i], peaks[8000][i]
				if large > 2*small+64<<10 {
					t.Errorf("%s: peak %d bytes over 8000 rows, %d over 400; want no growth with the stream", what, large, small)
				}
			}
			t.Logf("peaks (miss, hit): 400 rows %v, 8000 rows %v", peaks[400], peaks[8000])
		})
	}
}
