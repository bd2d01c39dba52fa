package automl_test

// The second audit pass of automl's promises: the directory repository as
// a loader of what is on disk (files that are not regular, files too big
// to be a trial, a crash mid-write), successive halving's arithmetic, the
// summary's ties.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/hparams"
)

// trialsWithin calls repo.Trials and fails the test where it does not
// return within d (a read that blocks); unblock undoes what blocks it.
func trialsWithin(t *testing.T, repo *automl.DirRepository, study string, d time.Duration, unblock func()) ([]automl.Trial, error) {
	t.Helper()
	ctx := deadline(t, d)
	type reply struct {
		trials []automl.Trial
		err    error
	}
	done := make(chan reply, 1)
	go func() {
		tr, err := repo.Trials(ctx, study)
		done <- reply{tr, err}
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.trials, r.err
	case <-timer.C:
		unblock()
		<-done
		t.Fatalf("Trials did not return within %v (its context was done): it blocks on a file", d)
		return nil, nil
	}
}

// A "*.json" entry of the directory that is not a regular file (a named
// pipe: a read of it waits for a writer, whatever the context) is an
// error naming it, at once; a file too big to be a trial file is an error
// naming it too, without reading it whole.
func TestAuditDirRepositoryHostileFiles(t *testing.T) {
	ctx := deadline(t, 20*time.Second)
	dir := t.TempDir()
	repo, err := automl.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := automl.Trial{Study: "s", Search: "x", ID: "01", Status: automl.Done, Params: hparams.Values{"n": 1}, Score: 1, Started: time.Unix(0, 0).UTC()}
	if err := repo.Save(ctx, tr); err != nil {
		t.Fatal(err)
	}

	fifo := filepath.Join(dir, "pipe.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	unblock := func() { // a writer that comes and goes: the blocked open returns
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	}
	_, err = trialsWithin(t, repo, "s", 3*time.Second, unblock)
	if err == nil || !strings.Contains(err.Error(), fifo) {
		t.Errorf("named pipe: got %v; want an error naming %s", err, fifo)
	}
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}

	big := filepath.Join(dir, "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil { // a sparse terabyte: nothing on disk
		f.Close()
		t.Skipf("no sparse files here: %v", err)
	}
	f.Close()
	_, err = trialsWithin(t, repo, "s", 5*time.Second, func() { os.Remove(big) })
	if err == nil || !strings.Contains(err.Error(), big) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a terabyte file: got %v; want an error naming %s", err, big)
	}
	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}

	got, err := repo.Trials(ctx, "s")
	if err != nil || len(got) != 1 || got[0].ID != "01" {
		t.Errorf("after removing them: %+v (%v); want the one trial saved", got, err)
	}
}
