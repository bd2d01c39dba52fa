package wal

import "testing"

// Durable before Run (a daemon restarting from a checkpoint confirms its
// positions first) deletes segments, and their bytes no longer count as
// pending: before Run the whole log counts, and the log is what remains.
func TestPendingAfterDurableBeforeRun(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	tweak := func(o *Options) { o.SegmentBytes, o.KeepPositions = 1, 1 } // a segment per post
	e := newEnv(t, dir, mem, tweak)
	postEach(t, e, 5, 2)
	run := e.run(ctx, nil)
	gs := run.take(t, ctx, 5)
	if _, err := run.drainAll(t, ctx); err != nil {
		t.Fatal(err)
	}
	e.close()

	e2 := newEnv(t, dir, mem, tweak)
	whole := e2.log.Stats().Pending
	if err := e2.log.Durable(gs[3].pos.marshal()); err != nil {
		t.Fatal(err)
	}
	e2.log.mu.Lock()
	left := e2.log.segs[len(e2.log.segs)-1].base + e2.log.segs[len(e2.log.segs)-1].size - e2.log.segs[0].base
	segs := len(e2.log.segs)
	e2.log.mu.Unlock()
	if segs >= 5 {
		t.Fatalf("Durable deleted no segment (%d left)", segs)
	}
	if got := e2.log.Stats().Pending; got != left {
		t.Errorf("pending after Durable before Run: %d bytes (%d before); want %d, the log that remains", got, whole, left)
	}
}
