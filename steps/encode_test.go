package steps_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

// preYColumn transforms src with p and returns the column name of the
// output batches' Y, each row formatted with %v (a list as its values).
func preYColumn(t *testing.T, r flow.Runner, p *flow.Pipeline, src flow.Source, name string) []string {
	t.Helper()
	ctx := preContext(t)
	s, err := r.Transform(ctx, p, src)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	err = s.Each(ctx, func(b flow.Batch) error {
		idx := b.Y.Schema().FieldIndices(name)
		if len(idx) != 1 {
			return fmt.Errorf("Y has no column %q: %v", name, b.Y.Schema())
		}
		col := b.Y.Column(idx[0])
		for i := range col.Len() {
			out = append(out, col.ValueStr(i))
		}
		if b.X == nil || b.X.NumCols() != 1 || b.X.Schema().Field(0).Name != "f" {
			return fmt.Errorf("X was not passed through: %v", b.X)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLabelEncoderStrings(t *testing.T) {
	defer goleak.VerifyNone(t)
	labels := []string{"cat", "dog", "cat", "bird", "dog", "eel", "cat", "ant", "bird"}
	f := make([]float64, len(labels))
	for _, tc := range []struct {
		engine   flow.Engine
		replicas int
	}{{flow.Sequential, 1}, {flow.Streaming, 1}, {flow.Streaming, 2}} {
		t.Run(fmt.Sprint(tc.engine, tc.replicas), func(t *testing.T) {
			mem := preMem(t)
			src, err := minibatch.FromSlices(2, []minibatch.Column{minibatch.Float64s("f", f)},
				[]minibatch.Column{minibatch.Strings("animal", labels)}, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			e, err := steps.NewLabelEncoder("animal", steps.EncodeOutput("class"))
			if err != nil {
				t.Fatal(err)
			}
			p := prePipeline(t, flow.Named("enc", e, flow.Replicas(tc.replicas)))
			r := flow.Runner{Engine: tc.engine, Allocator: mem}
			if _, err := r.Fit(preContext(t), p, src); err != nil {
				t.Fatal(err)
			}
			if got, want := fmt.Sprint(e.Classes()), "[ant bird cat dog eel]"; got != want {
				t.Errorf("classes: got %s; want %s", got, want)
			}
			if err := src.Rewind(); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(preYColumn(t, r, p, src, "class"), " ")
			if want := "2 3 2 1 3 4 2 0 1"; got != want {
				t.Errorf("encoded: got %s; want %s", got, want)
			}
		})
	}
}

func TestLabelEncoderErrors(t *testing.T) {
	mem := preMem(t)
	ctx := flow.WithAllocator(preContext(t), mem)
	mk := func(y ...minibatch.Column) flow.Batch {
		t.Helper()
		src, err := minibatch.FromSlices(100, []minibatch.Column{minibatch.Float64s("f", make([]float64, y[0].Len()))}, y, minibatch.WithAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		b, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	text := mk(minibatch.Strings("l", []string{"a", "b"}))
	defer text.Release()
	unknown := mk(minibatch.Strings("l", []string{"a", "zebra"}))
	defer unknown.Release()
	ints := mk(minibatch.Int64s("l", []int64{30, 10, 20}))
	defer ints.Release()

	e, _ := steps.NewLabelEncoder("l")
	if _, err := e.Transform(ctx, text); err == nil || !strings.Contains(err.Error(), "not fitted") {
		t.Errorf("transform before fit: got %v", err)
	}
	if err := e.Fit(ctx, text); err != nil {
		t.Fatal(err)
	}
	want := `steps.LabelEncoder: transform: column "l" of Y, row 1, holds "zebra", which is not a known class (2 classes: ["a" "b"])`
	if _, err := e.Transform(ctx, unknown); err == nil || err.Error() != want {
		t.Errorf("unknown label: got %v; want %q", err, want)
	}
	if err := e.Fit(ctx, ints); err == nil || !strings.Contains(err.Error(), "labels are integers, but were strings before") {
		t.Errorf("ints after strings: got %v", err)
	}
	if got := fmt.Sprint(e.Classes()); got != `[a b]` {
		t.Errorf("a failed fit changed the classes: %s", got)
	}
	missing, _ := steps.NewLabelEncoder("label")
	if err := missing.Fit(ctx, text); err == nil || !strings.Contains(err.Error(), `no column "label" (it has "l")`) {
		t.Errorf("missing column: got %v", err)
	}

	// Integers, sorted by value; KnownClasses fixes them.
	ie, _ := steps.NewLabelEncoder("l")
	if err := ie.Fit(ctx, ints); err != nil {
		t.Fatal(err)
	}
	out, err := ie.Transform(ctx, ints)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(out.Y.Column(0).(*array.Int64).Int64Values()); got != "[2 0 1]" {
		t.Errorf("integer labels: got %s; want [2 0 1]", got)
	}
	out.Release()
	known, err := steps.NewLabelEncoder("l", steps.KnownClasses("b", "a", "c"))
	if err != nil {
		t.Fatal(err)
	}
	if err := known.Fit(ctx, unknown); err == nil || !strings.Contains(err.Error(), `holds "zebra"`) {
		t.Errorf("fit with known classes: got %v", err)
	}
	if err := known.Fit(ctx, text); err != nil || known.NumClasses() != 3 {
		t.Errorf("fit with known classes: %v, %d classes; want nil, 3", err, known.NumClasses())
	}
	known.Reset()
	if known.NumClasses() != 3 {
		t.Errorf("Reset forgot the known classes")
	}
	for _, bad := range [][]steps.EncodeOption{
		{steps.KnownClasses("a", "a")},
		{steps.KnownClasses("a", 1)},
		{steps.KnownClasses(1.5)},
		{steps.NumClasses(3)},
	} {
		if _, err := steps.NewLabelEncoder("l", bad...); err == nil {
			t.Errorf("NewLabelEncoder(%v): got no error", bad)
		}
	}
}

func TestOneHot(t *testing.T) {
	defer goleak.VerifyNone(t)
	labels := []int64{2, 0, 1, 2, 4, 0}
	f := make([]float64, len(labels))
	for _, tc := range []struct {
		name     string
		engine   flow.Engine
		replicas int
		opts     []steps.EncodeOption
		want     string
	}{
		{"learned", flow.Sequential, 1, nil, "[0,0,1,0,0] [1,0,0,0,0] [0,1,0,0,0] [0,0,1,0,0] [0,0,0,0,1] [1,0,0,0,0]"},
		{"learned replicas", flow.Streaming, 3, nil, "[0,0,1,0,0] [1,0,0,0,0] [0,1,0,0,0] [0,0,1,0,0] [0,0,0,0,1] [1,0,0,0,0]"},
		{"six classes", flow.Streaming, 1, []steps.EncodeOption{steps.NumClasses(6)}, "[0,0,1,0,0,0] [1,0,0,0,0,0] [0,1,0,0,0,0] [0,0,1,0,0,0] [0,0,0,0,1,0] [1,0,0,0,0,0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := preMem(t)
			src, err := minibatch.FromSlices(2, []minibatch.Column{minibatch.Float64s("f", f)},
				[]minibatch.Column{minibatch.Int64s("digit", labels)}, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			o, err := steps.NewOneHot("digit", tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			p := prePipeline(t, flow.Named("onehot", o, flow.Replicas(tc.replicas)))
			r := flow.Runner{Engine: tc.engine, Allocator: mem}
			if _, err := r.Fit(preContext(t), p, src); err != nil {
				t.Fatal(err)
			}
			if err := src.Rewind(); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(preYColumn(t, r, p, src, "digit"), " "); got != tc.want {
				t.Errorf("got %s; want %s", got, tc.want)
			}
		})
	}
}

func TestOneHotErrorsAndParams(t *testing.T) {
	mem := preMem(t)
	ctx := flow.WithAllocator(preContext(t), mem)
	b := flow.Batch{X: preTensor(mem, "x", [][]float32{{0}, {0}}), Y: preInt64s(mem, "y", []int64{1, 3})}
	defer b.Release()
	o, _ := steps.NewOneHot("y", steps.NumClasses(3))
	want := `steps.OneHot: fit: column "y" of Y, row 1, holds 3; want 0 to 2 (classes is 3)`
	if err := o.Fit(ctx, b); err == nil || err.Error() != want {
		t.Errorf("label beyond classes: got %v; want %q", err, want)
	}
	if _, err := o.Transform(ctx, b); err == nil || !strings.Contains(err.Error(), "row 1, holds 3; want 0 to 2") {
		t.Errorf("transform of a label beyond classes: got %v", err)
	}
	neg := flow.Batch{Y: preInt64s(mem, "y", []int64{-1})}
	defer neg.Release()
	learned, _ := steps.NewOneHot("y")
	if err := learned.Fit(ctx, neg); err == nil || !strings.Contains(err.Error(), "holds -1; want a class index from 0") {
		t.Errorf("negative label: got %v", err)
	}
	if _, err := learned.Transform(ctx, b); err == nil || !strings.Contains(err.Error(), "not fitted") {
		t.Errorf("transform before fit: got %v", err)
	}
	if _, err := steps.NewOneHot("y", steps.KnownClasses("a")); err == nil || !strings.Contains(err.Error(), "KnownClasses applies to a LabelEncoder only") {
		t.Errorf("OneHot with KnownClasses: got %v", err)
	}
	p := prePipeline(t, flow.Named("onehot", o))
	if err := hparams.Set(p, hparams.Values{"onehot__classes": -1}); err == nil {
		t.Error("Set classes -1: got no error")
	}
	if err := hparams.Set(p, hparams.Values{"onehot__classes": 5}); err != nil || o.Classes() != 5 {
		t.Errorf("Set classes 5: %v, classes %d", err, o.Classes())
	}
}
