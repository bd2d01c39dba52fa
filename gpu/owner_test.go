package gpu_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/gpu"
)

// threads wraps a device and records the OS thread of every call.
type threads struct {
	gpu.Device
	mu  sync.Mutex
	ids map[int]int
}

func (t *threads) rec() {
	id, _ := threadID()
	t.mu.Lock()
	t.ids[id]++
	t.mu.Unlock()
}

func (t *threads) Alloc(n int) (gpu.Buffer, error)        { t.rec(); return t.Device.Alloc(n) }
func (t *threads) Free(b gpu.Buffer) error                { t.rec(); return t.Device.Free(b) }
func (t *threads) AllocPinned(n int) (*gpu.Pinned, error) { t.rec(); return t.Device.AllocPinned(n) }
func (t *threads) FreePinned(p *gpu.Pinned) error         { t.rec(); return t.Device.FreePinned(p) }
func (t *threads) Host(p *gpu.Pinned) ([]float32, error)  { t.rec(); return t.Device.Host(p) }
func (t *threads) NewEvent() (gpu.Event, error)           { t.rec(); return t.Device.NewEvent() }
func (t *threads) DestroyEvent(e gpu.Event) error         { t.rec(); return t.Device.DestroyEvent(e) }
func (t *threads) Record(s gpu.Stream, e gpu.Event) error { t.rec(); return t.Device.Record(s, e) }
func (t *threads) Wait(s gpu.Stream, e gpu.Event) error   { t.rec(); return t.Device.Wait(s, e) }
func (t *threads) Synchronize(e gpu.Event) error          { t.rec(); return t.Device.Synchronize(e) }
func (t *threads) Query(e gpu.Event) (bool, error)        { t.rec(); return t.Device.Query(e) }
func (t *threads) SynchronizeAll() error                  { t.rec(); return t.Device.SynchronizeAll() }
func (t *threads) Close() error                           { t.rec(); return t.Device.Close() }
func (t *threads) Launch(s gpu.Stream, k gpu.Kernel, a gpu.Args) error {
	t.rec()
	return t.Device.Launch(s, k, a)
}
func (t *threads) Upload(s gpu.Stream, dst gpu.Buffer, src *gpu.Pinned) error {
	t.rec()
	return t.Device.Upload(s, dst, src)
}
func (t *threads) Download(s gpu.Stream, dst *gpu.Pinned, src gpu.Buffer) error {
	t.rec()
	return t.Device.Download(s, dst, src)
}
func (t *threads) Elapsed(a, b gpu.Event) (time.Duration, error) {
	t.rec()
	return t.Device.Elapsed(a, b)
}

// TestOwnerOneThread: with Do from 16 goroutines (and a stage fitting and
// predicting on the same device kind), every device call of a run is made
// on one OS thread, the owner's.
func TestOwnerOneThread(t *testing.T) {
	if _, ok := threadID(); !ok {
		t.Skip("thread ids are read on Linux only")
	}
	defer goleak.VerifyNone(t)
	rec := &threads{ids: map[int]int{}}
	o, err := gpu.Start(func() (gpu.Device, error) { rec.Device = gpu.CPU(); rec.rec(); return rec, nil })
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var fails atomic.Int64
	for range 16 {
		wg.Go(func() {
			for range 50 {
				err := o.Do(func(dev gpu.Device) error {
					b, err := dev.Alloc(16)
					if err != nil {
						return err
					}
					p, err := dev.AllocPinned(16)
					if err != nil {
						return err
					}
					e, err := dev.NewEvent()
					if err != nil {
						return err
					}
					return errors.Join(dev.Upload(gpu.CopyStream, b, p), dev.Record(gpu.CopyStream, e), dev.Synchronize(e),
						dev.Free(b), dev.FreePinned(p), dev.DestroyEvent(e))
				})
				if err != nil {
					fails.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if n := fails.Load(); n != 0 {
		t.Errorf("%d Do calls failed", n)
	}
	if len(rec.ids) != 1 {
		t.Errorf("device calls on %d OS threads (%v); want 1", len(rec.ids), rec.ids)
	}
	calls := 0
	for _, n := range rec.ids {
		calls += n
	}
	if want := 2 + 16*50*9; calls != want {
		t.Errorf("%d device calls recorded; want %d", calls, want)
	}
}

// TestOwnerStageThread: a stage's device calls (Setup, Fit, Transform from
// 16 goroutines, Teardown) are made on one OS thread.
func TestOwnerStageThread(t *testing.T) {
	if _, ok := threadID(); !ok {
		t.Skip("thread ids are read on Linux only")
	}
	defer goleak.VerifyNone(t)
	ctx := deadline(t, 30*time.Second)
	mem := checked(t)
	d := loadDigits(t)
	rec := &threads{ids: map[int]int{}}
	st, err := gpu.NewStage(10, digitsSpec(), gpu.WithDevice(func() (gpu.Device, error) { rec.Device = gpu.CPU(); return rec, nil }))
	if err != nil {
		t.Fatal(err)
	}
	ctx = withMem(ctx, mem)
	if err := st.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		b := d.batchAt(mem, i, 32)
		err := st.Fit(ctx, b)
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for g := range 16 {
		wg.Go(func() {
			b := d.batchAt(mem, g, 20)
			defer b.Release()
			out, err := st.Transform(ctx, b)
			if err == nil {
				if out.Rows() != 20 {
					err = errors.New("wrong row count")
				}
				out.Release()
			}
			errs[g] = err
		})
	}
	wg.Wait()
	if err := errors.Join(append(errs, st.Teardown(ctx))...); err != nil {
		t.Fatal(err)
	}
	if len(rec.ids) != 1 {
		t.Errorf("device calls on %d OS threads; want 1", len(rec.ids))
	}
}

// TestOwnerErrors: panics become errors, a submitted function's error is
// kept, Close drains the queue, and Do and Submit after Close fail.
func TestOwnerErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	o, err := gpu.Start(func() (gpu.Device, error) { return gpu.CPU(), nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Do(func(gpu.Device) error { panic("kaboom") }); err == nil || !strings.Contains(err.Error(), "kaboom") {
		t.Errorf("Do of a panicking function: got %v; want an error with the panic", err)
	}
	boom := errors.New("boom")
	var ran atomic.Int64
	if err := o.Submit(func(gpu.Device) error { ran.Add(1); return boom }); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if err := o.Submit(func(gpu.Device) error { ran.Add(1); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(); !errors.Is(err, boom) {
		t.Errorf("Close: got %v; want the submitted function's %v", err, boom)
	}
	if n := ran.Load(); n != 101 {
		t.Errorf("Close ran %d of 101 queued functions", n)
	}
	if err := o.Do(func(gpu.Device) error { return nil }); !errors.Is(err, gpu.ErrClosed) {
		t.Errorf("Do after Close: got %v; want ErrClosed", err)
	}
	if err := o.Submit(func(gpu.Device) error { return nil }); !errors.Is(err, gpu.ErrClosed) {
		t.Errorf("Submit after Close: got %v; want ErrClosed", err)
	}
	openErr := errors.New("no driver")
	if _, err := gpu.Start(func() (gpu.Device, error) { return nil, openErr }); !errors.Is(err, openErr) {
		t.Errorf("Start with a failing open: got %v; want %v", err, openErr)
	}
}
