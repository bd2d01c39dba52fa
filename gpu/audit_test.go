package gpu_test

// An adversarial audit of the promises of gpu's doc comments: a
// cancellation with a cause is reported with the cause, also while Fit
// waits for a slot and Transform for the device; hostile input is an error
// naming the stage and the column, never a panic or a leak; the stage in
// both engines, replicated on the transform path and refused on the fit
// path; the Owner closed at any moment.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps/mlp"
	"github.com/penstock-ml/penstock/steps/nn"
)

// waitSignal wraps a device: once armed, each Synchronize and Query first
// sends on waiting (without blocking), so that a test knows a call waits
// on the device.
type waitSignal struct {
	gpu.Device
	armed   atomic.Bool
	waiting chan struct{}
}

func (s *waitSignal) signal() {
	if s.armed.Load() {
		select {
		case s.waiting <- struct{}{}:
		default:
		}
	}
}

func (s *waitSignal) Synchronize(e gpu.Event) error { s.signal(); return s.Device.Synchronize(e) }

func (s *waitSignal) Query(e gpu.Event) (bool, error) { s.signal(); return s.Device.Query(e) }

// TestAuditCancelCause: Setup, Fit and Transform called with a context
// cancelled with a cause return an error for which errors.Is(err, cause)
// holds, and nothing leaks.
func TestAuditCancelCause(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checked(t)
	d := loadDigits(t)
	ctx := withMem(deadline(t, 30*time.Second), mem)
	cause := errors.New("the operator pulled the plug")
	cctx, cancel := context.WithCancelCause(ctx)
	cancel(cause)
	devs := cpuDevices()
	st, err := gpu.NewStage(10, digitsSpec(), devs.option())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(cctx); !errors.Is(err, cause) {
		t.Errorf("Setup with a cancelled context: got %v; want an error wrapping the cause", err)
	}
	if err := st.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	b := d.batchAt(mem, 0, 16)
	defer b.Release()
	if err := st.Fit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := st.Fit(cctx, b); !errors.Is(err, cause) {
		t.Errorf("Fit with a cancelled context: got %v; want an error wrapping the cause", err)
	}
	out, err := st.Transform(cctx, b)
	if !errors.Is(err, cause) {
		t.Errorf("Transform with a cancelled context: got %v; want an error wrapping the cause", err)
	}
	out.Release()
	if err := st.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := st.Steps(); got != 1 {
		t.Errorf("%d steps after one fit and one cancelled one; want 1", got)
	}
	devs.assertFreed(t)
}

// TestAuditCancelWhileWaiting: with the device stuck in a kernel, a Fit
// waiting for a free slot and a Transform waiting for the device return
// the cause of a cancellation at once; once the device goes on, the run
// goes on (the cancelled Fit took no step), tears down and frees
// everything.
func TestAuditCancelWhileWaiting(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checked(t)
	d := loadDigits(t)
	ctx := withMem(deadline(t, 30*time.Second), mem)
	for _, op := range []string{"fit", "transform"} {
		t.Run(op, func(t *testing.T) {
			release := make(chan struct{})
			var releaseOnce sync.Once
			unstick := func() { releaseOnce.Do(func() { close(release) }) }
			defer unstick()
			dev := &waitSignal{waiting: make(chan struct{}, 1), Device: gpu.CPU(gpu.WithFault(func(op gpu.Op) error {
				if op.Kind == gpu.OpKernel && op.Kernel == gpu.Adam && op.Seq == 0 {
					<-release // the first step never ends until released
				}
				return nil
			}))}
			open := func() (gpu.Device, error) { return dev, nil }
			st, err := gpu.NewStage(10, digitsSpec(), gpu.Slots(1), gpu.WithDevice(open))
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Setup(ctx); err != nil {
				t.Fatal(err)
			}
			tornDown := false
			defer func() {
				if !tornDown {
					unstick()
					_ = st.Teardown(ctx)
				}
			}()
			// Batch 0 trains (stuck); batch 1 uploads after it, so with one
			// slot batch 2 waits for batch 1's upload, and a Transform for
			// the steps before it.
			n := 2
			if op == "transform" {
				n = 1
			}
			for i := range n {
				b := d.batchAt(mem, i, 16)
				err := st.Fit(ctx, b)
				b.Release()
				if err != nil {
					t.Fatal(err)
				}
			}
			cause := errors.New("shutting down")
			cctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			dev.armed.Store(true)
			done := make(chan error, 1)
			b := d.batchAt(mem, 2, 16)
			defer b.Release()
			go func() {
				if op == "fit" {
					done <- st.Fit(cctx, b)
					return
				}
				out, err := st.Transform(cctx, b)
				out.Release()
				done <- err
			}()
			select {
			case <-dev.waiting:
			case err := <-done:
				t.Fatalf("%s returned %v while the device is stuck; want it to wait", op, err)
			case <-ctx.Done():
				t.Fatalf("%s never waited on the device", op)
			}
			cancel(cause)
			select {
			case err := <-done:
				if !errors.Is(err, cause) {
					t.Errorf("%s cancelled while waiting: got %v; want an error wrapping the cause", op, err)
				}
			case <-time.After(5 * time.Second):
				unstick()
				<-done
				t.Errorf("%s did not return within 5s of the cancellation while the device was stuck", op)
			}
			unstick()
			// The run goes on: a fit and a transform after the cancelled call.
			if err := st.Fit(ctx, b); err != nil {
				t.Errorf("Fit after the cancelled %s: %v", op, err)
			}
			out, err := st.Transform(ctx, b)
			if err != nil || out.Rows() != 16 {
				t.Errorf("Transform after the cancelled %s: %d rows, %v; want 16, nil", op, out.Rows(), err)
			}
			out.Release()
			tornDown = true
			if err := st.Teardown(ctx); err != nil {
				t.Errorf("Teardown: %v", err)
			}
			if got := st.Steps(); got != int64(n+1) {
				t.Errorf("%d steps; want %d (the cancelled fit took none)", got, n+1)
			}
			if b, p, e := dev.Device.(*gpu.CPUDevice).Live(); b+p+e != 0 {
				t.Errorf("the device holds %d buffers, %d pinned buffers and %d events; want none", b, p, e)
			}
		})
	}
}

// protect runs fn and turns its panic into an error.
func protect(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("PANIC: %v", r)
		}
	}()
	return fn()
}

// stringRecord returns a record of one string column of rows values.
func stringRecord(mem memory.Allocator, name string, rows int) arrow.RecordBatch {
	b := array.NewStringBuilder(mem)
	defer b.Release()
	for range rows {
		b.Append("a")
	}
	a := b.NewArray()
	defer a.Release()
	return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: name, Type: a.DataType()}}, nil), []arrow.Array{a}, int64(rows))
}

// TestAuditHostileInput: malformed batches given to Fit and Transform
// (another type, nulls, a missing column or Y, rows that disagree,
// labels out of range, non-finite features, another width than the
// fitted one) are an error naming the stage and the column, never a
// panic; the run goes on and nothing leaks.
func TestAuditHostileInput(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checked(t)
	ctx := withMem(deadline(t, 60*time.Second), mem)
	const w = 4
	xs := make([]float32, 6*w)
	for i := range xs {
		xs[i] = float32(i%7) - 3
	}
	ys := []int64{0, 1, 2, 0, 1, 2}
	good := func() flow.Batch { return makeBatch(mem, w, xs, ys) }
	withX := func(x arrow.RecordBatch) flow.Batch {
		b := good()
		b.X.Release()
		b.X = x
		return b
	}
	withY := func(y arrow.RecordBatch) flow.Batch {
		b := good()
		b.Y.Release()
		b.Y = y
		return b
	}
	nullX := func() flow.Batch {
		b := array.NewFixedSizeListBuilder(mem, w, arrow.PrimitiveTypes.Float32)
		defer b.Release()
		vb := b.ValueBuilder().(*array.Float32Builder)
		for i := range 6 {
			if i == 2 {
				b.AppendNull()
				continue
			}
			b.Append(true)
			vb.AppendValues(xs[i*w:(i+1)*w], nil)
		}
		a := b.NewArray()
		defer a.Release()
		return withX(array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "x", Type: a.DataType(), Nullable: true}}, nil), []arrow.Array{a}, 6))
	}
	badX := func(v float32) func() flow.Batch {
		return func() flow.Batch {
			bad := append([]float32(nil), xs...)
			bad[9] = v
			return makeBatch(mem, w, bad, ys)
		}
	}
	cases := []struct {
		name    string
		in      func() flow.Batch
		col     string
		fitOnly bool // Transform reads no Y, and predicts what it is given
	}{
		{"features of another type", func() flow.Batch { return withX(stringRecord(mem, "x", 6)) }, `"x"`, false},
		{"no features column", func() flow.Batch { return withX(stringRecord(mem, "z", 6)) }, `"x"`, false},
		{"null features", nullX, `"x"`, false},
		{"another width", func() flow.Batch { return makeBatch(mem, w+1, make([]float32, 6*(w+1)), ys) }, `"x"`, false},
		{"labels of another type", func() flow.Batch { return withY(stringRecord(mem, "y", 6)) }, `"y"`, true},
		{"no labels column", func() flow.Batch { return withY(stringRecord(mem, "z", 6)) }, `"y"`, true},
		{"no Y", func() flow.Batch { b := good(); b.Y.Release(); b.Y = nil; return b }, `"y"`, true},
		{"fewer labels than rows", func() flow.Batch {
			short := makeBatch(mem, w, xs[:5*w], ys[:5])
			short.X.Release()
			return withY(short.Y)
		}, `"y"`, true},
		{"a label beyond the classes", func() flow.Batch { return makeBatch(mem, w, xs, []int64{0, 1, 2, 3, 1, 2}) }, `"y"`, true},
		{"a negative label", func() flow.Batch { return makeBatch(mem, w, xs, []int64{0, 1, -1, 0, 1, 2}) }, `"y"`, true},
		{"NaN features", badX(float32(math.NaN())), `"x"`, true},
		{"infinite features", badX(float32(math.Inf(-1))), `"x"`, true},
	}
	devs := cpuDevices()
	st, err := gpu.NewStage(3, nn.Spec{Hidden: []int{5}, Activation: nn.ReLU, Loss: nn.CrossEntropy, Optimizer: nn.Adam,
		LearningRate: 0.01, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, Init: nn.GlorotUniform, Seed: 3}, devs.option())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Teardown(ctx) }()
	g := good()
	if err := st.Fit(ctx, g); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		for _, op := range []string{"fit", "transform"} {
			if op == "transform" && c.fitOnly {
				continue
			}
			in := c.in()
			err := protect(func() error {
				if op == "fit" {
					return st.Fit(ctx, in)
				}
				out, err := st.Transform(ctx, in)
				out.Release()
				return err
			})
			in.Release()
			if err == nil || strings.HasPrefix(err.Error(), "PANIC") {
				t.Errorf("%s, %s: %v; want an error", op, c.name, err)
				continue
			}
			for _, want := range []string{"gpu.Stage", c.col} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s, %s: %q does not name %s", op, c.name, err, want)
				}
			}
		}
	}
	// The run goes on, and the refused batches taught it nothing.
	if err := st.Fit(ctx, g); err != nil {
		t.Errorf("Fit of a good batch after the refused ones: %v", err)
	}
	g.Release()
	if err := st.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := st.Steps(); got != 2 {
		t.Errorf("%d steps; want 2 (the good batches)", got)
	}
	for i, l := range st.Weights() {
		for _, v := range append(append([]float32(nil), l.W...), l.B...) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("layer %d holds %v after the refused batches; want finite weights", i, v)
			}
		}
	}
	devs.assertFreed(t)
}

// TestAuditZeroRows: a batch of no rows is accepted by Fit (nothing is
// fitted) and by Transform once fitted (no rows out), and refused by
// Transform before the first fit with an error naming the stage.
func TestAuditZeroRows(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checked(t)
	ctx := withMem(deadline(t, 30*time.Second), mem)
	d := loadDigits(t)
	devs := cpuDevices()
	st, err := gpu.NewStage(10, digitsSpec(), devs.option())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Teardown(ctx) }()
	empty := makeBatch(mem, 64, nil, nil)
	defer empty.Release()
	if err := protect(func() error { return st.Fit(ctx, empty) }); err != nil {
		t.Errorf("Fit of no rows before the first fit: %v; want nil", err)
	}
	err = protect(func() error {
		out, err := st.Transform(ctx, empty)
		out.Release()
		return err
	})
	if err == nil || strings.HasPrefix(err.Error(), "PANIC") || !strings.Contains(err.Error(), "gpu.Stage") {
		t.Errorf("Transform before the first fit: %v; want an error naming gpu.Stage", err)
	}
	b := d.batchAt(mem, 0, 32)
	defer b.Release()
	if err := st.Fit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := st.Fit(ctx, empty); err != nil {
		t.Errorf("Fit of no rows after a fit: %v; want nil", err)
	}
	err = protect(func() error {
		out, err := st.Transform(ctx, empty)
		if err == nil && (out.X == nil || out.X.NumRows() != 0 || out.X.Schema().Field(0).Name != gpu.ClassColumn) {
			err = fmt.Errorf("got %v; want a %q column of no rows", out.X, gpu.ClassColumn)
		}
		out.Release()
		return err
	})
	if err != nil {
		t.Errorf("Transform of no rows after a fit: %v", err)
	}
	if err := st.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := st.Steps(); got != 1 {
		t.Errorf("%d steps; want 1", got)
	}
	devs.assertFreed(t)
}

// TestAuditReplicas: the stage is no flow.Merger, so a streaming fit with
// replicas is refused before anything runs, with an error naming the step
// (the sequential engine runs each stage in one goroutine and fits); on
// the transform path, replicas share the stage, in both engines, and
// predict what one goroutine predicts.
func TestAuditReplicas(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	mem := checked(t)
	ctx := deadline(t, 60*time.Second)
	devs := cpuDevices()
	st, err := gpu.NewStage(10, digitsSpec(), devs.option())
	if err != nil {
		t.Fatal(err)
	}
	p, err := flow.NewPipeline([]flow.Node{flow.Named("gpu", st, flow.Replicas(4))})
	if err != nil {
		t.Fatal(err)
	}
	src := d.memorySource(t, mem, 512)
	defer src.Close()
	batches := func() flow.Source {
		s, err := minibatch.Permute(src, 64, minibatch.WithSeed(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	streaming := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	_, err = streaming.Fit(ctx, p, batches())
	if err == nil || !strings.Contains(err.Error(), `"gpu"`) || !strings.Contains(err.Error(), "Merger") {
		t.Errorf("streaming fit of 4 replicas: %v; want a refusal naming step \"gpu\" and flow.Merger", err)
	}
	if st.Steps() != 0 {
		t.Errorf("the refused fit took %d steps; want 0", st.Steps())
	}
	sequential := flow.Runner{Allocator: mem}
	if _, err := sequential.Fit(ctx, p, batches()); err != nil {
		t.Fatalf("sequential fit (one goroutine whatever the replicas): %v", err)
	}
	if st.Steps() != 8 {
		t.Errorf("%d steps; want 8", st.Steps())
	}
	var classes [2][]int64
	for i, r := range []flow.Runner{sequential, streaming} {
		test, err := minibatch.Permute(src, 16, minibatch.WithSeed(2))
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.Transform(ctx, p, test)
		if err != nil {
			t.Fatal(err)
		}
		for {
			b, err := out.Next(ctx)
			if err != nil {
				break
			}
			classes[i] = append(classes[i], b.X.Column(0).(*array.Int64).Int64Values()...)
			b.Release()
		}
		if err := errors.Join(out.Close(), test.Close()); err != nil {
			t.Fatalf("%s transform: %v", r.Engine, err)
		}
	}
	if len(classes[0]) != 512 || !slices.Equal(classes[0], classes[1]) {
		t.Errorf("streaming transform with 4 replicas predicted %d rows, sequential %d; want the same 512 classes", len(classes[1]), len(classes[0]))
	}
	devs.assertFreed(t)
}

// TestAuditOwnerClose: Close at any moment. With Do and Submit from 16
// goroutines and two Closes at once, every call returns nil (and its
// function ran, once) or ErrClosed (and it did not run); both Closes
// return the same. Close while a Do runs waits for it, and refuses new
// work meanwhile. An open that panics is an error, and no goroutine
// stays.
func TestAuditOwnerClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := deadline(t, 30*time.Second)
	cpu := func() (gpu.Device, error) { return gpu.CPU(), nil }
	for round := range 20 {
		o, err := gpu.Start(cpu)
		if err != nil {
			t.Fatal(err)
		}
		var accepted, ran atomic.Int64
		var wg sync.WaitGroup
		var bad atomic.Value
		for g := range 16 {
			wg.Go(func() {
				for i := range 50 {
					f := func(dev gpu.Device) error {
						ran.Add(1)
						b, err := dev.Alloc(4)
						if err != nil {
							return err
						}
						return dev.Free(b)
					}
					var err error
					if (g+i)%2 == 0 {
						err = o.Do(f)
					} else {
						err = o.Submit(f)
					}
					switch {
					case err == nil:
						accepted.Add(1)
					case errors.Is(err, gpu.ErrClosed):
					default:
						bad.Store(err)
					}
				}
			})
		}
		var closeErrs [2]error
		var cw sync.WaitGroup
		for i := range 2 {
			cw.Go(func() { closeErrs[i] = o.Close() })
		}
		cw.Wait()
		wg.Wait()
		if err, _ := bad.Load().(error); err != nil {
			t.Fatalf("round %d: a call returned %v; want nil or ErrClosed", round, err)
		}
		if closeErrs[0] != nil || closeErrs[1] != nil {
			t.Errorf("round %d: Close returned %v and %v; want nil", round, closeErrs[0], closeErrs[1])
		}
		if a, r := accepted.Load(), ran.Load(); a != r {
			t.Errorf("round %d: %d calls accepted, %d functions ran; want as many", round, a, r)
		}
	}
	// Close during a Do.
	o, err := gpu.Start(cpu)
	if err != nil {
		t.Fatal(err)
	}
	inDo, release := make(chan struct{}), make(chan struct{})
	doErr := make(chan error, 1)
	go func() {
		doErr <- o.Do(func(gpu.Device) error { close(inDo); <-release; return nil })
	}()
	<-inDo
	closed := make(chan error, 1)
	go func() { closed <- o.Close() }()
	for {
		err := o.Submit(func(gpu.Device) error { return nil })
		if errors.Is(err, gpu.ErrClosed) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("Close never refused new work")
		case err := <-closed:
			t.Fatalf("Close returned %v while a Do was running", err)
		default:
		}
	}
	close(release)
	if err := <-doErr; err != nil {
		t.Errorf("the Do that Close waited for: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := o.Close(); err != nil {
		t.Errorf("Close after Close: %v", err)
	}
	// A panicking open.
	if _, err := gpu.Start(func() (gpu.Device, error) { panic("driver crashed") }); err == nil || !strings.Contains(err.Error(), "driver crashed") {
		t.Errorf("Start with a panicking open: %v; want an error with the panic", err)
	}
}

// TestAuditCopyDuringRun: flow.Copy of a set-up stage at a consistent cut
// (Runner.OnEpoch) copies what the stage has learned so far, the device's
// state, as a save during a run does; the run goes on, and the copy is
// independent and not set up.
func TestAuditCopyDuringRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	mem := checked(t)
	ctx := deadline(t, 60*time.Second)
	devs := cpuDevices()
	st, err := gpu.NewStage(10, digitsSpec(), devs.option())
	if err != nil {
		t.Fatal(err)
	}
	p, err := flow.NewPipeline([]flow.Node{flow.Named("gpu", st)})
	if err != nil {
		t.Fatal(err)
	}
	src := d.memorySource(t, mem, 256)
	defer src.Close()
	for _, engine := range []flow.Engine{flow.Sequential, flow.Streaming} {
		st.Reset()
		perm, err := minibatch.Permute(src, 64, minibatch.WithSeed(0))
		if err != nil {
			t.Fatal(err)
		}
		defer perm.Close()
		rep, err := minibatch.Repeat(perm, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer rep.Close()
		var copies []*gpu.Stage
		r := flow.Runner{Engine: engine, Allocator: mem, OnEpoch: func(ctx context.Context, e flow.EpochEnd) error {
			c, err := flow.Copy(p)
			if err != nil {
				return err
			}
			copies = append(copies, c.(*flow.Pipeline).Nodes()[0].Step.(*gpu.Stage))
			return nil
		}}
		if _, err := r.Fit(ctx, p, rep); err != nil {
			t.Fatalf("%s: %v", engine, err)
		}
		if len(copies) < 3 {
			t.Fatalf("%s: %d copies; want one per epoch", engine, len(copies))
		}
		// Each epoch's copy holds the weights of its steps.
		for i, c := range copies[:3] {
			if want := int64(4 * (i + 1)); c.Steps() != want || c.Weights() == nil {
				t.Errorf("%s: the copy after epoch %d has %d steps and %d layers; want %d steps and the weights", engine, i, c.Steps(), len(c.Weights()), want)
			}
		}
		first := copies[0]
		if first.Weights() == nil {
			continue
		}
		b := d.batchAt(mem, 0, 8)
		_, err = first.Transform(withMem(ctx, mem), b)
		b.Release()
		if err == nil || !strings.Contains(err.Error(), "not set up") {
			t.Errorf("%s: Transform of a copy: %v; want a 'not set up' error", engine, err)
		}
		if diff := relDiff(t, copies[len(copies)-1].Weights(), st.Weights()); diff != 0 {
			t.Errorf("%s: the last copy differs from the fitted stage by %.3g; want 0", engine, diff)
		}
		if diff := relDiff(t, first.Weights(), copies[1].Weights()); diff == 0 {
			t.Errorf("%s: the copies after epochs 0 and 1 have the same weights", engine)
		}
	}
	devs.assertFreed(t)
	// After a device error, flow.Copy refuses, naming the step and the
	// error.
	boom := errors.New("illegal address")
	faulty := cpuDevices(gpu.WithFault(func(op gpu.Op) error {
		if op.Kind == gpu.OpKernel && op.Kernel == gpu.Adam {
			return boom
		}
		return nil
	}))
	bad, err := gpu.NewStage(10, digitsSpec(), faulty.option())
	if err != nil {
		t.Fatal(err)
	}
	fctx := withMem(ctx, mem)
	if err := bad.Setup(fctx); err != nil {
		t.Fatal(err)
	}
	b := d.batchAt(mem, 0, 16)
	_ = bad.Fit(fctx, b)
	b.Release()
	_, err = flow.Copy(bad)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "gpu.Stage") {
		t.Errorf("flow.Copy after a device error: %v; want an error naming gpu.Stage and wrapping %v", err, boom)
	}
	_ = bad.Teardown(fctx)
	faulty.assertFreed(t)
}

// TestAuditStateAfterFault: after a device error the host keeps the
// state of the last good Teardown, its Adam step count included, so that
// what is saved then is one consistent state: the weights, the moments
// and the steps of the good run.
func TestAuditStateAfterFault(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	mem := checked(t)
	ctx := deadline(t, 30*time.Second)
	var faulty atomic.Bool
	devs := cpuDevices(gpu.WithFault(func(op gpu.Op) error {
		if faulty.Load() && op.Kind == gpu.OpKernel && op.Kernel == gpu.Adam && op.Seq == 2 {
			return errors.New("illegal address")
		}
		return nil
	}))
	st, err := gpu.NewStage(10, digitsSpec(), devs.option())
	if err != nil {
		t.Fatal(err)
	}
	if err := fitN(ctx, st, d, mem, 3, 32); err != nil {
		t.Fatal(err)
	}
	good, err := persist.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	weights := st.Weights()
	faulty.Store(true)
	if err := fitN(ctx, st, d, mem, 6, 32); err == nil {
		t.Fatal("a run with a device error: got nil; want the error")
	}
	if got := st.Steps(); got != 3 {
		t.Errorf("%d steps after the failed run; want 3, the last good Teardown's", got)
	}
	if diff := relDiff(t, st.Weights(), weights); diff != 0 {
		t.Errorf("the weights changed by %.3g in the failed run; want the last good Teardown's", diff)
	}
	after, err := persist.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, good) {
		t.Error("the state saved after the failed run differs from the one saved after the good run")
	}
	devs.assertFreed(t)
}

// failAlloc wraps a device whose AllocPinned fails.
type failAlloc struct{ gpu.Device }

func (failAlloc) AllocPinned(int) (*gpu.Pinned, error) {
	return nil, errors.New("out of pinned memory")
}

// TestAuditRunBound: what must not change during a run (SetParams,
// UseDevice, UnmarshalState) is refused then, naming the stage, and
// allowed after; Stats during a run waits for the queued batches; a Setup
// that fails uploading the learned state releases everything it started,
// and UseDevice on a loaded stage sets the device of the next Setup.
func TestAuditRunBound(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	mem := checked(t)
	ctx := withMem(deadline(t, 30*time.Second), mem)
	devs := cpuDevices()
	st, err := gpu.NewStage(10, digitsSpec(), devs.option())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		b := d.batchAt(mem, i, 32)
		err := st.Fit(ctx, b)
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	stats, err := st.Stats()
	if err != nil || stats.Batches != 4 {
		t.Errorf("Stats during the run: %+v, %v; want 4 batches", stats, err)
	}
	saved, err := persist.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	m, err := persist.Unmarshal(saved)
	if err != nil {
		t.Fatal(err)
	}
	loaded := m.Step.(*gpu.Stage)
	refusals := map[string]error{
		"SetParams":      st.SetParams(hparams.Values{nn.ParamLR: 0.5}),
		"UseDevice":      st.UseDevice(func() (gpu.Device, error) { return gpu.CPU(), nil }),
		"UnmarshalState": st.UnmarshalState(nil), // refused before it reads
	}
	for op, err := range refusals {
		if err == nil || !strings.Contains(err.Error(), "gpu.Stage") || !strings.Contains(err.Error(), "during a run") {
			t.Errorf("%s during a run: %v; want an error naming gpu.Stage and the run", op, err)
		}
	}
	if lr := st.Spec().LearningRate; lr == 0.5 {
		t.Error("the refused SetParams changed the learning rate")
	}
	if err := st.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.SetParams(hparams.Values{nn.ParamLR: 0.5}); err != nil {
		t.Errorf("SetParams after the run: %v", err)
	}
	devs.assertFreed(t)
	// A loaded stage on a device that cannot stage its state: Setup fails,
	// and releases the owner and the device.
	var failing []*gpu.CPUDevice
	if err := loaded.UseDevice(func() (gpu.Device, error) {
		dev := gpu.CPU()
		failing = append(failing, dev)
		return failAlloc{dev}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := loaded.Setup(ctx); err == nil || !strings.Contains(err.Error(), "out of pinned memory") {
		t.Errorf("Setup on a device without pinned memory: %v; want its error", err)
	}
	if err := loaded.Teardown(ctx); err != nil {
		t.Errorf("Teardown after the failed Setup: %v", err)
	}
	if len(failing) != 1 {
		t.Fatalf("UseDevice's open ran %d times; want 1", len(failing))
	}
	if b, p, e := failing[0].Live(); b+p+e != 0 {
		t.Errorf("the failed Setup left %d buffers, %d pinned buffers and %d events", b, p, e)
	}
}

// TestAuditStatsWhileFitting: Stats, Steps and Weights called from
// another goroutine while Fit runs (a monitor) race with nothing (go test
// -race) and see the batches grow, never more batches trained than steps
// queued.
func TestAuditStatsWhileFitting(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	mem := checked(t)
	ctx := withMem(deadline(t, 30*time.Second), mem)
	devs := cpuDevices()
	st, err := gpu.NewStage(10, digitsSpec(), devs.option())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var monitorErr error
	wg.Go(func() {
		last := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			s, err := st.Stats()
			_ = st.Weights()
			if err != nil || s.Batches < last || int64(s.Batches) > st.Steps() {
				monitorErr = fmt.Errorf("Stats %+v, %v after %d batches, with %d steps", s, err, last, st.Steps())
				return
			}
			last = s.Batches
		}
	})
	for i := range 200 {
		b := d.batchAt(mem, i, 4)
		err := st.Fit(ctx, b)
		b.Release()
		if err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	wg.Wait()
	if monitorErr != nil {
		t.Error(monitorErr)
	}
	if err := st.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	devs.assertFreed(t)
}

// TestAuditCheckLaunchOverflow: integers whose product overflows int do
// not pass CheckLaunch as a small size (a device would then read and
// write far beyond the buffers); Gemm's transpose flags are 0 or 1.
func TestAuditCheckLaunchOverflow(t *testing.T) {
	one, four := gpu.NewBuffer(1, 1), gpu.NewBuffer(2, 4)
	big := 1 << 62
	for _, c := range []struct {
		k    gpu.Kernel
		a    gpu.Args
		want string
	}{
		{gpu.Gemm, gpu.Args{Bufs: []gpu.Buffer{one, one, one}, Ints: []int{1 << 32, 1 << 32, 0, 0, 0}, Floats: []float64{1, 0}}, "overflow"},
		{gpu.BiasAdd, gpu.Args{Bufs: []gpu.Buffer{one, four}, Ints: []int{big, 4}}, "overflow"},
		{gpu.ColSum, gpu.Args{Bufs: []gpu.Buffer{one, four}, Ints: []int{big, 4}}, "overflow"},
		{gpu.SoftmaxXent, gpu.Args{Bufs: []gpu.Buffer{one, one, one, one}, Ints: []int{1, 0}}, ""},
		{gpu.SoftmaxXent, gpu.Args{Bufs: []gpu.Buffer{one, gpu.NewBuffer(2, big), one, one}, Ints: []int{big, 4}}, "overflow"},
		{gpu.Gemm, gpu.Args{Bufs: []gpu.Buffer{one, one, one}, Ints: []int{1, 1, 1, 2, 0}, Floats: []float64{1, 0}}, "transA"},
		{gpu.Gemm, gpu.Args{Bufs: []gpu.Buffer{one, one, one}, Ints: []int{1, 1, 1, 0, 5}, Floats: []float64{1, 0}}, "transB"},
	} {
		err := gpu.CheckLaunch(c.k, c.a)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("CheckLaunch(%s, %v): %v; want nil", c.k, c.a.Ints, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("CheckLaunch(%s, %v): %v; want an error containing %q", c.k, c.a.Ints, err, c.want)
		}
	}
	// The CPU device refuses the launch, rather than failing on its stream.
	dev := gpu.CPU()
	b, err := dev.Alloc(4)
	if err != nil {
		t.Fatal(err)
	}
	err = dev.Launch(gpu.ComputeStream, gpu.BiasAdd, gpu.Args{Bufs: []gpu.Buffer{b, b}, Ints: []int{big, 4}})
	if err == nil {
		t.Error("CPU device: a launch of BiasAdd over 2⁶⁴ values of a 4-value buffer was queued")
	}
	if err := errors.Join(dev.SynchronizeAll(), dev.Free(b), dev.Close()); err != nil {
		t.Errorf("the device after the refused launch: %v", err)
	}
}

// TestAuditGrowingBatches: batches of changing sizes (the slots and the
// activations grow, and smaller batches reuse them), under random
// latencies that would expose a missing wait as a hazard, fit as
// steps/mlp's Classifier fits on the same batches.
func TestAuditGrowingBatches(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	mem := checked(t)
	ctx := withMem(deadline(t, 60*time.Second), mem)
	sizes := []int{8, 32, 5, 64, 1, 64, 33, 128, 7, 2}
	fit := func(s flow.Step) {
		t.Helper()
		if err := s.(flow.Setupper).Setup(ctx); err != nil {
			t.Fatal(err)
		}
		for i, n := range sizes {
			b := d.batchAt(mem, i, n)
			err := s.(flow.Fitter).Fit(ctx, b)
			b.Release()
			if err != nil {
				t.Fatalf("%T: batch %d of %d rows: %v", s, i, n, err)
			}
		}
		if err := s.(flow.Teardowner).Teardown(ctx); err != nil {
			t.Fatalf("%T: %v", s, err)
		}
	}
	ref, err := mlp.NewClassifier(10, digitsSpec())
	if err != nil {
		t.Fatal(err)
	}
	fit(ref)
	for seed := range uint64(3) {
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(seed, 9))
		devs := cpuDevices(gpu.WithLatency(func(gpu.Op) time.Duration {
			mu.Lock()
			defer mu.Unlock()
			return time.Duration(rng.IntN(3000)) * time.Microsecond
		}))
		st, err := gpu.NewStage(10, digitsSpec(), gpu.Slots(1+int(seed)), devs.option())
		if err != nil {
			t.Fatal(err)
		}
		fit(st)
		if diff := relDiff(t, st.Weights(), ref.Weights()); diff > 1e-5 {
			t.Errorf("seed %d, %d slots: the weights differ from steps/mlp's by %.3g; want ≤ 1e-5", seed, 1+seed, diff)
		}
		devs.assertFreed(t)
	}
}

// TestAuditSlotsBound: a number of slots beyond any use (a typing
// mistake, or a hostile saved state, which NewStage builds the loaded
// stage from) is refused by NewStage, naming it, rather than making an
// event pair per slot at Setup.
func TestAuditSlotsBound(t *testing.T) {
	for _, n := range []int{0, -1, gpu.MaxSlots + 1, 1 << 40} {
		if _, err := gpu.NewStage(10, digitsSpec(), gpu.Slots(n)); err == nil || !strings.Contains(err.Error(), "slots") {
			t.Errorf("Slots(%d): %v; want an error naming the slots", n, err)
		}
	}
	if _, err := gpu.NewStage(10, digitsSpec(), gpu.Slots(gpu.MaxSlots)); err != nil {
		t.Errorf("Slots(MaxSlots): %v", err)
	}
}

// TestAuditCPUClosed: every call of a CPU device after its Close returns
// ErrClosed, and what was still allocated stays reported by Live.
func TestAuditCPUClosed(t *testing.T) {
	defer goleak.VerifyNone(t)
	dev := gpu.CPU()
	b, err := dev.Alloc(4)
	if err != nil {
		t.Fatal(err)
	}
	p, err := dev.AllocPinned(4)
	if err != nil {
		t.Fatal(err)
	}
	e, err := dev.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Record(gpu.CopyStream, e); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err == nil || !strings.Contains(err.Error(), "not freed") {
		t.Errorf("Close with buffers and an event allocated: %v; want an error naming them", err)
	}
	calls := map[string]error{
		"Alloc":          func() error { _, err := dev.Alloc(1); return err }(),
		"AllocPinned":    func() error { _, err := dev.AllocPinned(1); return err }(),
		"Free":           dev.Free(b),
		"FreePinned":     dev.FreePinned(p),
		"Host":           func() error { _, err := dev.Host(p); return err }(),
		"Upload":         dev.Upload(gpu.CopyStream, b, p),
		"Download":       dev.Download(gpu.CopyStream, p, b),
		"Launch":         dev.Launch(gpu.ComputeStream, gpu.ReLU, gpu.Args{Bufs: []gpu.Buffer{b}, Ints: []int{4}}),
		"NewEvent":       func() error { _, err := dev.NewEvent(); return err }(),
		"Record":         dev.Record(gpu.CopyStream, e),
		"Wait":           dev.Wait(gpu.ComputeStream, e),
		"Synchronize":    dev.Synchronize(e),
		"Query":          func() error { _, err := dev.Query(e); return err }(),
		"Elapsed":        func() error { _, err := dev.Elapsed(e, e); return err }(),
		"SynchronizeAll": dev.SynchronizeAll(),
		"DestroyEvent":   dev.DestroyEvent(e),
	}
	for name, err := range calls {
		if !errors.Is(err, gpu.ErrClosed) {
			t.Errorf("%s after Close: %v; want ErrClosed", name, err)
		}
	}
	if bufs, pinned, events := dev.Live(); bufs != 1 || pinned != 1 || events != 1 {
		t.Errorf("Live after Close: %d, %d, %d; want what was allocated: 1, 1, 1", bufs, pinned, events)
	}
	if err := dev.Close(); err != nil {
		t.Errorf("Close after Close: %v; want nil", err)
	}
}

// TestAuditResetDuringRun: Reset (which, unlike SetParams, is not refused
// during a run) makes the next Fit start over from the seed's initial
// weights, also while earlier batches are in flight on the device, and
// also on features of another width; nothing leaks.
func TestAuditResetDuringRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	mem := checked(t)
	ctx := withMem(deadline(t, 30*time.Second), mem)
	slow := gpu.WithLatency(func(gpu.Op) time.Duration { return time.Millisecond })
	devs := cpuDevices(slow)
	st, err := gpu.NewStage(10, digitsSpec(), devs.option())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	fit := func(b flow.Batch) {
		t.Helper()
		err := st.Fit(ctx, b)
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		fit(d.batchAt(mem, i, 16))
	}
	st.Reset()
	for i := 3; i < 6; i++ {
		fit(d.batchAt(mem, i, 16))
	}
	if err := st.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	ref, err := gpu.NewStage(10, digitsSpec())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(ctx); err != nil { // and on into a second run
		t.Fatal(err)
	}
	if err := ref.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 6; i++ {
		b := d.batchAt(mem, i, 16)
		err := ref.Fit(ctx, b)
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := ref.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := relDiff(t, st.Weights(), ref.Weights()); diff != 0 || st.Steps() != 3 {
		t.Errorf("after a Reset during the run: %d steps, weights %.3g from 3 steps' from the start; want 3 and 0", st.Steps(), diff)
	}
	// Another width after a Reset.
	fit(d.batchAt(mem, 0, 16))
	st.Reset()
	xs := make([]float32, 8*10)
	for i := range xs {
		xs[i] = float32(i%5) - 2
	}
	fit(makeBatch(mem, 10, xs, []int64{0, 1, 2, 3, 4, 5, 6, 7}))
	fit(makeBatch(mem, 10, xs, []int64{0, 1, 2, 3, 4, 5, 6, 7}))
	if err := st.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if w := st.Weights(); len(w) == 0 || w[0].In != 10 || st.Steps() != 2 {
		t.Errorf("after a Reset and a fit on 10 features: %d steps; want 2 and a first layer of 10 inputs", st.Steps())
	}
	devs.assertFreed(t)
}

// failFree wraps a device whose Free fails once armed.
type failFree struct {
	gpu.Device
	armed *atomic.Bool
}

func (f failFree) Free(b gpu.Buffer) error {
	if f.armed.Load() {
		return errors.New("free: the driver lost the allocation")
	}
	return f.Device.Free(b)
}

// TestAuditTeardownAfterReported: after Stats and Fit returned a device
// error, Teardown does not return that error again, but does return what went
// wrong afterwards (a buffer that could not be freed), naming the stage.
func TestAuditTeardownAfterReported(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	mem := checked(t)
	ctx := withMem(deadline(t, 30*time.Second), mem)
	boom := errors.New("illegal address")
	var armed atomic.Bool
	st, err := gpu.NewStage(10, digitsSpec(), gpu.WithDevice(func() (gpu.Device, error) {
		return failFree{Device: gpu.CPU(gpu.WithFault(func(op gpu.Op) error {
			if op.Kind == gpu.OpKernel && op.Kernel == gpu.Adam && op.Seq == 0 {
				return boom
			}
			return nil
		})), armed: &armed}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	tornDown := false
	defer func() {
		if !tornDown {
			armed.Store(false)
			_ = st.Teardown(ctx)
		}
	}()
	b := d.batchAt(mem, 0, 16)
	err = st.Fit(ctx, b)
	b.Release()
	if err != nil {
		t.Fatal(err)
	}
	// Stats waits for the queued batch: the fault is returned then.
	if _, err := st.Stats(); !errors.Is(err, boom) {
		t.Fatalf("Stats after the faulty batch: %v; want %v", err, boom)
	}
	b = d.batchAt(mem, 1, 16)
	err = st.Fit(ctx, b)
	b.Release()
	if !errors.Is(err, boom) {
		t.Fatalf("Fit after the fault: %v; want %v", err, boom)
	}
	armed.Store(true)
	tornDown = true
	err = st.Teardown(ctx)
	if err == nil || !strings.Contains(err.Error(), "lost the allocation") || !strings.Contains(err.Error(), "gpu.Stage") {
		t.Errorf("Teardown with buffers that cannot be freed: %v; want their error, naming gpu.Stage", err)
	}
	if errors.Is(err, boom) {
		t.Errorf("Teardown returned the device error again: %v", err)
	}
}

// TestAuditResetThenFault: a Reset during a run is the host's new state,
// so where the run then fails on the device, the stage keeps the reset
// state (no steps) and saves and loads as such, rather than pairing the
// fresh weights with the step count of before the Reset.
func TestAuditResetThenFault(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	mem := checked(t)
	ctx := withMem(deadline(t, 30*time.Second), mem)
	var faulty atomic.Bool
	devs := cpuDevices(gpu.WithFault(func(op gpu.Op) error {
		if faulty.Load() && op.Kind == gpu.OpKernel && op.Kernel == gpu.Adam {
			return errors.New("illegal address")
		}
		return nil
	}))
	st, err := gpu.NewStage(10, digitsSpec(), devs.option())
	if err != nil {
		t.Fatal(err)
	}
	if err := fitN(ctx, st, d, mem, 3, 32); err != nil {
		t.Fatal(err)
	}
	faulty.Store(true)
	if err := st.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	st.Reset()
	b := d.batchAt(mem, 0, 32)
	err = st.Fit(ctx, b)
	b.Release()
	if err != nil {
		t.Fatal(err) // the fault is on the device, reported later
	}
	if err := st.Teardown(ctx); err == nil {
		t.Fatal("Teardown of a run with a device error: got nil; want the error")
	}
	if got := st.Steps(); got != 0 {
		t.Errorf("%d steps after a Reset and a failed run; want 0", got)
	}
	saved, err := persist.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := persist.Unmarshal(saved); err != nil {
		t.Errorf("the state saved after a Reset and a failed run does not load: %v", err)
	}
	devs.assertFreed(t)
}
