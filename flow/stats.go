package flow

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// counters are a stage's live statistics, updated with atomics by its
// goroutines and read at any time.
type counters struct {
	batchesIn, rowsIn   atomic.Int64
	batchesOut, rowsOut atomic.Int64
	busy                atomic.Int64 // ns inside the step
	waitIn              atomic.Int64 // ns blocked waiting for input
	waitOut             atomic.Int64 // ns blocked on a full output queue
}

// StageStats are the statistics of one stage, summed over its replicas and
// over every pass of a run.
type StageStats struct {
	Path       Path // the step's path in the pipeline, printed "outer/inner"
	Replicas   int
	BatchesIn  int64
	RowsIn     int64
	BatchesOut int64
	RowsOut    int64
	Busy       time.Duration // time inside the step
	WaitIn     time.Duration // time blocked waiting for input
	WaitOut    time.Duration // time blocked on a full output queue
}

// Utilization is the share of the run's elapsed time that the stage's
// replicas spent inside the step, from 0 to 1.
func (s StageStats) Utilization(elapsed time.Duration) float64 {
	if elapsed <= 0 || s.Replicas < 1 {
		return 0
	}
	return float64(s.Busy) / float64(elapsed) / float64(s.Replicas)
}

// Stats are the statistics of a run: one entry per stage, in pipeline order
// (the stages of a feature union's branches follow the union's own entry),
// and the time since the run started (or its total time, once finished).
type Stats struct {
	Stages  []StageStats
	Elapsed time.Duration
}

// Bottleneck returns the stage with the highest utilization: the one whose
// replicas were busiest, which limits the pipeline's throughput.
func (s Stats) Bottleneck() (StageStats, bool) {
	best, found := StageStats{}, false
	for _, st := range s.Stages {
		if !found || st.Utilization(s.Elapsed) > best.Utilization(s.Elapsed) {
			best, found = st, true
		}
	}
	return best, found
}

// String is a one-line report: per stage, batches out, utilization and
// time blocked on input and output, then the bottleneck.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:", s.Elapsed.Round(time.Microsecond))
	for _, st := range s.Stages {
		fmt.Fprintf(&b, " %s[×%d %d→%d batches busy %.0f%% in-wait %s out-wait %s]",
			st.Path, st.Replicas, st.BatchesIn, st.BatchesOut, 100*st.Utilization(s.Elapsed),
			st.WaitIn.Round(time.Microsecond), st.WaitOut.Round(time.Microsecond))
	}
	if bn, ok := s.Bottleneck(); ok {
		fmt.Fprintf(&b, "; bottleneck: %s (%.0f%% busy)", bn.Path, 100*bn.Utilization(s.Elapsed))
	}
	return b.String()
}

func (pl *plan) stats(elapsed time.Duration) Stats {
	out := Stats{Elapsed: elapsed}
	pl.each(func(s *stage) {
		out.Stages = append(out.Stages, StageStats{
			Path:       s.path,
			Replicas:   s.replicas,
			BatchesIn:  s.c.batchesIn.Load(),
			RowsIn:     s.c.rowsIn.Load(),
			BatchesOut: s.c.batchesOut.Load(),
			RowsOut:    s.c.rowsOut.Load(),
			Busy:       time.Duration(s.c.busy.Load()),
			WaitIn:     time.Duration(s.c.waitIn.Load()),
			WaitOut:    time.Duration(s.c.waitOut.Load()),
		})
	})
	return out
}

func (c *counters) in(b Batch) {
	c.batchesIn.Add(1)
	c.rowsIn.Add(b.Rows())
}

func (c *counters) out(b Batch) {
	c.batchesOut.Add(1)
	c.rowsOut.Add(b.Rows())
}
