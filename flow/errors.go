package flow

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sourcegraph/conc/panics"
)

// ErrClosed is the cause with which Stream.Close cancels a run: the
// cause is the run's own error, for which errors.Is(cause, ErrClosed)
// holds (compare with errors.Is, not ==). An error that wraps another
// stream's ErrClosed is not this run's: a step or a cancellation cause
// that carries one fails the run (see Stream.Close).
var ErrClosed = errors.New("penstock: stream closed")

// closedError is the cause with which Close cancels one run, made for each
// run: it is ErrClosed (errors.Is), and it is that run's own, so that the
// run can tell its own Close from an error that wraps another stream's
// ErrClosed (a step that reads a run of its own, a caller's cause), which
// is a failure. It is not empty, so that two of them are never one
// pointer.
type closedError struct{ _ byte }

func newClosedError() error { return &closedError{} }

func (*closedError) Error() string { return ErrClosed.Error() }

func (*closedError) Is(target error) bool { return target == ErrClosed }

// StepError is the error of a step, as returned by the runners: it names the
// step by its path in the pipeline (printed "outer/inner"), its type, the
// operation and the sequence number of the batch. Unwrap gives the step's
// own error; a panic in a step arrives as a *PanicError.
type StepError struct {
	Path   Path   // from the outermost pipeline
	Type   string // the step's Go type, as %T prints it
	Op     string // "fit", "transform", "fit-transform", "setup", "teardown", "replica", "merge", "copy", "rebuild"
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

// Format prints Error for %v and %s; %+v adds the stack of a panic that
// the error carries (see PanicError).
func (e *StepError) Format(f fmt.State, verb rune) {
	var pe *PanicError
	switch {
	case verb == 'v' && f.Flag('+') && errors.As(e.Err, &pe):
		fmt.Fprintf(f, "%s\n%s", e.Error(), pe.Stack)
	case verb == 'q':
		fmt.Fprintf(f, "%q", e.Error())
	default:
		io.WriteString(f, e.Error())
	}
}

// PanicError is a panic recovered from a step, with the stack of the
// goroutine that panicked. Error is one line; %+v prints the stack too.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return "panic: " + oneLine(fmt.Sprint(e.Value)) }

// oneLine writes the line breaks of s as \n, so that an error stays one
// line whatever a panic value prints.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\n`).Replace(s)
}

// Format prints Error for %v and %s, and Error followed by the stack for
// %+v.
func (e *PanicError) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "%s\n%s", e.Error(), e.Stack)
	case verb == 'q':
		fmt.Fprintf(f, "%q", e.Error())
	default:
		io.WriteString(f, e.Error())
	}
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
		*err = panicError(v)
	}
}

// panicError is the error of a recovered panic, v, with the stack of the
// panicking goroutine; call it in the deferred function that recovered.
func panicError(v any) *PanicError {
	r := panics.NewRecovered(2, v)
	return &PanicError{Value: r.Value, Stack: r.Stack}
}

// guardWalk calls fn, which walks step trees (a composite's Children and
// Active, a FitPather's methods run inside), and returns its error, or
// wrap of the *PanicError of a panic in it: in a goroutine of a run such a
// panic would end the program, and in a runner's caller it is the run's
// error like any other of a step.
func guardWalk(fn func() error, wrap func(*PanicError) error) error {
	var p error
	err := func() (err error) {
		defer recovered(&p)
		return fn()
	}()
	if pe, ok := p.(*PanicError); ok {
		return wrap(pe)
	}
	return err
}

// guardStage is guardWalk for a walk of the tree of the stage at path,
// whose panic is the error of that step for op.
func guardStage(path Path, s Step, op string, fn func() error) error {
	return guardWalk(fn, func(pe *PanicError) error { return stepError(path, s, op, nil, pe) })
}

// stepError wraps err, if not nil, in a *StepError for the step at path.
// An err that is itself a *StepError comes from a composite about one of
// its children, with a path relative to the composite: it gets path as a
// prefix instead.
func stepError(path Path, s Step, op string, b *Batch, err error) error {
	if err == nil {
		return nil
	}
	if se, ok := err.(*StepError); ok {
		cp := *se
		cp.Path = join(path, se.Path)
		return &cp
	}
	e := &StepError{Path: path, Type: fmt.Sprintf("%T", s), Op: op, Err: err}
	if b != nil {
		e.Seq, e.HasSeq = b.Seq, true
	}
	return e
}
