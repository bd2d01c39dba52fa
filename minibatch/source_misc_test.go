package minibatch_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

func oneColumn(mem memory.Allocator, name string, v ...float64) arrow.RecordBatch {
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	b.AppendValues(v, nil)
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: name, Type: arrow.PrimitiveTypes.Float64}}, nil), []arrow.Array{col}, int64(len(v)))
}

func TestRolesSplit(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema, recs := srcTable(mem, 10, 10, 3)
	defer releaseAll(recs)
	rec := recs[0]
	for _, tc := range []struct {
		roles   minibatch.Roles
		x, y    []string
		wantErr string
	}{
		{minibatch.Roles{}, []string{"x0", "x1", "x2", "y", "s"}, nil, ""},
		{minibatch.Roles{Labels: []string{"y"}}, []string{"x0", "x1", "x2", "s"}, []string{"y"}, ""},
		{minibatch.Roles{Inputs: []string{"s", "x1"}, Labels: []string{"y", "x0"}}, []string{"s", "x1"}, []string{"y", "x0"}, ""},
		{minibatch.Roles{Labels: []string{"q"}}, nil, nil, `label column "q" not found; have "x0", "x1", "x2", "y", "s"`},
		{minibatch.Roles{Inputs: []string{"x0", "x0"}}, nil, nil, `column "x0" named twice as input`},
		{minibatch.Roles{Inputs: []string{"y"}, Labels: []string{"y"}}, nil, nil, `column "y" is both an input and a label`},
	} {
		x, y, err := tc.roles.Split(rec)
		if tc.wantErr != "" {
			wantErr(t, err, tc.wantErr)
			continue
		}
		if err != nil {
			t.Fatalf("%+v: %v", tc.roles, err)
		}
		for i, name := range tc.x {
			if x.ColumnName(i) != name || x.Column(i) != rec.Column(schema.FieldIndices(name)[0]) {
				t.Errorf("%+v: X column %d is %q; want %q, the same array (no copy)", tc.roles, i, x.ColumnName(i), name)
			}
		}
		if (y == nil) != (tc.y == nil) {
			t.Errorf("%+v: Y = %v; want columns %v", tc.roles, y, tc.y)
		}
		for i, name := range tc.y {
			if y.ColumnName(i) != name {
				t.Errorf("%+v: Y column %d is %q; want %q", tc.roles, i, y.ColumnName(i), name)
			}
		}
		x.Release()
		if y != nil {
			y.Release()
		}
	}
}

func TestChannelSource(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	ch := make(chan flow.Batch)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for i := range 3 {
			b := flow.Batch{Seq: 99, Epoch: 7, X: oneColumn(mem, "x", float64(i))}
			select {
			case ch <- b:
			case <-ctx.Done():
				b.Release()
				return
			}
		}
	}()
	src := minibatch.FromChannel(ch)
	if src.Replayable() {
		t.Error("Replayable() = true; want false")
	}
	var _ flow.Source = src
	if _, ok := any(src).(flow.Rewinder); ok {
		t.Error("ChannelSource implements flow.Rewinder; want not")
	}
	got := drainSource(t, ctx, src)
	<-done
	if len(got) != 3 {
		t.Errorf("got %d batches; want 3", len(got))
	}
	for i, b := range got {
		if v := b.X.Column(0).(*array.Float64).Value(0); v != float64(i) {
			t.Errorf("batch %d holds %v; want %d", i, v, i)
		}
	}
	releaseBatches(got)
	if _, err := src.Next(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("Next after close = %v; want io.EOF", err)
	}

	// Next honours ctx while it waits.
	idle := minibatch.FromChannel(make(chan flow.Batch))
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := idle.Next(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next on an idle channel = %v; want context.DeadlineExceeded", err)
	}
}

func TestGenerator(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	gen := minibatch.Generate(func(ctx context.Context, seq int64) (flow.Batch, error) {
		if seq == 4 {
			return flow.Batch{}, io.EOF
		}
		return flow.Batch{X: oneColumn(mem, "x", float64(seq*seq))}, nil
	})
	var _ flow.Rewinder = gen
	for pass := range 2 {
		got := drainSource(t, ctx, gen)
		if len(got) != 4 {
			t.Errorf("pass %d: %d batches; want 4", pass, len(got))
		}
		for i, b := range got {
			if v := b.X.Column(0).(*array.Float64).Value(0); v != float64(i*i) {
				t.Errorf("pass %d batch %d holds %v; want %d", pass, i, v, i*i)
			}
		}
		releaseBatches(got)
		if err := gen.Rewind(); err != nil {
			t.Fatal(err)
		}
	}

	boom := errors.New("boom")
	bad := minibatch.Generate(func(ctx context.Context, seq int64) (flow.Batch, error) {
		if seq == 1 {
			return flow.Batch{}, boom
		}
		return flow.Batch{X: oneColumn(mem, "x", 1)}, nil
	})
	err := nextErr(ctx, bad)
	if !errors.Is(err, boom) {
		t.Errorf("error %v; want it to wrap %v", err, boom)
	}
	wantErr(t, err, "generator: batch 1")
	if _, again := bad.Next(ctx); !errors.Is(again, boom) {
		t.Errorf("Next after the error = %v; want the same error", again)
	}
}
