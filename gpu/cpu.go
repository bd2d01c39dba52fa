package gpu

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// OpKind is the kind of a device operation.
type OpKind int

// The kinds of operations.
const (
	OpUpload OpKind = iota + 1
	OpDownload
	OpKernel
)

func (k OpKind) String() string {
	switch k {
	case OpUpload:
		return "upload"
	case OpDownload:
		return "download"
	case OpKernel:
		return "kernel"
	}
	return fmt.Sprintf("op(%d)", int(k))
}

// Op describes a queued operation to a CPU device's latency model and
// fault hook.
type Op struct {
	Kind   OpKind
	Stream Stream
	Kernel Kernel // OpKernel only
	Values int    // values copied (uploads, downloads) or the size of the first buffer (kernels)
	Seq    int64  // 0 for the first operation of its Kind and Kernel, 1 for the next, …
}

func (o Op) String() string {
	if o.Kind == OpKernel {
		return fmt.Sprintf("kernel %s #%d", o.Kernel, o.Seq)
	}
	return fmt.Sprintf("%s #%d of %d values", o.Kind, o.Seq, o.Values)
}

// CPUOption configures a CPU device.
type CPUOption func(*CPUDevice)

// WithLatency models the device's latencies: each operation takes f(op)
// on the device's virtual clock (see CPUDevice.Now) instead of the wall
// time that it took. f is called from the streams' goroutines, one call
// at a time per stream: it must be safe for concurrent use.
func WithLatency(f func(Op) time.Duration) CPUOption {
	return func(d *CPUDevice) { d.latency = f }
}

// WithFault injects device errors: f is called before each operation
// runs, on its stream; a non-nil error fails the operation as a CUDA
// kernel fault does: the error is sticky, later operations do nothing,
// and the next calls return it. f must be safe for concurrent use.
func WithFault(f func(Op) error) CPUOption {
	return func(d *CPUDevice) { d.fault = f }
}

// participants of the happens-before order: the two streams and the host.
const (
	hostID = 2
	nParts = 3
)

// vclock is a vector clock over the participants.
type vclock [nParts]uint64

func (v *vclock) join(o vclock) {
	for i := range v {
		v[i] = max(v[i], o[i])
	}
}

// access is what the hazard check knows of an allocation: its last write
// (by whom, at whose clock) and the last read of each participant.
type access struct {
	writer int
	wclock uint64 // 0: never written
	reads  vclock
}

var partNames = [nParts]string{"the copy stream", "the compute stream", "the host"}

// check checks an access by who at clock v and records it.
func (a *access) check(what string, who int, v vclock, write bool) error {
	if a.wclock > 0 && a.writer != who && v[a.writer] < a.wclock {
		return fmt.Errorf("%w: %s: %s accesses it while a write by %s is not ordered before (record an event after the write and wait for it)", ErrHazard, what, partNames[who], partNames[a.writer])
	}
	if write {
		for p := range nParts {
			if p != who && a.reads[p] > v[p] {
				return fmt.Errorf("%w: %s: %s writes it while a read by %s is not ordered before (record an event after the read and wait for it)", ErrHazard, what, partNames[who], partNames[p])
			}
		}
		a.writer, a.wclock, a.reads = who, v[who], vclock{}
		return nil
	}
	a.reads[who] = max(a.reads[who], v[who])
	return nil
}

// record is one Record of an event: complete when its stream reached it.
type record struct {
	done  chan struct{}
	vc    vclock
	vtime time.Duration // the virtual time of completion
}

// item is one queued operation of a stream.
type item struct {
	op        Op
	notBefore time.Duration // the host's virtual time when it was queued
	run       func()        // the work; nil for waits and records
	wait, rec *record
	stop      bool
}

type stream struct {
	mu    sync.Mutex
	cond  *sync.Cond
	queue []item
	clock time.Duration // virtual time: the end of the last operation
	vc    vclock        // the hazard check's clock, at the end of the queue
}

// CPUDevice is a Device in Go (see CPU).
type CPUDevice struct {
	latency func(Op) time.Duration
	fault   func(Op) error

	mu      sync.Mutex // guards the API state below (the owner's thread is one caller; tests may be others)
	closed  bool
	nextID  uint64
	bufs    map[uint64][]float32
	pinned  map[uint64]*Pinned
	acc     map[uint64]*access
	events  map[uint64]*record // the latest Record; nil before the first
	seq     map[[2]int]int64
	host    vclock
	hostNow time.Duration
	streams [2]*stream
	wg      sync.WaitGroup

	errMu sync.Mutex
	err   error         // sticky: the first failed operation
	now   time.Duration // the latest completion on the virtual clock
}

var _ Device = (*CPUDevice)(nil)

// CPU returns a device written in Go: device memory is Go memory, each
// stream is a goroutine that runs its queue in order, kernels are Go
// functions, and events order the streams as CUDA's do. Every operation
// takes its wall time, or the time WithLatency gives, on one virtual
// clock. An access to a buffer that is not ordered, by events, waits and
// synchronisations, after a conflicting access by another stream or the
// host is refused with an error wrapping ErrHazard, whatever the timing
// (the check follows the happens-before order of the queues, not the
// clock). Close ends the goroutines.
func CPU(opts ...CPUOption) *CPUDevice {
	d := &CPUDevice{
		bufs: map[uint64][]float32{}, pinned: map[uint64]*Pinned{}, acc: map[uint64]*access{},
		events: map[uint64]*record{}, seq: map[[2]int]int64{},
	}
	for _, o := range opts {
		if o != nil {
			o(d)
		}
	}
	for i := range d.streams {
		s := &stream{}
		s.cond = sync.NewCond(&s.mu)
		d.streams[i] = s
		d.wg.Add(1)
		go d.loop(Stream(i), s)
	}
	return d
}

// loop runs stream s's queue until a stop item.
func (d *CPUDevice) loop(id Stream, s *stream) {
	defer d.wg.Done()
	for {
		s.mu.Lock()
		for len(s.queue) == 0 {
			s.cond.Wait()
		}
		it := s.queue[0]
		s.queue[0] = item{}
		s.queue = s.queue[1:]
		s.mu.Unlock()
		switch {
		case it.stop:
			return
		case it.wait != nil:
			<-it.wait.done
			s.clock = max(s.clock, it.wait.vtime)
		case it.rec != nil: // it cannot complete before it was queued
			s.clock = max(s.clock, it.notBefore)
			it.rec.vtime = s.clock
			close(it.rec.done)
		default:
			start := max(s.clock, it.notBefore)
			dur := d.exec(it)
			s.clock = start + dur
			d.errMu.Lock()
			d.now = max(d.now, s.clock)
			d.errMu.Unlock()
		}
	}
}

// exec runs one operation unless the device failed, and returns its
// duration.
func (d *CPUDevice) exec(it item) (dur time.Duration) {
	if d.Err() != nil {
		return 0
	}
	fail := func(err error) {
		d.errMu.Lock()
		if d.err == nil {
			d.err = fmt.Errorf("gpu: cpu device: %s on the %s stream: %w", it.op, it.op.Stream, err)
		}
		d.errMu.Unlock()
	}
	if d.fault != nil {
		if err := d.fault(it.op); err != nil {
			fail(err)
			return 0
		}
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				fail(fmt.Errorf("panic: %v", r))
			}
		}()
		start := time.Now()
		it.run()
		dur = time.Since(start)
	}()
	if d.latency != nil {
		dur = d.latency(it.op)
	}
	return dur
}

// Err returns the sticky error of a failed operation, nil if none failed.
func (d *CPUDevice) Err() error {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	return d.err
}

// Now returns the virtual time of the latest completed operation: with
// WithLatency, the modelled time the work queued so far takes.
func (d *CPUDevice) Now() time.Duration {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	return d.now
}

// Live returns the numbers of device buffers, pinned buffers and events
// allocated and not yet freed.
func (d *CPUDevice) Live() (buffers, pinned, events int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.bufs), len(d.pinned), len(d.events)
}

func (d *CPUDevice) open(op string) error {
	if d.closed {
		return fmt.Errorf("gpu: cpu device: %s: %w", op, ErrClosed)
	}
	return nil
}

// Alloc implements Device.
func (d *CPUDevice) Alloc(n int) (Buffer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.open("alloc"); err != nil {
		return Buffer{}, err
	}
	if n < 1 {
		return Buffer{}, fmt.Errorf("gpu: cpu device: alloc of %d values, want 1 or more", n)
	}
	d.nextID++
	d.bufs[d.nextID] = make([]float32, n)
	d.acc[d.nextID] = &access{}
	return Buffer{id: d.nextID, len: n}, nil
}

// Free implements Device. Freeing is a write by the host: the operations
// queued on b must be synchronised first.
func (d *CPUDevice) Free(b Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.open("free"); err != nil {
		return err
	}
	v, ok := d.bufs[b.id]
	if !ok || b.off != 0 || b.len != len(v) {
		return fmt.Errorf("gpu: cpu device: free of a buffer that is not an allocation (or freed)")
	}
	if err := d.hostAccess(b.id, "free of a device buffer"); err != nil {
		return err
	}
	delete(d.bufs, b.id)
	delete(d.acc, b.id)
	return nil
}

// AllocPinned implements Device.
func (d *CPUDevice) AllocPinned(n int) (*Pinned, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.open("alloc pinned"); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("gpu: cpu device: pinned alloc of %d values, want 1 or more", n)
	}
	d.nextID++
	p := &Pinned{id: d.nextID, data: make([]float32, n)}
	d.pinned[p.id] = p
	d.acc[p.id] = &access{}
	return p, nil
}

// FreePinned implements Device.
func (d *CPUDevice) FreePinned(p *Pinned) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.open("free pinned"); err != nil {
		return err
	}
	if p == nil || d.pinned[p.id] != p {
		return fmt.Errorf("gpu: cpu device: free of a pinned buffer that is not allocated (or freed)")
	}
	if err := d.hostAccess(p.id, "free of a pinned buffer"); err != nil {
		return err
	}
	delete(d.pinned, p.id)
	delete(d.acc, p.id)
	return nil
}

// hostAccess checks and records a write by the host.
func (d *CPUDevice) hostAccess(id uint64, what string) error {
	d.host[hostID]++
	if err := d.acc[id].check(what, hostID, d.host, true); err != nil {
		return fmt.Errorf("gpu: cpu device: %w", err)
	}
	return nil
}

// Host implements Device.
func (d *CPUDevice) Host(p *Pinned) ([]float32, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.open("host"); err != nil {
		return nil, err
	}
	if p == nil || d.pinned[p.id] != p {
		return nil, fmt.Errorf("gpu: cpu device: host view of a pinned buffer that is not allocated (or freed)")
	}
	if err := d.hostAccess(p.id, "host access to a pinned buffer"); err != nil {
		return nil, err
	}
	return p.data, nil
}

type use struct {
	id    uint64
	write bool
	what  string
}

// enqueue checks the accesses of an operation on s, and queues it.
func (d *CPUDevice) enqueue(s Stream, op Op, uses []use, run func()) error {
	if err := d.open(op.Kind.String()); err != nil {
		return err
	}
	if err := d.Err(); err != nil {
		return err
	}
	if !s.valid() {
		return fmt.Errorf("gpu: cpu device: %s on %s, want the copy or the compute stream", op.Kind, s)
	}
	st := d.streams[s]
	v := st.vc
	v.join(d.host)
	v[s]++
	// Check every access before recording any.
	saved := make([]access, len(uses))
	for i, u := range uses {
		a := d.acc[u.id]
		if a == nil {
			return fmt.Errorf("gpu: cpu device: %s on the %s stream: %s is not allocated (or freed)", op, s, u.what)
		}
		saved[i] = *a
	}
	for i, u := range uses {
		if err := d.acc[u.id].check(u.what, int(s), v, u.write); err != nil {
			for j := range i + 1 { // undo
				*d.acc[uses[j].id] = saved[j]
			}
			return fmt.Errorf("gpu: cpu device: %s on the %s stream: %w", op, s, err)
		}
	}
	st.vc = v
	key := [2]int{int(op.Kind), int(op.Kernel)}
	op.Seq = d.seq[key]
	d.seq[key]++
	op.Stream = s
	d.push(st, item{op: op, notBefore: d.hostNow, run: run})
	return nil
}

func (d *CPUDevice) push(st *stream, it item) {
	st.mu.Lock()
	st.queue = append(st.queue, it)
	st.mu.Unlock()
	st.cond.Signal()
}

// Upload implements Device.
func (d *CPUDevice) Upload(s Stream, dst Buffer, src *Pinned) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.bufs[dst.id]
	if !ok || src == nil || d.pinned[src.id] != src {
		return d.notAllocated("upload")
	}
	if dst.len > len(src.data) {
		return fmt.Errorf("gpu: cpu device: upload of %d values from a pinned buffer of %d", dst.len, len(src.data))
	}
	to, from := v[dst.off:dst.off+dst.len], src.data[:dst.len]
	return d.enqueue(s, Op{Kind: OpUpload, Values: dst.len},
		[]use{{src.id, false, "the pinned source"}, {dst.id, true, "the device destination"}},
		func() { copy(to, from) })
}

// Download implements Device.
func (d *CPUDevice) Download(s Stream, dst *Pinned, src Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.bufs[src.id]
	if !ok || dst == nil || d.pinned[dst.id] != dst {
		return d.notAllocated("download")
	}
	if src.len > len(dst.data) {
		return fmt.Errorf("gpu: cpu device: download of %d values into a pinned buffer of %d", src.len, len(dst.data))
	}
	from, to := v[src.off:src.off+src.len], dst.data[:src.len]
	return d.enqueue(s, Op{Kind: OpDownload, Values: src.len},
		[]use{{src.id, false, "the device source"}, {dst.id, true, "the pinned destination"}},
		func() { copy(to, from) })
}

func (d *CPUDevice) notAllocated(op string) error {
	if err := d.open(op); err != nil {
		return err
	}
	return fmt.Errorf("gpu: cpu device: %s: a buffer is not allocated (or freed)", op)
}

// Launch implements Device.
func (d *CPUDevice) Launch(s Stream, k Kernel, a Args) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := CheckLaunch(k, a); err != nil {
		return fmt.Errorf("gpu: cpu device: %w", err)
	}
	spec := kernels[k]
	views := make([][]float32, len(a.Bufs))
	uses := make([]use, 0, len(a.Bufs))
	written := map[uint64]bool{}
	for _, i := range spec.writes {
		written[a.Bufs[i].id] = true
	}
	seen := map[uint64]bool{}
	for i, b := range a.Bufs {
		v, ok := d.bufs[b.id]
		if !ok {
			return d.notAllocated("launch of " + k.String())
		}
		views[i] = v[b.off : b.off+b.len]
		if !seen[b.id] {
			seen[b.id] = true
			uses = append(uses, use{b.id, written[b.id], fmt.Sprintf("buffer %d of %s", i, k)})
		}
	}
	args := Args{Ints: append([]int(nil), a.Ints...), Floats: append([]float64(nil), a.Floats...)}
	return d.enqueue(s, Op{Kind: OpKernel, Kernel: k, Values: a.Bufs[0].len}, uses, func() { spec.run(views, args) })
}

// NewEvent implements Device.
func (d *CPUDevice) NewEvent() (Event, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.open("new event"); err != nil {
		return Event{}, err
	}
	d.nextID++
	d.events[d.nextID] = nil
	return Event{id: d.nextID}, nil
}

// DestroyEvent implements Device.
func (d *CPUDevice) DestroyEvent(e Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.open("destroy event"); err != nil {
		return err
	}
	if _, ok := d.events[e.id]; !ok {
		return fmt.Errorf("gpu: cpu device: destroy of an event that does not exist")
	}
	delete(d.events, e.id)
	return nil
}

// Record implements Device.
func (d *CPUDevice) Record(s Stream, e Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.open("record"); err != nil {
		return err
	}
	if _, ok := d.events[e.id]; !ok || !s.valid() {
		return fmt.Errorf("gpu: cpu device: record of an event that does not exist, or on %s", s)
	}
	d.events[e.id] = d.recordLocked(s)
	return nil
}

func (d *CPUDevice) recordLocked(s Stream) *record {
	st := d.streams[s]
	st.vc.join(d.host)
	r := &record{done: make(chan struct{}), vc: st.vc}
	d.push(st, item{rec: r, notBefore: d.hostNow})
	return r
}

// Wait implements Device.
func (d *CPUDevice) Wait(s Stream, e Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.open("wait"); err != nil {
		return err
	}
	r, ok := d.events[e.id]
	if !ok || !s.valid() {
		return fmt.Errorf("gpu: cpu device: wait for an event that does not exist, or on %s", s)
	}
	if r == nil { // never recorded: nothing to wait for, as in CUDA
		return nil
	}
	st := d.streams[s]
	st.vc.join(r.vc)
	d.push(st, item{wait: r})
	return nil
}

// Synchronize implements Device.
func (d *CPUDevice) Synchronize(e Event) error {
	d.mu.Lock()
	closed := d.open("synchronize")
	r, ok := d.events[e.id]
	d.mu.Unlock()
	if closed != nil {
		return closed
	}
	if !ok {
		return fmt.Errorf("gpu: cpu device: synchronize on an event that does not exist")
	}
	if r != nil {
		d.syncRecord(r)
	}
	return d.Err()
}

func (d *CPUDevice) syncRecord(r *record) {
	<-r.done
	d.mu.Lock()
	d.host.join(r.vc)
	d.hostNow = max(d.hostNow, r.vtime)
	d.mu.Unlock()
}

// Query implements Device.
func (d *CPUDevice) Query(e Event) (bool, error) {
	d.mu.Lock()
	closed := d.open("query")
	r, ok := d.events[e.id]
	d.mu.Unlock()
	if closed != nil {
		return false, closed
	}
	if !ok {
		return false, fmt.Errorf("gpu: cpu device: query of an event that does not exist")
	}
	if r == nil {
		return true, d.Err()
	}
	select {
	case <-r.done:
		// The host is ordered after the event, but its virtual time stays:
		// the answer follows the real execution, not the modelled clock.
		d.mu.Lock()
		d.host.join(r.vc)
		d.mu.Unlock()
		return true, d.Err()
	default:
		return false, d.Err()
	}
}

// Elapsed implements Device.
func (d *CPUDevice) Elapsed(start, end Event) (time.Duration, error) {
	d.mu.Lock()
	closed := d.open("elapsed")
	a, okA := d.events[start.id]
	b, okB := d.events[end.id]
	d.mu.Unlock()
	if closed != nil {
		return 0, closed
	}
	if !okA || !okB || a == nil || b == nil {
		return 0, fmt.Errorf("gpu: cpu device: elapsed between events that do not exist or were not recorded")
	}
	for _, r := range []*record{a, b} {
		select {
		case <-r.done:
		default:
			return 0, fmt.Errorf("gpu: cpu device: elapsed: an event has not completed yet; synchronize on it first")
		}
	}
	return b.vtime - a.vtime, nil
}

// SynchronizeAll implements Device.
func (d *CPUDevice) SynchronizeAll() error {
	d.mu.Lock()
	if err := d.open("synchronize"); err != nil {
		d.mu.Unlock()
		return err
	}
	rs := []*record{d.recordLocked(CopyStream), d.recordLocked(ComputeStream)}
	d.mu.Unlock()
	for _, r := range rs {
		d.syncRecord(r)
	}
	return d.Err()
}

// Close implements Device: it drains the streams, ends their goroutines,
// and returns the device's sticky error and an error naming what was
// still allocated (which Live goes on reporting). Close after Close
// returns nil.
func (d *CPUDevice) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for _, st := range d.streams {
		d.push(st, item{stop: true})
	}
	d.mu.Unlock()
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	if err := d.Err(); err != nil {
		errs = append(errs, err)
	}
	if n, p, e := len(d.bufs), len(d.pinned), len(d.events); n+p+e > 0 {
		errs = append(errs, fmt.Errorf("gpu: cpu device: closed with %d device buffers, %d pinned buffers and %d events not freed", n, p, e))
	}
	return errors.Join(errs...)
}
