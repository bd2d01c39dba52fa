package source_test

// An adversarial audit of the promises of source's doc comments: Send on a
// context that is done before or while it sends, Split's ownership, and
// Validate's refusals.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Send on a context that is already done sends nothing, even where out
// has room for every batch (Source.Run: once ctx is done "it then sends
// nothing more"): it releases every batch and returns the cause.
func TestAuditSendOnDoneContext(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cause := errors.New("stopping")
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(cause)
	for try := range 50 {
		batches := make([]flow.Batch, 3)
		for i := range batches {
			batches[i] = flow.Batch{X: record(mem, []arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Float32}})}
		}
		out := make(chan source.Input, len(batches))
		err := source.Send(ctx, out, batches, func(int) []byte { return nil })
		close(out)
		sent := 0
		for in := range out {
			in.Batch.Release()
			sent++
		}
		if !errors.Is(err, cause) || sent != 0 {
			t.Fatalf("try %d: Send on a done context: %v, %d of 3 batches sent; want the cause, none sent", try, err, sent)
		}
	}
}

// Send hands each batch over with pos(i), called once for each batch
// offered and in order; a context done while Send waits on a full out
// ends it with the cause, the batches not taken released.
func TestAuditSendPositionsAndCancel(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	batches := make([]flow.Batch, 5)
	for i := range batches {
		batches[i] = flow.Batch{X: record(mem, []arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Float32}})}
	}
	cause := errors.New("stopping")
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	out := make(chan source.Input) // unbuffered: each send waits for the receiver
	var calls []int
	done := make(chan error, 1)
	go func() {
		done <- source.Send(ctx, out, batches, func(i int) []byte {
			calls = append(calls, i)
			return []byte{byte(i)}
		})
	}()
	timeout := time.After(10 * time.Second)
	for want := range 2 {
		select {
		case in := <-out:
			if len(in.Pos) != 1 || int(in.Pos[0]) != want {
				t.Errorf("input %d has position %v", want, in.Pos)
			}
			in.Batch.Release()
		case <-timeout:
			t.Fatal("Send did not send")
		}
	}
	cancel(cause)
	select {
	case err := <-done:
		if !errors.Is(err, cause) {
			t.Errorf("Send: %v; want the cause", err)
		}
	case <-timeout:
		t.Fatal("Send did not return after the context was cancelled")
	}
	// pos(2) may have been called for the batch that was offered when
	// the context ended, and no other.
	if len(calls) < 2 || len(calls) > 3 || calls[0] != 0 || calls[1] != 1 || (len(calls) == 3 && calls[2] != 2) {
		t.Errorf("pos was called for %v; want 0, 1 (and 2, offered when ctx ended)", calls)
	}
}

// Split retains the columns it puts in the batch: the batch outlives the
// record; with no labels, Y is nil.
func TestAuditSplitOwnership(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := schema()
	rec := record(mem, s.Fields.Fields())
	b, err := s.Split(rec)
	rec.Release() // the caller's reference, before the batch is used
	if err != nil {
		t.Fatal(err)
	}
	if got := b.X.Column(1).(*array.Float32).Value(1); got != 0.5 {
		t.Errorf("X column a row 1 = %v; want 0.5", got)
	}
	b.Release()

	noLabels := source.Schema{Fields: s.Fields, Inputs: []string{"a", "b", "y"}}
	if err := noLabels.Validate(); err != nil {
		t.Fatal(err)
	}
	rec = record(mem, s.Fields.Fields())
	defer rec.Release()
	b, err = noLabels.Split(rec)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if b.Y != nil || b.X.NumCols() != 3 {
		t.Errorf("Split without labels: X of %d columns, Y %v; want 3 columns, nil", b.X.NumCols(), b.Y)
	}
}

// Validate refuses, naming the column, with the same error every time: a
// field twice, a column listed twice as an input or a label, one that is
// an input and a label, a label that is no field.
func TestAuditValidateNamesColumn(t *testing.T) {
	f32 := arrow.PrimitiveTypes.Float32
	twice := arrow.NewSchema([]arrow.Field{{Name: "a", Type: f32}, {Name: "a", Type: f32}}, nil)
	for _, tc := range []struct {
		s    source.Schema
		want string
	}{
		{source.Schema{Fields: twice, Inputs: []string{"a"}}, `field "a" twice`},
		{source.Schema{Fields: schema().Fields, Inputs: []string{"a", "a"}}, `input column "a" is listed twice`},
		{source.Schema{Fields: schema().Fields, Inputs: []string{"a"}, Labels: []string{"y", "y"}}, `label column "y" is listed twice`},
		{source.Schema{Fields: schema().Fields, Inputs: []string{"a"}, Labels: []string{"y", "a"}}, `column "a" is an input and a label`},
		{source.Schema{Fields: schema().Fields, Inputs: []string{"a"}, Labels: []string{"nope"}}, `label column "nope" is not a field`},
		{source.Schema{Fields: arrow.NewSchema(nil, nil), Inputs: []string{"a"}}, "no fields"},
	} {
		for range 20 { // the same error every time
			if err := tc.s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate(%v): %v; want an error containing %q", tc.s, err, tc.want)
			}
		}
	}
}
