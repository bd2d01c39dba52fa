package gpu

import (
	"errors"
	"fmt"
	"time"
)

// Stream names one of a device's two streams. Operations on one stream
// run in the order they were queued; operations on different streams are
// unordered unless an event orders them (Record on one, Wait on the
// other).
type Stream int

// The streams.
const (
	CopyStream    Stream = 0 // uploads and downloads
	ComputeStream Stream = 1 // kernels
)

func (s Stream) String() string {
	switch s {
	case CopyStream:
		return "copy"
	case ComputeStream:
		return "compute"
	}
	return fmt.Sprintf("stream(%d)", int(s))
}

func (s Stream) valid() bool { return s == CopyStream || s == ComputeStream }

// Buffer is a range of float32 values in device memory: an allocation
// (Alloc) or a part of one (Slice). It is a handle; the values are only
// reached through the device's operations.
type Buffer struct {
	id       uint64 // the allocation; 0 is no buffer
	off, len int
}

// Len returns the number of values.
func (b Buffer) Len() int { return b.len }

// Slice returns the n values from off, which must lie in b.
func (b Buffer) Slice(off, n int) Buffer {
	if off < 0 || n < 0 || off+n > b.len {
		panic(fmt.Sprintf("gpu: slice [%d:%d] of a buffer of %d values", off, off+n, b.len))
	}
	return Buffer{id: b.id, off: b.off + off, len: n}
}

// Pinned is a page-locked host buffer of float32 values, the staging
// memory of uploads and downloads. Its values are reached through
// Device.Host, which checks (on the CPU device) that no queued copy is
// still using them.
type Pinned struct {
	id   uint64
	data []float32
}

// Len returns the number of values.
func (p *Pinned) Len() int { return len(p.data) }

// Event marks a point in a stream (Record): later, another stream can wait
// for it (Wait), the host can wait for it (Synchronize), and the time
// between two recorded events is Elapsed. An event can be recorded again;
// a Wait or Synchronize refers to its latest Record.
type Event struct{ id uint64 }

// Kernel is one of the device's fixed kernels. Each takes buffers, integer
// and float arguments in the order given here (m×n means m rows of n
// values, row-major):
//
//	Gemm        A, B, C; m, n, k, transA, transB (0 or 1); alpha, beta:
//	            C (m×n) = alpha·op(A)·op(B) + beta·C, op(A) m×k, op(B) k×n
//	BiasAdd     Y, b; rows, cols: Y[r][j] += b[j]
//	ColSum      X, s; rows, cols: s[j] = Σ_r X[r][j]
//	ReLU        X; n: X = max(0, X), in place
//	ReLUGrad    dY, Y; n: dY[i] = 0 where Y[i] ≤ 0 (Y the ReLU's output)
//	SoftmaxXent Z, labels, dZ, loss; rows, cols: loss[0] = the mean over
//	            rows of the softmax cross-entropy of Z against the class
//	            numbers in labels (float32), dZ = (softmax(Z) − onehot)/rows
//	Adam        W, G, M, V; n; rate, beta1, beta2, epsilon: one Adam step
//	            over n values, as nn.Model.Update (without L2: see Axpy)
//	SumSquares  X, out; n: out[0] = Σ X[i]², the L2 norm squared
//	Axpy        X, Y; n; a: Y += a·X (the L2 term of a gradient: G += λ·W)
//	Scale       X; n; a: X *= a
type Kernel int

// The kernels.
const (
	Gemm Kernel = iota + 1
	BiasAdd
	ColSum
	ReLU
	ReLUGrad
	SoftmaxXent
	Adam
	SumSquares
	Axpy
	Scale
)

var kernelNames = map[Kernel]string{
	Gemm: "gemm", BiasAdd: "bias_add", ColSum: "col_sum", ReLU: "relu", ReLUGrad: "relu_grad",
	SoftmaxXent: "softmax_xent", Adam: "adam", SumSquares: "sum_squares", Axpy: "axpy", Scale: "scale",
}

func (k Kernel) String() string {
	if n, ok := kernelNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kernel(%d)", int(k))
}

// Args are a kernel's arguments (see Kernel for each kernel's).
type Args struct {
	Bufs   []Buffer
	Ints   []int
	Floats []float64
}

// Device is an accelerator with its own memory, two streams (CopyStream,
// ComputeStream) and a fixed set of kernels. Uploads, downloads, launches
// and Records are queued and return at once; their failures are sticky
// and returned by later calls (as CUDA's are), at the latest by
// Synchronize and SynchronizeAll. A Device is used by one goroutine: the
// Owner's, locked to its OS thread.
type Device interface {
	// Alloc allocates n float32 values of device memory; Free frees an
	// allocation (not a Slice of one).
	Alloc(n int) (Buffer, error)
	Free(b Buffer) error
	// AllocPinned allocates n float32 values of page-locked host memory;
	// FreePinned frees it.
	AllocPinned(n int) (*Pinned, error)
	FreePinned(p *Pinned) error
	// Host returns p's values for the host to read or write. Every copy
	// queued on p before must have completed (Synchronize on an event
	// recorded after it): else the CPU device reports a hazard.
	Host(p *Pinned) ([]float32, error)
	// Upload queues a copy of src's first dst.Len() values to dst on s;
	// Download queues a copy of src to dst's first src.Len() values.
	Upload(s Stream, dst Buffer, src *Pinned) error
	Download(s Stream, dst *Pinned, src Buffer) error
	// Launch queues kernel k on s.
	Launch(s Stream, k Kernel, a Args) error
	// NewEvent makes an event, DestroyEvent destroys it.
	NewEvent() (Event, error)
	DestroyEvent(e Event) error
	// Record queues e on s: it completes when everything queued on s
	// before it has. Wait makes everything queued on s after it wait for
	// e's latest Record.
	Record(s Stream, e Event) error
	Wait(s Stream, e Event) error
	// Synchronize waits until e's latest Record completed; Query reports
	// whether it has, without waiting (true for an event never recorded).
	Synchronize(e Event) error
	Query(e Event) (bool, error)
	// Elapsed returns the time from start to end, both completed, on the
	// device's clock (the same for both streams).
	Elapsed(start, end Event) (time.Duration, error)
	// SynchronizeAll waits until both streams are idle.
	SynchronizeAll() error
	// Close waits for the streams and releases the device; buffers still
	// allocated are an error.
	Close() error
}

// ErrHazard is wrapped by the CPU device's errors for an operation that
// accesses a buffer that an operation on another stream (or the host)
// also accesses, one of them writing, with no event ordering them.
var ErrHazard = errors.New("gpu: hazard")

// ErrClosed is returned by an Owner's Do and Submit after Close, and by
// a device's calls after its Close.
var ErrClosed = errors.New("gpu: closed")

// ErrReentrant is returned by an Owner's Do and Close called from a
// function that runs on the owner's goroutine.
var ErrReentrant = errors.New("gpu: re-entrant call on the owner's goroutine")
