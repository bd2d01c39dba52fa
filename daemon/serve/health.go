package serve

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// The checks that the daemon sets in its Health.
const (
	// CheckModel fails until the first model is published.
	CheckModel = "model"
	// CheckDraining fails once the daemon drains.
	CheckDraining = "draining"
)

// Health is a set of named checks, each passing or failing with a reason,
// served as /livez and /readyz in the manner of Kubernetes' API server.
// A new Health has no checks (it is ready). Its methods may be called from
// any goroutine.
type Health struct {
	mu     sync.RWMutex
	checks map[string]error
}

// NewHealth returns a Health without checks.
func NewHealth() *Health { return &Health{checks: map[string]error{}} }

// Set makes check pass (err nil) or fail with err as its reason. A check,
// once set, stays listed.
func (h *Health) Set(check string, err error) {
	h.mu.Lock()
	h.checks[check] = err
	h.mu.Unlock()
}

// Ready reports whether every check passes, and otherwise the first failing
// one (in name order) with its reason.
func (h *Health) Ready() error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, name := range h.names() {
		if err := h.checks[name]; err != nil {
			return fmt.Errorf("check %q: %w", name, err)
		}
	}
	return nil
}

func (h *Health) names() []string {
	names := make([]string, 0, len(h.checks))
	for n := range h.checks {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Livez answers 200 "ok" to every request while the process serves: the
// liveness probe (restart the process when it fails).
func (h *Health) Livez() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok"))
	})
}

// Readyz answers 200 "ok" while every check passes and 503 while any
// fails: the readiness probe (send traffic or not). With the query
// parameter verbose it lists every check, one a line, "[+]name ok" or
// "[-]name failed: reason", then "readyz check passed" or "readyz check
// failed"; without it, a failure answers "readyz check failed".
func (h *Health) Readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.RLock()
		var b strings.Builder
		ok := true
		for _, name := range h.names() {
			if err := h.checks[name]; err != nil {
				ok = false
				fmt.Fprintf(&b, "[-]%s failed: %s\n", name, oneLine(err.Error()))
			} else {
				fmt.Fprintf(&b, "[+]%s ok\n", name)
			}
		}
		h.mu.RUnlock()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, verbose := r.URL.Query()["verbose"]
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		switch {
		case verbose && ok:
			b.WriteString("readyz check passed\n")
			_, _ = w.Write([]byte(b.String()))
		case verbose:
			b.WriteString("readyz check failed\n")
			_, _ = w.Write([]byte(b.String()))
		case ok:
			_, _ = w.Write([]byte("ok"))
		default:
			_, _ = w.Write([]byte("readyz check failed\n"))
		}
	})
}

// oneLine keeps a reason on its line of the verbose listing.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
