package gpu

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// Owner is the one goroutine that makes a device's calls: it locks itself
// to its OS thread (a CUDA context is current on one thread), opens the
// device there and runs the functions given to Submit and Do, in order,
// with the device. Submit and Do are safe for concurrent use.
//
// A function that runs on the owner's goroutine (given to Do or Submit)
// may call Submit, which queues its function after the current one, but
// not Do or Close, which would wait for the owner, which waits for the
// function: they return an error wrapping ErrReentrant at once. The owner
// recognises its goroutine by its thread's id (Linux) or its goroutine id
// (elsewhere), recorded at start; a function that waits for another
// goroutine's Do or Close is not recognised, and deadlocks.
type Owner struct {
	id       int64 // callerID of the owner's goroutine, set before Start returns
	mu       sync.Mutex
	cond     *sync.Cond
	queue    []task
	closing  bool
	err      error // the first error of a submitted function
	done     chan struct{}
	closeErr error
}

type task struct {
	f     func(Device) error
	reply chan error // nil for Submit
}

// Start starts an owner: its goroutine locks its OS thread and calls
// open there. It returns open's error (and the goroutine has ended then).
func Start(open func() (Device, error)) (*Owner, error) {
	return start(nil, open)
}

// errAbandoned is start's error when cancel is closed before open returns.
var errAbandoned = errors.New("gpu: owner: abandoned while the device opened")

// start is Start whose wait for open ends when cancel is closed (a nil
// cancel never is). It then returns the owner, marked closing, with
// errAbandoned: open goes on, the owner's goroutine closes the device that
// open returns (if any) and ends; its done is closed then. A function
// that open gave no device to has nothing to close.
func start(cancel <-chan struct{}, open func() (Device, error)) (*Owner, error) {
	o := &Owner{done: make(chan struct{})}
	o.cond = sync.NewCond(&o.mu)
	opened := make(chan error, 1)
	go o.loop(open, opened)
	select {
	case err := <-opened:
		if err != nil {
			<-o.done
			return nil, err
		}
		return o, nil
	case <-cancel:
		o.mu.Lock()
		o.closing = true
		o.cond.Signal()
		o.mu.Unlock()
		return o, errAbandoned
	}
}

// loop is the owner's goroutine. It never unlocks its thread: the Go
// runtime ends a goroutine's locked thread with it, so no other goroutine
// runs on a thread on which the device was current.
func (o *Owner) loop(open func() (Device, error), opened chan<- error) {
	defer close(o.done)
	runtime.LockOSThread()
	o.id = callerID()
	var dev Device
	err := protect(func() (err error) { dev, err = open(); return err })
	if err == nil && dev == nil {
		err = errors.New("gpu: owner: open returned no device")
	}
	if err != nil {
		opened <- fmt.Errorf("gpu: owner: open the device: %w", err)
		return
	}
	opened <- nil
	for {
		o.mu.Lock()
		for len(o.queue) == 0 && !o.closing {
			o.cond.Wait()
		}
		if len(o.queue) == 0 { // closing, and drained
			o.mu.Unlock()
			o.closeErr = protect(dev.Close)
			return
		}
		t := o.queue[0]
		o.queue[0] = task{}
		o.queue = o.queue[1:]
		o.mu.Unlock()
		err := protect(func() error { return t.f(dev) })
		if t.reply != nil {
			t.reply <- err
			continue
		}
		if err != nil {
			o.mu.Lock()
			if o.err == nil {
				o.err = err
			}
			o.mu.Unlock()
		}
	}
}

// protect calls f and turns its panic into an error.
func protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gpu: owner: panic: %v", r)
		}
	}()
	return f()
}

// onOwner reports whether the caller runs on the owner's goroutine. The
// id is compared only while the owner lives (done not closed), so that a
// thread id reused after the owner's thread ended is not mistaken for it.
func (o *Owner) onOwner() bool {
	select {
	case <-o.done:
		return false
	default:
	}
	return callerID() == o.id
}

func (o *Owner) push(t task) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return fmt.Errorf("gpu: owner: %w", ErrClosed)
	}
	if t.reply != nil && o.onOwner() {
		return fmt.Errorf("gpu: owner: Do from a function on the owner's goroutine, which waits for it (use Submit, or call the function directly with its device): %w", ErrReentrant)
	}
	o.queue = append(o.queue, t)
	o.cond.Signal()
	return nil
}

// Submit queues f to run on the owner's thread and returns without
// waiting. The first error (or panic) of a submitted function is kept:
// Err returns it, and Close. Submit after Close returns ErrClosed.
func (o *Owner) Submit(f func(Device) error) error {
	return o.push(task{f: f})
}

// Do runs f on the owner's thread, after everything queued before, and
// returns its error (a panic becomes an error). Do after Close returns
// ErrClosed; Do from a function on the owner's goroutine returns
// ErrReentrant.
func (o *Owner) Do(f func(Device) error) error {
	reply := make(chan error, 1)
	if err := o.push(task{f: f, reply: reply}); err != nil {
		return err
	}
	return <-reply
}

// Err returns the first error of a submitted function, nil if none
// failed.
func (o *Owner) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// Close runs what is queued, closes the device and waits for the owner's
// goroutine, which ends with its thread still locked (so the runtime
// discards the thread). It returns the first error of a submitted
// function and the device's Close error. Close after Close returns the
// same. Close from a function on the owner's goroutine returns an error
// wrapping ErrReentrant and closes nothing.
func (o *Owner) Close() error {
	if o.onOwner() {
		return fmt.Errorf("gpu: owner: Close from a function on the owner's goroutine, which waits for it (close the owner after Do returns): %w", ErrReentrant)
	}
	o.mu.Lock()
	o.closing = true
	o.cond.Signal()
	o.mu.Unlock()
	<-o.done
	return errors.Join(o.Err(), o.closeErr)
}
