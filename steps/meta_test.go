package steps_test

import (
	"context"
	"maps"
	"slices"
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

// TestChooseOneOfRuns: only the chosen branch is set up, fitted and run,
// in both engines, inside a union inside a pipeline; choosing the other
// branch with hparams.Set switches.
func TestChooseOneOfRuns(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	var outs []metaOut
	for _, r := range metaRunners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			a, b := newMetaMean("x", 0), newMetaMean("x", 1000)
			pick := metaMust[*steps.ChooseOneOf](t)(steps.NewChooseOneOf(flow.Named("a", a), flow.Named("b", b)))
			u := metaMust[*flow.Union](t)(flow.NewUnion(flow.Named("pick", pick), flow.Named("id", metaTimes{"x", 1})))
			p := metaPipeline(t, flow.Named("feats", u))
			src := metaTensors(t, mem, 20, 5)
			fit := metaFitTransform(ctx, t, r, p, src, "pick__x", "y")
			a.check(t, "chosen a", 1, 4, 4)
			b.check(t, "unchosen b", 0, 0, 0)
			if err := hparams.Set(p, hparams.Values{"feats__pick__choice": "b"}); err != nil {
				t.Fatal(err)
			}
			if pick.Choice() != "b" || pick.Active("a") {
				t.Fatalf("after Set: choice %q", pick.Choice())
			}
			tr := metaTransform(ctx, t, r, p, metaRewind(t, src), "pick__x", "y")
			for i, v := range tr.x {
				if want := float64(i) + 1000; v != want { // b learned nothing: mean 0
					t.Fatalf("row %d: got %v; want %v (branch b)", i, v, want)
				}
			}
			a.check(t, "a, no longer chosen", 1, 4, 4)
			b.check(t, "b, chosen", 1, 0, 4)
			if err := pick.SetParams(hparams.Values{"choice": "c"}); err == nil {
				t.Error("choice of no branch: no error")
			}
			outs = append(outs, fit, tr)
		})
	}
	if len(outs) == 4 && (!outs[0].equal(outs[2]) || !outs[1].equal(outs[3])) {
		t.Error("engines differ")
	}
}

func TestOptional(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	for _, r := range metaRunners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			m := newMetaMean("x", 100)
			opt := metaMust[*steps.Optional](t)(steps.NewOptional(flow.Named("m", m), false))
			p := metaPipeline(t, flow.Named("opt", opt))
			src := metaTensors(t, mem, 10, 5)
			off := metaFitTransform(ctx, t, r, p, src, "x", "y")
			if !slices.Equal(off.x, off.y) {
				t.Errorf("disabled: got %v; want the input", off.x)
			}
			m.check(t, "disabled child", 0, 0, 0)
			if err := hparams.Set(p, hparams.Values{"opt__enabled": true}); err != nil {
				t.Fatal(err)
			}
			on := metaFitTransform(ctx, t, r, p, metaRewind(t, src), "x", "y")
			if on.x[0] != 98 { // the first batch is 0 … 4: mean 2, so 0 - 2 + 100
				t.Errorf("enabled: row 0 is %v; want 98", on.x[0])
			}
			m.check(t, "enabled child", 1, 2, 2)
		})
	}
}

// TestHparamsRoundTrip: hparams.Gather → Sample → Set → Get gives the
// sample back, through a ChooseOneOf and an Optional inside a union inside
// a pipeline.
func TestHparamsRoundTrip(t *testing.T) {
	noise := func(sd float64) *steps.GaussianNoise {
		return metaMust[*steps.GaussianNoise](t)(steps.NewGaussianNoise("x", sd, 0))
	}
	aug := metaMust[*steps.TrainOnly](t)(steps.NewTrainOnly(flow.Named("n", noise(0.2))))
	opt := metaMust[*steps.Optional](t)(steps.NewOptional(flow.Named("aug", aug), true))
	pick := metaMust[*steps.ChooseOneOf](t)(steps.NewChooseOneOf(flow.Named("noisy", noise(0.1)), flow.Named("maybe", opt)))
	u := metaMust[*flow.Union](t)(flow.NewUnion(flow.Named("pick", pick), flow.Named("id", metaTimes{"x", 1})))
	p := metaPipeline(t, flow.Named("feats", u), flow.Named("win", metaMust[*steps.Window](t)(steps.NewWindow("feats__id__x", 3))))
	space, err := hparams.Gather(p)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"feats__pick__choice", "feats__pick__maybe__aug__n__stddev", "feats__pick__maybe__enabled", "feats__pick__noisy__stddev", "win__k"}
	if got := space.Keys(); !slices.Equal(got, wantKeys) {
		t.Fatalf("space keys %v; want %v", got, wantKeys)
	}
	rng := hparams.NewRand(1)
	seen := map[string]bool{}
	for range 40 {
		sample, err := space.Sample(rng)
		if err != nil {
			t.Fatal(err)
		}
		if err := hparams.Set(p, sample); err != nil {
			t.Fatal(err)
		}
		got, err := hparams.Get(p)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, sample) {
			t.Fatalf("Get after Set(%v) = %v", sample, got)
		}
		seen[sample["feats__pick__choice"].(string)] = true
	}
	if len(seen) < 2 {
		t.Errorf("40 samples never chose both branches: %v", seen)
	}
	if err := hparams.Set(p, hparams.Values{"feats__pick__choice": "nope"}); err == nil {
		t.Error("a choice outside the space: no error")
	}
}

// metaListSource is one batch whose X column "seq" is list<fixed_size_list<
// float32, 1>> with the given sequences, and whose Y "y" is the row number.
func metaListSource(t *testing.T, mem memory.Allocator, seqs ...[]float32) *minibatch.Memory {
	t.Helper()
	lb := array.NewListBuilder(mem, minibatch.TensorType(1))
	fb := lb.ValueBuilder().(*array.FixedSizeListBuilder)
	vb := fb.ValueBuilder().(*array.Float32Builder)
	yb := array.NewFloat64Builder(mem)
	for i, s := range seqs {
		lb.Append(true)
		for _, v := range s {
			fb.Append(true)
			vb.Append(v)
		}
		yb.Append(float64(i))
	}
	col, ycol := lb.NewArray(), yb.NewArray()
	lb.Release()
	yb.Release()
	x := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "seq", Type: col.DataType()}}, nil), []arrow.Array{col}, int64(len(seqs)))
	y := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "y", Type: ycol.DataType()}}, nil), []arrow.Array{ycol}, int64(len(seqs)))
	col.Release()
	ycol.Release()
	src, err := minibatch.FromRecords([]arrow.RecordBatch{x}, []arrow.RecordBatch{y})
	x.Release()
	y.Release()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// metaListRows returns the rows of list column name of X, each flattened.
func metaListRows(ctx context.Context, t *testing.T, s *flow.Stream, name string) [][]float64 {
	t.Helper()
	bs, err := flow.Collect(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float64
	for _, b := range bs {
		l := b.X.Column(b.X.Schema().FieldIndices(name)[0]).(*array.List)
		for r := range l.Len() {
			st, e := l.ValueOffsets(r)
			sl := array.NewSlice(l.ListValues(), st, e)
			out = append(out, metaFlat(t, sl))
			sl.Release()
		}
		b.Release()
	}
	return out
}

// TestForEach: the child is fitted on each sequence in turn and
// transforms each; it may change the number of items; Y passes through.
func TestForEach(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	seqs := [][]float32{{1, 2, 3}, {}, {10, 20}, {6, 7, 8, 9}}
	for _, r := range metaRunners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			m := newMetaMean("seq", 0)
			fe := metaMust[*steps.ForEach](t)(steps.NewForEach("seq", flow.Named("center", m)))
			p := metaPipeline(t, flow.Named("each", fe))
			src := metaListSource(t, mem, seqs...)
			s, err := r.FitTransform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			// Running means after each sequence: 2, 2 (empty), 36/5, 66/9.
			want := [][]float64{{-1, 0, 1}, nil, {10 - 7.2, 20 - 7.2}, {6 - 66.0/9, 7 - 66.0/9, 8 - 66.0/9, 9 - 66.0/9}}
			got := metaListRows(ctx, t, s, "seq")
			if len(got) != 4 {
				t.Fatalf("got %d rows; want 4", len(got))
			}
			for i := range want {
				if len(got[i]) != len(want[i]) {
					t.Fatalf("row %d: %v; want %v", i, got[i], want[i])
				}
				for j := range want[i] {
					if d := got[i][j] - want[i][j]; d > 1e-5 || d < -1e-5 {
						t.Fatalf("row %d: %v; want %v", i, got[i], want[i])
					}
				}
			}
			m.check(t, "child", 1, 4, 4)

			// A child that changes the number of items: windows of 2.
			w := metaMust[*steps.Window](t)(steps.NewWindow("seq", 2))
			flat := metaMust[*flow.Pipeline](t)(flow.NewPipeline([]flow.Node{flow.Named("flat", metaFlatten{}), flow.Named("win", w)}))
			p2 := metaPipeline(t, flow.Named("each", metaMust[*steps.ForEach](t)(steps.NewForEach("seq", flow.Named("w", flat)))))
			s, err = r.Transform(ctx, p2, metaRewind(t, src))
			if err != nil {
				t.Fatal(err)
			}
			got = metaListRows(ctx, t, s, "seq")
			wantW := [][]float64{{1, 2, 2, 3}, nil, {10, 20}, {6, 7, 7, 8, 8, 9}}
			for i := range wantW {
				if !slices.Equal(got[i], wantW[i]) {
					t.Errorf("windows of row %d: %v; want %v", i, got[i], wantW[i])
				}
			}
		})
	}
}

// metaFlatten turns the tensor column "seq" of width 1 into a float32 column.
type metaFlatten struct{}

func (metaFlatten) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	x, err := minibatch.Features(in, "seq")
	if err != nil {
		return flow.Batch{}, err
	}
	b := array.NewFloat32Builder(flow.Allocator(ctx))
	defer b.Release()
	b.AppendValues(x.Data, nil)
	col := b.NewArray()
	defer col.Release()
	return in.WithX(array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "seq", Type: col.DataType()}}, nil), []arrow.Array{col}, int64(col.Len()))), nil
}

// TestExpandDim: ExpandDim(ForEach(m)) is m, batch by batch, in both
// engines, X and Y alike.
func TestExpandDim(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	for _, r := range metaRunners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			direct, inner := newMetaMean("x", 0), newMetaMean("x", 0)
			fe := metaMust[*steps.ForEach](t)(steps.NewForEach("x", flow.Named("m", inner)))
			ed := metaMust[*steps.ExpandDim](t)(steps.NewExpandDim(flow.Named("each", fe)))
			src := metaTensors(t, mem, 23, 5)
			want := metaFitTransform(ctx, t, r, metaPipeline(t, flow.Named("m", direct)), src, "x", "y")
			got := metaFitTransform(ctx, t, r, metaPipeline(t, flow.Named("ed", ed)), metaRewind(t, src), "x", "y")
			if !got.equal(want) {
				t.Errorf("ExpandDim(ForEach(m)): %v; want m's %v", got, want)
			}
			inner.check(t, "inner", 1, 5, 5)
			// Fit only (the last fittable step: Fit, not FitTransform).
			if _, err := r.Fit(ctx, metaPipeline(t, flow.Named("ed", ed)), metaRewind(t, src)); err != nil {
				t.Fatal(err)
			}
			if inner.n != 46 {
				t.Errorf("after a second fit the child saw %v values; want 46", inner.n)
			}
		})
	}
}

// TestUnionAndReplicas shows that flow's feature union is scikit-learn's
// FeatureUnion (branches side by side, each fitted on the same batches)
// and that a replicated stage is Neuraxle's ParallelTransform (one step,
// several workers, the same output as one).
func TestUnionAndReplicas(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	for _, r := range metaRunners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			m := newMetaMean("x", 0)
			u := metaMust[*flow.Union](t)(flow.NewUnion(flow.Named("center", m), flow.Named("double", metaTimes{"x", 2})))
			p := metaPipeline(t, flow.Named("feats", u))
			src := metaTensors(t, mem, 20, 5)
			s, err := r.FitTransform(ctx, p, src)
			if err != nil {
				t.Fatal(err)
			}
			bs, err := flow.Collect(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			row := 0
			for _, b := range bs {
				c, d := metaValues(t, b.X, "center__x"), metaValues(t, b.X, "double__x")
				for i := range c {
					n := float64((row/5 + 1) * 5)
					if c[i] != float64(row)-(n-1)/2 || d[i] != 2*float64(row) {
						t.Fatalf("row %d: center %v, double %v", row, c[i], d[i])
					}
					row++
				}
				b.Release()
			}
			if row != 20 {
				t.Fatalf("%d rows; want 20", row)
			}
			one := metaTransform(ctx, t, r, metaPipeline(t, flow.Named("c", m)), metaRewind(t, src), "x", "y")
			four := metaTransform(ctx, t, r, metaPipeline(t, flow.Named("c", m, flow.Replicas(4))), metaRewind(t, src), "x", "y")
			if !one.equal(four) {
				t.Errorf("4 replicas: %v; one: %v", four, one)
			}
			// A replicated fit merges: the same state as one replica.
			m4 := newMetaMean("x", 0)
			if _, err := r.Fit(ctx, metaPipeline(t, flow.Named("c", m4, flow.Replicas(4))), metaRewind(t, src)); err != nil {
				t.Fatal(err)
			}
			if m4.n != 20 || m4.sum != 190 {
				t.Errorf("replicated fit learned n %v, sum %v; want 20 and 190", m4.n, m4.sum)
			}
		})
	}
}
