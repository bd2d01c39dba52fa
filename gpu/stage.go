package gpu

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/internal/ctxerr"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps/nn"
)

const stageName = "gpu.Stage"

// The default columns and the output column, as steps/mlp's.
const (
	DefaultFeatures = "x"     // the FixedSizeList<float32> column of X read
	DefaultLabel    = "y"     // the integer column of Y fitted on
	ClassColumn     = "class" // int64: the predicted class
	DefaultSlots    = 2       // pinned staging slots: double buffering
	MaxSlots        = 64      // the most slots: each holds a batch in pinned and device memory
)

// Option configures a Stage.
type Option func(*Stage)

// Features sets the tensor column of X read (default DefaultFeatures).
func Features(column string) Option { return func(s *Stage) { s.features = column } }

// Label sets the class column of Y fitted on (default DefaultLabel).
func Label(column string) Option { return func(s *Stage) { s.label = column } }

// Slots sets the number of pinned staging slots (default DefaultSlots, 1
// to MaxSlots): with 2, the upload of a batch overlaps the training on the
// one before.
func Slots(n int) Option { return func(s *Stage) { s.slots = n } }

// WithDevice sets how the owner opens the device (default: CPU()). open
// runs on the owner's locked thread.
func WithDevice(open func() (Device, error)) Option { return func(s *Stage) { s.open = open } }

// Stage is the multilayer perceptron of package steps/nn as a classifier
// on a Device: the subset of nn.Spec with ReLU hidden layers, softmax
// cross-entropy, Adam and L2 (no dropout). It reads the
// FixedSizeList<float32> column Features of X and, to fit, the integer
// class column Label of Y, and returns X replaced by ClassColumn. Its
// initial weights, hyperparameters and updates are those of
// steps/mlp.Classifier with the same spec.
//
// Setup starts an Owner and uploads the learned state; Fit copies the
// batch into a free pinned slot and queues the upload, the forward and
// backward passes and the Adam step without waiting for them; Transform
// waits; Teardown downloads the learned state into host memory, where it
// stays between runs, and frees the device. See the package
// documentation for the contract. It is not a flow.Merger.
type Stage struct {
	classes         int
	features, label string
	slots           int
	open            func() (Device, error)
	noReuseWait     bool // test hook: drop the wait before a slot's reuse

	nm  *nn.Model
	opt optState // Adam's moments (flat, as on the device) and steps

	mu        sync.Mutex
	r         *run   // between Setup and Teardown
	abandoned *Owner // of a Setup cancelled while its device opened, until it ends
	stats     Stats  // of the last run, after Teardown
}

// optState is Adam's state on the host, laid out as the device's flat
// parameter buffer. nn.Model keeps its own, which the stage does not use:
// it cannot be set from outside package nn.
type optState struct {
	m, v  []float32
	steps int64
}

var (
	_ flow.Fitter     = (*Stage)(nil)
	_ flow.Setupper   = (*Stage)(nil)
	_ flow.Teardowner = (*Stage)(nil)
	_ flow.Copier     = (*Stage)(nil)
	_ flow.Resetter   = (*Stage)(nil)
	_ hparams.Tunable = (*Stage)(nil)
	_ hparams.Spacer  = (*Stage)(nil)
)

// NewStage returns a stage of classes classes (2 or more) built from
// spec. It returns an error naming each field of spec that the device
// does not support. Nothing is started or allocated until Setup.
func NewStage(classes int, spec nn.Spec, opts ...Option) (*Stage, error) {
	if classes < 2 || classes > nn.MaxUnits {
		return nil, fmt.Errorf("%s: %d classes, want 2 to %d", stageName, classes, nn.MaxUnits)
	}
	if err := supported(spec); err != nil {
		return nil, err
	}
	nm, err := nn.NewModel(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", stageName, err)
	}
	s := &Stage{classes: classes, features: DefaultFeatures, label: DefaultLabel, slots: DefaultSlots, nm: nm}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	if s.slots < 1 || s.slots > MaxSlots {
		return nil, fmt.Errorf("%s: %d slots, want 1 to %d", stageName, s.slots, MaxSlots)
	}
	if s.open == nil {
		s.open = func() (Device, error) { return CPU(), nil }
	}
	return s, nil
}

// supported returns an error naming every field of spec that the stage
// does not implement.
func supported(spec nn.Spec) error {
	var errs []error
	if spec.Activation != nn.ReLU {
		errs = append(errs, fmt.Errorf("%s: spec field Activation is %q; the device stage supports only %q", stageName, spec.Activation, nn.ReLU))
	}
	if spec.Loss != nn.CrossEntropy {
		errs = append(errs, fmt.Errorf("%s: spec field Loss is %q; the device stage supports only %q", stageName, spec.Loss, nn.CrossEntropy))
	}
	if spec.Optimizer != nn.Adam {
		errs = append(errs, fmt.Errorf("%s: spec field Optimizer is %q; the device stage supports only %q", stageName, spec.Optimizer, nn.Adam))
	}
	if spec.Dropout != 0 {
		errs = append(errs, fmt.Errorf("%s: spec field Dropout is %v; the device stage supports only 0", stageName, spec.Dropout))
	}
	return errors.Join(errs...)
}

// Spec returns the stage's spec.
func (s *Stage) Spec() nn.Spec { return s.nm.Spec() }

// Weights returns a copy of the learned layers as of the last Teardown
// (nil before the first fit).
func (s *Stage) Weights() []nn.Layer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nm.Weights()
}

// Steps returns the number of Adam steps queued so far (after a run that
// failed on the device, the number of the state the host kept).
func (s *Stage) Steps() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opt.steps
}

// Copy returns an independent stage in s's learned state, not set up.
// During a run (flow.Copy at a consistent cut, Runner.OnEpoch) it first
// waits for the queued batches and downloads the learned state, as a save
// does, and the run goes on; where the device failed, it panics with the
// device's error, which flow.Copy returns as the step's error.
func (s *Stage) Copy() flow.Step {
	if err := s.sync("copy"); err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Stage{
		classes: s.classes, features: s.features, label: s.label, slots: s.slots, open: s.open,
		noReuseWait: s.noReuseWait, nm: s.nm.Clone(),
		opt: optState{m: append([]float32(nil), s.opt.m...), v: append([]float32(nil), s.opt.v...), steps: s.opt.steps},
	}
}

// Reset forgets what was learned: the next fit starts from the seed's
// initial weights. During a run, that fit waits for the batches in flight
// and uploads the new weights (on features of any width).
func (s *Stage) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nm.Reset()
	s.opt = optState{}
	if s.r != nil {
		s.r.goodSteps = 0 // the state the host keeps should the run fail
	}
}

// Params returns the hyperparameters (nn.Spec.Params).
func (s *Stage) Params() hparams.Values { return s.nm.Spec().Params() }

// SetParams sets hyperparameters as steps/mlp's Classifier does (a change
// of the network drops what was learned); values the device does not
// support are an error, and nothing changes then. Not during a run.
func (s *Stage) SetParams(p hparams.Values) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.r != nil {
		return fmt.Errorf("%s: set params during a run; tear it down first", stageName)
	}
	spec, err := s.nm.Spec().WithParams(p)
	if err != nil {
		return fmt.Errorf("%s: %w", stageName, err)
	}
	if err := supported(spec); err != nil {
		return err
	}
	if err := s.nm.SetSpec(spec); err != nil {
		return fmt.Errorf("%s: %w", stageName, err)
	}
	if !s.nm.Initialized() {
		s.opt = optState{}
	}
	return nil
}

// Space returns steps/mlp's default space (nn.Spec.Space) with what the
// device does not support fixed: activation "relu", optimizer "adam",
// dropout 0, and no momentum.
func (s *Stage) Space() hparams.Space {
	sp := s.nm.Spec().Space()
	sp[nn.ParamActivation] = hparams.Fixed(string(nn.ReLU))
	sp[nn.ParamOptimizer] = hparams.Fixed(string(nn.Adam))
	sp[nn.ParamDropout] = hparams.Fixed(0.0)
	delete(sp, nn.ParamMomentum)
	return sp
}

func (s *Stage) errorf(op, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %s", stageName, op, fmt.Sprintf(format, args...))
}

// Setup starts the owner, opens the device and, for a fitted model,
// uploads the learned state; it makes Slots staging slots (their memory
// is allocated at the first batch, at the batch's size). On an error,
// everything it started is released.
//
// Setup honours ctx: once ctx is done it returns an error wrapping
// ctx.Err() and its cause (context.Cause), at once while the device opens
// (the open function goes on on the owner's goroutine, which closes the
// device it returns and ends; the next Setup waits for that first), and
// after the upload of the learned state where that has started (device
// work, which is waited for); everything it started is then released.
func (s *Stage) Setup(ctx context.Context) error {
	if err := cancelled(ctx, "setup"); err != nil {
		return err
	}
	s.mu.Lock()
	set := s.r != nil
	abandoned := s.abandoned
	s.mu.Unlock()
	if set {
		return s.errorf("setup", "already set up; tear it down first")
	}
	if abandoned != nil {
		select {
		case <-abandoned.done:
		case <-ctx.Done():
			return fmt.Errorf("%s: setup: waiting for the device of a cancelled Setup to open and close: %w", stageName, ctxErr(ctx))
		}
		s.mu.Lock()
		s.abandoned = nil
		s.mu.Unlock()
	}
	o, err := start(ctx.Done(), s.open)
	if errors.Is(err, errAbandoned) {
		s.mu.Lock()
		s.abandoned = o
		s.mu.Unlock()
		return fmt.Errorf("%s: setup: waiting for the device to open: %w", stageName, ctxErr(ctx))
	}
	if err != nil {
		return fmt.Errorf("%s: setup: %w", stageName, err)
	}
	s.mu.Lock()
	r := &run{s: s, owner: o, goodSteps: s.opt.steps}
	s.mu.Unlock()
	err = r.do(ctx, true, func(dev Device) error {
		var err error
		if r.ref, err = dev.NewEvent(); err != nil {
			return err
		}
		if err := dev.Record(ComputeStream, r.ref); err != nil {
			return err
		}
		for range s.slots {
			sl := &slot{}
			if sl.uploaded, err = dev.NewEvent(); err != nil {
				return err
			}
			if sl.consumed, err = dev.NewEvent(); err != nil {
				return err
			}
			r.slots = append(r.slots, sl)
		}
		if s.nm.Initialized() {
			return r.upload(dev)
		}
		return nil
	})
	if err == nil {
		err = ctxErr(ctx) // cancelled during the upload
	}
	if err != nil {
		_ = r.close()
		return fmt.Errorf("%s: setup: %w", stageName, err)
	}
	s.mu.Lock()
	s.r = r
	s.mu.Unlock()
	return nil
}

// Teardown waits for the queued work, downloads the learned state into
// host memory, frees the device and ends the owner. It returns a device
// error not yet returned by Fit (and what went wrong after the one Fit
// returned: a buffer that could not be freed, say). After a failed Setup, and after
// Teardown, it does nothing. After a device error the host keeps the
// state of the last good download (a Teardown, or a save or Copy during a
// run) or Setup: the weights, Adam's moments and its step count.
func (s *Stage) Teardown(context.Context) error {
	s.mu.Lock()
	r := s.r
	s.r = nil
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	err := r.close()
	s.mu.Lock()
	s.stats = r.tl.stats()
	s.mu.Unlock()
	if err != nil && r.reported {
		err = r.unreported(err) // Fit returned the run's error
	}
	if err != nil {
		return fmt.Errorf("%s: teardown: %w", stageName, err)
	}
	return nil
}

// unreported returns the parts of err (errors joined, taken apart) that
// the error returned to the caller does not hold, nil if none: what went
// wrong after it (a free that failed, memory left allocated).
func (r *run) unreported(err error) error {
	var keep []error
	var walk func(e error)
	walk = func(e error) {
		if e == nil || errors.Is(r.err, e) {
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				walk(c)
			}
			return
		}
		keep = append(keep, e)
	}
	walk(err)
	return errors.Join(keep...)
}

// notFinite reports whether v is NaN or infinite.
func notFinite(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }

// cancelled returns nil while ctx is not done, else an error of op that
// wraps ctx.Err() and, where it is another, the cancellation's cause.
func cancelled(ctx context.Context, op string) error {
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("%s: %s: %w", stageName, op, err)
	}
	return nil
}

// ctxErr returns ctx.Err() with, where it is another, the cancellation's
// cause.
func ctxErr(ctx context.Context) error { return ctxerr.Err(ctx) }

// isCancel reports whether err is ctx's cancellation.
func isCancel(ctx context.Context, err error) bool {
	return ctx.Err() != nil && errors.Is(err, ctx.Err())
}

// current returns the run, or an error outside one.
func (s *Stage) current(op string) (*run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.r == nil {
		return nil, s.errorf(op, "not set up: run it with a flow.Runner, or call flow.Setup first (and flow.Teardown after)")
	}
	return s.r, nil
}

// Fit queues one Adam step on the batch and returns without waiting for
// it; it waits only for a free slot. A batch with a NaN or infinite
// feature is refused, as steps/mlp's Classifier refuses it, with an error
// naming the column and the row, and nothing is fitted. A cancellation of ctx ends the wait:
// Fit returns an error wrapping ctx.Err() and its cause, the batch is not
// fitted and the run goes on. An error of the device in an earlier batch
// is returned here (and by every later Fit).
func (s *Stage) Fit(ctx context.Context, b flow.Batch) error {
	const op = "fit"
	if err := cancelled(ctx, op); err != nil {
		return err
	}
	r, err := s.current(op)
	if err != nil {
		return err
	}
	if err := r.failed(); err != nil {
		return err
	}
	x, labels, err := minibatch.Examples(b, s.features, s.label, s.classes)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", stageName, op, err)
	}
	if x.Rows == 0 {
		return nil
	}
	if j := slices.IndexFunc(x.Data[:x.Rows*x.Cols], notFinite); j >= 0 {
		return s.errorf(op, "column %q of X has %v at value %d of row %d; want finite features (fill or drop them first: steps.Imputer)", s.features, x.Data[j], j%x.Cols, j/x.Cols)
	}
	init := !s.nm.Initialized()
	if init {
		if x.Cols == 0 {
			return s.errorf(op, "column %q of X has width 0, want 1 or more features", s.features)
		}
		s.mu.Lock()
		err := s.nm.Init(x.Cols, s.classes)
		if err == nil {
			s.opt = optState{}
		}
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("%s: %s: column %q: %w", stageName, op, s.features, err)
		}
	}
	if x.Cols != s.nm.Inputs() {
		return s.errorf(op, "column %q of X has width %d, want %d (the width the model was first fitted on)", s.features, x.Cols, s.nm.Inputs())
	}
	s.mu.Lock()
	t := s.opt.steps + 1
	s.mu.Unlock()
	// The wait for a free slot is an owner call of its own, which a
	// cancellation abandons (it goes on waiting on the owner's thread); the
	// call that stages the batch reads it, so it is skipped then, or waited
	// for where it has started (it waits no more: the slot is free).
	err = r.do(ctx, false, func(dev Device) error { return r.awaitSlot(dev, x.Rows) })
	if isCancel(ctx, err) {
		return fmt.Errorf("%s: %s: %w", stageName, op, err)
	}
	if err != nil {
		return r.fail(fmt.Errorf("%s: %s: %w", stageName, op, err))
	}
	var sl *slot
	err = r.do(ctx, true, func(dev Device) error {
		if err := r.owner.Err(); err != nil { // the batches queued before failed
			return err
		}
		if init || !r.onDevice {
			if err := r.upload(dev); err != nil {
				return err
			}
		}
		var err error
		sl, err = r.stage(dev, x, labels)
		return err
	})
	if isCancel(ctx, err) { // nothing was queued: the run goes on
		return fmt.Errorf("%s: %s: %w", stageName, op, err)
	}
	if err != nil {
		return r.fail(fmt.Errorf("%s: %s: %w", stageName, op, err))
	}
	spec := s.nm.Spec()
	s.mu.Lock()
	s.opt.steps = t // before the step is queued: Stats never counts more batches than Steps
	s.mu.Unlock()
	if err := r.owner.Submit(func(dev Device) error { return r.train(dev, sl, x.Rows, spec, t) }); err != nil {
		s.mu.Lock()
		s.opt.steps = t - 1
		s.mu.Unlock()
		return r.fail(fmt.Errorf("%s: %s: %w", stageName, op, err))
	}
	return nil
}

// do runs f on the owner's thread, after what is queued before, and
// returns its error (a panic becomes one). When ctx is done first, it
// returns ctx's error (with its cause): at once where skip is not set (f
// runs, or goes on running, without a caller), and where skip is set
// and f has not started (f is then not run); where f has started, it
// waits for f.
func (r *run) do(ctx context.Context, skip bool, f func(Device) error) error {
	if ctx.Done() == nil {
		return r.owner.Do(f)
	}
	var state atomic.Int32 // 0 queued, 1 started, 2 skipped
	reply := make(chan error, 1)
	err := r.owner.Submit(func(dev Device) error {
		if !state.CompareAndSwap(0, 1) {
			return nil
		}
		reply <- protect(func() error { return f(dev) })
		return nil
	})
	if err != nil {
		return err
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		if !skip || state.CompareAndSwap(0, 2) {
			return ctxErr(ctx)
		}
		return <-reply
	}
}

// Transform returns the predicted classes of the batch's rows, after the
// steps queued before it. It waits (a cancellation of ctx ends the wait,
// with an error wrapping ctx.Err() and its cause), and is safe for
// concurrent calls.
func (s *Stage) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	const op = "transform"
	if err := cancelled(ctx, op); err != nil {
		return flow.Batch{}, err
	}
	r, err := s.current(op)
	if err != nil {
		return flow.Batch{}, err
	}
	if err := r.failed(); err != nil {
		return flow.Batch{}, err
	}
	x, err := minibatch.Features(b, s.features)
	if err != nil {
		return flow.Batch{}, fmt.Errorf("%s: %s: %w", stageName, op, err)
	}
	r.mu.Lock()
	fitted := r.onDevice
	r.mu.Unlock()
	if !fitted {
		return flow.Batch{}, s.errorf(op, "the model is not fitted yet; fit it first")
	}
	if x.Cols != r.inputs() {
		return flow.Batch{}, s.errorf(op, "column %q of X has width %d, want %d (the width the model was first fitted on)", s.features, x.Cols, r.inputs())
	}
	logits := make([]float32, x.Rows*s.classes)
	if x.Rows > 0 {
		if err := r.predict(ctx, x, logits); err != nil {
			return flow.Batch{}, fmt.Errorf("%s: %s: %w", stageName, op, err)
		}
	}
	return s.output(ctx, b, logits), nil
}

// output returns b with X replaced by the classes of the logits.
func (s *Stage) output(ctx context.Context, b flow.Batch, logits []float32) flow.Batch {
	k := s.classes
	rows := int(b.Rows())
	classes := array.NewInt64Builder(flow.Allocator(ctx))
	defer classes.Release()
	classes.Reserve(rows)
	for r := range rows {
		z := logits[r*k : (r+1)*k]
		best := 0
		for j, v := range z {
			if v > z[best] {
				best = j
			}
		}
		classes.UnsafeAppend(int64(best))
	}
	col := classes.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: ClassColumn, Type: arrow.PrimitiveTypes.Int64}}, nil)
	return b.WithX(array.NewRecordBatch(schema, []arrow.Array{col}, int64(rows)))
}

// Stats returns the timeline of the current run (waiting for the queued
// work) or, outside a run, of the last one. It may be called from any
// goroutine, also while Fit runs.
func (s *Stage) Stats() (Stats, error) {
	s.mu.Lock()
	r := s.r
	st := s.stats
	s.mu.Unlock()
	if r == nil {
		return st, nil
	}
	err := r.owner.Do(func(dev Device) error {
		if err := dev.SynchronizeAll(); err != nil {
			return err
		}
		if err := r.resolve(dev, true); err != nil {
			return err
		}
		st = r.tl.stats() // the timeline is the owner's: Fit adds to it
		return nil
	})
	if err != nil {
		return Stats{}, r.fail(fmt.Errorf("%s: stats: %w", stageName, err))
	}
	return st, nil
}

// Stats is a run's timeline on the device's clock, from events recorded
// around each batch's upload (copy stream) and training (compute stream).
type Stats struct {
	Batches int
	Span    time.Duration // from the first upload's start to the last step's end
	Copy    time.Duration // the uploads' time
	Compute time.Duration // the training's time
	Busy    float64       // Compute / Span: the compute stream's use
	Overlap float64       // the fraction of Copy during which the compute stream was training
}

// run is the device state of one run: the owner, the model's buffers,
// the slots, the activations and the timeline.
type run struct {
	s     *Stage
	owner *Owner

	goodSteps int64 // the steps of the state on the host: at Setup, at each download, at Reset (under s.mu)

	mu       sync.Mutex // guards onDevice, err, reported (read by Fit and Transform)
	onDevice bool
	err      error
	reported bool

	// On the owner's thread only:
	ref                   Event
	sizes                 []int
	nparams               int
	wOff, bOff            []int
	params, grads, mm, vv Buffer
	stW, stM, stV         *Pinned
	loaded                Event
	slots                 []*slot
	next                  int
	capRows               int
	acts, deltas          []Buffer
	loss                  Buffer
	pending               []batchEvents
	tl                    timeline
}

type slot struct {
	pinned             *Pinned
	dev                Buffer
	rows               int // capacity
	uploaded, consumed Event
}

type batchEvents struct{ copyStart, copyEnd, compStart, compEnd Event }

func (r *run) inputs() int {
	return r.sizes[0]
}

// fail keeps err as the run's error (the first) and returns it, marked as
// returned to the caller.
func (r *run) fail(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	r.reported = true
	return r.err
}

// failed returns the run's error or a submitted function's, marked as
// returned.
func (r *run) failed() error {
	r.mu.Lock()
	err := r.err
	r.mu.Unlock()
	if err != nil {
		return r.fail(err)
	}
	if err := r.owner.Err(); err != nil {
		return r.fail(fmt.Errorf("%s: fit: an earlier batch failed on the device: %w", stageName, err))
	}
	return nil
}

// upload allocates the model's buffers and uploads its state: weights,
// Adam's moments (zero for a new model).
func (r *run) upload(dev Device) error {
	s := r.s
	sizes := s.nm.Spec().Sizes(s.nm.Inputs(), s.nm.Outputs())
	if r.onDevice { // a Reset during the run: batches may be in flight
		if err := dev.SynchronizeAll(); err != nil {
			return err
		}
		if err := r.freeModel(dev); err != nil {
			return err
		}
		if !slices.Equal(sizes, r.sizes) { // the slots and activations have the old widths
			for _, sl := range r.slots {
				if err := r.freeSlot(dev, sl); err != nil {
					return err
				}
			}
			if err := r.freeActs(dev); err != nil {
				return err
			}
		}
	}
	layers := s.nm.Layers()
	r.sizes = sizes
	r.wOff, r.bOff, r.nparams = nil, nil, 0
	for _, l := range layers {
		r.wOff = append(r.wOff, r.nparams)
		r.nparams += len(l.W)
		r.bOff = append(r.bOff, r.nparams)
		r.nparams += len(l.B)
	}
	n := r.nparams
	s.mu.Lock()
	if len(s.opt.m) != n {
		s.opt.m, s.opt.v = make([]float32, n), make([]float32, n)
	}
	s.mu.Unlock()
	var err error
	for _, b := range []*Buffer{&r.params, &r.grads, &r.mm, &r.vv} {
		if *b, err = dev.Alloc(n); err != nil {
			return err
		}
	}
	for _, p := range []**Pinned{&r.stW, &r.stM, &r.stV} {
		if *p, err = dev.AllocPinned(n); err != nil {
			return err
		}
	}
	if r.loaded, err = dev.NewEvent(); err != nil {
		return err
	}
	r.mu.Lock()
	r.onDevice = true
	r.mu.Unlock()
	w, err := dev.Host(r.stW)
	if err != nil {
		return err
	}
	for i, l := range layers {
		copy(w[r.wOff[i]:], l.W)
		copy(w[r.bOff[i]:], l.B)
	}
	for _, c := range []struct {
		p   *Pinned
		src []float32
		dst Buffer
	}{{r.stM, s.opt.m, r.mm}, {r.stV, s.opt.v, r.vv}, {r.stW, nil, r.params}} {
		if c.src != nil {
			h, err := dev.Host(c.p)
			if err != nil {
				return err
			}
			copy(h, c.src)
		}
		if err := dev.Upload(CopyStream, c.dst, c.p); err != nil {
			return err
		}
	}
	if err := dev.Record(CopyStream, r.loaded); err != nil {
		return err
	}
	return dev.Wait(ComputeStream, r.loaded)
}

// awaitSlot waits until the next slot is free for a batch of rows rows:
// its previous upload completed and, where it or the activations grow,
// its previous training or all the work queued.
func (r *run) awaitSlot(dev Device, rows int) error {
	sl := r.slots[r.next]
	if err := dev.Synchronize(sl.uploaded); err != nil {
		return err
	}
	if sl.rows < rows {
		if err := dev.Synchronize(sl.consumed); err != nil {
			return err
		}
	}
	if r.capRows < rows {
		return dev.SynchronizeAll()
	}
	return nil
}

// stage takes the next slot, waits until its previous upload completed
// (at once after awaitSlot), grows it (and the activations) to the batch
// where needed, and copies the batch into its pinned memory: features,
// then labels as float32.
func (r *run) stage(dev Device, x minibatch.Matrix, labels []int64) (*slot, error) {
	sl := r.slots[r.next]
	if err := dev.Synchronize(sl.uploaded); err != nil {
		return nil, err
	}
	if err := r.resolve(dev, false); err != nil {
		return nil, err
	}
	in := r.inputs()
	if sl.rows < x.Rows {
		if err := dev.Synchronize(sl.consumed); err != nil {
			return nil, err
		}
		if err := r.freeSlot(dev, sl); err != nil {
			return nil, err
		}
		var err error
		if sl.pinned, err = dev.AllocPinned(x.Rows * (in + 1)); err != nil {
			return nil, err
		}
		if sl.dev, err = dev.Alloc(x.Rows * (in + 1)); err != nil {
			return nil, err
		}
		sl.rows = x.Rows
	}
	if r.capRows < x.Rows {
		if err := dev.SynchronizeAll(); err != nil {
			return nil, err
		}
		if err := r.freeActs(dev); err != nil {
			return nil, err
		}
		for _, w := range r.sizes[1:] {
			a, err := dev.Alloc(x.Rows * w)
			if err != nil {
				return nil, err
			}
			r.acts = append(r.acts, a)
			d, err := dev.Alloc(x.Rows * w)
			if err != nil {
				return nil, err
			}
			r.deltas = append(r.deltas, d)
		}
		var err error
		if r.loss, err = dev.Alloc(1); err != nil {
			return nil, err
		}
		r.capRows = x.Rows
	}
	h, err := dev.Host(sl.pinned)
	if err != nil {
		return nil, err
	}
	copy(h, x.Data[:x.Rows*in])
	ys := h[x.Rows*in : x.Rows*(in+1)]
	for i, l := range labels {
		ys[i] = float32(l)
	}
	r.next = (r.next + 1) % len(r.slots)
	return sl, nil
}

// train queues the batch in sl: its upload on the copy stream (after the
// slot's previous training), then, on the compute stream after the
// upload, the forward and backward passes, L2 and Adam step t.
func (r *run) train(dev Device, sl *slot, rows int, spec nn.Spec, t int64) error {
	var ev batchEvents
	for _, e := range []*Event{&ev.copyStart, &ev.copyEnd, &ev.compStart, &ev.compEnd} {
		var err error
		if *e, err = dev.NewEvent(); err != nil {
			return err
		}
	}
	in := r.inputs()
	x, labels := sl.dev.Slice(0, rows*in), sl.dev.Slice(rows*in, rows)
	c, k := CopyStream, ComputeStream
	steps := []func() error{
		func() error {
			if r.s.noReuseWait {
				return nil
			}
			return dev.Wait(c, sl.consumed)
		},
		func() error { return dev.Record(c, ev.copyStart) },
		func() error { return dev.Upload(c, sl.dev.Slice(0, rows*(in+1)), sl.pinned) },
		func() error { return dev.Record(c, ev.copyEnd) }, // before uploaded: complete once the training waited
		func() error { return dev.Record(c, sl.uploaded) },
		func() error { return dev.Wait(k, sl.uploaded) },
		func() error { return dev.Record(k, ev.compStart) },
		func() error { return r.forward(dev, x, rows) },
		func() error {
			last := len(r.sizes) - 2
			return dev.Launch(k, SoftmaxXent, Args{Bufs: []Buffer{r.act(last, rows), labels, r.delta(last, rows), r.loss}, Ints: []int{rows, r.sizes[last+1]}})
		},
		func() error { return r.backward(dev, x, rows, float32(spec.L2/float64(rows))) },
		func() error {
			tt := float64(t)
			rate := float32(spec.LearningRate * math.Sqrt(1-math.Pow(spec.Beta2, tt)) / (1 - math.Pow(spec.Beta1, tt)))
			return dev.Launch(k, Adam, Args{Bufs: []Buffer{r.params, r.grads, r.mm, r.vv}, Ints: []int{r.nparams},
				Floats: []float64{float64(rate), float64(float32(spec.Beta1)), float64(float32(spec.Beta2)), float64(float32(spec.Epsilon))}})
		},
		func() error { return dev.Record(k, sl.consumed) },
		func() error { return dev.Record(k, ev.compEnd) },
	}
	for _, f := range steps {
		if err := f(); err != nil {
			for _, e := range []Event{ev.copyStart, ev.copyEnd, ev.compStart, ev.compEnd} {
				_ = dev.DestroyEvent(e)
			}
			return err
		}
	}
	r.pending = append(r.pending, ev)
	return nil
}

func (r *run) act(i, rows int) Buffer   { return r.acts[i].Slice(0, rows*r.sizes[i+1]) }
func (r *run) delta(i, rows int) Buffer { return r.deltas[i].Slice(0, rows*r.sizes[i+1]) }
func (r *run) w(buf Buffer, i int) Buffer {
	return buf.Slice(r.wOff[i], r.sizes[i]*r.sizes[i+1])
}
func (r *run) b(buf Buffer, i int) Buffer { return buf.Slice(r.bOff[i], r.sizes[i+1]) }

// forward queues the forward pass of x (rows × inputs) into acts, with
// the layers' outputs in acts (ReLU applied to the hidden ones).
func (r *run) forwardInto(dev Device, x Buffer, rows int, acts []Buffer) error {
	h := x
	last := len(r.sizes) - 2
	for i := 0; i <= last; i++ {
		in, out := r.sizes[i], r.sizes[i+1]
		a := acts[i].Slice(0, rows*out)
		if err := dev.Launch(ComputeStream, Gemm, Args{Bufs: []Buffer{h, r.w(r.params, i), a}, Ints: []int{rows, out, in, 0, 0}, Floats: []float64{1, 0}}); err != nil {
			return err
		}
		if err := dev.Launch(ComputeStream, BiasAdd, Args{Bufs: []Buffer{a, r.b(r.params, i)}, Ints: []int{rows, out}}); err != nil {
			return err
		}
		if i < last {
			if err := dev.Launch(ComputeStream, ReLU, Args{Bufs: []Buffer{a}, Ints: []int{rows * out}}); err != nil {
				return err
			}
		}
		h = a
	}
	return nil
}

func (r *run) forward(dev Device, x Buffer, rows int) error {
	return r.forwardInto(dev, x, rows, r.acts)
}

// backward queues the gradients of the mean loss, whose gradient in the
// logits is in the last delta, into grads, with the L2 term decay·W.
func (r *run) backward(dev Device, x Buffer, rows int, decay float32) error {
	k := ComputeStream
	for i := len(r.sizes) - 2; i >= 0; i-- {
		in, out := r.sizes[i], r.sizes[i+1]
		prev := x
		if i > 0 {
			prev = r.act(i-1, rows)
		}
		d := r.delta(i, rows)
		gw := r.w(r.grads, i)
		if err := dev.Launch(k, Gemm, Args{Bufs: []Buffer{prev, d, gw}, Ints: []int{in, out, rows, 1, 0}, Floats: []float64{1, 0}}); err != nil {
			return err
		}
		if err := dev.Launch(k, ColSum, Args{Bufs: []Buffer{d, r.b(r.grads, i)}, Ints: []int{rows, out}}); err != nil {
			return err
		}
		if i > 0 {
			dp := r.delta(i-1, rows)
			if err := dev.Launch(k, Gemm, Args{Bufs: []Buffer{d, r.w(r.params, i), dp}, Ints: []int{rows, in, out, 0, 1}, Floats: []float64{1, 0}}); err != nil {
				return err
			}
			if err := dev.Launch(k, ReLUGrad, Args{Bufs: []Buffer{dp, prev}, Ints: []int{rows * in}}); err != nil {
				return err
			}
		}
		if decay != 0 {
			if err := dev.Launch(k, Axpy, Args{Bufs: []Buffer{r.w(r.params, i), gw}, Ints: []int{in * out}, Floats: []float64{float64(decay)}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// predict runs the forward pass of x on the device and writes the logits.
// The work is queued in one call to the owner and collected in a second,
// so that concurrent calls overlap. On a cancellation it returns at once;
// the second call then runs without a caller, and frees what the work
// holds on the device.
func (r *run) predict(ctx context.Context, x minibatch.Matrix, logits []float32) error {
	type job struct {
		in, out *Pinned
		bufs    []Buffer
		ev      []Event
	}
	var j job
	cleanup := func(dev Device) error {
		var errs []error
		for _, b := range j.bufs {
			errs = append(errs, dev.Free(b))
		}
		for _, p := range []*Pinned{j.in, j.out} {
			if p != nil {
				errs = append(errs, dev.FreePinned(p))
			}
		}
		for _, e := range j.ev {
			errs = append(errs, dev.DestroyEvent(e))
		}
		return errors.Join(errs...)
	}
	err := r.do(ctx, true, func(dev Device) error {
		rows, k := x.Rows, r.sizes[len(r.sizes)-1]
		var err error
		if j.in, err = dev.AllocPinned(rows * r.inputs()); err != nil {
			return err
		}
		if j.out, err = dev.AllocPinned(rows * k); err != nil {
			return err
		}
		xb, err := dev.Alloc(rows * r.inputs())
		if err != nil {
			return err
		}
		j.bufs = append(j.bufs, xb)
		acts := make([]Buffer, 0, len(r.sizes)-1)
		for _, w := range r.sizes[1:] {
			a, err := dev.Alloc(rows * w)
			if err != nil {
				return err
			}
			j.bufs = append(j.bufs, a)
			acts = append(acts, a)
		}
		for range 3 {
			e, err := dev.NewEvent()
			if err != nil {
				return err
			}
			j.ev = append(j.ev, e)
		}
		h, err := dev.Host(j.in)
		if err != nil {
			return err
		}
		copy(h, x.Data[:rows*r.inputs()])
		for _, f := range []func() error{
			func() error { return dev.Upload(CopyStream, xb, j.in) },
			func() error { return dev.Record(CopyStream, j.ev[0]) },
			func() error { return dev.Wait(ComputeStream, j.ev[0]) },
			func() error { return r.forwardInto(dev, xb, rows, acts) },
			func() error { return dev.Record(ComputeStream, j.ev[1]) },
			func() error { return dev.Wait(CopyStream, j.ev[1]) },
			func() error { return dev.Download(CopyStream, j.out, acts[len(acts)-1].Slice(0, rows*k)) },
			func() error { return dev.Record(CopyStream, j.ev[2]) },
		} {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil { // the function ran, or never will
		_ = r.owner.Submit(func(dev Device) error {
			_ = dev.SynchronizeAll()
			_ = cleanup(dev)
			return nil
		})
		return err
	}
	return r.do(ctx, false, func(dev Device) error {
		err := dev.Synchronize(j.ev[2])
		if err == nil {
			var h []float32
			if h, err = dev.Host(j.out); err == nil {
				copy(logits, h)
			}
		}
		return errors.Join(err, cleanup(dev))
	})
}

// resolve turns the completed batches' events into the timeline (all of
// them, waiting, where all) and destroys them.
func (r *run) resolve(dev Device, all bool) error {
	for len(r.pending) > 0 {
		ev := r.pending[0]
		if all {
			if err := dev.Synchronize(ev.compEnd); err != nil {
				return err
			}
		} else if done, err := dev.Query(ev.compEnd); err != nil || !done {
			return err
		}
		var t [4]time.Duration
		for i, e := range []Event{ev.copyStart, ev.copyEnd, ev.compStart, ev.compEnd} {
			var err error
			if t[i], err = dev.Elapsed(r.ref, e); err != nil {
				return err
			}
		}
		r.tl.add(t[0], t[1], t[2], t[3])
		for _, e := range []Event{ev.copyStart, ev.copyEnd, ev.compStart, ev.compEnd} {
			if err := dev.DestroyEvent(e); err != nil {
				return err
			}
		}
		r.pending = r.pending[1:]
	}
	return nil
}

func (r *run) freeSlot(dev Device, sl *slot) error {
	var errs []error
	if sl.pinned != nil {
		errs = append(errs, dev.FreePinned(sl.pinned))
		sl.pinned = nil
	}
	if sl.dev.id != 0 {
		errs = append(errs, dev.Free(sl.dev))
		sl.dev = Buffer{}
	}
	sl.rows = 0
	return errors.Join(errs...)
}

func (r *run) freeActs(dev Device) error {
	var errs []error
	for _, b := range append(r.acts, r.deltas...) {
		errs = append(errs, dev.Free(b))
	}
	if r.loss.id != 0 {
		errs = append(errs, dev.Free(r.loss))
	}
	r.acts, r.deltas, r.loss, r.capRows = nil, nil, Buffer{}, 0
	return errors.Join(errs...)
}

func (r *run) freeModel(dev Device) error {
	var errs []error
	for _, b := range []*Buffer{&r.params, &r.grads, &r.mm, &r.vv} {
		if b.id != 0 {
			errs = append(errs, dev.Free(*b))
			*b = Buffer{}
		}
	}
	for _, p := range []**Pinned{&r.stW, &r.stM, &r.stV} {
		if *p != nil {
			errs = append(errs, dev.FreePinned(*p))
			*p = nil
		}
	}
	if r.loaded.id != 0 {
		errs = append(errs, dev.DestroyEvent(r.loaded))
		r.loaded = Event{}
	}
	r.mu.Lock()
	r.onDevice = false
	r.mu.Unlock()
	return errors.Join(errs...)
}

// download copies the learned state back into the host: the layers of
// the model, Adam's moments.
func (r *run) download(dev Device) error {
	s := r.s
	for _, c := range []struct {
		p   *Pinned
		src Buffer
	}{{r.stW, r.params}, {r.stM, r.mm}, {r.stV, r.vv}} {
		if err := dev.Download(CopyStream, c.p, c.src); err != nil {
			return err
		}
	}
	if err := dev.SynchronizeAll(); err != nil {
		return err
	}
	w, err := dev.Host(r.stW)
	if err != nil {
		return err
	}
	m, err := dev.Host(r.stM)
	if err != nil {
		return err
	}
	v, err := dev.Host(r.stV)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for i, l := range s.nm.Layers() {
		copy(l.W, w[r.wOff[i]:])
		copy(l.B, w[r.bOff[i]:])
	}
	copy(s.opt.m, m)
	copy(s.opt.v, v)
	r.goodSteps = s.opt.steps
	s.mu.Unlock()
	return nil
}

// close synchronises, downloads the learned state (unless the device
// failed), frees everything and ends the owner. It returns the first
// error: the run's, a submitted function's, the device's.
func (r *run) close() error {
	var errs []error
	r.mu.Lock()
	if r.err != nil {
		errs = append(errs, r.err)
	}
	r.mu.Unlock()
	errs = append(errs, r.owner.Do(func(dev Device) error {
		var errs []error
		err := dev.SynchronizeAll()
		if err == nil && r.owner.Err() == nil {
			err = r.resolve(dev, true)
		}
		if err == nil && r.owner.Err() == nil && r.onDevice {
			err = r.download(dev)
		}
		if err != nil || r.owner.Err() != nil { // the host keeps its state
			r.s.mu.Lock()
			r.s.opt.steps = r.goodSteps
			r.s.mu.Unlock()
		}
		errs = append(errs, err)
		_ = dev.SynchronizeAll() // order the frees after everything queued
		for _, ev := range r.pending {
			for _, e := range []Event{ev.copyStart, ev.copyEnd, ev.compStart, ev.compEnd} {
				errs = append(errs, dev.DestroyEvent(e))
			}
		}
		r.pending = nil
		for _, sl := range r.slots {
			errs = append(errs, r.freeSlot(dev, sl), dev.DestroyEvent(sl.uploaded), dev.DestroyEvent(sl.consumed))
		}
		r.slots = nil
		errs = append(errs, r.freeActs(dev), r.freeModel(dev))
		if r.ref.id != 0 {
			errs = append(errs, dev.DestroyEvent(r.ref))
		}
		return errors.Join(errs...)
	}))
	errs = append(errs, r.owner.Close())
	return firstErr(errs)
}

// firstErr returns the errors joined, each once.
func firstErr(errs []error) error {
	var out []error
	for _, e := range errs {
		if e == nil {
			continue
		}
		dup := false
		for _, o := range out {
			if errors.Is(o, e) || errors.Is(e, o) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}
