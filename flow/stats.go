package flow

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// StageStats are the statistics of one stage of a run, or of the run's
// source (Source is true).
//
// Counts (batches and rows) are the stage's own, over all its replicas.
// Times are per replica: the sum over the stage's goroutines divided by
// Replicas, so that none of them exceeds the elapsed time of the pass (or
// run) they belong to; multiply by Replicas for the sum.
//
// The source is read by one goroutine (Replicas 1). Its Busy is the time
// spent inside the source's Next (and, on a pass that reads back a spill,
// inside the spill), BatchesOut and RowsOut what it read, WaitOut the time
// its reader was blocked handing batches on (a full first queue, or the
// streaming engine's admission window); it has no input.
//
// In the sequential engine every stage runs in one goroutine, whatever its
// Replicas option says, so Replicas is 1; nothing waits in that engine (one
// thing runs at a time), so WaitIn and WaitOut are 0 and Busy is all there
// is.
type StageStats struct {
	// Path is the step's path in the pipeline, printed "outer/inner"; nil
	// (the root's path, which no step has) for the source.
	Path Path
	// Source marks the entry of the run's source.
	Source bool
	// Replicas is the number of goroutines that ran the stage.
	Replicas int
	// Passes is the number of passes over the source that ran the stage:
	// 1 in a PassStats; in Stats.Stages, the passes that the counts and
	// times are summed over (0 for a stage that a fit never runs).
	Passes     int
	BatchesIn  int64
	RowsIn     int64
	BatchesOut int64 // 0 for a stage that only fits
	RowsOut    int64
	Busy       time.Duration // time inside the step (or the source's Next), per replica
	WaitIn     time.Duration // time blocked waiting for input, per replica
	WaitOut    time.Duration // time blocked on a full output queue, per replica
}

// Name is the stage's path as printed, or "(source)" for the source.
func (s StageStats) Name() string {
	if s.Source {
		return "(source)"
	}
	return s.Path.String()
}

// Utilization is the share of elapsed that the stage's replicas spent
// busy, from 0 to 1: Busy (already per replica) over elapsed.
func (s StageStats) Utilization(elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(s.Busy) / float64(elapsed)
}

// PassStats are the statistics of one pass over the source. A Transform
// is one pass; a Fit or FitTransform with Joiners takes a pass per segment
// that has something to fit (see Runner.Fit), and each pass reads the whole
// source again.
type PassStats struct {
	// Stages has the source first, then the stages that the pass ran, in
	// pipeline order (the stages of a feature union's branches follow the
	// union's own entry).
	Stages []StageStats
	// Elapsed is the pass's duration so far, or its total once it ended.
	Elapsed time.Duration
}

// Bottleneck returns the stage of the pass, the source included, with the
// highest busy fraction per replica: the one that limited the pass's
// throughput. It reports false when nothing was busy.
func (p PassStats) Bottleneck() (StageStats, bool) { return bottleneck(p.Stages, p.Elapsed) }

// Stats are the statistics of a run.
//
// Passes has one entry per pass over the source begun so far: that is
// where each figure describes one read of the stream. Stages is the whole
// run: the source first, then every stage of the pipeline once, in
// pipeline order (the stages of a feature union's branches follow the
// union's own entry), with counts and times summed over the passes that
// ran it (StageStats.Passes says how many; a stage before a Joiner sees
// each batch once per pass). Elapsed is the time since the run started,
// or its total once it has finished; no time in Stages or Passes exceeds
// it.
//
// For "which stage limits my run", Bottleneck looks at the whole run; for
// one pass of a Fit, use that pass's Bottleneck.
type Stats struct {
	Stages  []StageStats
	Passes  []PassStats
	Elapsed time.Duration
}

// Bottleneck returns the stage of the run, the source included, with the
// highest busy fraction per replica over the run (Busy over Elapsed): the
// one whose replicas were busiest, which limits the pipeline's throughput.
// It reports false when nothing was busy.
func (s Stats) Bottleneck() (StageStats, bool) { return bottleneck(s.Stages, s.Elapsed) }

func bottleneck(stages []StageStats, elapsed time.Duration) (StageStats, bool) {
	best, found := StageStats{}, false
	for _, st := range stages {
		if st.Busy > 0 && (!found || st.Utilization(elapsed) > best.Utilization(elapsed)) {
			best, found = st, true
		}
	}
	return best, found
}

// String is a table with one row per stage and pass:
//
//	elapsed 52.3ms, 1 pass
//	stage     replicas  batches in→out  rows in→out  busy  wait-in  wait-out
//	(source)  1         -→20            -→200        2%    -        1.2ms
//	scale     4         20→20           200→200      81%   3.1ms    120µs
//	bottleneck: scale (81% busy)
//
// Busy is the busy fraction per replica of the pass's elapsed time, the
// waits are per replica. With several passes a first column numbers the
// pass of each row, and a line per pass gives its time and bottleneck
// before the run's. The string does not end with a newline.
func (s Stats) String() string {
	var b strings.Builder
	passes := "passes"
	if len(s.Passes) == 1 {
		passes = "pass"
	}
	fmt.Fprintf(&b, "elapsed %s, %d %s\n", short(s.Elapsed), len(s.Passes), passes)
	if len(s.Passes) > 0 {
		several := len(s.Passes) > 1
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		if several {
			fmt.Fprint(tw, "pass\t")
		}
		fmt.Fprint(tw, "stage\treplicas\tbatches in→out\trows in→out\tbusy\twait-in\twait-out\n")
		for i, ps := range s.Passes {
			for _, st := range ps.Stages {
				if several {
					fmt.Fprintf(tw, "%d\t", i+1)
				}
				batchesIn, rowsIn, waitIn := fmt.Sprint(st.BatchesIn), fmt.Sprint(st.RowsIn), short(st.WaitIn)
				if st.Source {
					batchesIn, rowsIn, waitIn = "-", "-", "-"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s→%d\t%s→%d\t%.0f%%\t%s\t%s\n",
					st.Name(), st.Replicas, batchesIn, st.BatchesOut, rowsIn, st.RowsOut,
					100*st.Utilization(ps.Elapsed), waitIn, short(st.WaitOut))
			}
		}
		tw.Flush()
		if several {
			for i, ps := range s.Passes {
				fmt.Fprintf(&b, "pass %d: %s", i+1, short(ps.Elapsed))
				if bn, ok := ps.Bottleneck(); ok {
					fmt.Fprintf(&b, ", bottleneck: %s (%.0f%% busy)", bn.Name(), 100*bn.Utilization(ps.Elapsed))
				}
				b.WriteByte('\n')
			}
		}
	}
	if bn, ok := s.Bottleneck(); ok {
		fmt.Fprintf(&b, "bottleneck: %s (%.0f%% busy)\n", bn.Name(), 100*bn.Utilization(s.Elapsed))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// short rounds d for printing: to the microsecond under a second, to the
// millisecond above.
func short(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// counters are a stage's (or the source's) live statistics, updated with
// atomics by its goroutines and read at any time. They only grow during a
// run; see runStats for how they are split into passes.
//
// The busy time is busy plus what the stage's busyClocks say: a goroutine
// of the streaming engine keeps its busy time in a busyClock of its own,
// which costs no clock read for a batch that does not wait; the run folds
// the clocks into busy at the end of each pass.
//
// The batches and rows in (and out) cost one atomic addition per batch:
// tallyIn holds the batches in the bits from tallyShift up and the rows
// below, and a fold moves them into batchesIn and rowsIn before either
// part can overflow (see tally).
type counters struct {
	tallyIn, tallyOut atomic.Int64 // batches<<tallyShift | rows, since the last fold
	busy              atomic.Int64 // ns inside the step, summed over replicas
	waitIn            atomic.Int64 // ns blocked waiting for input, summed
	waitOut           atomic.Int64 // ns blocked on a full output queue, summed

	// What the folds have moved out of the tallies, and the folds' count,
	// odd while one runs, so that a reader sees a fold whole or not at all.
	batchesIn, rowsIn   atomic.Int64
	batchesOut, rowsOut atomic.Int64
	folds               atomic.Int64
	foldMu              sync.Mutex // one fold at a time

	clocks []*busyClock // of the goroutines of the pass that runs; runStats.mu guards the slice
}

// The layout of a tally. A fold begins once the batches or the rows reach
// their limit, far enough below the point where they would overflow for
// the additions of the goroutines that go on counting meanwhile; a batch
// has fewer than 2³⁸ rows.
const (
	tallyShift      = 40
	tallyRows       = 1<<tallyShift - 1
	tallyRowLimit   = 1 << 38
	tallyBatchLimit = 1 << 21
)

func (c *counters) in(b Batch)  { c.tally(&c.tallyIn, b.Rows()) }
func (c *counters) out(b Batch) { c.tally(&c.tallyOut, b.Rows()) }

// tally counts a batch of rows rows in t, one of c's tallies.
func (c *counters) tally(t *atomic.Int64, rows int64) {
	if n := t.Add(1<<tallyShift + rows); n&tallyRows >= tallyRowLimit || n>>tallyShift >= tallyBatchLimit {
		c.foldTallies()
	}
}

// foldTallies moves both tallies into the wide counters.
func (c *counters) foldTallies() {
	c.foldMu.Lock()
	defer c.foldMu.Unlock()
	c.folds.Add(1)
	for _, f := range []struct {
		t             *atomic.Int64
		batches, rows *atomic.Int64
	}{{&c.tallyIn, &c.batchesIn, &c.rowsIn}, {&c.tallyOut, &c.batchesOut, &c.rowsOut}} {
		n := f.t.Load()
		f.batches.Add(n >> tallyShift)
		f.rows.Add(n & tallyRows)
		f.t.Add(-n) // what others have added since the Load stays
	}
	c.folds.Add(1)
}

// loadTallies reads the batches and rows in and out, between folds.
func (c *counters) loadTallies() (batchesIn, rowsIn, batchesOut, rowsOut int64) {
	for {
		if f := c.folds.Load(); f&1 == 0 {
			bi, ri, bo, ro := c.batchesIn.Load(), c.rowsIn.Load(), c.batchesOut.Load(), c.rowsOut.Load()
			in, out := c.tallyIn.Load(), c.tallyOut.Load()
			if c.folds.Load() == f {
				return bi + in>>tallyShift, ri + in&tallyRows, bo + out>>tallyShift, ro + out&tallyRows
			}
		}
		runtime.Gosched() // a fold runs: it takes a few atomic operations
	}
}

// counts is a snapshot of counters.
type counts struct {
	batchesIn, rowsIn, batchesOut, rowsOut int64
	busy, waitIn, waitOut                  int64
}

// load reads the counters; runStats.mu is held.
func (c *counters) load() counts {
	busy := c.busy.Load()
	for _, k := range c.clocks {
		busy += k.read()
	}
	bi, ri, bo, ro := c.loadTallies()
	return counts{
		batchesIn: bi, rowsIn: ri, batchesOut: bo, rowsOut: ro,
		busy: busy, waitIn: c.waitIn.Load(), waitOut: c.waitOut.Load(),
	}
}

// foldClocks adds the clocks' busy time to busy and drops them, once
// their goroutines have stopped; runStats.mu is held.
func (c *counters) foldClocks() {
	for _, k := range c.clocks {
		c.busy.Add(k.read())
	}
	c.clocks = nil
}

// busyClock is the busy time of one goroutine, which it keeps up to date
// without reading the clock for every batch: it reads the clock when it
// starts and stops waiting, and a reader works out the busy stretch going
// on from its own reading of now. The goroutine alone calls start, pause
// and stop; read may be called from anywhere. Each clock has a cache line
// of its own, so that the replicas of a stage do not share one.
type busyClock struct {
	// v is the busy time so far, in ns, while the goroutine waits (or
	// before it starts, or once it has stopped); while it is busy, the busy
	// time up to the start of the stretch minus that start, a reading of
	// now, which is negative (now exceeds any busy time: see clockBase), so
	// that the busy time is now + v.
	v atomic.Int64
	// The goroutine's own.
	busy, since int64
	running     bool
	_           [64 - 8 - 2*8 - 8]byte
}

// start begins a busy stretch at t, a reading of now.
func (k *busyClock) start(t int64) {
	k.since, k.running = t, true
	k.v.Store(k.busy - t)
}

// pause ends the busy stretch going on, if any, at t.
func (k *busyClock) pause(t int64) {
	if !k.running {
		return
	}
	k.busy += t - k.since
	k.running = false
	k.v.Store(k.busy)
}

// read returns the busy time so far. It reads the clock after v, so that
// now is no earlier than the start of the stretch that v describes.
func (k *busyClock) read() int64 {
	v := k.v.Load()
	if v >= 0 {
		return v
	}
	return now() + v
}

func (a counts) minus(b counts) counts {
	return counts{
		batchesIn: a.batchesIn - b.batchesIn, rowsIn: a.rowsIn - b.rowsIn,
		batchesOut: a.batchesOut - b.batchesOut, rowsOut: a.rowsOut - b.rowsOut,
		busy: a.busy - b.busy, waitIn: a.waitIn - b.waitIn, waitOut: a.waitOut - b.waitOut,
	}
}

// stageStats makes the entry of a stage (or the source) whose counters
// moved by c, run by replicas goroutines over passes passes.
func (c counts) stageStats(path Path, source bool, replicas, passes int) StageStats {
	n := int64(max(replicas, 1))
	return StageStats{
		Path: path, Source: source, Replicas: replicas, Passes: passes,
		BatchesIn: c.batchesIn, RowsIn: c.rowsIn, BatchesOut: c.batchesOut, RowsOut: c.rowsOut,
		Busy:    time.Duration(c.busy / n),
		WaitIn:  time.Duration(c.waitIn / n),
		WaitOut: time.Duration(c.waitOut / n),
	}
}

// runStats are a run's statistics beyond the stages' own counters: the
// source's counters, and where each pass began and ended. The engines
// update the counters per batch (atomics only) and call beginPass before
// each pass (before its rewind) and endPass once the run is over; that,
// and a goroutine taking a busyClock when it starts, is all the locking
// there is.
//
// A pass's figures are the difference of the counters between its end and
// its start. That is exact because passes run one after the other: a pass
// has waited for all its goroutines (or abandoned its feeder, stopping the
// feeder's clock for it, and the feeder then counts nothing) before the
// next pass begins.
type runStats struct {
	src counters // the source's: out, busy and waitOut

	mu     sync.Mutex
	stages []*stage // every stage of the plan, in Stats.Stages order
	index  map[*stage]int
	passes []passMark
}

type passMark struct {
	run        []int     // indices in stages of the stages the pass runs
	start, end time.Time // end is zero while the pass runs
	from, to   []counts  // [0] the source, [i+1] stages[i]; to nil while it runs
}

// init lists the plan's stages, once; rs.mu is held.
func (rs *runStats) init(pl *plan) {
	if rs.index != nil {
		return
	}
	rs.index = map[*stage]int{}
	pl.each(func(s *stage) {
		rs.index[s] = len(rs.stages)
		rs.stages = append(rs.stages, s)
	})
}

// live reads the counters now; rs.mu is held.
func (rs *runStats) live() []counts {
	out := make([]counts, 1+len(rs.stages))
	out[0] = rs.src.load()
	for i, s := range rs.stages {
		out[i+1] = s.c.load()
	}
	return out
}

// clock returns a new busyClock for a goroutine that counts into c, in the
// pass that runs.
func (rs *runStats) clock(c *counters) *busyClock {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	k := new(busyClock)
	c.clocks = append(c.clocks, k)
	return k
}

// beginPass ends the pass before, if any, and begins ps.
func (rs *runStats) beginPass(pl *plan, ps pass) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.init(pl)
	rs.endLocked()
	m := passMark{start: time.Now(), from: rs.live()}
	(&plan{stages: ps.stages}).each(func(s *stage) { m.run = append(m.run, rs.index[s]) })
	rs.passes = append(rs.passes, m)
}

// endPass ends the pass that runs, if any. It may be called more than once.
func (rs *runStats) endPass() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.endLocked()
}

func (rs *runStats) endLocked() {
	if len(rs.passes) == 0 {
		return
	}
	if m := &rs.passes[len(rs.passes)-1]; m.to == nil {
		m.to = rs.live()
		m.end = time.Now() // after the counters, so they never exceed it
		// The pass's goroutines have all stopped: their clocks' times are
		// final.
		rs.src.foldClocks()
		for _, s := range rs.stages {
			s.c.foldClocks()
		}
	}
}

// stats returns the run's statistics. begin is when the run started and
// finished its elapsed time once it has ended (0 before). oneGoroutine
// says that every stage ran in one goroutine (the sequential engine).
func (rs *runStats) stats(pl *plan, begin time.Time, finished time.Duration, oneGoroutine bool) Stats {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.init(pl)
	live := rs.live()
	now := time.Now() // after the counters, so they never exceed it
	out := Stats{Elapsed: finished}
	if out.Elapsed <= 0 {
		out.Elapsed = now.Sub(begin)
	}
	replicas := func(s *stage) int {
		if oneGoroutine {
			return 1
		}
		return s.replicas
	}
	ran := make([]int, len(rs.stages))
	for _, m := range rs.passes {
		to, end := m.to, m.end
		if to == nil {
			to, end = live, now
		}
		ps := PassStats{Elapsed: end.Sub(m.start), Stages: make([]StageStats, 0, 1+len(m.run))}
		ps.Stages = append(ps.Stages, to[0].minus(m.from[0]).stageStats(nil, true, 1, 1))
		for _, i := range m.run {
			ran[i]++
			s := rs.stages[i]
			ps.Stages = append(ps.Stages, to[i+1].minus(m.from[i+1]).stageStats(s.path, false, replicas(s), 1))
		}
		out.Passes = append(out.Passes, ps)
	}
	out.Stages = make([]StageStats, 0, 1+len(rs.stages))
	out.Stages = append(out.Stages, live[0].stageStats(nil, true, 1, len(rs.passes)))
	for i, s := range rs.stages {
		out.Stages = append(out.Stages, live[i+1].stageStats(s.path, false, replicas(s), ran[i]))
	}
	return out
}
