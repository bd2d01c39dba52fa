package steps_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/steps"
)

// TestGaussianNoise: noise on the fit path only, the same in both
// engines for one seed, another for another seed, of about the asked
// standard deviation.
func TestGaussianNoise(t *testing.T) {
	mem := metaMem(t)
	ctx := metaCtx(t)
	run := func(r flow.Runner, seed uint64) (fit, tr metaOut) {
		t.Helper()
		g := metaMust[*steps.GaussianNoise](t)(steps.NewGaussianNoise("x", 0.5, seed))
		p := metaPipeline(t, flow.Named("noise", g))
		src := metaTensors(t, mem, 2000, 100)
		return metaFitTransform(ctx, t, r, p, src, "x", "y"), metaTransform(ctx, t, r, p, metaRewind(t, src), "x", "y")
	}
	var fits []metaOut
	for _, r := range metaRunners(mem) {
		t.Run(r.Engine.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			fit, tr := run(r, 7)
			var sum, sumSq float64
			for i, v := range fit.x {
				d := v - fit.y[i]
				sum, sumSq = sum+d, sumSq+d*d
			}
			n := float64(len(fit.x))
			if m, sd := sum/n, math.Sqrt(sumSq/n-(sum/n)*(sum/n)); math.Abs(m) > 0.05 || math.Abs(sd-0.5) > 0.05 {
				t.Errorf("noise of mean %.3f and sd %.3f; want about 0 and 0.5", m, sd)
			}
			if !slices.Equal(tr.x, tr.y) {
				t.Error("the transform path added noise")
			}
			fits = append(fits, fit)
		})
	}
	if len(fits) == 2 && !fits[0].equal(fits[1]) {
		t.Error("the engines drew different noise for one seed")
	}
	if other, _ := run(metaRunners(mem)[0], 8); other.equal(fits[0]) {
		t.Error("seeds 7 and 8 drew the same noise")
	}
}

// TestGaussianNoiseState: the generator is the step's state: Copy draws
// what the original draws next, Reset starts over, replicas draw their
// own streams.
func TestGaussianNoiseState(t *testing.T) {
	mem := metaMem(t)
	ctx := flow.WithAllocator(metaCtx(t), mem)
	src := metaTensors(t, mem, 10, 10)
	b, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	draw := func(s flow.Step) []float64 {
		t.Helper()
		out, err := s.(flow.FitTransformer).FitTransform(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Release()
		return metaValues(t, out.X, "x")
	}
	g := metaMust[*steps.GaussianNoise](t)(steps.NewGaussianNoise("x", 1, 3))
	first := draw(g)
	c := g.Copy()
	second, fromCopy := draw(g), draw(c)
	if slices.Equal(first, second) || !slices.Equal(second, fromCopy) {
		t.Errorf("a copy made after one draw draws %v; the original %v (want equal, and not the first %v)", fromCopy, second, first)
	}
	g.Reset()
	if again := draw(g); !slices.Equal(again, first) {
		t.Errorf("after Reset: %v; want the first draw %v", again, first)
	}
	r1, r2 := g.Replica(), g.Replica()
	d1, d2 := draw(r1), draw(r2)
	if slices.Equal(d1, d2) || slices.Equal(d1, first) {
		t.Error("replicas draw the same noise as each other or as the original")
	}
	if err := g.Merge([]flow.Step{r1, r2}); err != nil {
		t.Fatal(err)
	}
	if err := g.Merge([]flow.Step{metaTimes{}}); err == nil {
		t.Error("merge of another type: no error")
	}
	// A replicated streaming fit is refused by nothing and runs.
	p := metaPipeline(t, flow.Named("noise", g, flow.Replicas(2)), flow.Named("m", newMetaMean("x", 0)))
	if _, err := (flow.Runner{Engine: flow.Streaming, Allocator: mem}).Fit(ctx, p, metaRewind(t, src)); err != nil {
		t.Fatal(err)
	}
}

func TestGaussianNoiseParams(t *testing.T) {
	g := metaMust[*steps.GaussianNoise](t)(steps.NewGaussianNoise("x", 0.1, 0))
	if err := hparams.Set(g, hparams.Values{"stddev": 0.3}); err != nil || g.Params()["stddev"] != 0.3 {
		t.Errorf("set stddev 0.3: %v, params %v", err, g.Params())
	}
	for _, bad := range []hparams.Values{{"stddev": -1.0}, {"stddev": math.NaN()}, {"mean": 1.0}} {
		if err := g.SetParams(bad); err == nil {
			t.Errorf("SetParams(%v): no error", bad)
		}
	}
	if err := hparams.Set(g, hparams.Values{"stddev": 0.7}); err == nil {
		t.Error("stddev outside the space: no error")
	}
	for _, tc := range []struct {
		col string
		sd  float64
	}{{"", 1}, {"x", -1}, {"x", math.Inf(1)}} {
		if _, err := steps.NewGaussianNoise(tc.col, tc.sd, 0); err == nil || !strings.Contains(err.Error(), "NewGaussianNoise") {
			t.Errorf("NewGaussianNoise(%q, %v): got %v", tc.col, tc.sd, err)
		}
	}
}
