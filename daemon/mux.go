package daemon

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
)

// tagged is an input of source src, or, with end set, the end of its Run.
type tagged struct {
	src int
	in  source.Input
	end bool
	err error
}

// mux is the flow.Source of the daemon's endless fit: it hands over the
// sources' batches in the order they arrive, remembers each source's
// position after the last batch it handed over, and asks the runner for
// a cut (flow.ErrCut) when one is due, when every source has ended (the
// drain's final cut) and never twice in a row.
//
// Next and the runner's OnCut run on one goroutine (the runner's feeder),
// so the positions need no lock.
type mux struct {
	srcs    []source.Source
	in      chan tagged
	pos     [][]byte // after the last batch handed over, per source
	running int

	due      time.Time // when the next cut is due (zero: none)
	timer    *time.Timer
	batches  int64 // handed over since the last cut
	every    int64 // cut after this many batches; 0: no limit
	cut      bool  // the last Next returned ErrCut
	again    bool  // cut when due even if no batch came since the last cut
	final    bool  // every source has ended: cut once more, then io.EOF
	finalCut bool  // that cut has been asked for
	ended    chan struct{}

	rows func(src string, n int64) // counts the rows handed over
}

func newMux(srcs []source.Source, every int64, rows func(string, int64)) *mux {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &mux{srcs: srcs, in: make(chan tagged, len(srcs)), pos: make([][]byte, len(srcs)),
		running: len(srcs), timer: t, every: every, rows: rows, ended: make(chan struct{})}
}

// start runs every source from its position: for each, one goroutine runs
// the source and one forwards its inputs, then the end of its Run — in
// that order, so that no input comes after the end. wg tracks them.
func (m *mux) start(ctx context.Context, from map[string][]byte, drain <-chan struct{}, wg *sync.WaitGroup) {
	for i, s := range m.srcs {
		m.pos[i] = from[s.Name()]
		out := make(chan source.Input)
		ended := make(chan error, 1)
		wg.Add(2)
		go func() {
			defer wg.Done()
			err := s.Run(ctx, from[s.Name()], drain, out)
			if err != nil && ctx.Err() == nil {
				err = fmt.Errorf("source %q: %w", s.Name(), err)
			} else if ctx.Err() != nil {
				err = nil
			}
			ended <- err
			close(out)
		}()
		go func() {
			defer wg.Done()
			for in := range out {
				select {
				case m.in <- tagged{src: i, in: in}:
				case <-ctx.Done():
					in.Batch.Release()
					for in := range out {
						in.Batch.Release()
					}
					return
				}
			}
			select {
			case m.in <- tagged{src: i, end: true, err: <-ended}:
			case <-ctx.Done():
			}
		}()
	}
}

// retry asks for a cut at at even if no batch comes before.
func (m *mux) retry(at time.Time) {
	m.schedule(at)
	m.again = true
}

// schedule sets when the next cut is due.
func (m *mux) schedule(at time.Time) {
	m.due = at
	m.timer.Stop()
	if !at.IsZero() {
		m.timer.Reset(time.Until(at))
	}
}

// Next is flow.Source's.
func (m *mux) Next(ctx context.Context) (flow.Batch, error) {
	if m.final {
		if !m.finalCut {
			m.finalCut, m.cut = true, true
			return flow.Batch{}, flow.ErrCut
		}
		return flow.Batch{}, io.EOF
	}
	if (!m.cut || m.again) && (m.every > 0 && m.batches >= m.every || !m.due.IsZero() && !time.Now().Before(m.due)) {
		m.cut, m.again = true, false
		return flow.Batch{}, flow.ErrCut
	}
	for {
		var fire <-chan time.Time
		if !m.cut || m.again {
			fire = m.timer.C
		}
		select {
		case t := <-m.in:
			if t.end {
				if t.err != nil {
					return flow.Batch{}, t.err
				}
				m.running--
				if m.running == 0 {
					m.final, m.finalCut, m.cut = true, true, true
					close(m.ended)
					return flow.Batch{}, flow.ErrCut
				}
				continue
			}
			m.cut = false
			m.pos[t.src] = t.in.Pos
			m.batches++
			if m.rows != nil {
				m.rows(m.srcs[t.src].Name(), t.in.Batch.Rows())
			}
			return t.in.Batch, nil
		case <-fire:
			m.cut, m.again = true, false
			return flow.Batch{}, flow.ErrCut
		case <-ctx.Done():
			return flow.Batch{}, context.Cause(ctx)
		}
	}
}

// positions copies the positions, by source name, for a checkpoint.
func (m *mux) positions() map[string][]byte {
	p := make(map[string][]byte, len(m.srcs))
	for i, s := range m.srcs {
		if m.pos[i] != nil {
			p[s.Name()] = append([]byte(nil), m.pos[i]...)
		}
	}
	return p
}

// discard releases what is left in the mux after the fit has ended.
func (m *mux) discard() {
	for {
		select {
		case t := <-m.in:
			if !t.end {
				t.in.Batch.Release()
			}
		default:
			return
		}
	}
}
