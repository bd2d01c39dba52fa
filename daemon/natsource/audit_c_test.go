package natsource_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/daemon/natsource"
	"github.com/penstock-ml/penstock/daemon/source"
)

// Run with a context already done returns its cause, for JetStream (the
// consumer is made with that context) and core NATS alike, and sends
// nothing.
func TestAuditDoneContextCause(t *testing.T) {
	s := startServer(t)
	p := newPublisher(t, s)
	p.publish(t, "in.a", body(t, testSchema().Fields, 0, 1, 2))
	for _, o := range []natsource.Options{
		{URL: s.ClientURL(), Stream: "S"},
		{URL: s.ClientURL(), Stream: "S", Subject: "in.a"},
		{URL: s.ClientURL(), Subject: "in.a"},
	} {
		src := newSource(t, o)
		cause := errors.New("stop now")
		ctx, cancel := context.WithCancelCause(t.Context())
		cancel(cause)
		out := make(chan source.Input, 10)
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx, nil, nil, out) }()
		select {
		case err := <-done:
			if !errors.Is(err, cause) {
				t.Errorf("%+v: Run on a done context: %v; want its cause", o, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%+v: Run on a done context did not return in 10 s", o)
		}
		if len(out) != 0 {
			t.Errorf("%+v: Run on a done context sent %d inputs", o, len(out))
		}
	}
}
