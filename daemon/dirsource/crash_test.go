package dirsource_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Many files, stopped at seeded random moments: each restart resumes from
// the last position made durable (a checkpoint) and the daemon keeps only
// what that checkpoint covers, so across all restarts every row is taken
// exactly once, in order, and done/ holds exactly the files covered.
func TestRestartsTakeEveryRowOnce(t *testing.T) {
	mem := checked(t)
	dir := t.TempDir()
	const files, batches, rows = 60, 3, 5
	for f := range files {
		writeIPCFile(t, filepath.Join(dir, fmt.Sprintf("%04d.arrow", f)), f*batches*rows, batches, rows)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	var kept []int64 // the rows of the checkpoints, in order
	var from []byte
	for restart := 0; ; restart++ {
		d := newDir(t, dir, mem, newRecorder(), nil)
		r := start(t, d, from)
		n := 1 + rng.IntN(40) // inputs read before the "crash"
		var gs []got
		for len(gs) < n {
			g, ok := r.TryRecv(t)
			if !ok {
				break // every file taken
			}
			gs = append(gs, g)
		}
		// A checkpoint covers a prefix of what was read (maybe none).
		c := rng.IntN(len(gs) + 1)
		if c > 0 {
			from = []byte(gs[c-1].Pos)
			kept = append(kept, rowsOf(gs[:c])...)
			if err := d.Durable(from); err != nil {
				t.Fatal(err)
			}
		}
		r.Stop(t, nil)
		d.Close()
		if len(gs) == 0 {
			break
		}
		if restart > 200 {
			t.Fatal("not done after 200 restarts")
		}
	}
	if want := seq(0, files*batches*rows); !slices.Equal(kept, want) {
		t.Fatalf("rows kept across restarts:\n got %v\nwant %v", kept, want)
	}
	left, _ := os.ReadDir(dir)
	done, _ := os.ReadDir(filepath.Join(dir, "done"))
	if len(done) != files || len(left) != 2 { // done/ and rejected/
		t.Fatalf("%d files in done/, %d entries left in the inbox; want %d and only done/ and rejected/", len(done), len(left), files)
	}
}
