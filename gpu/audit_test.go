package gpu_test

// An adversarial audit of the promises of gpu's doc comments: a
// cancellation with a cause is reported with the cause, also while Fit
// waits for a slot and Transform for the device; hostile input is an error
// naming the stage and the column, never a panic or a leak; the stage in
// both engines, replicated on the transform path and refused on the fit
// path; the Owner closed at any moment.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/gpu"
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
