// Package ctxerr joins a context's cancellation cause to the errors that
// report the cancellation, so that errors.Is(err, cause) holds however a
// callee reported it: with ctx.Err() (context.Canceled or
// DeadlineExceeded, which lose the cause) or with the cause itself.
package ctxerr

import (
	"context"
	"errors"
	"fmt"
)

// With returns err, with context.Cause(ctx) joined when err reports ctx's
// cancellation (errors.Is(err, ctx.Err())) without the cause. It returns
// err as it is when err is nil, ctx is not done, err already carries the
// cause, or err is about something else.
func With(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	cause := context.Cause(ctx)
	if errors.Is(err, cause) || !errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("%w (cause: %w)", err, cause)
}

// Err is ctx.Err() with its cause joined (With), nil while ctx is not
// done.
func Err(ctx context.Context) error { return With(ctx, ctx.Err()) }
