package flow

import (
	"fmt"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// rowsOnly is a record that knows only its number of rows, all that the
// counters ask of a batch.
type rowsOnly struct {
	arrow.RecordBatch
	rows int64
}

func (r rowsOnly) NumRows() int64 { return r.rows }

// TestCountersFold checks that the tallies of batches and rows stay exact
// across folds, the one the rows start and the one the batches start, while
// other goroutines count and read.
func TestCountersFold(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rows    int64 // per batch
		batches int64 // per goroutine
	}{
		{"rows", 1 << 35, 40},               // 4 × 40 × 2³⁵ rows: folds every 8 batches
		{"batches", 1, tallyBatchLimit / 2}, // 4 × 2²⁰ batches: folds twice
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c counters
			b := Batch{X: rowsOnly{rows: tc.rows}}
			const writers = 4
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for range tc.batches {
						c.in(b)
						c.out(b)
					}
				})
			}
			stop := make(chan struct{})
			var readErr error
			var rg sync.WaitGroup
			rg.Go(func() { // every reading must be a count of whole batches, and grow
				var last counts
				for {
					select {
					case <-stop:
						return
					default:
					}
					n := c.load()
					if n.rowsIn != n.batchesIn*tc.rows || n.rowsOut != n.batchesOut*tc.rows || n.batchesIn < last.batchesIn || n.batchesOut < last.batchesOut {
						readErr = fmt.Errorf("read %+v after %+v; want rows = batches × %d, and no count going back", n, last, tc.rows)
						return
					}
					last = n
				}
			})
			wg.Wait()
			close(stop)
			rg.Wait()
			if readErr != nil {
				t.Fatal(readErr)
			}
			want := writers * tc.batches
			if n := c.load(); n.batchesIn != want || n.batchesOut != want || n.rowsIn != want*tc.rows || n.rowsOut != want*tc.rows {
				t.Fatalf("counts %+v; want %d batches and %d rows each way", n, want, want*tc.rows)
			}
			if c.folds.Load() == 0 {
				t.Fatal("no fold ran; want the tallies to have reached their limit")
			}
		})
	}
}
