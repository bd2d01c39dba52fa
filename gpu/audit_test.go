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
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/gpu"
)

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
