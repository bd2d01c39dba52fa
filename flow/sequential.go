package flow

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// seqRun is a run of the sequential engine: no goroutine of its own; every
// step runs inside Stream.Next.
type seqRun struct {
	ctx    context.Context
	pl     *plan
	passes []pass
	src    *replay

	started, finished bool
	setUp             bool
	err               error // first error, sticky

	mu      sync.Mutex
	begin   time.Time
	elapsed time.Duration
}

func startSequential(ctx context.Context, pl *plan, passes []pass, src *replay) *Stream {
	r := &seqRun{ctx: ctx, pl: pl, passes: passes, src: src, begin: time.Now()}
	return &Stream{next: r.next, close: r.close, stats: r.stats}
}

func (r *seqRun) next(ctx context.Context) (Batch, error) {
	if r.finished {
		return Batch{}, r.errOrEOF()
	}
	if err := context.Cause(r.ctx); err != nil {
		return Batch{}, r.fail(err)
	}
	if ctx.Err() != nil {
		return Batch{}, context.Cause(ctx) // the caller's wait, not the run
	}
	if !r.started {
		r.started = true
		if err := setupAll(r.ctx, r.pl); err != nil {
			return Batch{}, r.fail(err)
		}
		r.setUp = true
		if len(r.passes) == 0 { // a fit with nothing to fit
			return Batch{}, r.finish()
		}
		// Every pass but a transform path's last runs to the end here.
		for i, ps := range r.passes {
			if ps.last {
				break
			}
			if i > 0 {
				if err := r.src.rewind(); err != nil {
					return Batch{}, r.fail(err)
				}
			}
			if err := r.drain(ps); err != nil {
				return Batch{}, r.fail(err)
			}
		}
		last := r.passes[len(r.passes)-1]
		if !last.last {
			return Batch{}, r.finish()
		}
		if len(r.passes) > 1 {
			if err := r.src.rewind(); err != nil {
				return Batch{}, r.fail(err)
			}
		}
	}
	last := r.passes[len(r.passes)-1]
	b, err := r.src.Next(r.ctx)
	if errors.Is(err, io.EOF) {
		return Batch{}, r.finish()
	}
	if err != nil {
		return Batch{}, r.fail(err)
	}
	out, emitted, err := seqProcess(r.ctx, last.stages, last.ops, b)
	if err != nil {
		return Batch{}, r.fail(err)
	}
	if !emitted {
		return r.next(ctx)
	}
	return out, nil
}

// drain runs one whole pass whose output nobody sees.
func (r *seqRun) drain(ps pass) error {
	for {
		b, err := r.src.Next(r.ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		out, _, err := seqProcess(r.ctx, ps.stages, ps.ops, b)
		if err != nil {
			return err
		}
		out.Release()
	}
}

// seqProcess runs b (owned) through stages. It returns the output, owned
// by the caller, and whether there is one (a fit-only last stage emits
// nothing).
func seqProcess(ctx context.Context, stages []*stage, ops []op, b Batch) (Batch, bool, error) {
	cur := b
	for i, st := range stages {
		st.c.in(cur)
		start := time.Now()
		var out Batch
		var err error
		if st.isUnion() {
			out, err = seqUnion(ctx, st, ops[i], cur)
		} else if out, err = apply(ctx, st.step, ops[i], cur); err != nil {
			err = stepError(st.path, st.step, ops[i].String(), &cur, err)
		}
		st.c.busy.Add(int64(time.Since(start)))
		if err != nil {
			cur.Release()
			return Batch{}, false, err
		}
		if ops[i] == opFit {
			cur.Release()
			return Batch{}, false, nil
		}
		out.Seq, out.Epoch = cur.Seq, cur.Epoch
		cur.Release()
		st.c.out(out)
		cur = out
	}
	return cur, true, nil
}

func seqUnion(ctx context.Context, st *stage, o op, in Batch) (Batch, error) {
	outs := make([]Batch, 0, len(st.branches))
	defer func() {
		for _, b := range outs {
			b.Release()
		}
	}()
	for _, br := range st.branches {
		in.Retain()
		out, _, err := seqProcess(ctx, br.stages, branchOps(br, o), in)
		if err != nil {
			return Batch{}, err
		}
		outs = append(outs, out)
	}
	return joinBranches(st.names, outs)
}

func (r *seqRun) errOrEOF() error {
	if r.err != nil {
		return r.err
	}
	return io.EOF
}

// finish ends a successful run: teardown, and the spill is removed.
func (r *seqRun) finish() error {
	r.end()
	return r.errOrEOF()
}

func (r *seqRun) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	r.end()
	return r.err
}

func (r *seqRun) end() {
	if r.finished {
		return
	}
	r.finished = true
	var errs []error
	if r.setUp {
		errs = append(errs, teardownAll(r.ctx, r.pl))
	}
	errs = append(errs, r.src.close())
	if err := errors.Join(errs...); err != nil && r.err == nil {
		r.err = err
	}
	r.mu.Lock()
	r.elapsed = time.Since(r.begin)
	r.mu.Unlock()
}

func (r *seqRun) close() error {
	if !r.finished {
		r.end()
		if r.err != nil && !quiet(r.err) {
			return r.err
		}
		return nil
	}
	if quiet(r.err) {
		return nil
	}
	return r.err
}

func (r *seqRun) stats() Stats {
	r.mu.Lock()
	elapsed := r.elapsed
	if elapsed == 0 {
		elapsed = time.Since(r.begin)
	}
	r.mu.Unlock()
	return r.pl.stats(elapsed)
}
