//go:build cuda && cgo

package cuda

/*
#cgo LDFLAGS: -lcuda
#include <cuda.h>

// cu has no page-locked allocation: these two are the package's own cgo.
static CUresult penstock_host_alloc(void **p, size_t bytes) { return cuMemHostAlloc(p, bytes, 0); }
static CUresult penstock_host_free(void *p) { return cuMemFreeHost(p); }
*/
import "C"

import (
	_ "embed"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/penstock-ml/penstock/gpu"
	"github.com/penstock-ml/penstock/gpu/cuda/internal/launch"
)

//go:embed kernels/kernels.ptx
var kernelsPTX string

// PTX returns the PTX of the kernels (ISA 7.0, sm_75), as committed and
// loaded by Open.
func PTX() string { return kernelsPTX }

// Device is a gpu.Device on a CUDA GPU. It is made by Open, on the thread
// that will make every call (a gpu.Owner's), and is not safe for
// concurrent use.
type Device struct {
	ordinal int
	dev     cu.Device
	ctx     cu.CUContext
	mod     cu.Module
	fns     map[gpu.Kernel]cu.Function
	streams [2]cu.Stream
	jitLog  string

	next   uint64
	bufs   map[uint64]devAlloc
	pinned map[uint64]pinnedAlloc
	events map[uint64]cu.Event

	err      error // sticky: the first failure of a queued operation
	closed   bool
	launches int64
}

type devAlloc struct {
	ptr cu.DevicePtr
	n   int
}

type pinnedAlloc struct {
	ptr unsafe.Pointer
	p   *gpu.Pinned
}

var _ gpu.Device = (*Device)(nil)

// Open makes a context on GPU ordinal (0 for the first), current on the
// calling thread, two non-blocking streams, and loads the kernels' PTX,
// which the driver compiles for the GPU (the JIT's log is kept: JITLog).
// Call it from the function given to gpu.Start (or gpu.WithDevice), so
// that the owner's locked thread holds the context:
//
//	gpu.Start(func() (gpu.Device, error) { return cuda.Open(0) })
func Open(ordinal int) (*Device, error) {
	d := &Device{ordinal: ordinal, bufs: map[uint64]devAlloc{}, pinned: map[uint64]pinnedAlloc{}, events: map[uint64]cu.Event{}}
	var err error
	if d.dev, err = cu.GetDevice(ordinal); err != nil {
		return nil, d.wrap("open: device", err)
	}
	if d.ctx, err = d.dev.MakeContext(cu.SchedAuto); err != nil {
		return nil, d.wrap("open: context", err)
	}
	fail := func(op string, err error) (*Device, error) {
		err = d.wrap(op, err)
		for _, s := range d.streams {
			if s != (cu.Stream{}) {
				_ = s.Destroy()
			}
		}
		if d.mod != (cu.Module{}) {
			_ = d.mod.Unload()
		}
		_ = d.ctx.Destroy()
		return nil, err
	}
	for i := range d.streams {
		if d.streams[i], err = cu.MakeStream(cu.NonBlocking); err != nil {
			return fail("open: stream", err)
		}
	}
	info := &cu.JITInfoLogBuffer{Buffer: make([]byte, 16<<10)}
	errLog := &cu.JITErrorLogBuffer{Buffer: make([]byte, 16<<10)}
	d.mod, err = cu.LoadDataEx(kernelsPTX, info, errLog)
	d.jitLog = cString(info.Buffer)
	if err != nil {
		return fail("open: load the kernels' PTX", fmt.Errorf("%w; JIT error log: %s", err, cString(errLog.Buffer)))
	}
	d.fns = map[gpu.Kernel]cu.Function{}
	for _, k := range gpu.Kernels() {
		f, err := d.mod.Function(k.String())
		if err != nil {
			return fail("open: kernel "+k.String(), err)
		}
		d.fns[k] = f
	}
	return d, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func (d *Device) wrap(op string, err error) error {
	return fmt.Errorf("gpu/cuda: device %d: %s: %w", d.ordinal, op, err)
}

// JITLog returns the driver's JIT information log of loading the PTX.
func (d *Device) JITLog() string { return d.jitLog }

// Launches returns the number of kernels launched so far.
func (d *Device) Launches() int64 { return d.launches }

// Name returns the GPU's name.
func (d *Device) Name() string {
	n, err := d.dev.Name()
	if err != nil {
		return fmt.Sprintf("device %d", d.ordinal)
	}
	return n
}

// check returns an error for a closed device or, after a failure, the
// sticky error.
func (d *Device) check(op string) error {
	if d.closed {
		return fmt.Errorf("gpu/cuda: device %d: %s: %w", d.ordinal, op, gpu.ErrClosed)
	}
	return d.err
}

// queued keeps the first failure of a queued operation (CUDA's own
// asynchronous faults are sticky in the context too).
func (d *Device) queued(op string, err error) error {
	if err == nil {
		return nil
	}
	if d.err == nil {
		d.err = d.wrap(op, err)
	}
	return d.err
}

func (d *Device) stream(s gpu.Stream) (cu.Stream, error) {
	if s != gpu.CopyStream && s != gpu.ComputeStream {
		return cu.Stream{}, fmt.Errorf("gpu/cuda: device %d: %s is not a stream", d.ordinal, s)
	}
	return d.streams[s], nil
}

// Alloc implements gpu.Device.
func (d *Device) Alloc(n int) (gpu.Buffer, error) {
	if err := d.check("alloc"); err != nil {
		return gpu.Buffer{}, err
	}
	if n < 1 {
		return gpu.Buffer{}, fmt.Errorf("gpu/cuda: device %d: alloc of %d values, want 1 or more", d.ordinal, n)
	}
	p, err := cu.MemAlloc(int64(n) * 4)
	if err != nil {
		return gpu.Buffer{}, d.wrap(fmt.Sprintf("alloc of %d values", n), err)
	}
	d.next++
	d.bufs[d.next] = devAlloc{ptr: p, n: n}
	return gpu.NewBuffer(d.next, n), nil
}

// Free implements gpu.Device.
func (d *Device) Free(b gpu.Buffer) error {
	a, ok := d.bufs[b.ID()]
	if !ok || b.Offset() != 0 || b.Len() != a.n {
		return fmt.Errorf("gpu/cuda: device %d: free of a buffer that is not an allocation (or freed)", d.ordinal)
	}
	delete(d.bufs, b.ID())
	if err := cu.MemFree(a.ptr); err != nil {
		return d.wrap("free", err)
	}
	return nil
}

// ptr returns the device address of b's first value.
func (d *Device) ptr(b gpu.Buffer) (cu.DevicePtr, error) {
	a, ok := d.bufs[b.ID()]
	if !ok || b.Offset()+b.Len() > a.n {
		return 0, fmt.Errorf("gpu/cuda: device %d: a buffer is not allocated (or freed)", d.ordinal)
	}
	return a.ptr + cu.DevicePtr(4*b.Offset()), nil
}

// AllocPinned implements gpu.Device with cuMemHostAlloc.
func (d *Device) AllocPinned(n int) (*gpu.Pinned, error) {
	if err := d.check("alloc pinned"); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("gpu/cuda: device %d: pinned alloc of %d values, want 1 or more", d.ordinal, n)
	}
	var p unsafe.Pointer
	if r := C.penstock_host_alloc(&p, C.size_t(n)*4); r != C.CUDA_SUCCESS {
		return nil, d.wrap(fmt.Sprintf("pinned alloc of %d values", n), cuError(r))
	}
	d.next++
	h := gpu.NewPinned(d.next, unsafe.Slice((*float32)(p), n))
	d.pinned[d.next] = pinnedAlloc{ptr: p, p: h}
	return h, nil
}

// FreePinned implements gpu.Device with cuMemFreeHost.
func (d *Device) FreePinned(p *gpu.Pinned) error {
	if p == nil {
		return fmt.Errorf("gpu/cuda: device %d: free of a nil pinned buffer", d.ordinal)
	}
	a, ok := d.pinned[p.ID()]
	if !ok || a.p != p {
		return fmt.Errorf("gpu/cuda: device %d: free of a pinned buffer that is not allocated (or freed)", d.ordinal)
	}
	delete(d.pinned, p.ID())
	if r := C.penstock_host_free(a.ptr); r != C.CUDA_SUCCESS {
		return d.wrap("free pinned", cuError(r))
	}
	return nil
}

// Host implements gpu.Device. The GPU cannot check, as the CPU device
// does, that no copy is still using p: the caller's events must order it.
func (d *Device) Host(p *gpu.Pinned) ([]float32, error) {
	if p == nil {
		return nil, fmt.Errorf("gpu/cuda: device %d: host view of a nil pinned buffer", d.ordinal)
	}
	a, ok := d.pinned[p.ID()]
	if !ok || a.p != p {
		return nil, fmt.Errorf("gpu/cuda: device %d: host view of a pinned buffer that is not allocated (or freed)", d.ordinal)
	}
	return unsafe.Slice((*float32)(a.ptr), p.Len()), nil
}

// Upload implements gpu.Device with cuMemcpyHtoDAsync.
func (d *Device) Upload(s gpu.Stream, dst gpu.Buffer, src *gpu.Pinned) error {
	if err := d.check("upload"); err != nil {
		return err
	}
	st, err := d.stream(s)
	if err != nil {
		return err
	}
	to, err := d.ptr(dst)
	if err != nil {
		return err
	}
	from, ok := d.pinned[pinnedID(src)]
	if !ok || from.p != src {
		return fmt.Errorf("gpu/cuda: device %d: upload from a pinned buffer that is not allocated (or freed)", d.ordinal)
	}
	if dst.Len() > src.Len() {
		return fmt.Errorf("gpu/cuda: device %d: upload of %d values from a pinned buffer of %d", d.ordinal, dst.Len(), src.Len())
	}
	if dst.Len() == 0 {
		return nil
	}
	return d.queued("upload", cu.MemcpyHtoDAsync(to, from.ptr, int64(dst.Len())*4, st))
}

// Download implements gpu.Device with cuMemcpyDtoHAsync.
func (d *Device) Download(s gpu.Stream, dst *gpu.Pinned, src gpu.Buffer) error {
	if err := d.check("download"); err != nil {
		return err
	}
	st, err := d.stream(s)
	if err != nil {
		return err
	}
	from, err := d.ptr(src)
	if err != nil {
		return err
	}
	to, ok := d.pinned[pinnedID(dst)]
	if !ok || to.p != dst {
		return fmt.Errorf("gpu/cuda: device %d: download into a pinned buffer that is not allocated (or freed)", d.ordinal)
	}
	if src.Len() > dst.Len() {
		return fmt.Errorf("gpu/cuda: device %d: download of %d values into a pinned buffer of %d", d.ordinal, src.Len(), dst.Len())
	}
	if src.Len() == 0 {
		return nil
	}
	return d.queued("download", cu.MemcpyDtoHAsync(to.ptr, from, int64(src.Len())*4, st))
}

func pinnedID(p *gpu.Pinned) uint64 {
	if p == nil {
		return 0
	}
	return p.ID()
}

// Launch implements gpu.Device: it checks the arguments (gpu.CheckLaunch)
// and launches the kernel's PTX function with cu's Function.Launch, in
// the grid and block of launch.Shape, each argument from an 8-byte
// variable (launch.Pack): a buffer's device address, an integer as a
// 64-bit integer, a float as a float32 in the low 4 bytes. A launch with
// nothing to do (no values) is not made.
func (d *Device) Launch(s gpu.Stream, k gpu.Kernel, a gpu.Args) error {
	if err := d.check("launch of " + k.String()); err != nil {
		return err
	}
	st, err := d.stream(s)
	if err != nil {
		return err
	}
	if err := gpu.CheckLaunch(k, a); err != nil {
		return fmt.Errorf("gpu/cuda: device %d: %w", d.ordinal, err)
	}
	addrs := make([]uint64, len(a.Bufs))
	for i, b := range a.Bufs {
		p, err := d.ptr(b)
		if err != nil {
			return err
		}
		addrs[i] = uint64(p)
	}
	g, b := launch.Shape(k, a.Ints)
	if g[0] == 0 || g[1] == 0 {
		return nil // nothing to do
	}
	vals := launch.Pack(addrs, a)
	params := make([]unsafe.Pointer, len(vals))
	for i := range vals {
		params[i] = unsafe.Pointer(&vals[i])
	}
	d.launches++
	return d.queued("launch of "+k.String(), d.fns[k].Launch(g[0], g[1], 1, b[0], b[1], 1, 0, st, params))
}

// NewEvent implements gpu.Device (a timing event).
func (d *Device) NewEvent() (gpu.Event, error) {
	if err := d.check("new event"); err != nil {
		return gpu.Event{}, err
	}
	e, err := cu.MakeEvent(cu.DefaultEvent)
	if err != nil {
		return gpu.Event{}, d.wrap("new event", err)
	}
	d.next++
	d.events[d.next] = e
	return gpu.NewEventHandle(d.next), nil
}

func (d *Device) event(op string, e gpu.Event) (cu.Event, error) {
	ev, ok := d.events[e.ID()]
	if !ok {
		return cu.Event{}, fmt.Errorf("gpu/cuda: device %d: %s: the event does not exist", d.ordinal, op)
	}
	return ev, nil
}

// DestroyEvent implements gpu.Device.
func (d *Device) DestroyEvent(e gpu.Event) error {
	ev, err := d.event("destroy event", e)
	if err != nil {
		return err
	}
	delete(d.events, e.ID())
	if err := cu.DestroyEvent(&ev); err != nil {
		return d.wrap("destroy event", err)
	}
	return nil
}

// Record implements gpu.Device.
func (d *Device) Record(s gpu.Stream, e gpu.Event) error {
	if err := d.check("record"); err != nil {
		return err
	}
	st, err := d.stream(s)
	if err != nil {
		return err
	}
	ev, err := d.event("record", e)
	if err != nil {
		return err
	}
	return d.queued("record", ev.Record(st))
}

// Wait implements gpu.Device.
func (d *Device) Wait(s gpu.Stream, e gpu.Event) error {
	if err := d.check("wait"); err != nil {
		return err
	}
	st, err := d.stream(s)
	if err != nil {
		return err
	}
	ev, err := d.event("wait", e)
	if err != nil {
		return err
	}
	return d.queued("wait", st.Wait(ev, 0))
}

// Synchronize implements gpu.Device.
func (d *Device) Synchronize(e gpu.Event) error {
	ev, err := d.event("synchronize", e)
	if err != nil {
		return err
	}
	if err := d.check("synchronize"); err != nil {
		return err
	}
	return d.queued("synchronize", ev.Synchronize())
}

// Query implements gpu.Device.
func (d *Device) Query(e gpu.Event) (bool, error) {
	ev, err := d.event("query", e)
	if err != nil {
		return false, err
	}
	if err := d.check("query"); err != nil {
		return false, err
	}
	switch err := ev.Query(); {
	case err == nil:
		return true, nil
	case errors.Is(err, cu.NotReady):
		return false, nil
	default:
		return false, d.queued("query", err)
	}
}

// Elapsed implements gpu.Device (cuEventElapsedTime: about 0.5 µs
// resolution).
func (d *Device) Elapsed(start, end gpu.Event) (time.Duration, error) {
	a, err := d.event("elapsed", start)
	if err != nil {
		return 0, err
	}
	b, err := d.event("elapsed", end)
	if err != nil {
		return 0, err
	}
	ms, err := a.Elapsed(b)
	if err != nil {
		return 0, d.wrap("elapsed (both events recorded and completed?)", err)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

// SynchronizeAll implements gpu.Device.
func (d *Device) SynchronizeAll() error {
	if err := d.check("synchronize"); err != nil {
		return err
	}
	for _, s := range d.streams {
		if err := d.queued("synchronize", s.Synchronize()); err != nil {
			return err
		}
	}
	return nil
}

// Close implements gpu.Device: it waits for the streams, destroys them,
// unloads the kernels and destroys the context. It returns the sticky
// error and an error naming what was still allocated (which it frees).
// Close after Close returns nil.
func (d *Device) Close() error {
	if d.closed {
		return nil
	}
	var errs []error
	if d.err != nil {
		errs = append(errs, d.err)
	}
	for _, s := range d.streams {
		if err := s.Synchronize(); err != nil && d.err == nil {
			errs = append(errs, d.wrap("close: synchronize", err))
		}
	}
	if n, p, e := len(d.bufs), len(d.pinned), len(d.events); n+p+e > 0 {
		errs = append(errs, fmt.Errorf("gpu/cuda: device %d: closed with %d device buffers, %d pinned buffers and %d events not freed", d.ordinal, n, p, e))
		for _, a := range d.bufs {
			_ = cu.MemFree(a.ptr)
		}
		for _, a := range d.pinned {
			C.penstock_host_free(a.ptr)
		}
		for _, ev := range d.events {
			_ = cu.DestroyEvent(&ev)
		}
		clear(d.bufs)
		clear(d.pinned)
		clear(d.events)
	}
	d.closed = true
	for i := range d.streams {
		if err := d.streams[i].Destroy(); err != nil {
			errs = append(errs, d.wrap("close: stream", err))
		}
	}
	if err := d.mod.Unload(); err != nil {
		errs = append(errs, d.wrap("close: unload the kernels", err))
	}
	if err := d.ctx.Destroy(); err != nil {
		errs = append(errs, d.wrap("close: context", err))
	}
	return errors.Join(errs...)
}

// cuError is a CUresult of the package's own cgo calls.
type cuError C.CUresult

func (e cuError) Error() string {
	var s *C.char
	C.cuGetErrorString(C.CUresult(e), &s)
	if s == nil {
		return fmt.Sprintf("CUresult %d", int(e))
	}
	return fmt.Sprintf("%s (CUresult %d)", C.GoString(s), int(e))
}
