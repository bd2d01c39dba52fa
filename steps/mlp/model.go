package mlp

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps/nn"
)

// maxShapes bounds the programs kept per kind (fit, predict): one per
// batch size seen, the least recently used dropped past it. A stream of
// batches of one size (and a shorter last one) needs two.
const maxShapes = 8

// core is what a Classifier and a Regressor share: the learned state (an
// nn.Model, host memory), the configuration, and the compiled programs of
// a run (built in the run, dropped by Teardown).
type core struct {
	name     string // "mlp.Classifier", for errors
	features string // the tensor column of X
	label    string // the column of Y
	outputs  int    // classes, or targets
	nm       *nn.Model

	mu      sync.Mutex // guards what follows; Transform may run concurrently
	setUp   bool
	tick    int64
	fit     map[int]*cached   // by rows
	predict map[int][]*cached // by rows: programs not in use
	used    map[int]int64     // predict: last use by rows
}

type cached struct {
	p    *program
	used int64
}

func newCore(name string, outputs int, spec nn.Spec, cfg config) (*core, error) {
	nm, err := nn.NewModel(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &core{name: name, features: cfg.features, label: cfg.label, outputs: outputs, nm: nm}, nil
}

// copyCore returns an independent core in c's learned state, not set up.
func (c *core) copyCore() *core {
	return &core{name: c.name, features: c.features, label: c.label, outputs: c.outputs, nm: c.nm.Clone()}
}

// setup makes c ready to run: the programs are compiled for each batch
// size at its first batch, and kept until teardown.
func (c *core) setup(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setUp = true
	c.fit, c.predict, c.used = map[int]*cached{}, map[int][]*cached{}, map[int]int64{}
	return nil
}

// teardown releases every program; the learned state stays.
func (c *core) teardown() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setUp = false
	c.dropLocked()
	c.fit, c.predict, c.used = nil, nil, nil
	return nil
}

// drop releases the programs (after the weights or the spec changed) and
// keeps c set up.
func (c *core) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked()
}

func (c *core) dropLocked() {
	for _, e := range c.fit {
		_ = e.p.close()
	}
	for _, es := range c.predict {
		for _, e := range es {
			_ = e.p.close()
		}
	}
	if c.setUp {
		c.fit, c.predict, c.used = map[int]*cached{}, map[int][]*cached{}, map[int]int64{}
	}
}

func (c *core) errorf(op, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %s", c.name, op, fmt.Sprintf(format, args...))
}

// features reads the batch's input tensor and checks its width against
// the model's, initialising the model on the first fitted batch.
func (c *core) input(b flow.Batch, op string, fit bool) (minibatch.Matrix, error) {
	x, err := minibatch.Features(b, c.features)
	if err != nil {
		return minibatch.Matrix{}, fmt.Errorf("%s: %s: %w", c.name, op, err)
	}
	if !c.nm.Initialized() {
		if !fit {
			return minibatch.Matrix{}, c.errorf(op, "the model is not fitted yet; fit it first")
		}
		if x.Cols == 0 {
			return minibatch.Matrix{}, c.errorf(op, "column %q of X has width 0, want 1 or more features", c.features)
		}
		if err := c.nm.Init(x.Cols, c.outputs); err != nil {
			return minibatch.Matrix{}, fmt.Errorf("%s: %s: column %q: %w", c.name, op, c.features, err)
		}
		c.drop()
	}
	if x.Cols != c.nm.Inputs() {
		return minibatch.Matrix{}, c.errorf(op, "column %q of X has width %d, want %d (the width the model was first fitted on)", c.features, x.Cols, c.nm.Inputs())
	}
	return x, nil
}

func (c *core) checkSetUp(op string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.setUp {
		return c.errorf(op, "not set up: run it with a flow.Runner, or call flow.Setup first (and flow.Teardown after)")
	}
	return nil
}

// fitProgram returns the fit program for batches of rows rows, building
// it at its first use.
func (c *core) fitProgram(rows int) (*program, error) {
	c.mu.Lock()
	c.tick++
	if e, ok := c.fit[rows]; ok {
		e.used = c.tick
		c.mu.Unlock()
		return e.p, nil
	}
	c.mu.Unlock()
	p, err := build(c.nm.Spec(), c.nm.Layers(), rows, true)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.fit) >= maxShapes {
		oldest, at := 0, int64(math.MaxInt64)
		for r, e := range c.fit {
			if e.used < at {
				oldest, at = r, e.used
			}
		}
		_ = c.fit[oldest].p.close()
		delete(c.fit, oldest)
	}
	c.fit[rows] = &cached{p: p, used: c.tick}
	return p, nil
}

// takePredict returns a predict program for batches of rows rows that no
// other goroutine uses, building one where none is free; putPredict gives
// it back.
func (c *core) takePredict(rows int) (*program, error) {
	c.mu.Lock()
	c.tick++
	c.used[rows] = c.tick
	if free := c.predict[rows]; len(free) > 0 {
		e := free[len(free)-1]
		c.predict[rows] = free[:len(free)-1]
		c.mu.Unlock()
		return e.p, nil
	}
	c.mu.Unlock()
	return build(c.nm.Spec(), c.nm.Layers(), rows, false)
}

func (c *core) putPredict(p *program) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.setUp || c.predict == nil {
		_ = p.close()
		return
	}
	if _, ok := c.predict[p.rows]; !ok && len(c.predict) >= maxShapes {
		oldest, at := 0, int64(math.MaxInt64)
		for r := range c.predict {
			if c.used[r] < at {
				oldest, at = r, c.used[r]
			}
		}
		for _, e := range c.predict[oldest] {
			_ = e.p.close()
		}
		delete(c.predict, oldest)
		delete(c.used, oldest)
	}
	c.predict[p.rows] = append(c.predict[p.rows], &cached{p: p})
}

// notFinite reports whether v is NaN or infinite.
func notFinite(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }

// fitBatch takes one optimizer step on the batch x with the expected
// outputs filled by target (rows × outputs values, zeroed). keep, where
// not nil, receives the outputs of the pass (before the step, with
// dropout): FitTransform's.
func (c *core) fitBatch(ctx context.Context, x minibatch.Matrix, target func(y []float32) error, keep func(out []float32)) error {
	const op = "fit"
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := c.fitProgram(x.Rows)
	if err != nil {
		return fmt.Errorf("%s: %s: build the network for %d rows: %w", c.name, op, x.Rows, err)
	}
	copy(p.x, x.Data)
	clear(p.y)
	if err := target(p.y); err != nil {
		return err
	}
	for _, m := range p.masks {
		c.nm.Mask(m)
	}
	if err := p.run(); err != nil {
		return fmt.Errorf("%s: %s: %w", c.name, op, err)
	}
	cost, err := values(p.cost)
	if err != nil {
		return fmt.Errorf("%s: %s: loss: %w", c.name, op, err)
	}
	if l := float64(cost[0]); math.IsNaN(l) || math.IsInf(l, 0) {
		if j := slices.IndexFunc(x.Data, notFinite); j >= 0 {
			return c.errorf(op, "column %q of X has %v at value %d of row %d; want finite features (fill or drop them first: steps.Imputer)", c.features, x.Data[j], j%x.Cols, j/x.Cols)
		}
		if j := slices.IndexFunc(p.y, notFinite); j >= 0 {
			return c.errorf(op, "column %q of Y has %v at row %d; want finite targets", c.label, p.y[j], j/c.outputs)
		}
		return c.errorf(op, "the loss is %v after %d steps: the fit diverged; lower the learning rate (%g) or standardize the features", l, c.nm.Steps(), c.nm.Spec().LearningRate)
	}
	if keep != nil {
		out, err := values(p.out)
		if err != nil {
			return fmt.Errorf("%s: %s: outputs: %w", c.name, op, err)
		}
		keep(out)
	}
	grads := make([]nn.Layer, len(p.grads)/2)
	for i := range grads {
		gw, err := values(p.grads[2*i])
		if err != nil {
			return fmt.Errorf("%s: %s: gradient: %w", c.name, op, err)
		}
		gb, err := values(p.grads[2*i+1])
		if err != nil {
			return fmt.Errorf("%s: %s: gradient: %w", c.name, op, err)
		}
		grads[i] = nn.Layer{W: gw, B: gb}
	}
	if err := c.nm.Update(grads, x.Rows); err != nil {
		return fmt.Errorf("%s: %s: %w", c.name, op, err)
	}
	return nil
}

// fitStep is the Fit of both models: it checks the step is set up and the
// batch's features, reads the batch's targets with targets (which returns
// what writes them into the rows × outputs targets), and takes one
// optimizer step; keep, if not nil, gets the outputs of the step's pass
// (nil for a batch of no rows).
func (c *core) fitStep(ctx context.Context, b flow.Batch, targets func(flow.Batch) (func(y []float32) error, error), keep func([]float32)) error {
	const op = "fit"
	if err := c.checkSetUp(op); err != nil {
		return err
	}
	x, err := c.input(b, op, true)
	if err != nil {
		return err
	}
	fill, err := targets(b)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", c.name, op, err)
	}
	if x.Rows == 0 {
		if keep != nil {
			keep(nil)
		}
		return nil
	}
	return c.fitBatch(ctx, x, fill, keep)
}

// fitTransform is the FitTransform of both models: fitStep, with the pass's
// outputs given to output, which builds the batch returned.
func (c *core) fitTransform(ctx context.Context, b flow.Batch, targets func(flow.Batch) (func(y []float32) error, error), output func(context.Context, flow.Batch, []float32) flow.Batch) (flow.Batch, error) {
	var out flow.Batch
	err := c.fitStep(ctx, b, targets, func(y []float32) { out = output(ctx, b, y) })
	if err != nil {
		out.Release()
		return flow.Batch{}, err
	}
	return out, nil
}

// transform is the Transform of both models: it checks the step is set up
// and the batch's features, runs the network forward (never dropping out)
// and gives its outputs (rows × outputs, nil for a batch of no rows) to
// output, which builds the batch returned.
func (c *core) transform(ctx context.Context, b flow.Batch, output func(context.Context, flow.Batch, []float32) flow.Batch) (flow.Batch, error) {
	const op = "transform"
	if err := c.checkSetUp(op); err != nil {
		return flow.Batch{}, err
	}
	x, err := c.input(b, op, false)
	if err != nil {
		return flow.Batch{}, err
	}
	if x.Rows == 0 {
		return output(ctx, b, nil), nil
	}
	var out flow.Batch
	err = c.forward(ctx, x, func(y []float32) { out = output(ctx, b, y) })
	return out, err
}

// forward runs the predict program on x and hands its outputs (rows ×
// outputs, valid during the call) to use.
func (c *core) forward(ctx context.Context, x minibatch.Matrix, use func(out []float32)) error {
	const op = "transform"
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := c.takePredict(x.Rows)
	if err != nil {
		return fmt.Errorf("%s: %s: build the network for %d rows: %w", c.name, op, x.Rows, err)
	}
	defer c.putPredict(p)
	copy(p.x, x.Data)
	if err := p.run(); err != nil {
		return fmt.Errorf("%s: %s: %w", c.name, op, err)
	}
	out, err := values(p.out)
	if err != nil {
		return fmt.Errorf("%s: %s: outputs: %w", c.name, op, err)
	}
	use(out)
	return nil
}

// params, setParams and space are the hyperparameters (see nn.Spec).
func (c *core) params() hparams.Values { return c.nm.Spec().Params() }

func (c *core) setParams(p hparams.Values, loss nn.Loss) error {
	spec, err := c.nm.Spec().WithParams(p)
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	if spec.Loss != loss {
		return fmt.Errorf("%s: loss %q, want %q", c.name, spec.Loss, loss)
	}
	if err := c.nm.SetSpec(spec); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	c.drop() // the graphs depend on the spec
	return nil
}

func (c *core) space() hparams.Space { return c.nm.Spec().Space() }
