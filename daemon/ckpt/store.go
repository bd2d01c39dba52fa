package ckpt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
)

// ErrNoCheckpoint is the error of Latest in a directory that holds no
// checkpoint file: a first start.
var ErrNoCheckpoint = errors.New("ckpt: no checkpoint")

// ErrNoValidCheckpoint is the error of Latest in a directory whose
// checkpoint files all fail to load: not a first start (the sources may
// have let go of inputs that those checkpoints covered), so the caller
// should stop rather than start from nothing.
var ErrNoValidCheckpoint = errors.New("ckpt: no checkpoint verifies")

// DefaultKeep is the number of checkpoints kept where Options.Keep is 0.
const DefaultKeep = 3

// DefaultMaxBytes is the largest checkpoint file Latest reads where
// Options.MaxBytes is 0: 1 GiB.
const DefaultMaxBytes = 1 << 30

// Options configure a Store.
type Options struct {
	// Keep is the number of checkpoints kept: after a save, the oldest
	// beyond it are removed. Default DefaultKeep (3); negative is an error.
	Keep int
	// FS is the file system; default OSFS().
	FS FS
	// Log gets one line per checkpoint that Latest skips (path and
	// reason), per leftover temporary file removed and per old checkpoint
	// that could not be removed; default slog.Default().
	Log *slog.Logger
	// BeforeRename, when set, is called by Save after the temporary file
	// is written, fsynced and closed, just before it is renamed to its
	// final name: a fault hook (a test pauses or kills the process
	// there). An error stops the save there, with that error.
	BeforeRename func(tmp, final string) error
	// MaxBytes is the largest checkpoint file that Latest reads; a larger
	// one is skipped before it is read. Default DefaultMaxBytes (1 GiB);
	// negative is an error.
	MaxBytes int64
}

// Store is a directory of checkpoints, ckpt-<seq>.pst, each a fitted step
// tree saved by persist.Marshal with its Meta, and a footer with the
// SHA-256 of it all. See the package documentation for the durability
// protocol.
//
// Save is called from one goroutine at a time; Latest and List may not
// run while a Save does (Latest removes temporary files).
type Store struct {
	dir          string
	fs           FS
	keep         int
	maxBytes     int64
	log          *slog.Logger
	beforeRename func(tmp, final string) error
	last         int64 // the highest seq this Store has given a Save
}

// Info describes a checkpoint file.
type Info struct {
	Seq   int64         // its sequence number: higher is newer
	Path  string        // its path
	Bytes int64         // its size
	Took  time.Duration // how long its Save, or its load by Latest, took; 0 from List
}

// Loaded is a checkpoint that Latest loaded: the model (not set up), its
// Meta and its file.
type Loaded struct {
	Model *persist.Model
	Meta  Meta
	Info  Info
}

// Open returns the Store of the directory dir, made where missing.
func Open(dir string, o Options) (*Store, error) {
	switch {
	case dir == "":
		return nil, errors.New("ckpt: Open: empty directory name")
	case o.Keep < 0:
		return nil, fmt.Errorf("ckpt: Open %s: Keep %d, want ≥ 0 (0 = %d)", dir, o.Keep, DefaultKeep)
	case o.MaxBytes < 0:
		return nil, fmt.Errorf("ckpt: Open %s: MaxBytes %d, want ≥ 0 (0 = %d)", dir, o.MaxBytes, DefaultMaxBytes)
	}
	s := &Store{
		dir:          filepath.Clean(dir),
		fs:           o.FS,
		keep:         o.Keep,
		maxBytes:     o.MaxBytes,
		log:          o.Log,
		beforeRename: o.BeforeRename,
	}
	if s.fs == nil {
		s.fs = OSFS()
	}
	if s.keep == 0 {
		s.keep = DefaultKeep
	}
	if s.maxBytes == 0 {
		s.maxBytes = DefaultMaxBytes
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := s.fs.MkdirAll(s.dir); err != nil {
		return nil, fmt.Errorf("ckpt: Open %s: %w", dir, err)
	}
	return s, nil
}

// Dir returns the Store's directory.
func (s *Store) Dir() string { return s.dir }

const (
	ckptPrefix = "ckpt-"
	ckptSuffix = ".pst"
	tmpPrefix  = ".ckpt-"
	tmpSuffix  = ".tmp"
)

// fileName is the name of checkpoint seq: ckpt-<seq, 12 digits>.pst.
func fileName(seq int64) string { return fmt.Sprintf("%s%012d%s", ckptPrefix, seq, ckptSuffix) }

// tmpName is the name of checkpoint seq while it is written, which List
// and Latest do not take for a checkpoint, and Latest removes.
func tmpName(seq int64) string { return fmt.Sprintf("%s%012d%s", tmpPrefix, seq, tmpSuffix) }

// maxSeq is the highest seq that parseName takes (18 digits).
const maxSeq = 999_999_999_999_999_999

// parseName returns the seq of a checkpoint's file name.
func parseName(name string) (int64, bool) {
	digits, ok := strings.CutPrefix(name, ckptPrefix)
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, ckptSuffix); !ok || digits == "" || len(digits) > 18 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	return seq, err == nil
}

func isTmp(name string) bool {
	return strings.HasPrefix(name, tmpPrefix) && strings.HasSuffix(name, tmpSuffix)
}

// infos returns the checkpoint files among es, newest first.
func (s *Store) infos(es []Entry) []Info {
	var is []Info
	for _, e := range es {
		if seq, ok := parseName(e.Name); ok {
			is = append(is, Info{Seq: seq, Path: filepath.Join(s.dir, e.Name), Bytes: e.Size})
		}
	}
	slices.SortFunc(is, func(a, b Info) int { return -cmpInt(a.Seq, b.Seq) })
	return is
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// List returns the checkpoint files of the directory, newest first,
// without reading them (Took is 0).
func (s *Store) List() ([]Info, error) {
	es, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("ckpt: list %s: %w", s.dir, err)
	}
	return s.infos(es), nil
}

// Save saves step (a *flow.Pipeline, or any step that persist saves) with
// meta as the next checkpoint, ckpt-<seq>.pst, seq one above the highest
// in the directory, and returns its Info once it is durable: a crash from
// then on leaves it loadable. opts are persist.Marshal's options
// (persist.WithRegistry, persist.WithAllocator, persist.WithExtra under
// another name than MetaName). Where meta.Time is zero it is set to now.
//
// The protocol (see the package documentation): marshal, write a
// temporary file, Sync, Close, BeforeRename, Rename, SyncDir, then remove
// the oldest checkpoints beyond Keep (failures of that are logged, not
// returned: the checkpoint is durable). A Save that fails leaves the
// checkpoints that were there loadable, and no temporary file where the
// file system let it be removed (Latest removes the others); one that
// fails after the rename (at SyncDir) leaves its complete file, which
// Latest may load. ctx is checked before the save starts; a save that
// has started runs to its end. The step must not be fitted meanwhile.
func (s *Store) Save(ctx context.Context, step flow.Step, meta Meta, opts ...persist.Option) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("ckpt: save in %s: %w", s.dir, context.Cause(ctx))
	}
	start := time.Now()
	if meta.Time.IsZero() {
		meta.Time = start
	}
	mj, err := encodeMeta(meta)
	if err != nil {
		return Info{}, fmt.Errorf("ckpt: save in %s: meta: %w", s.dir, err)
	}
	data, err := persist.Marshal(step, append(slices.Clip(opts), persist.WithExtra(MetaName, mj))...)
	if err != nil {
		return Info{}, fmt.Errorf("ckpt: save in %s: %w", s.dir, err)
	}
	es, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return Info{}, fmt.Errorf("ckpt: save in %s: %w", s.dir, err)
	}
	old := s.infos(es)
	seq := s.last + 1
	if len(old) > 0 && old[0].Seq >= seq {
		seq = old[0].Seq + 1
	}
	if seq > maxSeq {
		// Its name would have more digits than parseName takes: List and
		// Latest would not see the checkpoint that Save reported durable.
		return Info{}, fmt.Errorf("ckpt: save in %s: no sequence number left after %s (names hold at most 18 digits): move that file away", s.dir, old[0].Path)
	}
	s.last = seq
	final := filepath.Join(s.dir, fileName(seq))
	if err := s.commit(filepath.Join(s.dir, tmpName(seq)), final, data); err != nil {
		return Info{}, fmt.Errorf("ckpt: save checkpoint %d in %s: %w", seq, s.dir, err)
	}
	s.prune(old)
	return Info{Seq: seq, Path: final, Bytes: int64(len(data) + footerBytes), Took: time.Since(start)}, nil
}

// commit writes data and its footer to final through tmp: write, Sync, Close,
// BeforeRename, Rename, SyncDir. Where it fails before the rename, it
// removes tmp.
func (s *Store) commit(tmp, final string, data []byte) (err error) {
	f, err := s.fs.Create(tmp)
	if err != nil {
		return err
	}
	open, renamed := true, false
	defer func() {
		if err == nil || renamed {
			return
		}
		if open {
			f.Close() // the first error is the one to report
		}
		if rerr := s.fs.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			s.log.Warn("ckpt: temporary file not removed after a failed save", "path", tmp, "reason", rerr.Error())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if _, err := f.Write(footer(data)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil { // the data is durable before its name points to it
		return err
	}
	open = false
	if err := f.Close(); err != nil {
		return err
	}
	if s.beforeRename != nil {
		if err := s.beforeRename(tmp, final); err != nil {
			return err
		}
	}
	if err := s.fs.Rename(tmp, final); err != nil {
		return err
	}
	renamed = true
	return s.fs.SyncDir(s.dir) // the new name is durable before Save returns
}

// prune removes the oldest of old (newest first) beyond Keep, counting the
// checkpoint just saved, oldest first: a prune cut short keeps the newer.
func (s *Store) prune(old []Info) {
	excess := old[min(len(old), s.keep-1):]
	for i := len(excess) - 1; i >= 0; i-- {
		in := excess[i]
		if err := s.fs.Remove(in.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("ckpt: old checkpoint not removed", "path", in.Path, "reason", err.Error())
		}
	}
}

// Latest loads the newest checkpoint that verifies: it lists the
// checkpoint files newest first and returns the first that is at most
// MaxBytes, reads whole, matches its footer's SHA-256, loads with
// persist.Unmarshal (which checks the manifest and every blob) with opts (persist.WithRegistry, persist.WithLimits,
// persist.WithAllocator), and holds a Meta that decodes strictly. Each
// file skipped is logged, one line with its path and the reason. It
// removes the temporary files that a save left (one killed before its
// rename).
//
// The error wraps ErrNoCheckpoint where the directory holds no checkpoint
// file, ErrNoValidCheckpoint where none of those it holds loads (each
// reason logged; the error also wraps the newest's, so that errors.Is
// tells persist.ErrUnknownType, a registry that lacks a step type, from
// persist.ErrFormat, a damaged file).
func (s *Store) Latest(opts ...persist.Option) (*Loaded, error) {
	es, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("ckpt: latest in %s: %w", s.dir, err)
	}
	for _, e := range es {
		if !isTmp(e.Name) {
			continue
		}
		p := filepath.Join(s.dir, e.Name)
		if err := s.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("ckpt: leftover temporary file not removed", "path", p, "reason", err.Error())
			continue
		}
		s.log.Info("ckpt: leftover temporary file removed", "path", p)
	}
	infos := s.infos(es)
	if len(infos) == 0 {
		return nil, fmt.Errorf("ckpt: latest in %s: %w", s.dir, ErrNoCheckpoint)
	}
	var first error
	for _, in := range infos {
		start := time.Now()
		l, err := s.load(in, opts)
		if err == nil {
			l.Info.Took = time.Since(start)
			return l, nil
		}
		s.log.Warn("ckpt: checkpoint skipped", "path", in.Path, "reason", err.Error())
		if first == nil {
			first = err
		}
	}
	return nil, fmt.Errorf("ckpt: latest in %s: %d checkpoint files, none loads: %w (newest %s: %w)",
		s.dir, len(infos), ErrNoValidCheckpoint, infos[0].Path, first)
}

// load reads and loads one checkpoint file.
func (s *Store) load(in Info, opts []persist.Option) (*Loaded, error) {
	if in.Bytes > s.maxBytes {
		return nil, fmt.Errorf("%d bytes, over the limit of %d (Options.MaxBytes)", in.Bytes, s.maxBytes)
	}
	r, err := s.fs.Open(in.Path)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, s.maxBytes+1))
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if int64(len(data)) > s.maxBytes {
		return nil, fmt.Errorf("over the limit of %d bytes (Options.MaxBytes)", s.maxBytes)
	}
	archive, err := unseal(data)
	if err != nil {
		return nil, err
	}
	m, err := persist.Unmarshal(archive, opts...)
	if err != nil {
		return nil, err
	}
	mj, ok := m.Extra[MetaName]
	if !ok {
		return nil, fmt.Errorf("no meta %q among its extra blobs: not a daemon checkpoint", MetaName)
	}
	meta, err := decodeMeta(mj)
	if err != nil {
		return nil, err
	}
	in.Bytes = int64(len(data))
	return &Loaded{Model: m, Meta: meta, Info: in}, nil
}
