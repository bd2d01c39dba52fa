package ckpt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Op names an operation of an FS, for FaultFS's fault injection.
type Op string

// The operations of an FS and of its Files.
const (
	OpMkdirAll Op = "MkdirAll"
	OpCreate   Op = "Create"
	OpWrite    Op = "Write"
	OpSync     Op = "Sync"
	OpClose    Op = "Close"
	OpOpen     Op = "Open"
	OpRename   Op = "Rename"
	OpRemove   Op = "Remove"
	OpReadDir  Op = "ReadDir"
	OpSyncDir  Op = "SyncDir"
)

// ErrHalted is the error of every FaultFS call after a Halt took effect:
// the process is as good as dead; Crash or Restart bring the FS back.
var ErrHalted = errors.New("ckpt: FaultFS halted (simulated death of the process)")

// FaultFS is an in-memory FS that models what a machine's crash keeps,
// faithfully enough to test the order of a save's operations:
//
//   - each file has its durable content (as of its last Sync) and its
//     current content (what was written since);
//   - each directory has its durable entries (as of its last SyncDir) and
//     its current entries (after the creates, renames and removes since);
//   - Crash resets everything to the durable state: the directories'
//     entries to their durable ones (a rename not followed by a SyncDir is
//     undone; a file created, written and synced in a directory that was
//     not synced is gone; a removed file comes back), and each file to its
//     durable content followed by a random prefix (seeded: Seed) of what
//     was written after its last Sync, since a crash may keep part of it.
//
// Reads see the current state, as they do on a running machine.
// Directories (MkdirAll) are durable as soon as they are made, and Create
// of an existing name replaces it with a new, empty file (as if the old
// one were removed), simplifications that the Store does not depend on.
//
// Faults: FailAt makes one call of an operation fail; Halt makes every
// call after the next n fail (the process dies there); Restart models a
// kill of the process without a crash of the machine (everything written
// stays, the open files are lost). Calls counts the calls, Trace lists
// them. A FaultFS is safe for concurrent use.
type FaultFS struct {
	mu     sync.Mutex
	rng    *rand.Rand
	dirs   map[string]*faultDir
	nextID int
	gen    int // incremented by Crash and Restart: older Files fail
	trace  []string
	halt   int // calls left before halting; < 0: no halt set
	halted bool
	fails  []pendingFail
	counts map[Op]int // calls per Op since the last FailAt
}

type faultDir struct {
	cur, durable map[string]*faultInode
}

type faultInode struct {
	id           int
	cur, durable []byte
}

type pendingFail struct {
	op  Op
	n   int // the n-th call of op, counting from the FailAt
	err error
}

var _ FS = (*FaultFS)(nil)

// NewFaultFS returns an empty FaultFS (no directories), seeded with 1.
func NewFaultFS() *FaultFS {
	return &FaultFS{
		rng:    rand.New(rand.NewPCG(1, 1)),
		dirs:   map[string]*faultDir{},
		halt:   -1,
		counts: map[Op]int{},
	}
}

// Seed sets the seed of the random prefixes that Crash keeps.
func (f *FaultFS) Seed(seed uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// FailAt makes the n-th call (n ≥ 1, counting from now) of op fail with
// err, without effect. Several may be pending; Crash and Restart clear
// them.
func (f *FaultFS) FailAt(op Op, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fails = append(f.fails, pendingFail{op: op, n: f.counts[op] + n, err: err})
}

// Halt lets the next n calls run and makes every call after them fail
// with ErrHalted, without effect, until Crash or Restart: the process
// dies before its (n+1)-th call from now.
func (f *FaultFS) Halt(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.halt = n
	f.halted = n == 0
}

// Halted reports whether a Halt has taken effect.
func (f *FaultFS) Halted() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.halted
}

// Calls returns the number of calls made so far (failed ones included).
func (f *FaultFS) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.trace)
}

// Trace returns the calls made so far, one line each ("Rename a b").
func (f *FaultFS) Trace() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.trace)
}

// Restart models a kill -9 of the process, not of the machine: what was
// written stays (the operating system has it), the Files open until then
// fail from now, and Halt and FailAt are cleared.
func (f *FaultFS) Restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reset()
}

// Crash models a crash of the machine: every directory gets back its
// durable entries, every file its durable content and a random prefix of
// what was written after its last Sync; Files open until then fail from
// now, and Halt and FailAt are cleared.
func (f *FaultFS) Crash() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reset()
	inodes := map[int]*faultInode{}
	for _, d := range f.dirs {
		d.cur = maps.Clone(d.durable)
		for _, n := range d.cur {
			inodes[n.id] = n
		}
	}
	for _, id := range slices.Sorted(maps.Keys(inodes)) { // in a seeded order
		n := inodes[id]
		keep := n.durable
		if bytes.HasPrefix(n.cur, n.durable) && len(n.cur) > len(n.durable) {
			keep = n.cur[:len(n.durable)+f.rng.IntN(len(n.cur)-len(n.durable)+1)]
		}
		n.cur = slices.Clone(keep)
		n.durable = slices.Clone(keep)
	}
}

func (f *FaultFS) reset() {
	f.gen++
	f.halt, f.halted = -1, false
	f.fails = nil
	clear(f.counts)
}

// begin records a call and says whether it may run.
func (f *FaultFS) begin(op Op, args ...string) error {
	f.trace = append(f.trace, strings.Join(append([]string{string(op)}, args...), " "))
	f.counts[op]++
	if f.halt == 0 {
		f.halted = true
	}
	if f.halted {
		return fmt.Errorf("%s %s: %w", op, strings.Join(args, " "), ErrHalted)
	}
	if f.halt > 0 {
		f.halt--
	}
	for i, p := range f.fails {
		if p.op == op && p.n == f.counts[op] {
			f.fails = slices.Delete(f.fails, i, i+1)
			return fmt.Errorf("%s %s: %w", op, strings.Join(args, " "), p.err)
		}
	}
	return nil
}

func (f *FaultFS) dir(name string) (*faultDir, error) {
	d, ok := f.dirs[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return d, nil
}

// split returns the directory of name, and its base name.
func (f *FaultFS) split(op, name string) (*faultDir, string, error) {
	name = filepath.Clean(name)
	d, ok := f.dirs[filepath.Dir(name)]
	if !ok {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return d, filepath.Base(name), nil
}

// MkdirAll makes dir and its parents, durable at once.
func (f *FaultFS) MkdirAll(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(OpMkdirAll, dir); err != nil {
		return err
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, ok := f.dirs[d]; !ok {
			f.dirs[d] = &faultDir{cur: map[string]*faultInode{}, durable: map[string]*faultInode{}}
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// Create makes name a new, empty file, open for writing.
func (f *FaultFS) Create(name string) (File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(OpCreate, name); err != nil {
		return nil, err
	}
	d, base, err := f.split("create", name)
	if err != nil {
		return nil, err
	}
	f.nextID++
	n := &faultInode{id: f.nextID}
	d.cur[base] = n
	return &faultFile{fs: f, name: filepath.Clean(name), inode: n, gen: f.gen}, nil
}

// Open opens name for reading its current content.
func (f *FaultFS) Open(name string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(OpOpen, name); err != nil {
		return nil, err
	}
	d, base, err := f.split("open", name)
	if err != nil {
		return nil, err
	}
	n, ok := d.cur[base]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return io.NopCloser(bytes.NewReader(slices.Clone(n.cur))), nil
}

// Rename moves oldname to newname, replacing newname.
func (f *FaultFS) Rename(oldname, newname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(OpRename, oldname, newname); err != nil {
		return err
	}
	od, obase, err := f.split("rename", oldname)
	if err != nil {
		return err
	}
	nd, nbase, err := f.split("rename", newname)
	if err != nil {
		return err
	}
	n, ok := od.cur[obase]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	delete(od.cur, obase)
	nd.cur[nbase] = n
	return nil
}

// Remove removes the file name.
func (f *FaultFS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(OpRemove, name); err != nil {
		return err
	}
	d, base, err := f.split("remove", name)
	if err != nil {
		return err
	}
	if _, ok := d.cur[base]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(d.cur, base)
	return nil
}

// ReadDir lists the current files of dir, sorted by name.
func (f *FaultFS) ReadDir(dir string) ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(OpReadDir, dir); err != nil {
		return nil, err
	}
	d, err := f.dir(filepath.Clean(dir))
	if err != nil {
		return nil, err
	}
	es := make([]Entry, 0, len(d.cur))
	for _, name := range slices.Sorted(maps.Keys(d.cur)) {
		es = append(es, Entry{Name: name, Size: int64(len(d.cur[name].cur))})
	}
	return es, nil
}

// SyncDir makes dir's current entries its durable ones.
func (f *FaultFS) SyncDir(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(OpSyncDir, dir); err != nil {
		return err
	}
	d, err := f.dir(filepath.Clean(dir))
	if err != nil {
		return err
	}
	d.durable = maps.Clone(d.cur)
	return nil
}

type faultFile struct {
	fs     *FaultFS
	name   string
	inode  *faultInode
	gen    int
	closed bool
}

func (h *faultFile) check(op string) error {
	switch {
	case h.gen != h.fs.gen:
		return &fs.PathError{Op: op, Path: h.name, Err: errors.New("file opened before a crash or restart")}
	case h.closed:
		return &fs.PathError{Op: op, Path: h.name, Err: fs.ErrClosed}
	}
	return nil
}

func (h *faultFile) Write(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.fs.begin(OpWrite, h.name); err != nil {
		return 0, err
	}
	if err := h.check("write"); err != nil {
		return 0, err
	}
	h.inode.cur = append(h.inode.cur, p...)
	return len(p), nil
}

func (h *faultFile) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.fs.begin(OpSync, h.name); err != nil {
		return err
	}
	if err := h.check("sync"); err != nil {
		return err
	}
	h.inode.durable = slices.Clone(h.inode.cur)
	return nil
}

func (h *faultFile) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.fs.begin(OpClose, h.name); err != nil {
		return err
	}
	if err := h.check("close"); err != nil {
		return err
	}
	h.closed = true
	return nil
}
