package gpu_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/gpu"
)

// TestSetupCancelWhileOpening: a Setup whose device takes long to open
// (a driver starting, a device still held) waited for it whatever its
// context; cancelling the context ends the wait at once with an error
// wrapping the cause. The device is closed when open returns, by the
// owner's goroutine, which then ends; a next Setup waits for that and
// runs as usual, and no goroutine is left after its Teardown.
func TestSetupCancelWhileOpening(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := deadline(t, 30*time.Second)
	entered := make(chan struct{})
	release := make(chan struct{})
	var opens, closes atomic.Int64
	open := func() (gpu.Device, error) {
		if opens.Add(1) == 1 {
			close(entered)
			<-release
		}
		return &closeCount{Device: gpu.CPU(), n: &closes}, nil
	}
	st, err := gpu.NewStage(10, digitsSpec(), gpu.WithDevice(open))
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errc := make(chan error, 1)
	go func() { errc <- st.Setup(cctx) }()
	<-entered
	cause := errors.New("operator stopped the job")
	cancel(cause)
	select {
	case err := <-errc:
		if !errors.Is(err, cause) {
			t.Errorf("Setup cancelled while the device opens: got %v; want an error wrapping the cause", err)
		}
	case <-time.After(5 * time.Second):
		close(release)
		<-errc
		t.Fatal("Setup cancelled while the device opens: still waiting after 5s; want it to return at once")
	}
	close(release)
	if err := st.Setup(ctx); err != nil {
		t.Fatalf("Setup after a cancelled one: %v", err)
	}
	if err := st.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if o, c := opens.Load(), closes.Load(); o != 2 || c != 2 {
		t.Errorf("%d devices opened, %d closed; want 2 and 2", o, c)
	}
}

// closeCount counts the Close calls of a device.
type closeCount struct {
	gpu.Device
	n *atomic.Int64
}

func (c *closeCount) Close() error { c.n.Add(1); return c.Device.Close() }

// TestSetupCancelDuringUpload: a Setup cancelled while it uploads the
// learned state waits for the upload, then releases everything and
// returns an error wrapping the cause; the stage is not set up.
func TestSetupCancelDuringUpload(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := deadline(t, 30*time.Second)
	mem := checked(t)
	ctx = withMem(ctx, mem)
	d := loadDigits(t)
	st, err := gpu.NewStage(10, digitsSpec())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	b := d.batchAt(mem, 0, 32)
	err = st.Fit(ctx, b)
	b.Release()
	if err := errors.Join(err, st.Teardown(ctx)); err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	var closes atomic.Int64
	st2 := st.Copy().(*gpu.Stage)
	if err := st2.UseDevice(func() (gpu.Device, error) {
		return &slowUpload{closeCount: closeCount{Device: gpu.CPU(), n: &closes}, entered: entered, release: release}, nil
	}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errc := make(chan error, 1)
	go func() { errc <- st2.Setup(cctx) }()
	<-entered
	cause := errors.New("operator stopped the job")
	cancel(cause)
	close(release)
	if err := <-errc; !errors.Is(err, cause) {
		t.Errorf("Setup cancelled during the upload: got %v; want an error wrapping the cause", err)
	}
	if c := closes.Load(); c != 1 {
		t.Errorf("device closed %d times; want 1", c)
	}
	b = d.batchAt(mem, 0, 32)
	defer b.Release()
	if err := st2.Fit(ctx, b); err == nil {
		t.Error("Fit after a cancelled Setup: got nil; want an error (not set up)")
	}
}

// slowUpload blocks its first Upload until release is closed.
type slowUpload struct {
	closeCount
	entered, release chan struct{}
	once             bool
}

func (s *slowUpload) Upload(st gpu.Stream, dst gpu.Buffer, src *gpu.Pinned) error {
	if !s.once {
		s.once = true
		close(s.entered)
		<-s.release
	}
	return s.Device.Upload(st, dst, src)
}
