package gpu_test

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/gpu"
)

// TestOwnerReentrant: Do and Close called from a function that runs on
// the owner's goroutine (which waits for that very function) deadlocked;
// they return ErrReentrant at once, and the owner goes on: Submit from
// there queues the function after the current one, and Do and Close from
// another goroutine work as before.
func TestOwnerReentrant(t *testing.T) {
	defer goleak.VerifyNone(t)
	o, err := gpu.Start(func() (gpu.Device, error) { return gpu.CPU(), nil })
	if err != nil {
		t.Fatal(err)
	}
	var inner, closeErr, submitErr error
	submitted := false
	done := make(chan error, 1)
	go func() {
		done <- o.Do(func(gpu.Device) error {
			inner = o.Do(func(gpu.Device) error { return nil })
			closeErr = o.Close()
			submitErr = o.Submit(func(gpu.Device) error { submitted = true; return nil })
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("outer Do: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Do and Close from a function on the owner's goroutine: still blocked after 10s; want ErrReentrant at once")
	}
	if !errors.Is(inner, gpu.ErrReentrant) {
		t.Errorf("Do on the owner's goroutine: got %v; want ErrReentrant", inner)
	}
	if !errors.Is(closeErr, gpu.ErrReentrant) {
		t.Errorf("Close on the owner's goroutine: got %v; want ErrReentrant", closeErr)
	}
	if submitErr != nil {
		t.Errorf("Submit on the owner's goroutine: %v; want it queued", submitErr)
	}
	if err := o.Do(func(gpu.Device) error { return nil }); err != nil {
		t.Errorf("Do after a refused re-entrant call: %v", err)
	}
	if !submitted {
		t.Error("the function submitted on the owner's goroutine did not run before a later Do")
	}
	if err := o.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
