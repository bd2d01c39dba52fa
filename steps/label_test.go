package steps_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

// metaSeries1to10 is the series 1 … 10 as column "s" of X, in batches of size.
func metaSeries1to10(t *testing.T, mem memory.Allocator, size int) *minibatch.Memory {
	t.Helper()
	vals := make([]float64, 10)
	for i := range vals {
		vals[i] = float64(i + 1)
	}
	src, err := minibatch.FromSlices(size, []minibatch.Column{minibatch.Float64s("s", vals)}, nil, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// metaPairs1to10 is what Window(3) makes of 1 … 10 on the fit path, epochs
// times over.
func metaPairs1to10(epochs int) (x, y []float64) {
	for range epochs {
		for i := 1; i <= 7; i++ {
			x = append(x, float64(i), float64(i+1), float64(i+2))
			y = append(y, float64(i+3))
		}
	}
	return x, y
}

func TestWindowFitPairs(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	for _, size := range []int{10, 4, 3, 1} { // batch boundaries everywhere
		for _, epochs := range []int{1, 2} {
			var outs []metaOut
			for _, r := range metaRunners(mem) {
				t.Run(r.Engine.String(), func(t *testing.T) {
					defer goleak.VerifyNone(t)
					w := metaMust[*steps.Window](t)(steps.NewWindow("s", 3))
					p := metaPipeline(t, flow.Named("win", w))
					stream, err := minibatch.Repeat(metaSeries1to10(t, mem, size), epochs)
					if err != nil {
						t.Fatal(err)
					}
					got := metaFitTransform(ctx, t, r, p, stream, steps.WindowX, steps.WindowY)
					wx, wy := metaPairs1to10(epochs)
					if !slices.Equal(got.x, wx) || !slices.Equal(got.y, wy) {
						t.Fatalf("batches of %d, %d epochs: got windows %v → %v; want %v → %v", size, epochs, got.x, got.y, wx, wy)
					}
					outs = append(outs, got)
				})
			}
			if len(outs) == 2 && !outs[0].equal(outs[1]) {
				t.Errorf("batches of %d: engines differ", size)
			}
		}
	}
}

// TestWindowTransform: at inference the windows end at each row from
// row k-1 on and stay inside their batch; Y, where there is one, is cut
// to match.
func TestWindowTransform(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	defer goleak.VerifyNone(t)
	w := metaMust[*steps.Window](t)(steps.NewWindow("s", 3))
	p := metaPipeline(t, flow.Named("win", w))
	r := flow.Runner{Engine: flow.Streaming, Allocator: mem}
	got := metaTransform(ctx, t, r, p, metaSeries1to10(t, mem, 10), steps.WindowX, "")
	var want []float64
	for i := 1; i <= 8; i++ {
		want = append(want, float64(i), float64(i+1), float64(i+2))
	}
	if !slices.Equal(got.x, want) {
		t.Errorf("one batch: got %v; want %v", got.x, want)
	}
	got = metaTransform(ctx, t, r, p, metaSeries1to10(t, mem, 4), steps.WindowX, "")
	if want := []int64{2, 2, 0}; !slices.Equal(got.rows, want) {
		t.Errorf("batches of 4: rows %v; want %v (windows stay in their batch)", got.rows, want)
	}
	// A Y passes through, cut to the windows: the row each window ends at.
	src := metaTensors(t, mem, 6, 6)
	wx := metaMust[*steps.Window](t)(steps.NewWindow("y", 2)) // the series "y" as X, the tensor as Y
	b, err := src.Next(flow.WithAllocator(ctx, mem))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	swapped := flow.Batch{X: b.Y, Y: b.X}
	out, err := wx.Transform(flow.WithAllocator(ctx, mem), swapped)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if x, y := metaValues(t, out.X, steps.WindowX), metaValues(t, out.Y, "x"); !slices.Equal(x, []float64{0, 1, 1, 2, 2, 3, 3, 4, 4, 5}) || !slices.Equal(y, []float64{1, 2, 3, 4, 5}) {
		t.Errorf("windows %v with Y %v; want 5 windows of 2 and Y rows 1 … 5", x, y)
	}
}

func TestWindowState(t *testing.T) {
	mem := metaMem(t)
	ctx := flow.WithAllocator(metaCtx(t), mem)
	src := metaSeries1to10(t, mem, 5)
	first, _ := src.Next(ctx)
	second, _ := src.Next(ctx)
	defer first.Release()
	defer second.Release()
	w := metaMust[*steps.Window](t)(steps.NewWindow("s", 3))
	fit := func(s flow.Step, b flow.Batch) []float64 {
		t.Helper()
		out, err := s.(flow.FitTransformer).FitTransform(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Release()
		return metaValues(t, out.Y, steps.WindowY)
	}
	fit(w, first)
	c := w.Copy()
	if got := fit(c, second); !slices.Equal(got, []float64{6, 7, 8, 9, 10}) {
		t.Errorf("a copy continues with %v; want 6 … 10 (the carried values are copied)", got)
	}
	if got := fit(w.Replica(), second); !slices.Equal(got, []float64{9, 10}) {
		t.Errorf("a replica continues with %v; want 9, 10 (nothing carried)", got)
	}
	w.Reset()
	if got := fit(w, second); !slices.Equal(got, []float64{9, 10}) {
		t.Errorf("after Reset: %v; want 9, 10", got)
	}
	if err := hparams.Set(w, hparams.Values{"k": 4}); err != nil || w.Params()["k"] != 4 {
		t.Errorf("set k 4: %v, %v", err, w.Params())
	}
	if err := w.SetParams(hparams.Values{"k": 0}); err == nil {
		t.Error("k 0: no error")
	}
	if _, err := steps.NewWindow("s", 0); err == nil {
		t.Error("NewWindow k 0: no error")
	}
	bad := flow.Batch{X: first.X}
	if _, err := metaMust[*steps.Window](t)(steps.NewWindow("nope", 2)).Transform(ctx, bad); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing column: got %v", err)
	}
}

// TestOnY: the child learns and transforms Y; X is untouched; a batch
// without Y passes through.
func TestOnY(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	var outs []metaOut
	for _, r := range metaRunners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			m := newMetaMean("x", 0)
			// swap puts the tensor "x" in Y; OnY centres it there.
			on := metaMust[*steps.OnY](t)(steps.NewOnY(flow.Named("center", m)))
			p := metaPipeline(t, flow.Named("swap", metaSwap{}), flow.Named("ony", on))
			src := metaTensors(t, mem, 10, 5)
			got := metaFitTransform(ctx, t, r, p, src, "y", "x")
			for i := range 10 {
				n := float64((i/5 + 1) * 5)
				if got.x[i] != float64(i) || got.y[i] != float64(i)-(n-1)/2 {
					t.Fatalf("row %d: X %v, Y %v; want X %d and Y centred by the running mean", i, got.x[i], got.y[i], i)
				}
			}
			m.check(t, "child", 1, 2, 2)
			// Inference: no Y, nothing to do.
			ctx := flow.WithAllocator(ctx, mem)
			b, _ := metaRewind(t, src).Next(ctx)
			defer b.Release()
			out, err := on.Transform(ctx, flow.Batch{X: b.X})
			if err != nil || out.X != b.X || out.Y != nil {
				t.Errorf("without Y: got %v, %v; want the batch passed through", out, err)
			}
			out.Release()
			outs = append(outs, got)
		})
	}
	if len(outs) == 2 && !outs[0].equal(outs[1]) {
		t.Error("engines differ")
	}
}
