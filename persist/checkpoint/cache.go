package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/penstock-ml/penstock/persist"
)

// EnvVar is the environment variable that turns caching off everywhere
// when it is "off" (or "0", "false"), whatever the options say: for
// production, where every fit must run. It is read at every Fit.
const EnvVar = "PENSTOCK_CACHE"

// DefaultBudget is the size budget of a cache that sets none: 10 GiB.
const DefaultBudget = 10 << 30

// Cache is a directory of checkpoint entries, shared by any number of
// runs and processes. Each entry is a directory named by its key (64 hex
// digits) under the experiment's subdirectory:
//
//	<dir>/<experiment>/<key>/prefix.tar   the fitted prefix (persist.Marshal)
//	<dir>/<experiment>/<key>/x.arrows     the prefix's fit outputs, X (Arrow IPC stream, zstd)
//	<dir>/<experiment>/<key>/y.arrows     and Y, where the outputs have labels
//	<dir>/<experiment>/<key>/meta.json    Seq and Epoch of every output batch
//
// An entry is written in a temporary directory (".tmp-…") whose files are
// fsynced, then renamed to its key and the parent fsynced, so a reader
// sees a complete entry or none; readers open only key-named directories.
// An entry is evicted by renaming it away (".evict-…") before removing
// it, so a reader either opens all its files or misses. A Cache value is
// safe for concurrent use.
type Cache struct {
	dir        string
	experiment string
	budget     int64
	off        bool
	version    string
	reg        *persist.Registry
	now        func() time.Time
}

// Option configures Open.
type Option func(*Cache) error

// Budget sets the size budget in bytes of the whole cache directory (all
// experiments): after storing an entry, the least recently used entries
// are evicted until the total is within it; the entry just stored is
// kept even when it alone exceeds the budget. Default DefaultBudget.
func Budget(bytes int64) Option {
	return func(c *Cache) error {
		if bytes < 1 {
			return fmt.Errorf("checkpoint: Budget(%d): want at least 1 byte", bytes)
		}
		c.budget = bytes
		return nil
	}
}

// Experiment groups the entries of this cache under the subdirectory
// name: runs of one experiment share entries and never hit another
// experiment's. The budget spans all experiments of the directory.
// Default "default".
func Experiment(name string) Option {
	return func(c *Cache) error {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") || len(name) > 128 {
			return fmt.Errorf("checkpoint: Experiment(%q): want 1 to 128 bytes, no slash, not starting with a dot", name)
		}
		c.experiment = name
		return nil
	}
}

// Off turns caching off: every Fit runs every step and stores nothing.
func Off() Option { return func(c *Cache) error { c.off = true; return nil } }

// ModuleVersion sets the version of the code that the key carries, in
// place of the version of Penstock in the binary's build information
// (runtime/debug.ReadBuildInfo; none in tests and "(devel)" builds): a
// new release then misses the entries of the old one. Give your own
// program's version to invalidate on every release of it.
func ModuleVersion(v string) Option { return func(c *Cache) error { c.version = v; return nil } }

// Registry sets the persist registry that names the steps (type name and
// version, both in the key) and saves the fitted prefix. Default
// persist.Default.
func Registry(r *persist.Registry) Option {
	return func(c *Cache) error {
		if r == nil {
			return errors.New("checkpoint: Registry(nil)")
		}
		c.reg = r
		return nil
	}
}

// Open returns the cache in dir, made if missing.
func Open(dir string, opts ...Option) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("checkpoint: Open: empty directory name")
	}
	c := &Cache{dir: dir, experiment: "default", budget: DefaultBudget, version: buildVersion(), reg: persist.Default, now: time.Now}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.Enabled() {
		if err := os.MkdirAll(filepath.Join(dir, c.experiment), 0o755); err != nil {
			return nil, fmt.Errorf("checkpoint: open %s: %w", dir, err)
		}
	}
	return c, nil
}

// Enabled reports whether the cache is used: not turned off by Off, nor
// by the environment variable EnvVar, which is read at every call.
func (c *Cache) Enabled() bool { return !c.off && !envOff() }

func envOff() bool {
	switch strings.ToLower(os.Getenv(EnvVar)) {
	case "off", "0", "false":
		return true
	}
	return false
}

// Dir returns the directory of the cache's experiment.
func (c *Cache) Dir() string { return filepath.Join(c.dir, c.experiment) }

func (c *Cache) entryDir(key string) string { return filepath.Join(c.dir, c.experiment, key) }

// isKey reports whether name is an entry's name: 64 lower-case hex digits.
func isKey(name string) bool {
	if len(name) != 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if b := name[i]; (b < '0' || b > '9') && (b < 'a' || b > 'f') {
			return false
		}
	}
	return true
}

// touch marks the entry as just used (its directory's modification time
// is its recency).
func (c *Cache) touch(dir string) {
	t := c.now()
	os.Chtimes(dir, t, t)
}

type entryInfo struct {
	dir  string
	used time.Time
	size int64
}

// Entries returns the number of complete entries in the whole cache
// directory and their total size in bytes.
func (c *Cache) Entries() (n int, bytes int64, err error) {
	es, err := c.entries()
	for _, e := range es {
		bytes += e.size
	}
	return len(es), bytes, err
}

func (c *Cache) entries() ([]entryInfo, error) {
	exps, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var out []entryInfo
	for _, x := range exps {
		if !x.IsDir() || strings.HasPrefix(x.Name(), ".") {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(c.dir, x.Name()))
		if err != nil {
			continue // removed meanwhile
		}
		for _, e := range ents {
			if e.IsDir() && (strings.HasPrefix(e.Name(), ".tmp-") || strings.HasPrefix(e.Name(), ".evict-")) {
				c.removeStale(filepath.Join(c.dir, x.Name(), e.Name()))
				continue
			}
			if !e.IsDir() || !isKey(e.Name()) {
				continue
			}
			dir := filepath.Join(c.dir, x.Name(), e.Name())
			st, err := os.Stat(dir)
			if err != nil {
				continue
			}
			files, _ := os.ReadDir(dir)
			var size int64
			for _, f := range files {
				if fi, err := f.Info(); err == nil {
					size += fi.Size()
				}
			}
			out = append(out, entryInfo{dir: dir, used: st.ModTime(), size: size})
		}
	}
	return out, nil
}

// evict removes the least recently used entries until the cache is
// within its budget, keeping keep.
func (c *Cache) evict(keep string) error {
	es, err := c.entries()
	if err != nil {
		return err
	}
	var total int64
	for _, e := range es {
		total += e.size
	}
	slices.SortFunc(es, func(a, b entryInfo) int { return a.used.Compare(b.used) })
	for _, e := range es {
		if total <= c.budget {
			break
		}
		if e.dir == keep {
			continue
		}
		if err := removeEntry(e.dir); err != nil {
			return err
		}
		total -= e.size
	}
	return nil
}

// removeEntry renames dir away, so that no reader opens it any more, then
// removes it. An entry that another run evicted first is not an error.
func removeEntry(dir string) error {
	gone, err := os.MkdirTemp(filepath.Dir(dir), ".evict-")
	if err != nil {
		return fmt.Errorf("checkpoint: evict: %w", err)
	}
	dst := filepath.Join(gone, "entry")
	if err := os.Rename(dir, dst); err != nil {
		os.Remove(gone)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("checkpoint: evict %s: %w", dir, err)
	}
	return os.RemoveAll(gone)
}

// StaleAfter is the age after which a temporary directory (an entry or a
// spill being written, an entry being evicted) is taken for the leftover
// of a crashed run and removed, by the eviction that follows a store.
const StaleAfter = 24 * time.Hour

func (c *Cache) removeStale(dir string) {
	st, err := os.Stat(dir)
	if err == nil && c.now().Sub(st.ModTime()) > StaleAfter {
		os.RemoveAll(dir)
	}
}
