package flow_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/flow"
)

// The steps and metasteps of the step-tree tests. The metasteps are
// defined here, outside package flow, as any package would define one:
// they run their children themselves and never forward lifecycle calls.

// life counts the lifecycle calls on one step value. It is safe for
// concurrent use (replicas share nothing, but transforms run in parallel).
type life struct {
	setups, teardowns, fits, transforms atomic.Int64
}

func (l *life) String() string {
	return fmt.Sprintf("setups %d, teardowns %d, fits %d, transforms %d",
		l.setups.Load(), l.teardowns.Load(), l.fits.Load(), l.transforms.Load())
}

// state is what a mean step has learned: the count, sum and sum of squares
// of x. Inputs are small integers, so sums are exact in any order.
type state struct{ n, sum, sumsq float64 }

func (s state) add(o state) state { return state{s.n + o.n, s.sum + o.sum, s.sumsq + o.sumsq} }

func (s state) mean() float64 {
	if s.n == 0 {
		return 0
	}
	return s.sum / s.n
}

// mean learns the mean of x (and its spread) and subtracts the mean. It
// has a resource too: Setup allocates a buffer with the run's allocator,
// Teardown frees it, and Fit and Transform refuse to run without it, so a
// value that the runner did not set up cannot be used unnoticed. It is a
// Merger, Copier and Resetter.
type mean struct {
	mem memory.Allocator // for the batches it returns

	mu  sync.Mutex // guards st: transforms of one value may run in parallel
	st  state
	buf *memory.Buffer // the resource

	life
	repMu    sync.Mutex
	replicas []*mean // made by Replica, in order
}

var (
	_ flow.Fitter     = (*mean)(nil)
	_ flow.Merger     = (*mean)(nil)
	_ flow.Copier     = (*mean)(nil)
	_ flow.Resetter   = (*mean)(nil)
	_ flow.Setupper   = (*mean)(nil)
	_ flow.Teardowner = (*mean)(nil)
)

func (m *mean) Setup(ctx context.Context) error {
	m.setups.Add(1)
	if m.buf != nil {
		return errors.New("mean: set up twice without teardown")
	}
	m.buf = memory.NewResizableBuffer(flow.Allocator(ctx))
	m.buf.Resize(64)
	return nil
}

func (m *mean) Teardown(context.Context) error {
	m.teardowns.Add(1)
	if m.buf == nil {
		return errors.New("mean: torn down but not set up")
	}
	m.buf.Release()
	m.buf = nil
	return nil
}

func (m *mean) Fit(_ context.Context, in flow.Batch) error {
	m.fits.Add(1)
	if m.buf == nil {
		return errors.New("mean: fit before setup")
	}
	var s state
	for _, v := range column(in.X, "x") {
		s = s.add(state{1, v, v * v})
	}
	m.mu.Lock()
	m.st = m.st.add(s)
	m.mu.Unlock()
	return nil
}

func (m *mean) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	m.transforms.Add(1)
	if m.buf == nil {
		return flow.Batch{}, errors.New("mean: transform before setup")
	}
	mu := m.state().mean()
	return mapX(m.mem, in, func(v float64) float64 { return v - mu })
}

func (m *mean) state() state {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}

func (m *mean) Replica() flow.Step {
	r := &mean{mem: m.mem}
	m.repMu.Lock()
	m.replicas = append(m.replicas, r)
	m.repMu.Unlock()
	return r
}

func (m *mean) Merge(reps []flow.Step) error {
	for _, r := range reps {
		rm, ok := r.(*mean)
		if !ok {
			return fmt.Errorf("mean: merge a %T", r)
		}
		if rm == m {
			return errors.New("mean: asked to merge itself")
		}
		rs := rm.state()
		m.mu.Lock()
		m.st = m.st.add(rs)
		m.mu.Unlock()
	}
	return nil
}

func (m *mean) Copy() flow.Step { return &mean{mem: m.mem, st: m.state()} }

func (m *mean) Reset() { m.mu.Lock(); m.st = state{}; m.mu.Unlock() }

// madeReplicas returns the replicas that Replica made.
func (m *mean) madeReplicas() []*mean {
	m.repMu.Lock()
	defer m.repMu.Unlock()
	return append([]*mean(nil), m.replicas...)
}

// bareSum learns a sum but can neither copy nor reset itself.
type bareSum struct{ sum float64 }

func (s *bareSum) Fit(_ context.Context, in flow.Batch) error {
	for _, v := range column(in.X, "x") {
		s.sum += v
	}
	return nil
}

func (s *bareSum) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

// resource learns nothing but holds a resource per run: Setup and Teardown
// are counted and checked, Transform passes the batch through and refuses
// to run when not set up.
type resource struct {
	life
	up atomic.Bool
	// failSetup and failTeardown, when set, are what Setup and Teardown
	// return (a Setup that fails acquires nothing).
	failSetup, failTeardown error
}

func (r *resource) Setup(context.Context) error {
	r.setups.Add(1)
	if r.failSetup != nil {
		return r.failSetup
	}
	if !r.up.CompareAndSwap(false, true) {
		return errors.New("resource: set up twice without teardown")
	}
	return nil
}

func (r *resource) Teardown(context.Context) error {
	r.teardowns.Add(1)
	if !r.up.CompareAndSwap(true, false) {
		return errors.New("resource: torn down but not set up")
	}
	return r.failTeardown
}

func (r *resource) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	r.transforms.Add(1)
	if !r.up.Load() {
		return flow.Batch{}, errors.New("resource: transform before setup")
	}
	in.Retain()
	return in, nil
}

// tally is a stateless step held by pointer: it passes batches through
// and counts them.
type tally struct{ life }

func (c *tally) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	c.transforms.Add(1)
	in.Retain()
	return in, nil
}

// fitOn fits s on in and transforms it, as a metastep runs a child on its
// fit path: FitTransform if it has one, else Fit (if any) then Transform.
func fitOn(ctx context.Context, s flow.Step, in flow.Batch) (flow.Batch, error) {
	switch f := s.(type) {
	case flow.FitTransformer:
		return f.FitTransform(ctx, in)
	case flow.Fitter:
		if err := f.Fit(ctx, in); err != nil {
			return flow.Batch{}, err
		}
	}
	return s.Transform(ctx, in)
}

// trainOnly runs its child on the fit path only: FitTransform fits the
// child and returns its output, Transform passes the batch through. It
// counts its own lifecycle calls, which the runner must make on it as on
// any step of the tree.
type trainOnly struct {
	child flow.Node
	life
}

var (
	_ flow.Composite      = (*trainOnly)(nil)
	_ flow.FitTransformer = (*trainOnly)(nil)
	_ flow.Setupper       = (*trainOnly)(nil)
	_ flow.Teardowner     = (*trainOnly)(nil)
)

func newTrainOnly(n flow.Node) *trainOnly { return &trainOnly{child: n} }

func (t *trainOnly) Children() []flow.Node { return []flow.Node{t.child} }

func (t *trainOnly) WithChildren(children []flow.Node) (flow.Composite, error) {
	if len(children) != 1 || children[0].Name != t.child.Name {
		return nil, fmt.Errorf("trainOnly: WithChildren: want the one child %q", t.child.Name)
	}
	return &trainOnly{child: children[0]}, nil
}

func (t *trainOnly) Setup(context.Context) error    { t.setups.Add(1); return nil }
func (t *trainOnly) Teardown(context.Context) error { t.teardowns.Add(1); return nil }

func (t *trainOnly) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	t.fits.Add(1)
	return fitOn(ctx, t.child.Step, in)
}

func (t *trainOnly) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	t.transforms.Add(1)
	in.Retain()
	return in, nil
}

// choose runs the one branch it picked (a ChooseOneOf).
type choose struct {
	branches []flow.Node
	pick     string
}

var _ flow.Chooser = (*choose)(nil)

func (c *choose) Children() []flow.Node { return append([]flow.Node(nil), c.branches...) }

func (c *choose) WithChildren(children []flow.Node) (flow.Composite, error) {
	if len(children) != len(c.branches) {
		return nil, fmt.Errorf("choose: WithChildren: %d children, want %d", len(children), len(c.branches))
	}
	return &choose{branches: append([]flow.Node(nil), children...), pick: c.pick}, nil
}

func (c *choose) Active(name string) bool { return name == c.pick }

func (c *choose) picked() (flow.Step, error) {
	for _, b := range c.branches {
		if b.Name == c.pick {
			return b.Step, nil
		}
	}
	return nil, fmt.Errorf("choose: no branch %q", c.pick)
}

func (c *choose) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	s, err := c.picked()
	if err != nil {
		return flow.Batch{}, err
	}
	return s.Transform(ctx, in)
}

func (c *choose) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	s, err := c.picked()
	if err != nil {
		return flow.Batch{}, err
	}
	return fitOn(ctx, s, in)
}

// holder is a composite whose child can be changed after it was put in a
// pipeline: the way a tree comes to contain itself.
type holder struct{ child flow.Node }

func (h *holder) Children() []flow.Node { return []flow.Node{h.child} }

func (h *holder) WithChildren(children []flow.Node) (flow.Composite, error) {
	return &holder{child: children[0]}, nil
}

func (h *holder) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	return h.child.Step.Transform(ctx, in)
}

// nest is a value-typed composite: a chain of left more nests above a
// tally. With no pointer in it, only MaxDepth stops a walk of a chain
// that never ends.
type nest struct {
	left int
	leaf *tally
}

func (n nest) Children() []flow.Node {
	if n.left == 0 {
		return []flow.Node{flow.Named("leaf", n.leaf)}
	}
	return []flow.Node{flow.Named("n", nest{n.left - 1, n.leaf})}
}

func (n nest) WithChildren(children []flow.Node) (flow.Composite, error) { return n, nil }

func (n nest) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

// panicky panics in Transform.
type panicky struct{}

func (panicky) Transform(context.Context, flow.Batch) (flow.Batch, error) {
	panic("the model fell over")
}

// again rewinds src for one more run: a run reads its source from where
// it is.
func again(t *testing.T, src flow.Rewinder) flow.Source {
	t.Helper()
	if err := src.Rewind(); err != nil {
		t.Fatal(err)
	}
	return src
}
