package serve

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/flow"
)

func TestModelsPublishAcquireRelease(t *testing.T) {
	ctx := deadline(t)
	tr := &tracker{}
	m := NewModels(ModelOptions{Pool: 2, Log: quiet})
	if _, err := m.Acquire(); !errors.Is(err, ErrNoModel) {
		t.Fatalf("Acquire before Publish: %v; want ErrNoModel", err)
	}
	if got := m.Version(); got != 0 {
		t.Fatalf("Version before Publish = %d; want 0", got)
	}
	if err := m.Publish(newPipe(t, tr, 1, 8), 1); err != nil {
		t.Fatal(err)
	}
	v1, err := m.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if v1.ID() != 1 || m.Version() != 1 {
		t.Fatalf("acquired version %d, Version %d; want 1, 1", v1.ID(), m.Version())
	}
	if err := m.Publish(newPipe(t, tr, 2, 8), 2); err != nil {
		t.Fatal(err)
	}
	if m.Version() != 2 {
		t.Fatalf("Version after the second Publish = %d; want 2", m.Version())
	}
	// v1 is superseded but held: still set up, and usable.
	if _, downs := tr.teardowns(1); downs != 0 {
		t.Fatalf("version 1 torn down %d times while a request holds it; want 0", downs)
	}
	p, err := v1.Take(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v1.Put(p)
	v1.Release(ctx)
	if values, downs := tr.teardowns(1); values != 1 || downs != 1 {
		t.Fatalf("version 1 after its last release: %d step values, %d teardowns; want 1, 1", values, downs)
	}
	if _, downs := tr.teardowns(2); downs != 0 {
		t.Fatalf("current version 2 torn down %d times; want 0", downs)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Acquire(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after Close: %v; want ErrClosed", err)
	}
	if err := m.Publish(newPipe(t, nil, 3, 8), 3); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v; want ErrClosed", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v; want nil", err)
	}
	tr.check(t)
}

func TestModelsPublishSetupFails(t *testing.T) {
	tr := &tracker{}
	m := NewModels(ModelOptions{Log: quiet})
	defer m.Close()
	if err := m.Publish(newPipe(t, tr, 1, 8), 1); err != nil {
		t.Fatal(err)
	}
	bad := newPipe(t, nil, 2, 8)
	bad.Step("add").(*addStep).failSetup = true
	err := m.Publish(bad, 2)
	if err == nil || !contains(err.Error(), "version 2", "no device", "version 1 stays") {
		t.Fatalf("Publish of a pipeline whose Setup fails: %v; want an error naming version 2, the cause and that version 1 stays", err)
	}
	if m.Version() != 1 {
		t.Fatalf("Version after a failed Publish = %d; want 1", m.Version())
	}
	v, err := m.Acquire()
	if err != nil || v.ID() != 1 {
		t.Fatalf("Acquire after a failed Publish: version %v, %v; want 1", v, err)
	}
	v.Release(t.Context())
	if err := m.Publish(nil, 3); err == nil {
		t.Fatal("Publish(nil): no error")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	tr.check(t)
}

func TestModelsPool(t *testing.T) {
	ctx := deadline(t)
	tr := &tracker{}
	m := NewModels(ModelOptions{Pool: 3, Log: quiet})
	if err := m.Publish(newPipe(t, tr, 1, 8), 1); err != nil {
		t.Fatal(err)
	}
	v, err := m.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if v.Copies() != 1 {
		t.Fatalf("copies after Publish = %d; want 1 (the published pipeline)", v.Copies())
	}
	seen := map[*flow.Pipeline]bool{}
	var taken []*flow.Pipeline
	for i := range 3 {
		p, err := v.Take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("Take %d gave a copy already taken", i)
		}
		seen[p] = true
		taken = append(taken, p)
	}
	if v.Copies() != 3 {
		t.Fatalf("copies after 3 Takes = %d; want 3", v.Copies())
	}
	steps := map[flow.Step]bool{}
	for _, p := range taken {
		steps[p.Step("add")] = true
	}
	if len(steps) != 3 {
		t.Fatalf("3 copies share their step: %d distinct add steps; want 3", len(steps))
	}
	// All busy: a fourth waits, until its context ends...
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	_, err = v.Take(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Take with every copy busy: %v; want context.DeadlineExceeded", err)
	}
	if v.Copies() != 3 {
		t.Fatalf("copies after a waiting Take = %d; want 3", v.Copies())
	}
	// ...or until one is given back.
	got := make(chan *flow.Pipeline)
	go func() {
		p, err := v.Take(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- p
	}()
	time.Sleep(10 * time.Millisecond)
	v.Put(taken[1])
	if p := <-got; p != taken[1] {
		t.Fatalf("the waiting Take got %p; want the copy given back %p", p, taken[1])
	}
	for _, p := range taken { // taken[1] is the waiting Take's now
		v.Put(p)
	}
	v.Release(ctx)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if values, downs := tr.teardowns(1); values != 3 || downs != 3 {
		t.Fatalf("after Close: %d step values, %d teardowns; want 3, 3 (each copy once)", values, downs)
	}
	tr.check(t)
}

// heldVersion returns models with version 1 (a one-copy pool of a
// pipeline that tr tracks) published, and that version acquired.
func heldVersion(t *testing.T) (*Models, *tracker, *Version) {
	t.Helper()
	tr := &tracker{}
	m := NewModels(ModelOptions{Pool: 1, Log: quiet})
	if err := m.Publish(newPipe(t, tr, 1, 8), 1); err != nil {
		t.Fatal(err)
	}
	v, err := m.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	return m, tr, v
}

func TestModelsCloseWaitsForRequests(t *testing.T) {
	ctx := deadline(t)
	m, tr, v := heldVersion(t)
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a request holds version 1", err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := m.Acquire(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire during Close: %v; want ErrClosed", err)
	}
	if _, downs := tr.teardowns(1); downs != 0 {
		t.Fatalf("version 1 torn down %d times while held; want 0", downs)
	}
	v.Release(ctx)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return after the last release")
	}
	tr.check(t)
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// uncopyable has resources (Setup) but is no flow.Copier: flow.Copy
// refuses it.
type uncopyable struct{ up atomic.Int64 }

func (u *uncopyable) Setup(context.Context) error    { u.up.Add(1); return nil }
func (u *uncopyable) Teardown(context.Context) error { u.up.Add(-1); return nil }
func (u *uncopyable) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

// A version whose pipeline cannot be copied serves its requests on the
// published pipeline, one at a time, and says why once.
func TestModelsPoolWithoutCopies(t *testing.T) {
	ctx := deadline(t)
	var logs bytes.Buffer
	m := NewModels(ModelOptions{Pool: 3, Log: newTextLog(&logs)})
	step := &uncopyable{}
	p, err := flow.NewPipeline([]flow.Node{flow.Named("res", step)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Publish(p, 1); err != nil {
		t.Fatal(err)
	}
	v, err := m.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	first, err := v.Take(ctx)
	if err != nil || first != p {
		t.Fatalf("first Take: %p, %v; want the published pipeline %p", first, err, p)
	}
	got := make(chan *flow.Pipeline)
	go func() {
		q, err := v.Take(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- q
	}()
	select {
	case q := <-got:
		t.Fatalf("second Take returned %p while the only copy is busy", q)
	case <-time.After(30 * time.Millisecond):
	}
	v.Put(first)
	if q := <-got; q != p {
		t.Fatalf("second Take got %p; want the published pipeline %p", q, p)
	}
	v.Put(p)
	if v.Copies() != 1 {
		t.Fatalf("copies = %d; want 1", v.Copies())
	}
	for range 3 { // no more attempts, no more log lines
		q, err := v.Take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v.Put(q)
	}
	if n := strings.Count(logs.String(), "msg=copy"); n != 1 || !strings.Contains(logs.String(), "uncopyable") {
		t.Fatalf("log %q: %d copy lines; want 1 naming the step type", logs.String(), n)
	}
	v.Release(ctx)
	closeWithin(t, ctx, m)
	if up := step.up.Load(); up != 0 {
		t.Fatalf("step set up %d more times than torn down; want 0", up)
	}
}

// badTeardown fails its Teardown.
type badTeardown struct{ uncopyable }

func (b *badTeardown) Teardown(ctx context.Context) error {
	_ = b.uncopyable.Teardown(ctx)
	return errors.New("device lost")
}

// A superseded version's teardown error is logged; the current one's is
// Close's.
func TestModelsTeardownErrors(t *testing.T) {
	ctx := deadline(t)
	var logs bytes.Buffer
	m := NewModels(ModelOptions{Pool: 1, Log: newTextLog(&logs)})
	for v := int64(1); v <= 2; v++ {
		p, err := flow.NewPipeline([]flow.Node{flow.Named("dev", &badTeardown{})})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Publish(p, v); err != nil {
			t.Fatal(err)
		}
	}
	if !contains(logs.String(), "msg=release", "version=1", "device lost") {
		t.Fatalf("log %q; want the release of version 1 with its error", logs.String())
	}
	done := make(chan error, 1)
	go func() { done <- m.Close() }()
	select {
	case err := <-done:
		if err == nil || !contains(err.Error(), "version 2", "device lost") {
			t.Fatalf("Close: %v; want the teardown error of version 2", err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}
}
