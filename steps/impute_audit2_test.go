package steps_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/steps"
)

// imputeFloats returns a batch of one float64 column "f"; NaN is kept.
func imputeFloats(mem memory.Allocator, vals ...float64) flow.Batch {
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	b.AppendValues(vals, nil)
	col := b.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "f", Type: arrow.PrimitiveTypes.Float64}}, nil)
	return flow.Batch{X: array.NewRecordBatch(schema, []arrow.Array{col}, int64(len(vals)))}
}

// The mean of finite values is finite, however large they are: the mean
// of 1e308 and 1.5e308 is 1.25e308, not the +Inf of their sum. Where the
// values' mean is no number (+Inf and -Inf), Transform says so rather
// than fill with NaN, since the output columns hold no NaN.
func TestAuditImputerMeanOfHugeValues(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := flow.WithAllocator(context.Background(), mem)

	m, err := steps.NewImputer(steps.ImputeMean)
	if err != nil {
		t.Fatal(err)
	}
	fit := imputeFloats(mem, 1e308, 1.5e308)
	err = m.Fit(ctx, fit)
	fit.Release()
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := m.Fill("f"); !ok || f != 1.25e308 {
		t.Errorf("Fill = %v, %t; want 1.25e+308", f, ok)
	}

	// Replicas of huge means merge to their mean too.
	a, b := m.Replica(), m.Replica()
	for i, r := range []flow.Step{a, b} {
		fit := imputeFloats(mem, []float64{1e308, 1.5e308}[i])
		err := r.(flow.Fitter).Fit(ctx, fit)
		fit.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	merged := a.(*steps.Imputer)
	if err := merged.Merge([]flow.Step{b}); err != nil {
		t.Fatal(err)
	}
	if f, ok := merged.Fill("f"); !ok || f != 1.25e308 {
		t.Errorf("merged Fill = %v, %t; want 1.25e+308", f, ok)
	}

	m, _ = steps.NewImputer(steps.ImputeMean)
	fit = imputeFloats(mem, math.Inf(1), math.Inf(-1))
	err = m.Fit(ctx, fit)
	fit.Release()
	if err != nil {
		t.Fatal(err)
	}
	in := imputeFloats(mem, 1, math.NaN())
	defer in.Release()
	out, err := m.Transform(ctx, in)
	if err == nil {
		v := out.X.Column(0).(*array.Float64).Value(1)
		out.Release()
		t.Fatalf("Transform filled with %v; want an error", v)
	}
	if !strings.Contains(err.Error(), `"f"`) || !strings.Contains(err.Error(), "steps.Imputer") {
		t.Errorf("Transform: %v; want an error naming the step and the column", err)
	}
}

// KnownClasses takes integers of any Go integer type, as its doc says:
// uint, uint64 and uintptr too (those beyond int64 are an error naming
// the value).
func TestAuditKnownClassesOfEveryIntegerType(t *testing.T) {
	for _, classes := range [][]any{
		{uint(3), uint(1)},
		{uint64(3), uint64(1)},
		{uintptr(3), uintptr(1)},
		{int8(3), uint64(1)},
	} {
		e, err := steps.NewLabelEncoder("y", steps.KnownClasses(classes...))
		if err != nil {
			t.Errorf("KnownClasses(%v): %v", classes, err)
			continue
		}
		if got := e.Classes(); len(got) != 2 || got[0] != int64(1) || got[1] != int64(3) {
			t.Errorf("KnownClasses(%v): Classes = %v; want [1 3]", classes, got)
		}
	}
	_, err := steps.NewLabelEncoder("y", steps.KnownClasses(uint64(math.MaxUint64)))
	if err == nil || !strings.Contains(err.Error(), "18446744073709551615") {
		t.Errorf("KnownClasses(MaxUint64): %v; want an error naming the value", err)
	}
}
