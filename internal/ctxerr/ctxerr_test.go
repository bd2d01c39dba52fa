package ctxerr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/penstock-ml/penstock/internal/ctxerr"
)

func TestWith(t *testing.T) {
	cause := errors.New("shutting down")
	done, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	plain, stop := context.WithCancel(context.Background())
	stop()
	for _, c := range []struct {
		name      string
		ctx       context.Context
		err       error
		want      []error // errors.Is must hold for each
		unchanged bool
	}{
		{"nil error", done, nil, nil, true},
		{"ctx not done", context.Background(), context.Canceled, []error{context.Canceled}, true},
		{"ctx.Err()", done, context.Canceled, []error{context.Canceled, cause}, false},
		{"wrapped ctx.Err()", done, fmt.Errorf("step: %w", context.Canceled), []error{context.Canceled, cause}, false},
		{"the cause already", done, fmt.Errorf("step: %w", cause), []error{cause}, true},
		{"another error", done, io.ErrUnexpectedEOF, []error{io.ErrUnexpectedEOF}, true},
		{"plain cancel", plain, context.Canceled, []error{context.Canceled}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := ctxerr.With(c.ctx, c.err)
			if c.unchanged && got != c.err {
				t.Errorf("With = %v; want err unchanged (%v)", got, c.err)
			}
			for _, w := range c.want {
				if !errors.Is(got, w) {
					t.Errorf("With = %v; errors.Is(_, %v) = false", got, w)
				}
			}
		})
	}
	if err := ctxerr.Err(context.Background()); err != nil {
		t.Errorf("Err of a live ctx = %v; want nil", err)
	}
	if err := ctxerr.Err(done); !errors.Is(err, cause) || !errors.Is(err, context.Canceled) {
		t.Errorf("Err = %v; want context.Canceled with the cause", err)
	}
}

func ExampleErr() {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("drain timeout"))
	fmt.Println(ctxerr.Err(ctx))
	// Output: context canceled (cause: drain timeout)
}
