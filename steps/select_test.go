package steps_test

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

func TestSelectAndDropColumns(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, e := range preEngines {
		t.Run(e.String(), func(t *testing.T) {
			mem := preMem(t)
			ctx := preContext(t)
			src, err := minibatch.FromSlices(2,
				[]minibatch.Column{minibatch.Float64s("a", []float64{1, 2, 3}), minibatch.Int64s("b", []int64{4, 5, 6}),
					minibatch.Strings("c", []string{"x", "y", "z"}), minibatch.Float64s("d", []float64{7, 8, 9})},
				[]minibatch.Column{minibatch.Int64s("label", []int64{0, 1, 0})}, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			sel, err := steps.NewSelectColumns("d", "a", "c")
			if err != nil {
				t.Fatal(err)
			}
			drop, err := steps.NewDropColumns("a")
			if err != nil {
				t.Fatal(err)
			}
			p := prePipeline(t, flow.Named("select", sel), flow.Named("drop", drop))
			s, err := flow.Runner{Engine: e, Allocator: mem}.Transform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			var d []string
			err = s.Each(ctx, func(b flow.Batch) error {
				var names []string
				for _, f := range b.X.Schema().Fields() {
					names = append(names, f.Name)
				}
				if got := strings.Join(names, ","); got != "d,c" {
					t.Errorf("columns: got %s; want d,c", got)
				}
				if b.Y == nil || b.Y.Schema().Field(0).Name != "label" {
					t.Errorf("Y was not passed through: %v", b.Y)
				}
				for i := range int(b.X.NumRows()) {
					d = append(d, b.X.Column(0).(*array.Float64).ValueStr(i))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(d, " "); got != "7 8 9" {
				t.Errorf("column d: got %s; want 7 8 9", got)
			}
		})
	}
}

func TestSelectColumnsErrors(t *testing.T) {
	mem := preMem(t)
	ctx := flow.WithAllocator(preContext(t), mem)
	b := flow.Batch{X: preTensor(mem, "x", [][]float32{{1}})}
	defer b.Release()
	sel, _ := steps.NewSelectColumns("x", "p", "q")
	want := `steps.SelectColumns: transform: X has no column "p", "q" (it has "x")`
	if _, err := sel.Transform(ctx, b); err == nil || err.Error() != want {
		t.Errorf("missing columns: got %v; want %q", err, want)
	}
	drop, _ := steps.NewDropColumns("q")
	if _, err := drop.Transform(ctx, b); err == nil || !strings.Contains(err.Error(), `X has no column "q" to drop`) {
		t.Errorf("drop of a missing column: got %v", err)
	}
	all, _ := steps.NewDropColumns("x")
	if _, err := all.Transform(ctx, b); err == nil || !strings.Contains(err.Error(), "leaves X without columns") {
		t.Errorf("drop of every column: got %v", err)
	}
	for _, names := range [][]string{nil, {"a", "a"}, {""}} {
		if _, err := steps.NewSelectColumns(names...); err == nil {
			t.Errorf("NewSelectColumns(%q): got no error", names)
		}
		if _, err := steps.NewDropColumns(names...); err == nil {
			t.Errorf("NewDropColumns(%q): got no error", names)
		}
	}
}
