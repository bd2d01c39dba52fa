package flow

import (
	"context"
	"errors"
	"fmt"
)

// op is what a stage does with each batch in one pass.
type op uint8

const (
	opTransform    op = iota // transform only
	opFitTransform           // fit, and pass the transformed batch on
	opFit                    // fit only; the batch goes no further
	opSkip                   // a fit-only stage past its FitEpochs: nothing
)

func (o op) String() string {
	switch o {
	case opFitTransform:
		return "fit-transform"
	case opFit:
		return "fit"
	case opSkip:
		return "skip"
	}
	return "transform"
}

// apply runs one operation of s on in (borrowed), recovering panics. For
// opFit the returned batch is empty. Errors are not yet wrapped with the
// step's name.
func apply(ctx context.Context, s Step, o op, in Batch) (out Batch, err error) {
	out, err = call(ctx, s, o, in)
	return check(o, out, err)
}

// check is apply's check of what a step returned: an error releases the
// batch, and a batch with neither X nor Y, or with X and Y of different
// row counts, is an error.
func check(o op, out Batch, err error) (Batch, error) {
	if err != nil {
		out.Release()
		return Batch{}, err
	}
	if o == opFit {
		return out, nil
	}
	if out.X == nil && out.Y == nil {
		return Batch{}, errors.New("returned an empty batch (X and Y nil) and no error")
	}
	if out.X != nil && out.Y != nil && out.X.NumRows() != out.Y.NumRows() {
		x, y := out.X.NumRows(), out.Y.NumRows()
		out.Release()
		return Batch{}, fmt.Errorf("returned X with %d rows and Y with %d rows; X and Y must have the same number of rows", x, y)
	}
	return out, nil
}

// call is apply's unchecked part: the boundary where user code runs and
// its panics are recovered.
func call(ctx context.Context, s Step, o op, in Batch) (out Batch, err error) {
	defer recovered(&err)
	return invoke(ctx, s, o, in)
}

// invoke is call without the recovery, for a caller that recovers the
// panics of the steps it runs itself: a streaming worker does, once for
// its whole life rather than once per batch (see passRun.work).
func invoke(ctx context.Context, s Step, o op, in Batch) (Batch, error) {
	switch o {
	case opTransform:
		return s.Transform(ctx, in)
	case opFitTransform:
		if ft, ok := s.(FitTransformer); ok {
			return ft.FitTransform(ctx, in)
		}
		if f, ok := s.(Fitter); ok {
			if err := f.Fit(ctx, in); err != nil {
				return Batch{}, err
			}
		}
		return s.Transform(ctx, in)
	case opFit:
		switch f := s.(type) {
		case Fitter:
			return Batch{}, f.Fit(ctx, in)
		case FitTransformer:
			out, err := f.FitTransform(ctx, in)
			out.Release()
			return Batch{}, err
		}
	}
	return Batch{}, nil
}
