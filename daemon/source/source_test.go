package source_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
)

func schema() source.Schema {
	return source.Schema{
		Fields: arrow.NewSchema([]arrow.Field{
			{Name: "a", Type: arrow.PrimitiveTypes.Float32},
			{Name: "b", Type: arrow.PrimitiveTypes.Float32},
			{Name: "y", Type: arrow.PrimitiveTypes.Int64},
		}, nil),
		Inputs: []string{"b", "a"}, Labels: []string{"y"},
	}
}

func record(mem memory.Allocator, fields []arrow.Field) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, arrow.NewSchema(fields, nil))
	defer b.Release()
	for i, f := range fields {
		switch fb := b.Field(i).(type) {
		case *array.Float32Builder:
			fb.AppendValues([]float32{float32(i), float32(i) + 0.5}, nil)
		case *array.Int64Builder:
			fb.AppendValues([]int64{7, 8}, nil)
		default:
			panic(f.Type)
		}
	}
	return b.NewRecordBatch()
}

func TestValidate(t *testing.T) {
	if err := schema().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]source.Schema{
		"no fields":       {Inputs: []string{"a"}},
		"no inputs":       {Fields: schema().Fields},
		"unknown input":   {Fields: schema().Fields, Inputs: []string{"c"}},
		"input and label": {Fields: schema().Fields, Inputs: []string{"a"}, Labels: []string{"a"}},
		"unknown label":   {Fields: schema().Fields, Inputs: []string{"a"}, Labels: []string{"z"}},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// Check names the first column that does not match, and what it wanted.
func TestCheck(t *testing.T) {
	f32, i64 := arrow.PrimitiveTypes.Float32, arrow.PrimitiveTypes.Int64
	for _, tc := range []struct {
		fields       []arrow.Field
		column, want string
	}{
		{[]arrow.Field{{Name: "y", Type: i64}, {Name: "b", Type: f32}, {Name: "a", Type: f32}}, "", ""}, // any order
		{[]arrow.Field{{Name: "a", Type: f32}, {Name: "y", Type: i64}}, "b", "missing"},
		{[]arrow.Field{{Name: "a", Type: f32}, {Name: "b", Type: i64}, {Name: "y", Type: i64}}, "b", "int64"},
		{[]arrow.Field{{Name: "a", Type: f32}, {Name: "b", Type: f32}, {Name: "y", Type: i64}, {Name: "extra", Type: f32}}, "extra", "float32"},
		{[]arrow.Field{{Name: "a", Type: f32}, {Name: "a", Type: f32}, {Name: "b", Type: f32}, {Name: "y", Type: i64}}, "a", "2 columns"},
	} {
		err := schema().Check(arrow.NewSchema(tc.fields, nil))
		if tc.column == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.fields, err)
			}
			continue
		}
		var se *source.SchemaError
		if !errors.As(err, &se) || !errors.Is(err, source.ErrSchema) || se.Column != tc.column || se.Got != tc.want {
			t.Errorf("%v: got %v; want a SchemaError on %q (got %s)", tc.fields, err, tc.column, tc.want)
		}
	}
	if err := schema().Check(nil); !errors.Is(err, source.ErrSchema) {
		t.Errorf("nil schema: %v", err)
	}
}

// Split puts the inputs in X in their order and the labels in Y; the
// record stays the caller's, and nothing leaks.
func TestSplit(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := record(mem, schema().Fields.Fields())
	defer rec.Release()
	b, err := schema().Split(rec)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if b.X.NumCols() != 2 || b.X.ColumnName(0) != "b" || b.X.ColumnName(1) != "a" || b.Y.ColumnName(0) != "y" || b.Rows() != 2 {
		t.Errorf("split: X %v, Y %v", b.X.Schema(), b.Y.Schema())
	}
	if got := b.X.Column(0).(*array.Float32).Value(1); got != 1.5 {
		t.Errorf("X column b row 1 = %v; want 1.5", got)
	}
	bad := record(mem, []arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Float32}})
	defer bad.Release()
	if _, err := schema().Split(bad); !errors.Is(err, source.ErrSchema) {
		t.Errorf("split of a bad record: %v", err)
	}
	in := schema().InputsOnly()
	if len(in.Labels) != 0 || in.Fields.NumFields() != 2 || in.Fields.Field(0).Name != "b" {
		t.Errorf("InputsOnly: %v", in)
	}
}

// Send hands over every batch with its position, or, once ctx is done,
// releases those not sent and returns the cause.
func TestSend(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	batches := func() []flow.Batch {
		var bs []flow.Batch
		for range 3 {
			bs = append(bs, flow.Batch{X: record(mem, []arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Float32}})})
		}
		return bs
	}
	out := make(chan source.Input, 3)
	if err := source.Send(t.Context(), out, batches(), func(i int) []byte { return []byte{byte(i)} }); err != nil {
		t.Fatal(err)
	}
	close(out)
	i := 0
	for in := range out {
		if len(in.Pos) != 1 || in.Pos[0] != byte(i) {
			t.Errorf("input %d has position %v", i, in.Pos)
		}
		in.Batch.Release()
		i++
	}
	cause := errors.New("stop")
	ctx, cancel := context.WithCancelCause(t.Context())
	blocked := make(chan source.Input, 1)
	go func() { time.Sleep(10 * time.Millisecond); cancel(cause) }()
	err := source.Send(ctx, blocked, batches(), func(int) []byte { return nil })
	if !errors.Is(err, cause) {
		t.Errorf("cancelled Send: %v; want the cause", err)
	}
	(<-blocked).Batch.Release() // the one sent before the channel was full
}

// Of Starts from several goroutines at once, exactly one claims the Run;
// the others, and a Start after Close, fail with the prefix.
func TestGuard(t *testing.T) {
	var g source.Guard
	var wg sync.WaitGroup
	var won atomic.Int32
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if err := g.Start(`test "a"`); err != nil {
				errs <- err
			} else {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	if won.Load() != 1 {
		t.Errorf("%d Starts succeeded; want 1", won.Load())
	}
	for err := range errs {
		if want := `test "a": Run called twice`; err.Error() != want {
			t.Errorf("got %q; want %q", err, want)
		}
	}
	var closed source.Guard
	closed.Close()
	closed.Close() // idempotent
	if err := closed.Start(`test "b"`); err == nil || err.Error() != `test "b": Run after Close` {
		t.Errorf("Start after Close: got %v; want %q", err, `test "b": Run after Close`)
	}
}

// Defaults fills in only what is nil.
func TestDefaults(t *testing.T) {
	var (
		alloc memory.Allocator
		log   *slog.Logger
		rep   source.Reporter
	)
	source.Defaults(&alloc, &log, &rep)
	if alloc != memory.DefaultAllocator || log != slog.Default() {
		t.Errorf("got %v, %v; want memory.DefaultAllocator and slog.Default()", alloc, log)
	}
	if r, ok := rep.(source.LogReporter); !ok || r.Log != log {
		t.Errorf("reporter %#v; want a LogReporter on the default logger", rep)
	}
	mem, own := memory.NewGoAllocator(), slog.New(slog.DiscardHandler)
	var mine source.Reporter = source.LogReporter{}
	alloc, log, rep = mem, own, mine
	source.Defaults(&alloc, &log, &rep)
	if alloc != memory.Allocator(mem) || log != own || rep != mine {
		t.Error("Defaults replaced values that were set")
	}
}
