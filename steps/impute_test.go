package steps_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

// preMissing marks a missing value in the columns of preImputeRecord.
var preMissing = math.Inf(-1)

// preImputeRecord returns a record of a float64 column "f" (preMissing:
// null; NaN stays NaN), an int32 column "i" (preMissing: null) and a
// string column "s".
func preImputeRecord(mem memory.Allocator, f, i []float64) arrow.RecordBatch {
	fb, ib, sb := array.NewFloat64Builder(mem), array.NewInt32Builder(mem), array.NewStringBuilder(mem)
	defer fb.Release()
	defer ib.Release()
	defer sb.Release()
	for r := range f {
		if f[r] == preMissing {
			fb.AppendNull()
		} else {
			fb.Append(f[r])
		}
		if i[r] == preMissing {
			ib.AppendNull()
		} else {
			ib.Append(int32(i[r]))
		}
		sb.Append(fmt.Sprint("s", r))
	}
	cols := []arrow.Array{fb.NewArray(), ib.NewArray(), sb.NewArray()}
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "i", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String},
	}, nil)
	return array.NewRecordBatch(schema, cols, int64(len(f)))
}

// preImputeSource returns a source of two batches.
func preImputeSource(t *testing.T, mem memory.Allocator) *minibatch.Memory {
	t.Helper()
	m := preMissing
	a := preImputeRecord(mem, []float64{1, m, 3, math.NaN()}, []float64{5, 5, m, 2})
	b := preImputeRecord(mem, []float64{m, 8, 4}, []float64{2, m, 9})
	defer a.Release()
	defer b.Release()
	src, err := minibatch.FromRecords([]arrow.RecordBatch{a, b}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// preImputed transforms src and returns each column of X formatted.
func preImputed(t *testing.T, r flow.Runner, p *flow.Pipeline, src flow.Source) map[string]string {
	t.Helper()
	ctx := preContext(t)
	s, err := r.Transform(ctx, p, src)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	err = s.Each(ctx, func(b flow.Batch) error {
		for i, f := range b.X.Schema().Fields() {
			col := b.X.Column(i)
			if col.NullN() > 0 {
				return fmt.Errorf("column %q has %d nulls", f.Name, col.NullN())
			}
			out[f.Name+" type"] = col.DataType().String()
			for k := range col.Len() {
				out[f.Name] += col.ValueStr(k) + " "
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestImputer(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct {
		strategy string
		opts     []steps.ImputeOption
		f, i     string
		iType    string
	}{
		// f's values: 1 3 8 4, mean 4; i's: 5 5 2 2 9, mean 4.6, mode 2 (tie with 5: the smallest).
		{steps.ImputeMean, nil, "1 4 3 4 4 8 4 ", "5 5 4.6 2 2 4.6 9 ", "float64"},
		{steps.ImputeMostFrequent, nil, "1 1 3 1 1 8 4 ", "5 5 2 2 2 2 9 ", "int32"},
		{steps.ImputeConstant, []steps.ImputeOption{steps.FillValue(-7)}, "1 -7 3 -7 -7 8 4 ", "5 5 -7 2 2 -7 9 ", "int32"},
	} {
		for _, run := range []struct {
			engine   flow.Engine
			replicas int
		}{{flow.Sequential, 1}, {flow.Streaming, 2}} {
			t.Run(fmt.Sprint(tc.strategy, " ", run.engine), func(t *testing.T) {
				mem := preMem(t)
				m, err := steps.NewImputer(tc.strategy, tc.opts...)
				if err != nil {
					t.Fatal(err)
				}
				p := prePipeline(t, flow.Named("impute", m, flow.Replicas(run.replicas)))
				r := flow.Runner{Engine: run.engine, Allocator: mem}
				if _, err := r.Fit(preContext(t), p, preImputeSource(t, mem)); err != nil {
					t.Fatal(err)
				}
				got := preImputed(t, r, p, preImputeSource(t, mem))
				if got["f"] != tc.f || got["i"] != tc.i || got["i type"] != tc.iType || got["f type"] != "float64" {
					t.Errorf("got f %q, i %q (%s); want f %q, i %q (%s)", got["f"], got["i"], got["i type"], tc.f, tc.i, tc.iType)
				}
				if got["s"] != "s0 s1 s2 s3 s0 s1 s2 " {
					t.Errorf("string column: got %q", got["s"])
				}
			})
		}
	}
}

func TestImputerErrors(t *testing.T) {
	mem := preMem(t)
	ctx := flow.WithAllocator(preContext(t), mem)
	m := preMissing
	rec := preImputeRecord(mem, []float64{m, m}, []float64{1, m})
	b := flow.Batch{X: rec}
	defer b.Release()

	mean, _ := steps.NewImputer(steps.ImputeMean)
	if err := mean.Fit(ctx, b); err != nil {
		t.Fatal(err)
	}
	want := `steps.Imputer: transform: column "f" of X has missing values, but the fit saw no value of it to learn the mean from`
	if _, err := mean.Transform(ctx, b); err == nil || err.Error() != want {
		t.Errorf("a column never seen: got %v; want %q", err, want)
	}
	if v, ok := mean.Fill("i"); !ok || v != 1 {
		t.Errorf("Fill(i): got %v, %v; want 1, true", v, ok)
	}
	half, _ := steps.NewImputer(steps.ImputeConstant, steps.FillValue(0.5), steps.ImputeColumns("i"))
	if _, err := half.Transform(ctx, b); err == nil || !strings.Contains(err.Error(), `fill_value 0.5 is not a whole number, for the integer column "i"`) {
		t.Errorf("a fractional fill of an int column: got %v", err)
	}
	big, _ := steps.NewImputer(steps.ImputeConstant, steps.FillValue(1e10), steps.ImputeColumns("i"))
	if _, err := big.Transform(ctx, b); err == nil || !strings.Contains(err.Error(), "beyond the range") {
		t.Errorf("a fill beyond int32: got %v", err)
	}
	str, _ := steps.NewImputer(steps.ImputeMean, steps.ImputeColumns("s"))
	if err := str.Fit(ctx, b); err == nil || !strings.Contains(err.Error(), `column "s" of X has type utf8, want a numeric column`) {
		t.Errorf("a string column: got %v", err)
	}
	gone, _ := steps.NewImputer(steps.ImputeMean, steps.ImputeColumns("g"))
	if err := gone.Fit(ctx, b); err == nil || !strings.Contains(err.Error(), `no column "g"`) {
		t.Errorf("a missing column: got %v", err)
	}
	if _, err := steps.NewImputer("median"); err == nil || !strings.Contains(err.Error(), `"strategy" is median, outside`) {
		t.Errorf("median: got %v", err)
	}
	if _, err := steps.NewImputer(steps.ImputeConstant, steps.FillValue(math.NaN())); err == nil {
		t.Error("a NaN fill value: got no error")
	}

	// Set: strategy in its Choice; a new strategy forgets the statistics.
	p := prePipeline(t, flow.Named("impute", mean))
	if err := hparams.Set(p, hparams.Values{"impute__strategy": "median"}); err == nil {
		t.Error(`Set strategy "median": got no error`)
	}
	if err := hparams.Set(p, hparams.Values{"impute__strategy": "most_frequent", "impute__fill_value": 3}); err != nil {
		t.Fatal(err)
	}
	if _, ok := mean.Fill("i"); ok {
		t.Error("a new strategy kept the old statistics")
	}
	c := mean.Copy().(*steps.Imputer)
	if err := c.Fit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, ok := mean.Fill("i"); ok {
		t.Error("fitting a copy changed the original")
	}
	if v, ok := c.Fill("i"); !ok || v != 1 {
		t.Errorf("copy's Fill(i): got %v, %v; want 1, true", v, ok)
	}
}
