package mlp_test

// An adversarial audit of the promises of mlp's doc comments: malformed
// input to Fit and Transform (a missing column, another type, nulls,
// NaN, no rows, no Y, another width after the fit) is an error that
// names the step and the column, never a panic or a leak; a step used
// before Setup says so.

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps/mlp"
	"github.com/penstock-ml/penstock/steps/nn"
)

// protect runs fn and turns its panic into an error.
func protect(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("PANIC: %v", r)
		}
	}()
	return fn()
}

func TestAuditMalformedInput(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checked(t)
	ctx := flow.WithAllocator(deadline(t, 20*time.Second), mem)
	xs, ys := blobs(6, 1)
	good := func() flow.Batch { return batch(mem, 4, xs, int64Record(mem, "y", ys)) }
	strCol := func(name string) arrow.RecordBatch {
		b := array.NewStringBuilder(mem)
		defer b.Release()
		for range 6 {
			b.Append("a")
		}
		a := b.NewArray()
		defer a.Release()
		return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: name, Type: a.DataType()}}, nil), []arrow.Array{a}, 6)
	}
	withNullX := func() flow.Batch {
		b := array.NewFixedSizeListBuilder(mem, 4, arrow.PrimitiveTypes.Float32)
		defer b.Release()
		vb := b.ValueBuilder().(*array.Float32Builder)
		for i := range 6 {
			if i == 2 {
				b.AppendNull()
				continue
			}
			b.Append(true)
			vb.AppendValues(xs[i*4:i*4+4], nil)
		}
		a := b.NewArray()
		defer a.Release()
		x := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "x", Type: a.DataType(), Nullable: true}}, nil), []arrow.Array{a}, 6)
		return flow.Batch{X: x, Y: int64Record(mem, "y", ys)}
	}
	nanX := func() flow.Batch {
		bad := append([]float32(nil), xs...)
		bad[5] = float32(math.NaN())
		return batch(mem, 4, bad, int64Record(mem, "y", ys))
	}
	cases := []struct {
		name  string
		in    func() flow.Batch
		col   string
		fitOK bool // refused by Fit only
	}{
		{"features of another type", func() flow.Batch { return flow.Batch{X: strCol("x"), Y: int64Record(mem, "y", ys)} }, `"x"`, false},
		{"labels of another type", func() flow.Batch { return batch(mem, 4, xs, strCol("y")) }, `"y"`, true},
		{"no labels column", func() flow.Batch { return batch(mem, 4, xs, int64Record(mem, "z", ys)) }, `"y"`, true},
		{"no Y", func() flow.Batch { return batch(mem, 4, xs, nil) }, `"y"`, true},
		{"null features", withNullX, `"x"`, false},
		{"NaN features", nanX, `"x"`, true},
		{"negative label", func() flow.Batch { return batch(mem, 4, xs, int64Record(mem, "y", []int64{0, 1, -1, 0, 1, 2})) }, `"y"`, true},
	}
	for _, c := range cases {
		for _, op := range []string{"fit", "fit_transform", "transform"} {
			if op == "transform" && c.fitOK {
				continue
			}
			m := newClassifier(t, smallSpec())
			setUp(t, m)
			if op == "transform" {
				g := good()
				if err := m.Fit(ctx, g); err != nil {
					t.Fatal(err)
				}
				g.Release()
			}
			in := c.in()
			err := protect(func() error {
				switch op {
				case "fit":
					return m.Fit(ctx, in)
				case "fit_transform":
					out, err := m.FitTransform(ctx, in)
					out.Release()
					return err
				}
				out, err := m.Transform(ctx, in)
				out.Release()
				return err
			})
			in.Release()
			if err == nil || strings.HasPrefix(err.Error(), "PANIC") {
				t.Errorf("%s, %s: %v; want an error", op, c.name, err)
			} else {
				for _, w := range []string{"mlp.Classifier", c.col} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s, %s: %q does not name %s", op, c.name, err, w)
					}
				}
			}
			if err := flow.Teardown(t.Context(), m); err != nil {
				t.Error(err)
			}
		}
	}
}

// A batch of no rows is no panic, and nothing stays allocated.
func TestAuditZeroRows(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checked(t)
	ctx := flow.WithAllocator(deadline(t, 20*time.Second), mem)
	empty := func() flow.Batch {
		x := minibatch.NewMatrix(mem, 0, 4)
		defer x.Release()
		return flow.Batch{X: x.Record("x"), Y: int64Record(mem, "y", nil)}
	}
	for _, fitted := range []bool{false, true} {
		m := newClassifier(t, smallSpec())
		setUp(t, m)
		if fitted {
			xs, ys := blobs(6, 1)
			g := batch(mem, 4, xs, int64Record(mem, "y", ys))
			if err := m.Fit(ctx, g); err != nil {
				t.Fatal(err)
			}
			g.Release()
		}
		for _, op := range []string{"fit", "transform"} {
			in := empty()
			err := protect(func() error {
				if op == "fit" {
					return m.Fit(ctx, in)
				}
				out, err := m.Transform(ctx, in)
				if err == nil && out.X != nil && out.X.NumRows() != 0 {
					err = fmt.Errorf("%d rows out", out.X.NumRows())
				}
				out.Release()
				return err
			})
			in.Release()
			if err != nil && (strings.HasPrefix(err.Error(), "PANIC") || !strings.Contains(err.Error(), "mlp.Classifier")) {
				t.Errorf("fitted=%v, %s of no rows: %v; want it accepted or an error naming the step", fitted, op, err)
			}
		}
		if err := flow.Teardown(t.Context(), m); err != nil {
			t.Error(err)
		}
	}
}

// A model used before its Setup says so, naming the step; it does not
// panic.
func TestAuditBeforeSetup(t *testing.T) {
	mem := checked(t)
	ctx := flow.WithAllocator(deadline(t, 20*time.Second), mem)
	xs, ys := blobs(6, 1)
	m := newClassifier(t, smallSpec())
	in := batch(mem, 4, xs, int64Record(mem, "y", ys))
	defer in.Release()
	for _, op := range []string{"fit", "transform"} {
		err := protect(func() error {
			if op == "fit" {
				return m.Fit(ctx, in)
			}
			out, err := m.Transform(ctx, in)
			out.Release()
			return err
		})
		if err == nil || strings.HasPrefix(err.Error(), "PANIC") || !strings.Contains(err.Error(), "mlp.Classifier") {
			t.Errorf("%s before Setup: %v; want an error naming the step", op, err)
		}
	}
}

// A NaN or an infinity in the features or the targets of a fit is named
// with its column and row, not reported as a fit that diverged (whose
// advice, a lower learning rate, would not help); the model is left as
// it was.
func TestAuditNonFiniteInputNamed(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checked(t)
	ctx := flow.WithAllocator(deadline(t, 20*time.Second), mem)
	xs := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	ys := []float32{1, 2, 3, 4}
	spec := nn.Default(nn.MSE)
	spec.Hidden = []int{4}
	for _, c := range []struct {
		name string
		x, y []float32
		want string
	}{
		{"NaN feature", patch(xs, 5, float32(math.NaN())), ys, `column "x" of X has NaN at value 1 of row 2`},
		{"infinite feature", patch(xs, 0, float32(math.Inf(1))), ys, `column "x" of X has +Inf at value 0 of row 0`},
		{"NaN target", xs, patch(ys, 3, float32(math.NaN())), `column "y" of Y has NaN at row 3`},
	} {
		m, err := mlp.NewRegressor(spec)
		if err != nil {
			t.Fatal(err)
		}
		setUp(t, m)
		probe := batch(mem, 2, xs, float32Record(mem, "y", ys))
		if err := m.Fit(ctx, probe); err != nil {
			t.Fatal(err)
		}
		before := predictions(t, ctx, m, probe)
		in := batch(mem, 2, c.x, float32Record(mem, "y", c.y))
		err = m.Fit(ctx, in)
		in.Release()
		if err == nil || !strings.Contains(err.Error(), "mlp.Regressor: fit: "+c.want) {
			t.Errorf("%s: %v; want an error saying %q", c.name, err, c.want)
		}
		if after := predictions(t, ctx, m, probe); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("%s: the refused fit changed the model: %v; want %v", c.name, after, before)
		}
		probe.Release()
		if err := flow.Teardown(t.Context(), m); err != nil {
			t.Error(err)
		}
	}
}

func patch(v []float32, i int, x float32) []float32 {
	out := append([]float32(nil), v...)
	out[i] = x
	return out
}

func predictions(t *testing.T, ctx context.Context, m flow.Step, in flow.Batch) []float32 {
	t.Helper()
	out, err := m.Transform(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	return outputs(t, out, "pred")
}
