package wal

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// segFiles lists the segment files of dir.
func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segExt))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func TestRecoverTornTail(t *testing.T) {
	for _, c := range []struct {
		name  string
		tear  func(data []byte, last int) []byte // last: offset of the last record
		posts []int                              // the posts that survive
	}{
		{"cut in the payload", func(d []byte, _ int) []byte { return d[:len(d)-50] }, []int{1, 2}},
		{"cut in the header", func(d []byte, last int) []byte { return d[:last+5] }, []int{1, 2}},
		{"byte flipped in the last record", func(d []byte, last int) []byte { d[last+100] ^= 0x40; return d }, []int{1, 2}},
		{"length flipped in the last record", func(d []byte, last int) []byte { d[last+1] ^= 0x01; return d }, []int{1, 2}},
		{"zeros then a byte after the last record", func(d []byte, _ int) []byte { return append(d, append(make([]byte, 30), 1)...) }, []int{1, 2, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			mem := checkedMem(t)
			ctx := ctxT(t)
			dir := t.TempDir()
			e := newEnv(t, dir, mem, nil)
			sc := e.opts.Schema.Fields
			var last []byte
			for p := 1; p <= 3; p++ {
				last = body(t, sc, p, 4)
				if r := e.post(ctx, last, "", ContentType); r.code != 202 || r.answer.Record != int64(p) {
					t.Fatalf("post %d: %d %+v; want 202, record %d", p, r.code, r.answer, p)
				}
			}
			e.close()
			files, data := onlySegment(t, dir)
			lastOff := len(data) - (recHeader + payloadFixed + len(last))
			if err := os.WriteFile(files[0], c.tear(data, lastOff), 0o644); err != nil {
				t.Fatal(err)
			}

			e2 := newEnv(t, dir, mem, nil)
			cut := lastOff
			if len(c.posts) == 3 {
				cut = len(data)
			}
			if logged := e2.logBuf.String(); !strings.Contains(logged, "torn tail") || !strings.Contains(logged, "offset="+strconv.Itoa(cut)) {
				t.Errorf("log %q; want a torn tail logged at offset %d", logged, cut)
			}
			r := e2.post(ctx, body(t, sc, 9, 4), "", ContentType)
			if want := int64(len(c.posts) + 1); r.code != 202 || r.answer.Record != want {
				t.Fatalf("post after recovery: %d %+v; want 202, record %d", r.code, r.answer, want)
			}
			gs, err := e2.run(ctx, nil).drainAll(t, ctx)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			var want [][]int64
			for _, p := range append(slices.Clone(c.posts), 9) {
				want = append(want, labelsOf(p, 4)...)
			}
			if got := gotLabels(gs); !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("Run sent %v; want %v", got, want)
			}
		})
	}
}

// onlySegment returns the segment files of dir, which must be one, and
// the first one's bytes.
func onlySegment(t *testing.T, dir string) ([]string, []byte) {
	t.Helper()
	files := segFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("segments %v; want one", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return files, data
}

// postEach posts posts 1..n, one row batch of rows each, with keys
// "k<p>", one by one (so that each is its own group commit).
func postEach(t *testing.T, e *env, n, rows int) {
	t.Helper()
	ctx := ctxT(t)
	for p := 1; p <= n; p++ {
		if r := e.post(ctx, body(t, e.opts.Schema.Fields, p, rows), "k"+strconv.Itoa(p), ContentType); r.code != 202 {
			t.Fatalf("post %d: %d %+v; want 202", p, r.code, r.answer)
		}
	}
}

func TestCorruptOlderSegment(t *testing.T) {
	one := func(o *Options) { o.SegmentBytes = 1 } // a segment per group commit
	for _, c := range []struct {
		name, want string
		damage     func(files []string) error
	}{
		{"byte flipped", "it is not the last segment", func(files []string) error {
			data, err := os.ReadFile(files[0])
			if err != nil {
				return err
			}
			data[len(data)-7] ^= 1
			return os.WriteFile(files[0], data, 0o644)
		}},
		{"segment missing", "a segment is missing", func(files []string) error { return os.Remove(files[1]) }},
		{"not a segment name", "not a segment name", func(files []string) error {
			return os.WriteFile(filepath.Join(filepath.Dir(files[0]), "junk.wal"), nil, 0o644)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			mem := checkedMem(t)
			dir := t.TempDir()
			e := newEnv(t, dir, mem, one)
			postEach(t, e, 3, 2)
			e.close()
			files := segFiles(t, dir)
			if len(files) != 3 {
				t.Fatalf("segments %v; want 3", files)
			}
			if err := c.damage(files); err != nil {
				t.Fatal(err)
			}
			o := e.opts
			_, err := Open(o)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("Open: %v; want an error naming the directory and saying %q", err, c.want)
			}
		})
	}
}

func TestDuplicateAcrossRestart(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	e := newEnv(t, dir, mem, nil)
	b1 := body(t, e.opts.Schema.Fields, 1, 3)
	if r := e.post(ctx, b1, "key-1", ContentType); r.code != 202 || r.answer.Status != "accepted" {
		t.Fatalf("first post: %d %+v; want 202 accepted", r.code, r.answer)
	}
	if r := e.post(ctx, b1, "key-1", ContentType); r.code != 202 || r.header.Get(ReplayedHeader) != "true" {
		t.Fatalf("retry: %d %+v %s=%q; want 202 duplicate", r.code, r.answer, ReplayedHeader, r.header.Get(ReplayedHeader))
	}
	e.close()

	e2 := newEnv(t, dir, mem, nil)
	r := e2.post(ctx, b1, "key-1", ContentType)
	if r.code != 202 || r.answer.Status != "duplicate" || r.answer.Record != 1 || r.header.Get(ReplayedHeader) != "true" {
		t.Fatalf("retry after restart: %d %+v %s=%q; want 202, duplicate of record 1, true", r.code, r.answer, ReplayedHeader, r.header.Get(ReplayedHeader))
	}
	if r := e2.post(ctx, body(t, e.opts.Schema.Fields, 2, 3), "key-2", ContentType); r.code != 202 || r.answer.Record != 2 {
		t.Fatalf("new post: %d %+v; want 202, record 2", r.code, r.answer)
	}
	gs, err := e2.run(ctx, nil).drainAll(t, ctx)
	want := append(labelsOf(1, 3), labelsOf(2, 3)...)
	if err != nil || !slices.EqualFunc(gotLabels(gs), want, slices.Equal) {
		t.Errorf("Run sent %v, %v; want %v, nil (post 1 once)", gotLabels(gs), err, want)
	}
}

// TestKeysSurviveDurable: Durable deletes old segments, their keys stay
// (in the keys file), the most recent MaxKeys of them.
func TestKeysSurviveDurable(t *testing.T) {
	mem := checkedMem(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	tweak := func(o *Options) { o.SegmentBytes, o.KeepPositions, o.MaxKeys = 1, 2, 3 }
	e := newEnv(t, dir, mem, tweak)
	postEach(t, e, 5, 2)
	if files := segFiles(t, dir); len(files) != 5 {
		t.Fatalf("segments %v; want 5", files)
	}
	run := e.run(ctx, nil)
	gs := run.take(t, ctx, 5)
	if err := e.log.Durable(gs[2].pos.marshal()); err != nil {
		t.Fatal(err)
	}
	if files := segFiles(t, dir); len(files) != 5 {
		t.Errorf("after one Durable (KeepPositions 2): segments %v; want all 5", files)
	}
	if err := e.log.Durable(gs[4].pos.marshal()); err != nil {
		t.Fatal(err)
	}
	files := segFiles(t, dir)
	if want := filepath.Join(dir, segName(3)); len(files) != 3 || files[0] != want {
		t.Errorf("after Durable of records 3 and 5: segments %v; want 3, from %s (the older position's)", files, want)
	}
	if _, err := run.drainAll(t, ctx); err != nil {
		t.Fatal(err)
	}
	e.close()

	e2 := newEnv(t, dir, mem, tweak)
	for _, c := range []struct {
		key    string
		status string
		record int64
	}{
		{"k5", "duplicate", 5}, {"k3", "duplicate", 3}, {"k2", "accepted", 6}, // k2 was the 4th most recent: forgotten
	} {
		r := e2.post(ctx, body(t, e.opts.Schema.Fields, 9, 1), c.key, ContentType)
		if r.code != 202 || r.answer.Status != c.status || r.answer.Record != c.record {
			t.Errorf("post %s after restart: %d %+v; want 202, %s, record %d", c.key, r.code, r.answer, c.status, c.record)
		}
	}
	gs2, err := e2.run(ctx, gs[4].pos.marshal()).drainAll(t, ctx)
	if err != nil || !slices.EqualFunc(gotLabels(gs2), labelsOf(9, 1), slices.Equal) {
		t.Errorf("Run from record 5: %v, %v; want only the new post", gotLabels(gs2), err)
	}
	// A position in a deleted segment is refused, naming why.
	e3 := newEnv(t, t.TempDir(), mem, nil)
	if err := e3.log.Run(ctx, gs[0].pos.marshal(), nil, nil); err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Errorf("Run from a position of another log: %v; want an error", err)
	}
	e2.close()
	e4 := newEnv(t, dir, mem, tweak)
	if err := e4.log.Run(ctx, gs[0].pos.marshal(), nil, nil); err == nil || !strings.Contains(err.Error(), "was deleted") {
		t.Errorf("Run from a deleted segment: %v; want an error saying it was deleted", err)
	}
}
