package persist_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

// tableBatch returns one batch of 6 rows: X "x" (a tensor of width 3),
// "f" (float64 with a NaN), "i" (int64), "t" (float64, a series); Y
// "label" (strings), "class" (int64 0-2), "target" (float64).
func tableBatch(ctx context.Context, t *testing.T, mem memory.Allocator) flow.Batch {
	t.Helper()
	src := must[*minibatch.Memory](t)(minibatch.FromSlices(6,
		[]minibatch.Column{
			minibatch.Float64s("x0", []float64{1, 2, 3, 4, 5, 6}),
			minibatch.Float64s("x1", []float64{0, 1, 0, 1, 0, 3}),
			minibatch.Float64s("x2", []float64{9, 7, 5, 3, 1, 2}),
			minibatch.Float64s("f", []float64{1.5, 2.5, 1.5, 0, 0, 1.5}),
			minibatch.Int64s("i", []int64{3, 3, 1, 2, 3, 9}),
			minibatch.Float64s("t", []float64{0.1, 0.2, 0.4, 0.8, 1.6, 3.2}),
		},
		[]minibatch.Column{
			minibatch.Strings("label", []string{"b", "a", "c", "a", "b", "a"}),
			minibatch.Int64s("class", []int64{0, 1, 2, 1, 0, 1}),
			minibatch.Float64s("target", []float64{1, 2, 3, 4, 5, 6}),
		}, minibatch.WithAllocator(mem)))
	defer src.Close()
	b, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	// The tensor "p__x" next to the other columns, "c__f", "c__i", "c__t".
	union := must[*flow.Union](t)(flow.NewUnion(
		flow.Named("p", &minibatch.PackStep{Out: "x", Cols: []string{"x0", "x1", "x2"}}),
		flow.Named("c", must[*steps.SelectColumns](t)(steps.NewSelectColumns("f", "i", "t"))),
	))
	out := must[flow.Batch](t)(union.Transform(ctx, b))
	return out
}

// TestEveryStepRoundTrips saves each step of package steps, fitted where
// it learns, and checks that the loaded one saves to the same bytes (so
// that everything its MarshalState writes came back) and transforms a
// batch as the saved one does.
func TestEveryStepRoundTrips(t *testing.T) {
	mem := checkedMem(t)
	ctx := flow.WithAllocator(testCtx(t), mem)
	in := tableBatch(ctx, t, mem)
	defer in.Release()
	scaler := func(col string) flow.Step {
		return must[*steps.StandardScaler](t)(steps.NewStandardScaler(steps.ScaleColumn(col)))
	}
	cases := []struct {
		name string
		step flow.Step
	}{
		{"StandardScaler", scaler("p__x")},
		{"MinMaxScaler", must[*steps.MinMaxScaler](t)(steps.NewMinMaxScaler(steps.ScaleColumn("p__x"), steps.ScaleOutput("mm"), steps.FeatureRange(-1, 2)))},
		{"Imputer mean", must[*steps.Imputer](t)(steps.NewImputer(steps.ImputeMean, steps.ImputeColumns("c__f")))},
		{"Imputer most_frequent", must[*steps.Imputer](t)(steps.NewImputer(steps.ImputeMostFrequent))},
		{"Imputer constant", must[*steps.Imputer](t)(steps.NewImputer(steps.ImputeConstant, steps.FillValue(-7)))},
		{"LabelEncoder", must[*steps.LabelEncoder](t)(steps.NewLabelEncoder("label", steps.EncodeOutput("code")))},
		{"LabelEncoder known", must[*steps.LabelEncoder](t)(steps.NewLabelEncoder("class", steps.KnownClasses(0, 1, 2, 5)))},
		{"OneHot", must[*steps.OneHot](t)(steps.NewOneHot("class"))},
		{"OneHot fixed", must[*steps.OneHot](t)(steps.NewOneHot("class", steps.NumClasses(4)))},
		{"LinearRegression", must[*steps.LinearRegression](t)(steps.NewLinearRegression("target", steps.LinearColumn("p__x"), steps.L2(0.5), steps.Seed(3)))},
		{"LogisticRegression", must[*steps.LogisticRegression](t)(steps.NewLogisticRegression("class", 3, steps.LinearColumn("p__x"), steps.Momentum(0.3)))},
		{"GaussianNoise", must[*steps.GaussianNoise](t)(steps.NewGaussianNoise("p__x", 0.25, 9))},
		{"Window", must[*steps.Window](t)(steps.NewWindow("c__t", 4))},
		{"SelectColumns", must[*steps.SelectColumns](t)(steps.NewSelectColumns("c__i", "p__x"))},
		{"DropColumns", must[*steps.DropColumns](t)(steps.NewDropColumns("c__t"))},
		{"TrainOnly", must[*steps.TrainOnly](t)(steps.NewTrainOnly(flow.Named("s", scaler("p__x"))))},
		{"TestOnly", must[*steps.TestOnly](t)(steps.NewTestOnly(flow.Named("s", must[*steps.SelectColumns](t)(steps.NewSelectColumns("p__x")))))},
		{"OnY", must[*steps.OnY](t)(steps.NewOnY(flow.Named("impute", must[*steps.Imputer](t)(steps.NewImputer(steps.ImputeMean, steps.ImputeColumns("target"))))))},
		{"ExpandDim", must[*steps.ExpandDim](t)(steps.NewExpandDim(flow.Named("sel", must[*steps.SelectColumns](t)(steps.NewSelectColumns("c__f")))))},
		{"ChooseOneOf", must[*steps.ChooseOneOf](t)(steps.NewChooseOneOf(flow.Named("a", scaler("p__x")), flow.Named("b", must[*steps.DropColumns](t)(steps.NewDropColumns("c__i")))))},
		{"Optional", must[*steps.Optional](t)(steps.NewOptional(flow.Named("s", scaler("p__x")), false))},
	}
	// ForEach needs a list column: it is saved (not run) here.
	cases = append(cases, struct {
		name string
		step flow.Step
	}{"ForEach", must[*steps.ForEach](t)(steps.NewForEach("items", flow.Named("s", scaler("v"))))})
	registered := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if ch, ok := c.step.(*steps.ChooseOneOf); ok {
				if err := ch.SetParams(hparams.Values{"choice": "b"}); err != nil {
					t.Fatal(err)
				}
			}
			if c.name != "ForEach" {
				fitOnce(ctx, t, c.step, in)
			}
			typ, ok := persist.Default.TypeOf(c.step)
			if !ok {
				t.Fatalf("%T is not registered", c.step)
			}
			registered[typ.Name] = true
			first := must[[]byte](t)(persist.Marshal(c.step, persist.WithAllocator(mem)))
			m := must[*persist.Model](t)(persist.Unmarshal(first, persist.WithAllocator(mem)))
			second := must[[]byte](t)(persist.Marshal(m.Step, persist.WithAllocator(mem)))
			if !bytes.Equal(first, second) {
				t.Fatalf("the loaded step saves to other bytes than the saved one")
			}
			if c.name == "ForEach" {
				return
			}
			a, err := c.step.Transform(ctx, in)
			if err != nil {
				t.Fatalf("transform of the saved step: %v", err)
			}
			defer a.Release()
			b, err := m.Step.Transform(ctx, in)
			if err != nil {
				t.Fatalf("transform of the loaded step: %v", err)
			}
			defer b.Release()
			if ja, jb := recordJSON(t, a.X)+recordJSON(t, a.Y), recordJSON(t, b.X)+recordJSON(t, b.Y); ja != jb {
				t.Fatalf("transform: loaded\n%s\nwant\n%s", jb, ja)
			}
		})
	}
	if len(registered) != 18 {
		t.Errorf("%d step types round-tripped; want all 18 of package steps", len(registered))
	}
}

// fitOnce fits s on in, as a runner does (FitTransform where it has one).
func fitOnce(ctx context.Context, t *testing.T, s flow.Step, in flow.Batch) {
	t.Helper()
	switch f := s.(type) {
	case flow.FitTransformer:
		out, err := f.FitTransform(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		out.Release()
	case flow.Fitter:
		if err := f.Fit(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
}

// device is a step whose state cannot be written as it is: a handle that
// Setup acquires (a device buffer, here a copy of the weights) and
// Teardown releases. Its saver, in its Type, writes the weights only.
type device struct {
	weights []float32
	handle  []float32 // set up: what Transform uses
}

var errNotSetUp = errors.New("device: not set up")

func (d *device) Setup(context.Context) error    { d.handle = slices.Clone(d.weights); return nil }
func (d *device) Teardown(context.Context) error { d.handle = nil; return nil }

func (d *device) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	if d.handle == nil {
		return flow.Batch{}, errNotSetUp
	}
	x, err := minibatch.Features(in, "x")
	if err != nil {
		return flow.Batch{}, err
	}
	out := minibatch.NewMatrix(flow.Allocator(ctx), x.Rows, x.Cols)
	defer out.Release()
	for i, v := range x.Data {
		out.Data[i] = v * d.handle[i%len(d.handle)]
	}
	return in.WithX(out.Record("x")), nil
}

// TestSaverAndSetup: a type with its own saver is saved without its
// handle; the loaded step is not set up, and a Runner sets it up before
// its first batch.
func TestSaverAndSetup(t *testing.T) {
	mem := checkedMem(t)
	ctx := testCtx(t)
	reg := persist.NewRegistry()
	err := reg.Register(persist.Type{Name: "test.device", Version: 2, Of: (*device)(nil),
		SaveState: func(s flow.Step, w *persist.StateWriter) error {
			w.Float32s("weights", s.(*device).weights)
			return nil
		},
		New: func(spec persist.Spec) (flow.Step, error) {
			if spec.Version != 2 || spec.State.Version() != 2 {
				return nil, errors.New("wrong version")
			}
			w, err := spec.State.Float32s("weights")
			if err != nil {
				return nil, err
			}
			return &device{weights: w}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	d := &device{weights: []float32{2, 3}}
	if err := d.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	p := must[*flow.Pipeline](t)(flow.NewPipeline([]flow.Node{flow.Named("dev", d)}))
	m := must[*persist.Model](t)(persist.Unmarshal(must[[]byte](t)(persist.Marshal(p, persist.WithRegistry(reg))), persist.WithRegistry(reg)))
	q := must[*flow.Pipeline](t)(m.Pipeline())
	loaded := q.Step("dev").(*device)
	if loaded.handle != nil {
		t.Fatal("the handle was saved")
	}
	in := tensorBatch(mem, 2, 2)
	defer in.Release()
	if _, err := loaded.Transform(flow.WithAllocator(ctx, mem), in); !errors.Is(err, errNotSetUp) {
		t.Fatalf("transform before setup: %v; want %v", err, errNotSetUp)
	}
	src := must[*minibatch.Memory](t)(minibatch.FromRecords([]arrow.RecordBatch{in.X}, nil))
	defer src.Close()
	for _, e := range engines {
		if err := src.Rewind(); err != nil {
			t.Fatal(err)
		}
		got := outputs(ctx, t, flow.Runner{Engine: e, Allocator: mem}, q, src)
		if len(got) != 1 || !strings.Contains(got[0], "x=[[1,4.5],[5,10.5]]") {
			t.Fatalf("%s: %v; want x = [[0.5·2, 1.5·3], [2.5·2, 3.5·3]]", e, got)
		}
	}
	if _, err := persist.Marshal(p); !errors.Is(err, persist.ErrUnknownType) {
		t.Fatalf("saving with Default, where test.device is not registered: %v; want ErrUnknownType", err)
	}
}
