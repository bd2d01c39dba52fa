package checkpoint

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/penstock-ml/penstock/flow"
)

// transformCached runs p.Transform over src and returns column x, the
// slow step's calls, and the Outputs (closed).
func (w *world) transformCached(ctx context.Context, e flow.Engine, p *Pipeline, src flow.Source) ([]float64, int64, *Outputs) {
	w.t.Helper()
	before := w.calls.Load()
	o, err := p.Transform(ctx, w.runner(e), src)
	if err != nil {
		w.t.Fatalf("Transform: %v", err)
	}
	var out []float64
	for {
		b, err := o.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			o.Close()
			w.t.Fatalf("Transform: Next: %v", err)
		}
		out = append(out, column(b)...)
		b.Release()
	}
	if err := o.Close(); err != nil {
		w.t.Fatalf("Transform: Close: %v", err)
	}
	return out, w.calls.Load() - before, o
}

func TestTransformIsCached(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			w := newWorld(t, 1)
			dir := t.TempDir()
			c := w.cache(dir)
			ctx := deadline(t)
			_, _, p := w.fitOnce(c, e, 2, w.data(rows, -1, 0))
			want := w.transformAll(ctx, e, p, w.data(12, 3, 7))
			got1, calls1, o1 := w.transformCached(ctx, e, p, w.data(12, 3, 7))
			got2, calls2, o2 := w.transformCached(ctx, e, p, oneShot{w.data(12, 3, 7)})
			switch {
			case o1.Hit || !o1.Stored() || calls1 != 3:
				t.Errorf("first transform: hit=%v stored=%v calls=%d; want a stored miss with 3 calls", o1.Hit, o1.Stored(), calls1)
			case !o2.Hit || calls2 != 0:
				t.Errorf("second transform: hit=%v calls=%d; want a hit with no call", o2.Hit, calls2)
			}
			if !sameFloats(got1, want) || !sameFloats(got2, want) {
				t.Errorf("cached transforms %v, %v; uncached %v", got1, got2, want)
			}
			// New data misses; so does a prefix fitted on other data.
			if _, calls, o := w.transformCached(ctx, e, p, w.data(12, 4, 7)); o.Hit || calls == 0 {
				t.Errorf("new data: hit=%v calls=%d; want a miss", o.Hit, calls)
			}
			_, _, q := w.fitOnce(c, e, 2, w.data(rows, 0, 1))
			if _, calls, o := w.transformCached(ctx, e, q, w.data(12, 3, 7)); o.Hit || calls == 0 {
				t.Errorf("prefix fitted on other data: hit=%v calls=%d; want a miss", o.Hit, calls)
			}
			// Off: always runs.
			off := w.pipeline(w.cache(dir, Off()), 2, 0)
			off.prefix = p.prefix
			if _, calls, o := w.transformCached(ctx, e, off, w.data(12, 3, 7)); o.Hit || o.Stored() || calls != 3 {
				t.Errorf("caching off: hit=%v stored=%v calls=%d; want 3 calls", o.Hit, o.Stored(), calls)
			}
		})
	}
}

func TestTransformAbandonedStoresNothing(t *testing.T) {
	// An entry is stored only when the prefix's outputs reached their end
	// (the streaming engine reads ahead, so it gets a long stream).
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			w := newWorld(t, 1)
			c := w.cache(t.TempDir())
			ctx := deadline(t)
			_, _, p := w.fitOnce(c, e, 2, w.data(rows, -1, 0))
			n0, _, _ := c.Entries()
			o, err := p.Transform(ctx, w.runner(e), w.data(4000, -1, 0))
			if err != nil {
				t.Fatal(err)
			}
			b, err := o.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b.Release()
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			if n, _, _ := c.Entries(); n != n0 || o.Stored() {
				t.Errorf("abandoned transform: %d entries (was %d), stored=%v; want nothing stored", n, n0, o.Stored())
			}
		})
	}
}
