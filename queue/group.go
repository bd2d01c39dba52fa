package queue

import (
	"context"
	"sync"
	"sync/atomic"
)

// Group runs goroutines that share one fate. The first non-nil error
// returned by a goroutine cancels the group's context with that error as its
// cause; Wait waits for every goroutine and returns that first error. The
// goroutines must return once the context is done.
//
// Group does not recover panics: recover them where user code is called and
// turn them into errors there.
type Group struct {
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelCauseFunc
	mu     sync.Mutex
	err    error
}

// NewGroup returns a group whose context derives from ctx.
func NewGroup(ctx context.Context) *Group {
	gctx, cancel := context.WithCancelCause(ctx)
	return &Group{ctx: gctx, cancel: cancel}
}

// Cancel fails the group with err, as if a goroutine had returned it: the
// first error wins, and the group's context is cancelled with it as the
// cause. A nil err does nothing. It is for goroutines that the group does
// not wait for.
func (g *Group) Cancel(err error) {
	if err == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		g.err = err
		g.cancel(err)
	}
}

// Err returns the group's first error so far, or nil.
func (g *Group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Stop cancels the group's context (without an error) once its work is
// over, releasing what the context holds. Wait does not: goroutines that
// the group does not wait for may still be using the context.
func (g *Group) Stop() { g.cancel(context.Canceled) }

func (g *Group) run(fn func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.Cancel(fn())
	}()
}

// Context returns the group's context, done when ctx is or when a goroutine
// has failed.
func (g *Group) Context() context.Context { return g.ctx }

// Go runs fn in a new goroutine with the group's context.
func (g *Group) Go(fn func(ctx context.Context) error) {
	g.run(func() error { return fn(g.ctx) })
}

// GoN runs n workers, fn(ctx, 0) … fn(ctx, n-1), each in its own goroutine:
// the worker pool of a replicated stage. An n below one runs one worker,
// fn(ctx, 0). done, if not nil, runs once after the last of the n workers
// has returned, if every one of them returned nil, before Wait returns; a
// stage uses it to close its output queue at the end of its input.
func (g *Group) GoN(n int, fn func(ctx context.Context, worker int) error, done func()) {
	if n < 1 {
		n = 1
	}
	var left atomic.Int64
	var failed atomic.Bool
	left.Store(int64(n))
	for i := range n {
		g.run(func() error {
			err := fn(g.ctx, i)
			if err != nil {
				failed.Store(true)
			}
			if left.Add(-1) == 0 && done != nil && !failed.Load() {
				done()
			}
			return err
		})
	}
}

// Wait waits for every goroutine and returns the first error, if any. Call
// Stop once nothing uses the group's context any more.
func (g *Group) Wait() error {
	g.wg.Wait()
	return g.Err()
}
