package flow

import (
	"errors"
	"fmt"

	"github.com/sourcegraph/conc/panics"
)

// ErrClosed is the cause with which Stream.Close cancels a run.
var ErrClosed = errors.New("penstock: stream closed")

// StepError is the error of a step, as returned by the runners: it names the
// step by its path in the pipeline ("outer/inner"), its type, the operation
// and the sequence number of the batch. Unwrap gives the step's own error;
// a panic in a step arrives as a *PanicError.
type StepError struct {
	Path   string // names from the outermost pipeline, joined by "/"
	Type   string // the step's Go type, as %T prints it
	Op     string // "fit", "transform", "fit-transform", "setup", "teardown", "merge"
	Seq    int64  // the batch's Seq, where HasSeq
	HasSeq bool
	Err    error
}

func (e *StepError) Error() string {
	if e.HasSeq {
		return fmt.Sprintf("penstock: step %q (%s): %s batch %d: %v", e.Path, e.Type, e.Op, e.Seq, e.Err)
	}
	return fmt.Sprintf("penstock: step %q (%s): %s: %v", e.Path, e.Type, e.Op, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// PanicError is a panic recovered from a step, with the stack of the
// goroutine that panicked.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %v\n%s", e.Value, e.Stack)
}

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

// guard calls fn, turning a panic into a *PanicError. The hot path (a
// step's Transform or Fit) recovers with recovered instead, to save the
// closure.
func guard(fn func() error) (err error) {
	defer recovered(&err)
	return fn()
}

// recovered, deferred where user code is called, turns a panic into a
// *PanicError in *err, with the panicking goroutine's stack.
func recovered(err *error) {
	if v := recover(); v != nil {
		r := panics.NewRecovered(1, v)
		*err = &PanicError{Value: r.Value, Stack: r.Stack}
	}
}

func stepError(path string, s Step, op string, b *Batch, err error) error {
	var se *StepError
	if errors.As(err, &se) && se.Path == path {
		return err
	}
	e := &StepError{Path: path, Type: fmt.Sprintf("%T", s), Op: op, Err: err}
	if b != nil {
		e.Seq, e.HasSeq = b.Seq, true
	}
	return e
}
