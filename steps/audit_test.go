package steps_test

// An adversarial audit of the contract of every step (doc.go): malformed
// input to Fit and Transform — a missing column, a column of the wrong
// type, nulls, no rows, another width after the fit, no Y — is an error
// that names the step and the column, never a panic and never a leak;
// Copy gives an independent step; Reset forgets; a second Fit continues.

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/steps"
	"go.uber.org/goleak"
)

// auditColumn is a column of a test batch: its name, its kind and how it
// is malformed.
type auditColumn struct {
	name  string
	kind  string // "tensor" (FixedSizeList<float32>), "float", "int", "string"
	width int    // of a tensor
	null  bool   // row 1 is null
}

func (c auditColumn) build(mem memory.Allocator, rows int) (arrow.Field, arrow.Array) {
	switch c.kind {
	case "tensor":
		b := array.NewFixedSizeListBuilder(mem, int32(c.width), arrow.PrimitiveTypes.Float32)
		defer b.Release()
		vb := b.ValueBuilder().(*array.Float32Builder)
		for i := range rows {
			if c.null && i == 1 {
				b.AppendNull() // and width null values
				continue
			}
			b.Append(true)
			for k := range c.width {
				vb.Append(float32(i*c.width+k%3) * 0.25)
			}
		}
		a := b.NewArray()
		return arrow.Field{Name: c.name, Type: a.DataType(), Nullable: true}, a
	case "float":
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		for i := range rows {
			if c.null && i == 1 {
				b.AppendNull()
				continue
			}
			b.Append(float64(i%3) + 0.5)
		}
		a := b.NewArray()
		return arrow.Field{Name: c.name, Type: a.DataType(), Nullable: true}, a
	case "int":
		b := array.NewInt64Builder(mem)
		defer b.Release()
		for i := range rows {
			if c.null && i == 1 {
				b.AppendNull()
				continue
			}
			b.Append(int64(i % 3))
		}
		a := b.NewArray()
		return arrow.Field{Name: c.name, Type: a.DataType(), Nullable: true}, a
	case "string":
		b := array.NewStringBuilder(mem)
		defer b.Release()
		for i := range rows {
			if c.null && i == 1 {
				b.AppendNull()
				continue
			}
			b.Append([]string{"a", "b", "c"}[i%3])
		}
		a := b.NewArray()
		return arrow.Field{Name: c.name, Type: a.DataType(), Nullable: true}, a
	}
	panic("audit: unknown kind " + c.kind)
}

func auditRecord(mem memory.Allocator, rows int, cols []auditColumn) arrow.RecordBatch {
	if cols == nil {
		return nil
	}
	var fields []arrow.Field
	var arrs []arrow.Array
	for _, c := range cols {
		f, a := c.build(mem, rows)
		fields = append(fields, f)
		arrs = append(arrs, a)
		defer a.Release()
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, int64(rows))
}

// auditCase is a step, the columns of X and Y it reads, well formed.
type auditCase struct {
	typ  string // "steps.StandardScaler"
	make func(t *testing.T) flow.Step
	x, y []auditColumn // nil y: no Y
	// nullsOK: nulls in the read columns are input, not a mistake (the
	// imputer fills them).
	nullsOK bool
	// read names the columns whose malformations are tried (X and Y).
	read []string
}

func auditCases() []auditCase {
	tensor := auditColumn{name: "x", kind: "tensor", width: 3}
	return []auditCase{
		{typ: "steps.StandardScaler", make: func(t *testing.T) flow.Step { return metaMust[*steps.StandardScaler](t)(steps.NewStandardScaler()) },
			x: []auditColumn{tensor}, read: []string{"x"}},
		{typ: "steps.MinMaxScaler", make: func(t *testing.T) flow.Step { return metaMust[*steps.MinMaxScaler](t)(steps.NewMinMaxScaler()) },
			x: []auditColumn{tensor}, read: []string{"x"}},
		{typ: "steps.Imputer", make: func(t *testing.T) flow.Step {
			return metaMust[*steps.Imputer](t)(steps.NewImputer("mean", steps.ImputeColumns("a")))
		}, x: []auditColumn{{name: "a", kind: "float"}}, nullsOK: true, read: []string{"a"}},
		{typ: "steps.LabelEncoder", make: func(t *testing.T) flow.Step { return metaMust[*steps.LabelEncoder](t)(steps.NewLabelEncoder("y")) },
			x: []auditColumn{tensor}, y: []auditColumn{{name: "y", kind: "string"}}, read: []string{"y"}},
		{typ: "steps.OneHot", make: func(t *testing.T) flow.Step { return metaMust[*steps.OneHot](t)(steps.NewOneHot("y")) },
			x: []auditColumn{tensor}, y: []auditColumn{{name: "y", kind: "int"}}, read: []string{"y"}},
		{typ: "steps.LinearRegression", make: func(t *testing.T) flow.Step {
			return metaMust[*steps.LinearRegression](t)(steps.NewLinearRegression("y"))
		}, x: []auditColumn{tensor}, y: []auditColumn{{name: "y", kind: "float"}}, read: []string{"x", "y"}},
		{typ: "steps.LogisticRegression", make: func(t *testing.T) flow.Step {
			return metaMust[*steps.LogisticRegression](t)(steps.NewLogisticRegression("y", 3, steps.Probabilities(true)))
		}, x: []auditColumn{tensor}, y: []auditColumn{{name: "y", kind: "int"}}, read: []string{"x", "y"}},
		{typ: "steps.GaussianNoise", make: func(t *testing.T) flow.Step {
			return metaMust[*steps.GaussianNoise](t)(steps.NewGaussianNoise("x", 0.5, 1))
		}, x: []auditColumn{tensor}, read: []string{"x"}},
		{typ: "steps.Window", make: func(t *testing.T) flow.Step { return metaMust[*steps.Window](t)(steps.NewWindow("s", 2)) },
			x: []auditColumn{{name: "s", kind: "float"}}, read: []string{"s"}},
		{typ: "steps.SelectColumns", make: func(t *testing.T) flow.Step { return metaMust[*steps.SelectColumns](t)(steps.NewSelectColumns("x")) },
			x: []auditColumn{tensor, {name: "b", kind: "int"}}},
		{typ: "steps.DropColumns", make: func(t *testing.T) flow.Step { return metaMust[*steps.DropColumns](t)(steps.NewDropColumns("b")) },
			x: []auditColumn{tensor, {name: "b", kind: "int"}}},
	}
}

// batch builds a batch of c's columns with change applied to each.
func (c auditCase) batch(mem memory.Allocator, rows int, change func(col *auditColumn)) flow.Batch {
	edit := func(cols []auditColumn) []auditColumn {
		if cols == nil {
			return nil
		}
		out := make([]auditColumn, len(cols))
		copy(out, cols)
		for i := range out {
			if change != nil {
				change(&out[i])
			}
		}
		return out
	}
	return flow.Batch{X: auditRecord(mem, rows, edit(c.x)), Y: auditRecord(mem, rows, edit(c.y)), Seq: 0}
}

// call runs op on s and turns a panic into an error.
func auditCall(s flow.Step, op string, ctx context.Context, in flow.Batch) (out flow.Batch, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("PANIC: %v", r)
		}
	}()
	switch op {
	case "fit":
		if ft, ok := s.(flow.FitTransformer); ok {
			return ft.FitTransform(ctx, in)
		}
		if f, ok := s.(flow.Fitter); ok {
			return flow.Batch{}, f.Fit(ctx, in)
		}
		return s.Transform(ctx, in)
	}
	return s.Transform(ctx, in)
}

func fittable(s flow.Step) bool {
	_, f := s.(flow.Fitter)
	_, ft := s.(flow.FitTransformer)
	return f || ft
}

// Malformed input, to Fit and to Transform, is an error that names the
// step and the column, with no panic and nothing left allocated.
func TestAuditMalformedInput(t *testing.T) {
	for _, c := range auditCases() {
		t.Run(c.typ, func(t *testing.T) {
			mem := metaMem(t)
			ctx := flow.WithAllocator(metaCtx(t), mem)
			type bad struct {
				name   string
				col    string
				change func(col *auditColumn)
			}
			var bads []bad
			for _, col := range c.read {
				bads = append(bads,
					bad{"missing column " + col, col, func(a *auditColumn) {
						if a.name == col {
							a.name = col + "_gone"
						}
					}},
					bad{"wrong type of " + col, col, func(a *auditColumn) {
						if a.name == col {
							a.kind = map[string]string{"tensor": "string", "float": "string", "int": "string", "string": "tensor"}[a.kind]
							a.width = 2
						}
					}})
				if !c.nullsOK {
					bads = append(bads, bad{"null in " + col, col, func(a *auditColumn) {
						if a.name == col {
							a.null = true
						}
					}})
				}
				for _, x := range c.x {
					if x.name == col && x.kind == "tensor" {
						bads = append(bads, bad{"other width of " + col, col, func(a *auditColumn) {
							if a.name == col {
								a.width = 4
							}
						}})
					}
				}
			}
			check := func(what, col string, out flow.Batch, err error) {
				t.Helper()
				if err == nil {
					out.Release()
					t.Errorf("%s: no error; want one naming %s and %q", what, c.typ, col)
					return
				}
				if strings.HasPrefix(err.Error(), "PANIC") {
					t.Errorf("%s: %v; want an error", what, err)
					return
				}
				for _, w := range []string{c.typ, fmt.Sprintf("%q", col)} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: error %q does not name %s", what, err, w)
					}
				}
			}
			for _, b := range bads {
				if fittable(c.make(t)) && !strings.HasPrefix(b.name, "other width") {
					s := c.make(t)
					in := c.batch(mem, 5, b.change)
					out, err := auditCall(s, "fit", ctx, in)
					in.Release()
					check("fit, "+b.name, b.col, out, err)
				}
				if c.y != nil && slicesContainsY(c, b.col) && !fittable(c.make(t)) {
					continue
				}
				if isYOnlyOnFit(c, b.col) {
					continue
				}
				s := c.make(t)
				good := c.batch(mem, 6, nil)
				out, err := auditCall(s, "fit", ctx, good)
				good.Release()
				out.Release()
				if err != nil {
					t.Fatalf("fit on good input: %v", err)
				}
				in := c.batch(mem, 5, b.change)
				out, err = auditCall(s, "transform", ctx, in)
				in.Release()
				if c.typ == "steps.GaussianNoise" {
					// Transform passes everything through (inference sees
					// clean data): nothing is read.
					out.Release()
					if err != nil {
						t.Errorf("transform, %s: %v; want the batch passed through", b.name, err)
					}
					continue
				}
				check("transform, "+b.name, b.col, out, err)
			}
			// No Y where the step needs one.
			if c.y != nil && fittable(c.make(t)) {
				in := c.batch(mem, 5, nil)
				in.Y.Release()
				in.Y = nil
				out, err := auditCall(c.make(t), "fit", ctx, in)
				in.Release()
				check("fit without Y", c.y[0].name, out, err)
			}
		})
	}
}

// slicesContainsY reports whether col is a column of c's Y.
func slicesContainsY(c auditCase, col string) bool {
	for _, y := range c.y {
		if y.name == col {
			return true
		}
	}
	return false
}

// isYOnlyOnFit reports whether col is a Y column that only the fit reads
// (a model's target): Transform predicts without it.
func isYOnlyOnFit(c auditCase, col string) bool {
	switch c.typ {
	case "steps.LinearRegression", "steps.LogisticRegression":
		return slicesContainsY(c, col)
	}
	return false
}

// A batch of no rows is neither a panic nor a leak: Fit and Transform
// accept it (a transform gives no rows) or refuse it naming the step.
func TestAuditZeroRows(t *testing.T) {
	for _, c := range auditCases() {
		t.Run(c.typ, func(t *testing.T) {
			mem := metaMem(t)
			ctx := flow.WithAllocator(metaCtx(t), mem)
			for _, fitFirst := range []bool{false, true} {
				s := c.make(t)
				if fitFirst {
					good := c.batch(mem, 6, nil)
					out, err := auditCall(s, "fit", ctx, good)
					good.Release()
					out.Release()
					if err != nil {
						t.Fatalf("fit on good input: %v", err)
					}
				}
				for _, op := range []string{"fit", "transform"} {
					in := c.batch(mem, 0, nil)
					out, err := auditCall(s, op, ctx, in)
					in.Release()
					switch {
					case err != nil && strings.HasPrefix(err.Error(), "PANIC"):
						t.Errorf("fitted=%v, %s of no rows: %v", fitFirst, op, err)
					case err != nil && !strings.Contains(err.Error(), c.typ):
						t.Errorf("fitted=%v, %s of no rows: error %q does not name %s", fitFirst, op, err, c.typ)
					case err == nil && out.X != nil && out.X.NumRows() != 0 && c.typ != "steps.Window":
						t.Errorf("fitted=%v, %s of no rows gave %d rows", fitFirst, op, out.X.NumRows())
					}
					out.Release()
				}
			}
		})
	}
}

// transformed returns s's transform of in as text, or its error.
func auditTransformed(t *testing.T, ctx context.Context, s flow.Step, in flow.Batch) string {
	t.Helper()
	out, err := auditCall(s, "transform", ctx, in)
	if err != nil {
		return "error: " + err.Error()
	}
	defer out.Release()
	var b strings.Builder
	for _, r := range []arrow.RecordBatch{out.X, out.Y} {
		if r == nil {
			b.WriteString("nil;")
			continue
		}
		for i, col := range r.Columns() {
			fmt.Fprintf(&b, "%s=%v;", r.ColumnName(i), col)
		}
	}
	return b.String()
}

// Copy gives an independent step: fitting the copy further changes the
// copy, not the original; Reset forgets what was learned (a reset step
// transforms as a new one does, and fits again to the same state); a
// second Fit continues from the first (it differs from a fit of the
// second batch alone, for the steps whose state depends on every batch).
func TestAuditCopyResetContinue(t *testing.T) {
	for _, c := range auditCases() {
		t.Run(c.typ, func(t *testing.T) {
			s := c.make(t)
			if !fittable(s) {
				t.Skip("nothing to learn")
			}
			mem := metaMem(t)
			ctx := flow.WithAllocator(metaCtx(t), mem)
			fit := func(s flow.Step, rows int, shift float32) {
				t.Helper()
				in := c.batch(mem, rows, nil)
				if shift != 0 {
					in = shifted(t, mem, in, shift)
				}
				out, err := auditCall(s, "fit", ctx, in)
				in.Release()
				out.Release()
				if err != nil {
					t.Fatalf("fit: %v", err)
				}
			}
			// The probe shows the state: the imputer's has nulls to fill.
			probe := c.batch(mem, 6, func(a *auditColumn) { a.null = c.nullsOK })
			defer probe.Release()
			fresh := auditTransformed(t, ctx, c.make(t), probe)

			fit(s, 6, 0)
			fitted := auditTransformed(t, ctx, s, probe)
			cp, err := flow.Copy(s)
			if err != nil {
				t.Fatal(err)
			}
			if got := auditTransformed(t, ctx, cp, probe); got != fitted {
				t.Errorf("the copy transforms as\n%s\nwant the original's\n%s", got, fitted)
			}
			fit(cp, 9, 3)
			if got := auditTransformed(t, ctx, s, probe); got != fitted {
				t.Errorf("after fitting the copy, the original transforms as\n%s\nwant as before\n%s", got, fitted)
			}
			if r, ok := s.(flow.Resetter); ok {
				r.Reset()
				if got := auditTransformed(t, ctx, s, probe); got != fresh {
					t.Errorf("after Reset: transforms as\n%s\nwant as a new step\n%s", got, fresh)
				}
				fit(s, 6, 0)
				if got := auditTransformed(t, ctx, s, probe); got != fitted {
					t.Errorf("after Reset and the same fit: transforms as\n%s\nwant\n%s", got, fitted)
				}
			}
			switch c.typ {
			case "steps.GaussianNoise", "steps.Window":
				return // Transform reads no learned state
			case "steps.LabelEncoder", "steps.OneHot":
				return // the same labels again teach nothing new
			}
			if got := auditTransformed(t, ctx, cp, probe); got == fitted {
				t.Errorf("the copy fitted further transforms as the original; want its own state")
			}

			again := c.make(t)
			fit(again, 6, 0)
			fit(again, 9, 3)
			twice := auditTransformed(t, ctx, again, probe)
			only := c.make(t)
			fit(only, 9, 3)
			if twice == auditTransformed(t, ctx, only, probe) {
				t.Errorf("a second Fit gives the state of a fit of its batch alone; want it to continue from the first")
			}
		})
	}
}

// shifted returns in with every float of X's tensor and float columns
// moved by d (in is released).
func shifted(t *testing.T, mem memory.Allocator, in flow.Batch, d float32) flow.Batch {
	t.Helper()
	defer in.Release()
	var arrs []arrow.Array
	for _, col := range in.X.Columns() {
		switch a := col.(type) {
		case *array.FixedSizeList:
			b := array.NewFixedSizeListBuilder(mem, a.DataType().(*arrow.FixedSizeListType).Len(), arrow.PrimitiveTypes.Float32)
			vb := b.ValueBuilder().(*array.Float32Builder)
			vals := a.ListValues().(*array.Float32).Float32Values()
			for i := range a.Len() {
				b.Append(true)
				w := int(a.DataType().(*arrow.FixedSizeListType).Len())
				for k := range w {
					vb.Append(vals[i*w+k]*2 + d)
				}
			}
			arrs = append(arrs, b.NewArray())
			b.Release()
		case *array.Float64:
			b := array.NewFloat64Builder(mem)
			for i, v := range a.Float64Values() {
				if a.IsNull(i) {
					b.AppendNull()
					continue
				}
				b.Append(v*2 + float64(d))
			}
			arrs = append(arrs, b.NewArray())
			b.Release()
		default:
			col.Retain()
			arrs = append(arrs, col)
		}
	}
	x := array.NewRecordBatch(in.X.Schema(), arrs, in.X.NumRows())
	for _, a := range arrs {
		a.Release()
	}
	var y arrow.RecordBatch
	if in.Y != nil {
		in.Y.Retain()
		y = in.Y
	}
	return flow.Batch{X: x, Y: y}
}

// auditLife counts every call on a step and on its replicas and copies
// (which share its counters); it passes its batch through.
type auditLife struct{ setups, fits, transforms, replicas, teardowns *atomic.Int64 }

func newAuditLife() *auditLife {
	return &auditLife{new(atomic.Int64), new(atomic.Int64), new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)}
}

func (l *auditLife) Setup(context.Context) error    { l.setups.Add(1); return nil }
func (l *auditLife) Teardown(context.Context) error { l.teardowns.Add(1); return nil }
func (l *auditLife) Fit(context.Context, flow.Batch) error {
	l.fits.Add(1)
	return nil
}

func (l *auditLife) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	l.transforms.Add(1)
	in.Retain()
	return in, nil
}
func (l *auditLife) Replica() flow.Step      { l.replicas.Add(1); return l }
func (l *auditLife) Merge([]flow.Step) error { return nil }
func (l *auditLife) Copy() flow.Step         { c := *l; return &c }
func (l *auditLife) calls() [5]int64 {
	return [5]int64{l.setups.Load(), l.fits.Load(), l.transforms.Load(), l.replicas.Load(), l.teardowns.Load()}
}

// The inactive branch of a ChooseOneOf is neither set up, replicated,
// fitted nor run, wherever the choice sits (replicated, inside a
// train-only wrapper, an Optional, a union, a nested pipeline), in both
// engines; its keys are not among hparams.Get's but are among Gather's,
// addressed through every composite.
func TestAuditInactiveBranchNeverRuns(t *testing.T) {
	places := []struct {
		name string
		wrap func(t *testing.T, pick flow.Node) flow.Node
		key  string // the choice's key
		xcol string // the output column
	}{
		{"replicated", func(t *testing.T, pick flow.Node) flow.Node {
			return flow.Named(pick.Name, pick.Step, flow.Replicas(3))
		}, "pick__choice", "x"},
		{"train only", func(t *testing.T, pick flow.Node) flow.Node {
			return flow.Named("train", metaMust[*steps.TrainOnly](t)(steps.NewTrainOnly(pick)))
		}, "train__pick__choice", "x"},
		{"optional", func(t *testing.T, pick flow.Node) flow.Node {
			return flow.Named("opt", metaMust[*steps.Optional](t)(steps.NewOptional(pick, true)))
		}, "opt__pick__choice", "x"},
		{"union", func(t *testing.T, pick flow.Node) flow.Node {
			return flow.Named("u", metaMust[*flow.Union](t)(flow.NewUnion(pick, flow.Named("id", newAuditLife()))))
		}, "u__pick__choice", "pick__x"},
		{"nested pipeline, replicated", func(t *testing.T, pick flow.Node) flow.Node {
			return flow.Named("inner", metaPipeline(t, pick), flow.Replicas(2))
		}, "inner__pick__choice", "x"},
	}
	mem := metaMem(t)
	for _, place := range places {
		for _, r := range metaRunners(mem) {
			t.Run(place.name+"/"+r.Engine.String(), func(t *testing.T) {
				defer goleak.VerifyNone(t)
				ctx := metaCtx(t)
				a, b := newAuditLife(), newAuditLife()
				pick := metaMust[*steps.ChooseOneOf](t)(steps.NewChooseOneOf(flow.Named("a", a), flow.Named("b", b)))
				p := metaPipeline(t, place.wrap(t, flow.Named("pick", pick)))
				src := metaTensors(t, mem, 20, 5)
				s, err := r.FitTransform(ctx, p, src)
				if err != nil {
					t.Fatal(err)
				}
				for batch, err := range s.All(ctx) {
					if err != nil {
						t.Fatal(err)
					}
					batch.Release()
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				out := metaTransform(ctx, t, r, p, metaRewind(t, src), place.xcol, "y")
				if len(out.x) == 0 {
					t.Fatal("the transform gave no rows")
				}
				if got := b.calls(); got != [5]int64{} {
					t.Errorf("the inactive branch: setups, fits, transforms, replicas, teardowns %v; want none", got)
				}
				if got := a.calls(); got[0] == 0 || got[0] != got[4] || got[2] == 0 {
					t.Errorf("the active branch: setups, fits, transforms, replicas, teardowns %v; want it set up, torn down as often, and run", got)
				}
				got, err := hparams.Get(p)
				if err != nil {
					t.Fatal(err)
				}
				if got[place.key] != "a" {
					t.Errorf("Get: %v; want %s = a", got, place.key)
				}
				space, err := hparams.Gather(p)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := space[place.key]; !ok {
					t.Errorf("Gather: %v; want the key %s", space.Keys(), place.key)
				}
				if err := hparams.Set(p, hparams.Values{place.key: "c"}); err == nil || !strings.Contains(err.Error(), place.key) {
					t.Errorf("Set of a choice of no branch: %v; want an error naming %s", err, place.key)
				}
			})
		}
	}
}

// A NaN or an infinity in a linear model's features or target is named
// with its column, not reported as weights that diverged (whose advice, a
// lower learning rate, would not help); the model is left as it was.
func TestAuditLinearNonFiniteInput(t *testing.T) {
	mem := metaMem(t)
	ctx := flow.WithAllocator(metaCtx(t), mem)
	for _, c := range auditCases() {
		if c.typ != "steps.LinearRegression" && c.typ != "steps.LogisticRegression" {
			continue
		}
		for _, col := range c.read {
			if col == "y" && c.typ == "steps.LogisticRegression" {
				continue // integer classes
			}
			for _, bad := range []float64{math.NaN(), math.Inf(-1)} {
				s := c.make(t)
				good := c.batch(mem, 6, nil)
				if _, err := auditCall(s, "fit", ctx, good); err != nil {
					t.Fatal(err)
				}
				before := auditTransformed(t, ctx, s, good)
				in := poisoned(t, mem, c.batch(mem, 6, nil), col, bad)
				_, err := auditCall(s, "fit", ctx, in)
				in.Release()
				want := fmt.Sprintf("%s: fit: column %q", c.typ, col)
				if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), fmt.Sprint(bad)) {
					t.Errorf("%s, %v in %q: %v; want an error saying %q and %v", c.typ, bad, col, err, want, bad)
				}
				if after := auditTransformed(t, ctx, s, good); after != before {
					t.Errorf("%s, %v in %q: the refused fit changed the model", c.typ, bad, col)
				}
				good.Release()
			}
		}
	}
}

// poisoned returns in with value 4 of column col (of X or Y) set to v (in
// is released).
func poisoned(t *testing.T, mem memory.Allocator, in flow.Batch, col string, v float64) flow.Batch {
	t.Helper()
	defer in.Release()
	patch := func(rec arrow.RecordBatch) arrow.RecordBatch {
		if rec == nil {
			return nil
		}
		arrs := make([]arrow.Array, rec.NumCols())
		for i, a := range rec.Columns() {
			if rec.ColumnName(i) != col {
				a.Retain()
				arrs[i] = a
				continue
			}
			switch a := a.(type) {
			case *array.FixedSizeList:
				w := int(a.DataType().(*arrow.FixedSizeListType).Len())
				vals := append([]float32(nil), a.ListValues().(*array.Float32).Float32Values()...)
				vals[4] = float32(v)
				fb := array.NewFixedSizeListBuilder(mem, int32(w), arrow.PrimitiveTypes.Float32)
				vb := fb.ValueBuilder().(*array.Float32Builder)
				for r := range a.Len() {
					fb.Append(true)
					vb.AppendValues(vals[r*w:r*w+w], nil)
				}
				arrs[i] = fb.NewArray()
				fb.Release()
			case *array.Float64:
				vals := append([]float64(nil), a.Float64Values()...)
				vals[4] = v
				b := array.NewFloat64Builder(mem)
				b.AppendValues(vals, nil)
				arrs[i] = b.NewArray()
				b.Release()
			default:
				t.Fatalf("poisoned: column %q is a %s", col, a.DataType())
			}
		}
		out := array.NewRecordBatch(rec.Schema(), arrs, rec.NumRows())
		for _, a := range arrs {
			a.Release()
		}
		return out
	}
	return flow.Batch{X: patch(in.X), Y: patch(in.Y)}
}

// Transform reads the step and never changes it: a fitted step
// transforms from several goroutines at once (run with -race) as it does
// from one.
func TestAuditTransformConcurrently(t *testing.T) {
	for _, c := range auditCases() {
		t.Run(c.typ, func(t *testing.T) {
			mem := metaMem(t)
			ctx := flow.WithAllocator(metaCtx(t), mem)
			s := c.make(t)
			in := c.batch(mem, 8, func(a *auditColumn) { a.null = c.nullsOK })
			defer in.Release()
			out, err := auditCall(s, "fit", ctx, in)
			out.Release()
			if err != nil {
				t.Fatal(err)
			}
			want := auditTransformed(t, ctx, s, in)
			var wg sync.WaitGroup
			got := make([]string, 8)
			for g := range got {
				wg.Go(func() {
					for range 10 {
						got[g] = auditTransformed(t, ctx, s, in)
					}
				})
			}
			wg.Wait()
			for g, v := range got {
				if v != want {
					t.Errorf("goroutine %d: %s; want %s", g, v, want)
				}
			}
		})
	}
}

// A Merger's replicas, each fitted on part of the batches and merged,
// give the step a fit on all of them gives (to rounding): the state is
// compared through Transform.
func TestAuditReplicasMergeExactly(t *testing.T) {
	for _, c := range auditCases() {
		if _, ok := c.make(t).(flow.Merger); !ok {
			continue
		}
		t.Run(c.typ, func(t *testing.T) {
			mem := metaMem(t)
			ctx := flow.WithAllocator(metaCtx(t), mem)
			var batches []flow.Batch
			for i := range 4 {
				b := c.batch(mem, 3+i, func(a *auditColumn) { a.null = c.nullsOK })
				batches = append(batches, shifted(t, mem, b, float32(i)))
			}
			defer func() {
				for _, b := range batches {
					b.Release()
				}
			}()
			fit := func(s flow.Step, bs []flow.Batch) {
				t.Helper()
				for _, b := range bs {
					out, err := auditCall(s, "fit", ctx, b)
					out.Release()
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			seq := c.make(t)
			fit(seq, batches)
			merged := c.make(t)
			m := merged.(flow.Merger)
			reps := []flow.Step{m.Replica(), m.Replica()}
			fit(reps[0], batches[:1])
			fit(reps[1], batches[1:])
			if err := m.Merge(reps); err != nil {
				t.Fatal(err)
			}
			probe := batches[2]
			if got, want := auditTransformed(t, ctx, merged, probe), auditTransformed(t, ctx, seq, probe); !approxSame(got, want) {
				t.Errorf("merged replicas transform as\n%s\nwant, as the sequential fit,\n%s", got, want)
			}
		})
	}
}

// approxSame compares two transforms as text, numbers to 6 significant
// digits (merged floating-point sums round differently).
func approxSame(a, b string) bool {
	norm := func(s string) string {
		return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '[' || r == ']' }), " ")
	}
	fa, fb := strings.Fields(norm(a)), strings.Fields(norm(b))
	if len(fa) != len(fb) {
		return false
	}
	for i := range fa {
		if fa[i] == fb[i] {
			continue
		}
		var x, y float64
		if _, err := fmt.Sscan(strings.TrimRight(fa[i], ";"), &x); err != nil {
			return false
		}
		if _, err := fmt.Sscan(strings.TrimRight(fb[i], ";"), &y); err != nil {
			return false
		}
		if math.Abs(x-y) > 1e-5*math.Max(1, math.Abs(y)) {
			return false
		}
	}
	return true
}

// ForEach's input errors name the step type and its column, as every
// step's do.
func TestAuditForEachMalformedInput(t *testing.T) {
	mem := metaMem(t)
	ctx := flow.WithAllocator(metaCtx(t), mem)
	fe := metaMust[*steps.ForEach](t)(steps.NewForEach("seq", flow.Named("id", newAuditLife())))
	for _, c := range []struct {
		name string
		col  auditColumn
	}{
		{"missing column", auditColumn{name: "other", kind: "float"}},
		{"not a list", auditColumn{name: "seq", kind: "float"}},
	} {
		in := flow.Batch{X: auditRecord(mem, 4, []auditColumn{c.col})}
		out, err := auditCall(fe, "transform", ctx, in)
		in.Release()
		if err == nil {
			out.Release()
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range []string{"steps.ForEach", `"seq"`} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not name %s", c.name, err, w)
			}
		}
	}
}

// A step's own SetParams refuses an unknown key and a value of the wrong
// type with an error that names the step type and the key, and changes
// nothing (all or nothing, a valid key alongside included); a value
// outside its Space is refused too, or where the space is a default
// narrower than the domain, taken with the space widened to hold it: Set
// of Get always succeeds.
func TestAuditSetParamsRefuses(t *testing.T) {
	for _, c := range auditCases() {
		s, ok := c.make(t).(interface {
			flow.Step
			hparams.Tunable
			hparams.Spacer
		})
		if !ok {
			continue
		}
		t.Run(c.typ, func(t *testing.T) {
			space := s.Space()
			before := s.Params()
			try := func(what string, v hparams.Values, key string) {
				t.Helper()
				err := s.SetParams(v)
				if err == nil {
					t.Errorf("%s: SetParams(%v): no error", what, v)
					return
				}
				for _, w := range []string{c.typ, fmt.Sprintf("%q", key)} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: SetParams(%v): %q does not name %s", what, v, err, w)
					}
				}
				if after := s.Params(); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Errorf("%s: a refused SetParams changed the step: %v; want %v", what, after, before)
				}
			}
			var valid string
			for _, k := range space.Keys() {
				if valid == "" {
					valid = k
				}
			}
			checkSetOfGet(t, s)
			try("unknown key", hparams.Values{"no_such": 1, valid: before[valid]}, "no_such")
			for _, k := range space.Keys() {
				d := space[k]
				var wrong any = "not a number"
				if d.Type() == hparams.String {
					wrong = 3.5
				}
				try("wrong type of "+k, hparams.Values{k: wrong}, k)
				if d.Type() == hparams.Float || d.Type() == hparams.Int {
					st, ok := d.Stats()
					if !ok || math.IsInf(st.Max, 1) {
						continue
					}
					var out any = st.Max*2 + 10
					if d.Type() == hparams.Int {
						out = int(st.Max)*2 + 10
					}
					// Refused, or (a space that is a default, not the
					// domain) taken and then inside the step's Space.
					if err := s.SetParams(hparams.Values{k: out}); err == nil {
						if sp := s.Space(); !sp[k].Contains(out) {
							t.Errorf("SetParams(%s = %v) took a value its Space %v does not hold; want it refused or the space widened", k, out, sp[k])
						}
						checkSetOfGet(t, s)
						if err := s.SetParams(before); err != nil {
							t.Fatal(err)
						}
					} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", k)) {
						t.Errorf("SetParams(%s = %v): %q does not name the key", k, out, err)
					}
				}
			}
		})
	}
}

// checkSetOfGet checks that hparams.Set of hparams.Get of a pipeline of s
// succeeds: the step's Space holds its own values.
func checkSetOfGet(t *testing.T, s flow.Step) {
	t.Helper()
	p, err := flow.NewPipeline([]flow.Node{flow.Named("s", s)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := hparams.Get(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := hparams.Set(p, v); err != nil {
		t.Errorf("Set of Get %v: %v; want it to succeed", v, err)
	}
}
