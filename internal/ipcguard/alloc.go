package ipcguard

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Allocator is the memory.Allocator to give arrow-go's IPC readers
// (ipc.WithAllocator). It allocates from the allocator it wraps, and during
// a Read it bounds and tracks what the read allocates:
//
//   - arrow-go sizes the buffer of a compressed IPC buffer by the length
//     written in front of it, so a few hundred bytes of input can ask for
//     terabytes, which kills the process. During a Read, allocations beyond
//     the read's messages (Allow) are bounded by the limit: past it,
//     Allocate panics with a *LimitError before asking for the memory.
//     arrow-go's readers recover such panics into errors that wrap it
//     (errors.As), and Read recovers the others.
//   - When arrow-go fails in the middle of a batch (it recovers its own
//     panics), it drops buffers without releasing them, which an allocator
//     that counts (memory.CheckedAllocator, a C allocator) sees as a leak.
//     Read keeps what a failed read left allocated, and Reclaim frees it
//     once the reader is released. A panic can also leave a reference to
//     what an earlier, successful read allocated (a dictionary of the
//     reader's memo): ReleaseReader frees what the reader's reads left
//     allocated once the reader is released, where no batch was handed
//     out that could still refer to it.
//   - arrow-go asks for negative sizes when a compressed buffer's length
//     says so; Allocate and Reallocate panic with ErrNegativeSize instead.
//
// Allocate, Reallocate and Free are safe for concurrent use (batches are
// released from any goroutine); Read, Allow and Reclaim are called by the
// one goroutine that reads.
type Allocator struct {
	mem   memory.Allocator
	limit int64

	mu      sync.Mutex
	reading bool
	asked   int64            // bytes the current read asked for
	allowed int64            // its messages' bytes, on top of the limit
	window  map[*byte][]byte // what the current read allocated, not yet freed
	leaked  map[*byte][]byte // what failed reads left allocated
	owned   map[*byte][]byte // what successful reads allocated, not yet freed
}

var _ memory.Allocator = (*Allocator)(nil)

// NewAllocator returns an Allocator that allocates from mem and bounds
// what one read allocates beyond its messages to limit bytes.
func NewAllocator(mem memory.Allocator, limit int64) *Allocator {
	return &Allocator{mem: mem, limit: limit, window: map[*byte][]byte{}, leaked: map[*byte][]byte{}, owned: map[*byte][]byte{}}
}

// Read runs read, one call into an arrow-go IPC reader that uses a (which
// may read several messages), and returns its error. A panic in read
// becomes an error (wrapping the panic's value when it is an error).
// What read allocates and does not free belongs to the batch it returns
// when it succeeds; when it fails, Reclaim frees it later.
func (a *Allocator) Read(read func() error) (err error) {
	a.mu.Lock()
	a.reading, a.asked, a.allowed = true, 0, 0
	a.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = fmt.Errorf("arrow-go panicked: %w", e)
			} else {
				err = fmt.Errorf("arrow-go panicked: %v", r)
			}
		}
		a.mu.Lock()
		into := a.owned
		if err != nil {
			into = a.leaked
		}
		for p, b := range a.window {
			into[p] = b
		}
		clear(a.window)
		a.reading = false
		a.mu.Unlock()
	}()
	return read()
}

// Allow raises the bound of the current read by a buffer of n bytes: a
// message (metadata or body) that the read takes from its input, which is
// bounded on its own.
func (a *Allocator) Allow(n int64) {
	a.mu.Lock()
	a.allowed += (n + 63) &^ 63 // memory.Buffer rounds up to 64 bytes
	a.mu.Unlock()
}

// Reclaim frees what failed reads left allocated. Call it only once every
// arrow-go reader that used a since the last Reclaim is released: nothing
// may refer to those buffers any more.
func (a *Allocator) Reclaim() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range a.leaked {
		a.mem.Free(b)
	}
	clear(a.leaked)
}

// ReleaseReader is Reclaim for a reader that has been released: it frees
// what failed reads left allocated and, where handedOut is false (no batch
// of the reader was given to anyone, so nothing can refer to its buffers),
// also what successful reads left allocated — what the reader still held
// when it was released and did not free. Call it only once every arrow-go
// reader that used a since the last call is released.
func (a *Allocator) ReleaseReader(handedOut bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range a.leaked {
		a.mem.Free(b)
	}
	clear(a.leaked)
	if !handedOut {
		for _, b := range a.owned {
			a.mem.Free(b)
		}
	}
	clear(a.owned)
}

// ErrNegativeSize is the panic of an Allocate or Reallocate of a negative
// size: arrow-go resizes a buffer to a negative uncompressed length written
// in its input, which would corrupt the count of a counting allocator.
var ErrNegativeSize = errors.New("ipcguard: allocation of a negative size (a corrupt uncompressed length)")

// grow accounts for n more bytes asked by the current read; a.mu is held.
func (a *Allocator) grow(size, n int) {
	if size < 0 {
		panic(ErrNegativeSize)
	}
	if !a.reading || n <= 0 {
		return
	}
	a.asked += int64(n)
	if over := a.asked - a.allowed; over > a.limit {
		panic(&LimitError{What: "decompression", Size: over, Limit: a.limit})
	}
}

func key(b []byte) *byte { return unsafe.SliceData(b) }

// Allocate allocates size bytes from the wrapped allocator; during a Read
// it panics with a *LimitError if the read would pass its bound.
func (a *Allocator) Allocate(size int) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.grow(size, size)
	b := a.mem.Allocate(size)
	if a.reading && len(b) > 0 {
		a.window[key(b)] = b
	}
	return b
}

// Reallocate resizes b as the wrapped allocator does, with Allocate's
// bound on growth during a Read.
func (a *Allocator) Reallocate(size int, b []byte) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.grow(size, size-len(b))
	_, tracked := a.window[key(b)]
	_, owned := a.owned[key(b)]
	delete(a.window, key(b))
	delete(a.leaked, key(b))
	delete(a.owned, key(b))
	nb := a.mem.Reallocate(size, b)
	switch {
	case len(nb) == 0:
	case a.reading && (tracked || len(b) == 0):
		a.window[key(nb)] = nb
	case owned:
		a.owned[key(nb)] = nb
	}
	return nb
}

// Free frees b.
func (a *Allocator) Free(b []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.window, key(b))
	delete(a.leaked, key(b))
	delete(a.owned, key(b))
	a.mem.Free(b)
}
