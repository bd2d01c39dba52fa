package wal

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A crash at any moment between group commits, with segments smaller
// than the preallocated chunk (every segment is zeroed to its end) and
// Run reading the live segment meanwhile: a reopened copy of the
// directory holds exactly the posts acknowledged before it was taken, in
// order, with no torn tail; appending into the zeros it kept and crashing
// again loses nothing either; and a Close leaves every segment at its
// last record.
func TestAuditPreallocCrashAtEveryPost(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	small := func(o *Options) { o.SegmentBytes = 48 << 10 }
	e := newEnv(t, "", mem, small)
	sc := e.opts.Schema.Fields
	run := e.run(ctx, nil)
	const posts = 24
	rowsOf := func(p int) int { return 50 + 37*(p%9) } // 1 to 6 KB a post
	type crash struct {
		dir   string
		posts int // acknowledged before the copy
	}
	var crashes []crash
	var sent []got
	for p := 1; p <= posts; p++ {
		if r := e.post(ctx, body(t, sc, p, rowsOf(p)), "k"+strconv.Itoa(p), ContentType); r.code != 202 || r.answer.Record != int64(p) {
			t.Fatalf("post %d: %d %+v; want 202, record %d", p, r.code, r.answer, p)
		}
		sent = append(sent, run.take(t, ctx, 1)...) // Run has read it from the live segment
		crashes = append(crashes, crash{copyDir(t, e.dir), p})
	}
	if n := len(segFiles(t, e.dir)); n < 3 {
		t.Fatalf("%d segments; want the log to roll a few times", n)
	}
	rest, err := run.drainAll(t, ctx)
	if err != nil || len(rest) != 0 {
		t.Fatalf("drain: %d more inputs, %v; want none, nil", len(rest), err)
	}
	for i, g := range sent {
		if want := labelsOf(i+1, rowsOf(i+1))[0]; !slices.Equal(g.labels, want) {
			t.Fatalf("Run sent post %v as input %d; want post %d", g.labels[:1], i, i+1)
		}
	}
	e.close()
	checkTrimmed(t, e)

	want := func(n int) [][]int64 {
		var w [][]int64
		for p := 1; p <= n; p++ {
			w = append(w, labelsOf(p, rowsOf(p))...)
		}
		return w
	}
	for _, c := range crashes {
		e1 := newEnv(t, c.dir, mem, small)
		if logged := e1.logBuf.String(); strings.Contains(logged, "torn") {
			t.Errorf("crash after post %d: %s; want no torn tail", c.posts, logged)
		}
		// Append into the kept zeros, then crash again.
		for p := c.posts + 1; p <= c.posts+3; p++ {
			if r := e1.post(ctx, body(t, sc, p, rowsOf(p)), "k"+strconv.Itoa(p), ContentType); r.code != 202 || r.answer.Record != int64(p) {
				t.Fatalf("crash after post %d: post %d: %d %+v; want 202, record %d", c.posts, p, r.code, r.answer, p)
			}
		}
		again := copyDir(t, c.dir)
		e1.close()
		checkTrimmed(t, e1)
		e2 := newEnv(t, again, mem, small)
		if logged := e2.logBuf.String(); strings.Contains(logged, "torn") {
			t.Errorf("second crash after post %d: %s; want no torn tail", c.posts+3, logged)
		}
		if r := e2.post(ctx, body(t, sc, 1, 3), "k1", ContentType); r.code != 202 || r.answer.Status != "duplicate" || r.answer.Record != 1 {
			t.Errorf("retry of post 1 after two crashes: %d %+v; want a duplicate of record 1", r.code, r.answer)
		}
		gs, err := e2.run(ctx, nil).drainAll(t, ctx)
		if err != nil {
			t.Fatalf("Run after two crashes: %v", err)
		}
		if got := gotLabels(gs); !slices.EqualFunc(got, want(c.posts+3), slices.Equal) {
			t.Errorf("crash after post %d, 3 more, crash: Run sent %d inputs; want posts 1 to %d, in order", c.posts, len(got), c.posts+3)
		}
		e2.close()
		checkTrimmed(t, e2)
	}
}

// checkTrimmed checks that every segment of a closed log ends at its last
// record: Open finds nothing after it.
func checkTrimmed(t *testing.T, e *env) {
	t.Helper()
	e.log.mu.Lock()
	segs := slices.Clone(e.log.segs)
	e.log.mu.Unlock()
	for _, s := range segs {
		if got := fileSize(t, s.path); got != s.size {
			t.Errorf("after Close, %s is %d bytes; want %d, its records", s.path, got, s.size)
		}
	}
}
