package source

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Guard keeps the rule of a source's lifecycle that the directory and NATS
// sources share: Run once, and not after Close. A source calls Start at
// the top of Run and Close from its Close. The zero Guard is ready to use;
// its methods are safe for concurrent use.
type Guard struct {
	mu      sync.Mutex
	started bool
	closed  bool
}

// Start claims the source's one Run. Its error, for a Run after Close or
// a second Run, starts with prefix (the package and the source's name,
// e.g. `dirsource "inbox"`).
func (g *Guard) Start(prefix string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return fmt.Errorf("%s: Run after Close", prefix)
	case g.started:
		return fmt.Errorf("%s: Run called twice", prefix)
	}
	g.started = true
	return nil
}

// Close marks the source closed: a later Start fails. It is idempotent.
func (g *Guard) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
}

// Defaults fills in what a source's options leave nil, as every source
// of the daemon does: the allocator memory.DefaultAllocator, the logger
// slog.Default(), and a Reporter that logs to that logger.
func Defaults(alloc *memory.Allocator, log **slog.Logger, rep *Reporter) {
	if *alloc == nil {
		*alloc = memory.DefaultAllocator
	}
	if *log == nil {
		*log = slog.Default()
	}
	if *rep == nil {
		*rep = LogReporter{Log: *log}
	}
}
