package serve

import (
	"testing"
	"time"
)

// A second Close, while the first waits for a request, returns only once
// every version is torn down, as the first does: a caller that closes
// from a signal handler and from a deferred call alike may rely on
// either.
func TestAuditSecondCloseWaitsForTeardown(t *testing.T) {
	ctx := deadline(t)
	m, tr, v := heldVersion(t)
	first := make(chan error, 1)
	go func() { first <- m.Close() }()
	time.Sleep(20 * time.Millisecond) // the first Close is waiting for v
	second := make(chan error, 1)
	go func() { second <- m.Close() }()
	waits := []chan error{first, second}
	select {
	case err := <-second:
		if _, downs := tr.teardowns(1); downs == 0 {
			t.Errorf("second Close returned (%v) while a request holds version 1, before its teardown", err)
		}
		waits = waits[:1]
	case <-time.After(50 * time.Millisecond):
	}
	v.Release(ctx)
	for _, ch := range waits {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("Close did not return after the last release")
		}
	}
	tr.check(t)
}
