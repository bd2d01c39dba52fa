package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime/debug"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/persist"
)

// Fingerprinter is a source that can say what its data is more cheaply
// than by being read: a file source returns its path, size, modification
// time and a content hash. Two sources with equal fingerprints must yield
// the same batches. Fit uses the fingerprint in place of hashing the
// stream.
type Fingerprinter interface {
	Fingerprint() ([]byte, error)
}

// ModulePath is the module whose version the key carries by default.
const ModulePath = "github.com/penstock-ml/penstock"

// buildVersion returns the version of ModulePath in the binary's build
// information: the main module's when it is Penstock, else the
// dependency's; "" where there is none (tests, "(devel)" builds).
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	v := ""
	if bi.Main.Path == ModulePath {
		v = bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == ModulePath {
			v = d.Version
			if d.Replace != nil {
				v = d.Replace.Path + "@" + d.Replace.Version
			}
		}
	}
	if v == "(devel)" {
		return ""
	}
	return v
}

// chain is a hash chain: each link hashes the previous sum with new
// length-prefixed fields.
type chain struct{ sum [sha256.Size]byte }

func newChain(fields ...string) *chain {
	c := &chain{}
	c.link(fields...)
	return c
}

func (c *chain) link(fields ...string) {
	h := sha256.New()
	h.Write(c.sum[:])
	var n [8]byte
	for _, f := range fields {
		binary.LittleEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	copy(c.sum[:], h.Sum(nil))
}

func (c *chain) hex() string { return hex.EncodeToString(c.sum[:]) }

// stepsKey chains, for every active step of the tree of prefix (the root
// included, depth first), its path, its registered type name and version,
// its hyperparameters and its node settings, and with state, for every
// active leaf, the SHA-256 of its state as it is now (persist.Marshal of
// the leaf alone, so that an inactive branch's state counts no more than
// its hyperparameters): a fit continues from the state it starts with.
func stepsKey(c *chain, prefix flow.Step, reg *persist.Registry, state bool) error {
	return flow.Walk(prefix, func(v flow.Visit) error {
		if !v.Active {
			return flow.SkipChildren
		}
		t, ok := reg.TypeOf(v.Node.Step)
		if !ok {
			return fmt.Errorf("checkpoint: key: step %q (%T) is not registered in the persist registry; register it (persist.Registry.Register) so that its state can be cached", v.Path, v.Node.Step)
		}
		params := ""
		if tu, ok := v.Node.Step.(hparams.Tunable); ok {
			params = canonical(tu.Params())
		}
		settings, err := v.Node.Settings()
		if err != nil {
			return fmt.Errorf("checkpoint: key: step %q: %w", v.Path, err)
		}
		c.link("step", v.Path.Key(), t.Name, fmt.Sprint(t.Version), params, fmt.Sprintf("%+v", settings))
		if _, composite := v.Node.Step.(flow.Composite); state && !composite {
			b, err := persist.Marshal(v.Node.Step, persist.WithRegistry(reg))
			if err != nil {
				return fmt.Errorf("checkpoint: key: the state of step %q: %w", v.Path, err)
			}
			sum := sha256.Sum256(b)
			c.link("state", hex.EncodeToString(sum[:]))
		}
		return nil
	})
}

// canonical writes v with its keys sorted and every value with its Go
// type, so that 1 (int) and 1.0 (float64) differ.
func canonical(v hparams.Values) string {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range v {
			if !yield(k) {
				return
			}
		}
	})
	var b []byte
	for _, k := range keys {
		b = fmt.Appendf(b, "%q=%T:%#v;", k, v[k], v[k])
	}
	return string(b)
}

// dataHasher hashes a stream of batches by content: every batch's Epoch
// and row count, and its X and Y records as an Arrow IPC stream (schema
// included), so that one changed value changes the sum.
type dataHasher struct {
	h      hash.Hash
	mem    memory.Allocator
	x, y   recordHasher
	frames int64
}

type recordHasher struct {
	w  *ipc.Writer
	sc *arrow.Schema
}

func newDataHasher(mem memory.Allocator) *dataHasher {
	return &dataHasher{h: sha256.New(), mem: mem}
}

func (d *dataHasher) add(b flow.Batch) error {
	var hdr [24]byte
	binary.LittleEndian.PutUint64(hdr[0:], uint64(b.Epoch))
	binary.LittleEndian.PutUint64(hdr[8:], uint64(b.Rows()))
	has := uint64(0)
	if b.X != nil {
		has |= 1
	}
	if b.Y != nil {
		has |= 2
	}
	binary.LittleEndian.PutUint64(hdr[16:], has)
	d.h.Write(hdr[:])
	d.frames++
	if err := d.x.add(d, b.X); err != nil {
		return err
	}
	return d.y.add(d, b.Y)
}

func (r *recordHasher) add(d *dataHasher, rec arrow.RecordBatch) error {
	if rec == nil {
		return nil
	}
	if r.w != nil && !rec.Schema().Equal(r.sc) {
		if err := r.w.Close(); err != nil {
			return err
		}
		r.w = nil
	}
	if r.w == nil {
		r.sc = rec.Schema()
		r.w = ipc.NewWriter(d.h, ipc.WithSchema(r.sc), ipc.WithAllocator(d.mem))
	}
	return r.w.Write(rec)
}

func (d *dataHasher) sum() (string, error) {
	var errs []error
	for _, r := range []*recordHasher{&d.x, &d.y} {
		if r.w != nil {
			errs = append(errs, r.w.Close())
			r.w = nil
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	return hex.EncodeToString(d.h.Sum(nil)), nil
}

// dataKey returns what identifies the data of src and whether it could
// tell: src's Fingerprint where it has one; else, for a replayable
// source, the hash of its content, read once and rewound. Any other
// source cannot be identified without being consumed, and is not cached
// (why says so).
func dataKey(ctx context.Context, src flow.Source, mem memory.Allocator) (key, why string, err error) {
	if fp, ok := src.(Fingerprinter); ok {
		b, err := fp.Fingerprint()
		if err != nil {
			return "", "", fmt.Errorf("checkpoint: fingerprint of the source (%T): %w", src, err)
		}
		s := sha256.Sum256(b)
		return "fingerprint:" + hex.EncodeToString(s[:]), "", nil
	}
	if !flow.Replayable(src) {
		return "", fmt.Sprintf("the source (%T) has no Fingerprint and cannot be rewound after hashing", src), nil
	}
	d := newDataHasher(mem)
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.sum()
			return "", "", fmt.Errorf("checkpoint: hashing the source (%T) after %d batches: %w", src, d.frames, err)
		}
		err = d.add(b)
		b.Release()
		if err != nil {
			d.sum()
			return "", "", fmt.Errorf("checkpoint: hashing batch %d of the source (%T): %w", b.Seq, src, err)
		}
	}
	s, err := d.sum()
	if err != nil {
		return "", "", fmt.Errorf("checkpoint: hashing the source (%T): %w", src, err)
	}
	if err := src.(flow.Rewinder).Rewind(); err != nil {
		return "", "", fmt.Errorf("checkpoint: rewinding the source (%T) after hashing it: %w", src, err)
	}
	return "content:" + s, "", nil
}
