package dirsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/daemon/source"
)

// Defaults of Options.
const (
	DefaultGlob         = "*"
	DefaultSettle       = 2 * time.Second
	DefaultPoll         = 200 * time.Millisecond
	DefaultBatchRows    = 1024
	DefaultMaxFileBytes = 1 << 30
	DefaultName         = "dir"
)

// The subdirectories of Options.Dir that files move to.
const (
	DoneDir     = "done"
	RejectedDir = "rejected"
)

// Options configure a Dir. The zero value of each field but Dir and Schema
// means its default.
type Options struct {
	// Name is the source's name (default "dir").
	Name string
	// Dir is the directory watched (the inbox). It must exist; New creates
	// its subdirectories done/ and rejected/.
	Dir string
	// Glob chooses the files of Dir that are read (filepath.Match syntax
	// on the base name; default "*").
	Glob string
	// Format is "ipc" (an Arrow IPC file or stream, told apart by the
	// file's magic number), "csv" (plain or gzip, with a header line),
	// "parquet", or "" (by extension: .arrow .arrows .feather .ipc; .csv
	// .csv.gz; .parquet .pq; any other file is rejected).
	Format string
	// Settle is how long a file's size and modification time must stay
	// unchanged before it is taken, unless its format says it is complete
	// (see the package doc). 0 means DefaultSettle (2 s); a negative
	// value means no wait: every file is taken when first seen, so the
	// producer must rename complete files into Dir.
	Settle time.Duration
	// Poll is how often Dir is listed (default 200 ms).
	Poll time.Duration
	// BatchRows is the rows per batch of CSV and Parquet files (default
	// 1024); an IPC file keeps its record batches as written.
	BatchRows int
	// MaxFileBytes bounds a file's size on disk and the Arrow memory that
	// its batches hold once decoded (default 1 GiB); a larger file is
	// rejected.
	MaxFileBytes int64
	// Schema is what every file must hold.
	Schema source.Schema
	// Alloc is the allocator of every batch (default memory.DefaultAllocator).
	Alloc memory.Allocator
	// Reporter hears of rejected files (default a source.LogReporter).
	Reporter source.Reporter
	// Log is the logger (default slog.Default()).
	Log *slog.Logger
}

// Dir is a source.Source that reads the files of a directory.
type Dir struct {
	o Options

	guard source.Guard // Run once, not after Close
	mu    sync.Mutex
	// sent are the files of the inbox of which every batch was sent (or
	// that a resumed position covers), in order: they move to done/ once
	// Durable covers them.
	sent []string
	// taken are the files taken in this run (sent, being sent or covered)
	// that are still in the inbox.
	taken map[string]bool
	// read is what each file read in this run was when it was opened:
	// Durable moves a file to done/ only if it is still that file (not
	// another renamed in under its name since).
	read map[string]os.FileInfo
}

var _ source.Source = (*Dir)(nil)

// New checks o and makes a Dir; it creates Dir/done and Dir/rejected. It
// reads nothing else before Run.
func New(o Options) (*Dir, error) {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Dir == "" {
		return nil, fmt.Errorf("dirsource %q: Dir is empty; name the directory to watch", o.Name)
	}
	if st, err := os.Stat(o.Dir); err != nil {
		return nil, fmt.Errorf("dirsource %q: Dir: %w", o.Name, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("dirsource %q: Dir %q is not a directory", o.Name, o.Dir)
	}
	if o.Glob == "" {
		o.Glob = DefaultGlob
	}
	if _, err := filepath.Match(o.Glob, "x"); err != nil {
		return nil, fmt.Errorf("dirsource %q: Glob %q: %w", o.Name, o.Glob, err)
	}
	switch o.Format {
	case "", "ipc", "csv", "parquet":
	default:
		return nil, fmt.Errorf("dirsource %q: Format %q: want \"ipc\", \"csv\", \"parquet\" or \"\" (by extension)", o.Name, o.Format)
	}
	if o.Settle == 0 {
		o.Settle = DefaultSettle
	}
	if o.Poll == 0 {
		o.Poll = DefaultPoll
	}
	if o.Poll < 0 {
		return nil, fmt.Errorf("dirsource %q: Poll %v is negative", o.Name, o.Poll)
	}
	if o.BatchRows == 0 {
		o.BatchRows = DefaultBatchRows
	}
	if o.BatchRows < 0 {
		return nil, fmt.Errorf("dirsource %q: BatchRows %d is negative", o.Name, o.BatchRows)
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxFileBytes < 0 {
		return nil, fmt.Errorf("dirsource %q: MaxFileBytes %d is negative", o.Name, o.MaxFileBytes)
	}
	if err := o.Schema.Validate(); err != nil {
		return nil, fmt.Errorf("dirsource %q: %w", o.Name, err)
	}
	source.Defaults(&o.Alloc, &o.Log, &o.Reporter)
	for _, sub := range []string{DoneDir, RejectedDir} {
		if err := os.MkdirAll(filepath.Join(o.Dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("dirsource %q: %w", o.Name, err)
		}
	}
	return &Dir{o: o, taken: map[string]bool{}, read: map[string]os.FileInfo{}}, nil
}

// Name returns the source's name.
func (d *Dir) Name() string { return d.o.Name }

// Run sends the batches of the files after position from (nil: every
// file), file by file in lexical order, each with its position; see the
// package doc. It returns nil after drain closes (once the file being sent
// is sent wholly), context.Cause(ctx) when ctx is done, or an error when
// from is not a position of this source or Dir cannot be listed.
func (d *Dir) Run(ctx context.Context, from []byte, drain <-chan struct{}, out chan<- source.Input) error {
	if err := d.guard.Start(fmt.Sprintf("dirsource %q", d.o.Name)); err != nil {
		return err
	}

	r := &run{d: d, watch: map[string]*watched{}}
	if from != nil {
		p, err := decodePosition(d.o.Name, from)
		if err != nil {
			return err
		}
		r.resume = &p
		r.cursor = p.File
	}
	if err := r.coverInbox(); err != nil {
		return err
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-drain:
			return nil
		default:
		}
		name, ok, err := r.next()
		if err != nil {
			return err
		}
		if !ok {
			timer.Reset(d.o.Poll)
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-drain:
				return nil
			case <-timer.C:
			}
			continue
		}
		if err := r.take(ctx, name, out); err != nil {
			return err
		}
	}
}

// Durable moves to done/ every file that pos covers wholly (every batch
// sent, or covered by the position that Run resumed from).
func (d *Dir) Durable(pos []byte) error {
	p, err := decodePosition(d.o.Name, pos)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	keep := d.sent[:0]
	for _, name := range d.sent {
		if !p.covers(name) {
			keep = append(keep, name)
			continue
		}
		if was := d.read[name]; was != nil {
			if now, err := os.Lstat(filepath.Join(d.o.Dir, name)); err == nil && !os.SameFile(was, now) {
				// Another file was renamed in under its name since it was
				// read: that one was not fitted. Left in the inbox, Run
				// rejects it as a repeated name.
				delete(d.taken, name)
				delete(d.read, name)
				d.o.Log.Warn("file replaced under its name after it was read; not moved to done/", "source", d.o.Name, "file", name)
				continue
			}
		}
		err := os.Rename(filepath.Join(d.o.Dir, name), filepath.Join(d.o.Dir, DoneDir, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("dirsource %q: move %q to %s/: %w", d.o.Name, name, DoneDir, err))
			keep = append(keep, name) // tried again at the next Durable
			continue
		}
		delete(d.taken, name)
		delete(d.read, name)
		d.o.Log.Debug("file done", "source", d.o.Name, "file", name)
	}
	d.sent = keep
	return errors.Join(errs...)
}

// Close ends the source: Run may not be called after it. Run releases
// every batch it did not send before it returns, so Close has nothing
// else to release. Files not yet covered by Durable stay in the inbox.
// Close is idempotent.
func (d *Dir) Close() error {
	d.guard.Close()
	return nil
}
