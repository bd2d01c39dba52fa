package persist

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Limits bound what Load reads and decodes, so that a hostile or corrupt
// input is an error, never an exhausted process. Each is checked before
// the memory is asked for: the manifest's declarations first (sizes of
// blobs, shapes of tensors, depth and number of steps), then each blob's
// actual size and its decompression, bounded by what its shape needs.
// A zero field takes its default (DefaultLimits).
type Limits struct {
	MaxManifestBytes int64 // the manifest; default 64 MiB
	MaxBlobBytes     int64 // one stored (compressed) blob; default 4 GiB
	MaxTensorBytes   int64 // one decoded tensor (for strings: their bytes); default 4 GiB
	MaxTotalBytes    int64 // all blobs stored, and all tensors decoded; default 16 GiB
	MaxBlobs         int   // blobs; default 1 << 20
	MaxNodes         int   // steps of the tree; default 1 << 16
	MaxDepth         int   // nesting of the tree (the root is 0); default 64
	// MaxReplicas and MaxQueueCapacity bound the node settings (and a
	// pipeline's default queue capacity) of a loaded tree, which a run
	// turns into goroutines and queue slots; defaults 1024 and 1 << 20.
	MaxReplicas      int
	MaxQueueCapacity int
}

// DefaultLimits are the limits of a load that sets none.
var DefaultLimits = Limits{
	MaxManifestBytes: 64 << 20,
	MaxBlobBytes:     4 << 30,
	MaxTensorBytes:   4 << 30,
	MaxTotalBytes:    16 << 30,
	MaxBlobs:         1 << 20,
	MaxNodes:         1 << 16,
	MaxDepth:         64,
	MaxReplicas:      1024,
	MaxQueueCapacity: 1 << 20,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxManifestBytes > 0 {
		d.MaxManifestBytes = l.MaxManifestBytes
	}
	if l.MaxBlobBytes > 0 {
		d.MaxBlobBytes = l.MaxBlobBytes
	}
	if l.MaxTensorBytes > 0 {
		d.MaxTensorBytes = l.MaxTensorBytes
	}
	if l.MaxTotalBytes > 0 {
		d.MaxTotalBytes = l.MaxTotalBytes
	}
	if l.MaxBlobs > 0 {
		d.MaxBlobs = l.MaxBlobs
	}
	if l.MaxNodes > 0 {
		d.MaxNodes = l.MaxNodes
	}
	if l.MaxDepth > 0 {
		d.MaxDepth = l.MaxDepth
	}
	if l.MaxReplicas > 0 {
		d.MaxReplicas = l.MaxReplicas
	}
	if l.MaxQueueCapacity > 0 {
		d.MaxQueueCapacity = l.MaxQueueCapacity
	}
	return d
}

// Option configures a save or a load.
type Option func(*config)

type config struct {
	reg   *Registry
	lim   Limits
	mem   memory.Allocator
	extra map[string][]byte
	err   error
}

func newConfig(opts []Option) (config, error) {
	c := config{reg: Default, mem: memory.DefaultAllocator}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	c.lim = c.lim.withDefaults()
	return c, c.err
}

// WithRegistry sets the registry that maps step types to names and back;
// the default is Default.
func WithRegistry(r *Registry) Option {
	return func(c *config) {
		if r == nil {
			c.err = fmt.Errorf("persist: WithRegistry(nil)")
			return
		}
		c.reg = r
	}
}

// WithLimits sets the limits of a load (zero fields keep their default).
func WithLimits(l Limits) Option { return func(c *config) { c.lim = l } }

// WithAllocator sets the Arrow allocator that encoding and decoding
// tensors use for their transient buffers (all freed when Save or Load
// returns); the default is memory.DefaultAllocator.
func WithAllocator(mem memory.Allocator) Option {
	return func(c *config) {
		if mem != nil {
			c.mem = mem
		}
	}
}

// WithExtra stores data, under name, with the saved model: what a caller
// keeps with a checkpoint (a daemon's source positions). Load returns it
// in Model.Extra. Names are 1 to MaxNameBytes bytes of UTF-8; the data is
// stored as it is, checksummed, and not interpreted.
func WithExtra(name string, data []byte) Option {
	return func(c *config) {
		if err := checkName("extra", name); err != nil {
			c.err = fmt.Errorf("persist: WithExtra: %w", err)
			return
		}
		if c.extra == nil {
			c.extra = map[string][]byte{}
		}
		if _, ok := c.extra[name]; ok {
			c.err = fmt.Errorf("persist: WithExtra: %q is given twice", name)
			return
		}
		c.extra[name] = data
	}
}
