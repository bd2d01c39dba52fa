package dirsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/penstock-ml/penstock/daemon/source"
)

// run is the state of one Run: what the directory listing showed and where
// the source stands. Only Run's goroutine uses it; what Durable shares is
// in Dir, under its mutex.
type run struct {
	d *Dir
	// resume is the position Run started from while its file is still to
	// be read (nil before the first batch of a fresh start, or once read).
	resume *position
	// cursor is the last file taken: files that sort at or before it are
	// not new.
	cursor string
	list   []os.DirEntry       // the rest of the last listing, in order
	watch  map[string]*watched // files seen but not yet taken
	bad    map[string]bool     // files that could not be moved to rejected/
}

// watched is what a file looked like when it was first seen unchanged.
type watched struct {
	size       int64
	mtime      time.Time
	since      time.Time
	mustSettle bool // it failed to read while it looked complete: wait for Settle
	early      bool // taken because its format looked complete, before Settle
}

// candidate reports whether name is a file that Run may read: it matches
// the glob and does not look like a file being written (a name that starts
// with "." or ends in ".tmp" or ".part").
func (d *Dir) candidate(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".part") {
		return false
	}
	ok, _ := filepath.Match(d.o.Glob, name) // New checked the pattern
	return ok
}

// listInbox lists the regular files of the inbox that Run may read, in
// lexical order.
func (d *Dir) listInbox() ([]os.DirEntry, error) {
	entries, err := os.ReadDir(d.o.Dir)
	if err != nil {
		return nil, fmt.Errorf("dirsource %q: list %q: %w", d.o.Name, d.o.Dir, err)
	}
	files := entries[:0]
	for _, e := range entries {
		if e.Type().IsRegular() && d.candidate(e.Name()) {
			files = append(files, e)
		}
	}
	return files, nil
}

// coverInbox marks the files of the inbox that the resumed position
// covers as sent: they move to done/ at the next Durable.
func (r *run) coverInbox() error {
	if r.resume == nil {
		return nil
	}
	if err := r.restoreDone(); err != nil {
		return err
	}
	files, err := r.d.listInbox()
	if err != nil {
		return err
	}
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	for _, e := range files {
		if r.resume.covers(e.Name()) {
			r.d.sent = append(r.d.sent, e.Name())
			r.d.taken[e.Name()] = true
		}
	}
	if r.resume.Last {
		r.resume = nil
	}
	return nil
}

// restoreDone moves back into the inbox the files of done/ that the
// resumed position does not cover: they were covered by a newer checkpoint
// than the one the daemon resumes from (the newest did not load), so they
// must be fitted again for none to be lost.
func (r *run) restoreDone() error {
	d := r.d
	done := filepath.Join(d.o.Dir, DoneDir)
	entries, err := os.ReadDir(done)
	if err != nil {
		return fmt.Errorf("dirsource %q: list %q: %w", d.o.Name, done, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !d.candidate(name) || r.resume.covers(name) {
			continue
		}
		dst := filepath.Join(d.o.Dir, name)
		if _, err := os.Lstat(dst); err == nil {
			continue // a file of that name is in the inbox already
		}
		if err := os.Rename(filepath.Join(done, name), dst); err != nil {
			return fmt.Errorf("dirsource %q: move %q back from %s/: %w", d.o.Name, name, DoneDir, err)
		}
		d.o.Log.Warn("file moved back from done/: the checkpoint resumed from does not cover it",
			"source", d.o.Name, "file", name, "position", r.resume.File)
	}
	return nil
}

// relist lists the inbox again and forgets the files that are gone.
func (r *run) relist() error {
	files, err := r.d.listInbox()
	if err != nil {
		return err
	}
	r.list = files
	present := make(map[string]bool, len(files))
	for _, e := range files {
		present[e.Name()] = true
	}
	for name := range r.watch {
		if !present[name] {
			delete(r.watch, name)
		}
	}
	return nil
}

// verdict is what next makes of a listed file.
type verdict int

const (
	skip  verdict = iota // taken already, or gone
	late                 // new, but sorts at or before a file taken
	wait                 // the next file, not complete yet
	ready                // the next file, complete
)

// next returns the next file to read, in lexical order, or false when the
// next one is not complete yet or there is none. Files that arrive late
// (sorting before one already taken) are rejected on the way.
func (r *run) next() (string, bool, error) {
	fresh := false
	if len(r.list) == 0 {
		if err := r.relist(); err != nil {
			return "", false, err
		}
		fresh = true
	}
	for len(r.list) > 0 {
		e := r.list[0]
		switch r.consider(e) {
		case skip:
			r.list = r.list[1:]
		case late:
			r.list = r.list[1:]
			r.reject(e.Name(), &rejection{reason: source.ReasonDup, err: fmt.Errorf(
				"dirsource %q: file %q arrived after %q was taken: files are read in lexical order, so a new file must sort after the last one taken (a file of that name was taken before, or the producer's names do not increase)",
				r.d.o.Name, e.Name(), r.cursor)})
		case wait:
			r.list = nil
			return "", false, nil
		case ready:
			r.list = r.list[1:]
			return e.Name(), true, nil
		}
		if len(r.list) == 0 && !fresh {
			if err := r.relist(); err != nil {
				return "", false, err
			}
			fresh = true
		}
	}
	return "", false, nil
}

// consider decides what to do with a listed file.
func (r *run) consider(e os.DirEntry) verdict {
	name := e.Name()
	if r.bad[name] {
		return skip
	}
	r.d.mu.Lock()
	taken := r.d.taken[name]
	r.d.mu.Unlock()
	if taken {
		return skip
	}
	resuming := r.resume != nil && name == r.resume.File
	if r.cursor != "" && name <= r.cursor && !resuming {
		if _, err := os.Lstat(filepath.Join(r.d.o.Dir, name)); err != nil {
			return skip // moved to done/ since the listing
		}
		return late
	}
	info, err := e.Info()
	if err != nil {
		return skip // gone since the listing
	}
	now := time.Now()
	w := r.watch[name]
	if w == nil || w.size != info.Size() || !w.mtime.Equal(info.ModTime()) {
		must := w != nil && w.mustSettle
		w = &watched{size: info.Size(), mtime: info.ModTime(), since: now, mustSettle: must}
		r.watch[name] = w
	}
	w.early = false
	switch {
	case r.d.o.Settle < 0:
		return ready
	case now.Sub(w.since) >= r.d.o.Settle:
		return ready
	case !w.mustSettle && r.d.complete(filepath.Join(r.d.o.Dir, name), name, info.Size()):
		w.early = true
		return ready
	}
	return wait
}

// complete reports whether the file's format shows that it was written to
// its end: an Arrow IPC file with its closing magic, an IPC stream with its
// end-of-stream marker, a Parquet file with its closing magic. A CSV file
// never shows it (it waits for Settle).
func (d *Dir) complete(path, name string, size int64) bool {
	format := d.o.Format
	if format == "" {
		format = formatOf(name)
	}
	if (format != "ipc" && format != "parquet") || size < 12 {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head, tail := make([]byte, 6), make([]byte, 8)
	if _, err := f.ReadAt(head, 0); err != nil {
		return false
	}
	if _, err := f.ReadAt(tail, size-8); err != nil {
		return false
	}
	switch format {
	case "parquet":
		return bytes.Equal(head[:4], parquetMagic) && bytes.Equal(tail[4:], parquetMagic)
	case "ipc":
		if bytes.Equal(head, ipcMagic) {
			return bytes.Equal(tail[2:], ipcMagic)
		}
		return bytes.Equal(tail, ipcStreamEOS)
	}
	return false
}

// take reads the file name wholly and sends its batches, or rejects it.
func (r *run) take(ctx context.Context, name string, out chan<- source.Input) error {
	d := r.d
	path := filepath.Join(d.o.Dir, name)
	before, _ := os.Stat(path)
	w := r.watch[name]
	l, err := d.load(ctx, path, name, w != nil && w.early)
	if ctx.Err() != nil {
		if l != nil {
			l.release()
		}
		return context.Cause(ctx)
	}
	if rej, ok := errors.AsType[*rejection](err); ok {
		if errors.Is(err, fs.ErrNotExist) {
			delete(r.watch, name) // gone since the listing
			return nil
		}
		if w != nil && d.o.Settle > 0 && (w.early || changed(before, path)) {
			// It looked complete, or changed while it was read: it may
			// still be being written. Wait until it settles, then decide.
			w.mustSettle, w.since = true, time.Now()
			r.list = nil // list again: the files after it wait for it
			d.o.Log.Debug("file not readable yet; waiting for it to settle", "source", d.o.Name, "file", name, "err", err)
			return nil
		}
		r.reject(name, rej)
		return nil
	}
	if err != nil {
		return err
	}
	delete(r.watch, name)
	r.cursor = name
	batches := l.batches
	l.batches = nil
	first := 0
	if r.resume != nil && r.resume.File == name {
		first = r.resume.Batch + 1
		if first > len(batches) {
			d.o.Log.Warn("resumed position is past the file's last batch; the file is taken as read",
				"source", d.o.Name, "file", name, "batch", r.resume.Batch, "batches", len(batches))
			first = len(batches)
		}
		r.resume = nil
		for _, b := range batches[:first] {
			b.Release()
		}
	}
	d.mu.Lock()
	d.taken[name] = true
	d.read[name] = l.info
	if len(batches) == 0 {
		// Nothing to send, nothing to lose: it is done at once.
		d.mu.Unlock()
		r.done(name)
		return nil
	}
	if first == len(batches) {
		d.sent = append(d.sent, name)
	}
	d.mu.Unlock()
	d.o.Log.Debug("file taken", "source", d.o.Name, "file", name, "batches", len(batches), "from", first)
	return source.Send(ctx, out, batches[first:], func(j int) []byte {
		i := first + j
		last := i == len(batches)-1
		if last {
			// Before the send: a Durable of this position may come as
			// soon as the daemon has it.
			d.mu.Lock()
			d.sent = append(d.sent, name)
			d.mu.Unlock()
		}
		return position{File: name, Batch: i, Last: last}.encode()
	})
}

// changed reports whether the file at path differs in size or modification
// time from before.
func changed(before os.FileInfo, path string) bool {
	now, err := os.Stat(path)
	if err != nil || before == nil {
		return true
	}
	return now.Size() != before.Size() || !now.ModTime().Equal(before.ModTime())
}

// done moves a file with no batches to done/ at once.
func (r *run) done(name string) {
	d := r.d
	err := os.Rename(filepath.Join(d.o.Dir, name), filepath.Join(d.o.Dir, DoneDir, name))
	d.mu.Lock()
	if err != nil {
		d.sent = append(d.sent, name) // tried again at the next Durable
	} else {
		delete(d.taken, name)
		delete(d.read, name)
	}
	d.mu.Unlock()
	d.o.Log.Info("file has no rows", "source", d.o.Name, "file", name)
}

// reject moves a file to rejected/ with a reason file
// (rejected/<name>.reason.txt) and reports it.
func (r *run) reject(name string, rej *rejection) {
	d := r.d
	delete(r.watch, name)
	d.o.Reporter.Rejected(d.o.Name, rej.reason, rej.err)
	dir := filepath.Join(d.o.Dir, RejectedDir)
	text := fmt.Sprintf("reason: %s\nerror: %v\n", rej.reason, rej.err)
	err := os.WriteFile(filepath.Join(dir, name+".reason.txt"), []byte(text), 0o644)
	if err == nil {
		err = os.Rename(filepath.Join(d.o.Dir, name), filepath.Join(dir, name))
	}
	if err != nil {
		if r.bad == nil {
			r.bad = map[string]bool{}
		}
		r.bad[name] = true
		d.o.Log.Error("cannot move a rejected file; it is skipped until restart", "source", d.o.Name, "file", name, "err", err)
	}
}
