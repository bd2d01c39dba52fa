package mlp_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps/mlp"
	"github.com/penstock-ml/penstock/steps/nn"
)

// blobs returns n rows of 4 features in 3 classes: class k is centred at
// 2·e_k, with unit noise.
func blobs(n int, seed uint64) ([]float32, []int64) {
	r := rand.New(rand.NewPCG(seed, 1))
	xs, ys := make([]float32, n*4), make([]int64, n)
	for i := range n {
		k := i % 3
		ys[i] = int64(k)
		for j := range 4 {
			xs[i*4+j] = float32(r.NormFloat64())
		}
		xs[i*4+k] += 2
	}
	return xs, ys
}

func smallSpec() nn.Spec {
	s := nn.Default(nn.CrossEntropy)
	s.Hidden = []int{16}
	s.LearningRate = 0.01
	return s
}

func newClassifier(t *testing.T, spec nn.Spec, opts ...mlp.Option) *mlp.Classifier {
	t.Helper()
	m, err := mlp.NewClassifier(3, spec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func pipeline(t *testing.T, s flow.Step, opts ...flow.Option) *flow.Pipeline {
	t.Helper()
	p, err := flow.NewPipeline([]flow.Node{flow.Named("mlp", s, opts...)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fitBlobs fits s on epochs passes over 300 blob rows in batches of 32.
func fitBlobs(t *testing.T, ctx context.Context, r flow.Runner, p *flow.Pipeline, n int) {
	t.Helper()
	xs, ys := blobs(300, 7)
	src := memorySource(t, r.Allocator, xs, ys)
	defer src.Close()
	perm, stream := epochs(t, src, 32, n)
	defer perm.Close()
	defer stream.Close()
	if _, err := r.Fit(ctx, p, stream); err != nil {
		t.Fatal(err)
	}
}

func engines(t *testing.T, fn func(t *testing.T, r flow.Runner)) {
	for _, e := range []flow.Engine{flow.Sequential, flow.Streaming} {
		t.Run(e.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			fn(t, flow.Runner{Engine: e, Allocator: checked(t)})
		})
	}
}

func TestBlobsAndFrozen(t *testing.T) {
	engines(t, func(t *testing.T, r flow.Runner) {
		ctx := deadline(t, 30*time.Second)
		m := newClassifier(t, smallSpec(), mlp.WithProba())
		fitBlobs(t, ctx, r, pipeline(t, m), 5)
		xs, ys := blobs(150, 8)
		test := memorySource(t, r.Allocator, xs, ys)
		defer test.Close()
		scores, err := metrics.Score(ctx, r, pipeline(t, m), test, mlp.ClassColumn, "y", metrics.Accuracy())
		if err != nil {
			t.Fatal(err)
		}
		if acc := scores["accuracy"]; acc < 0.75 {
			t.Errorf("blob accuracy %.3f; want at least 0.75", acc)
		}
		// Frozen: FitEpochs(0) on its node, the fit changes nothing.
		before, steps := m.Weights(), m.Steps()
		fitBlobs(t, ctx, r, pipeline(t, m, flow.FitEpochs(0)), 2)
		if !equalLayers(m.Weights(), before) || m.Steps() != steps {
			t.Errorf("a frozen classifier changed: %d steps, was %d", m.Steps(), steps)
		}
		// Not frozen, it changes.
		fitBlobs(t, ctx, r, pipeline(t, m), 1)
		if equalLayers(m.Weights(), before) {
			t.Error("a further fit did not change the weights")
		}
	})
}

func equalLayers(a, b []nn.Layer) bool {
	return slices.EqualFunc(a, b, func(x, y nn.Layer) bool {
		return x.In == y.In && x.Out == y.Out && slices.Equal(x.W, y.W) && slices.Equal(x.B, y.B)
	})
}

// setUp sets s up for the test and tears it down at its end.
func setUp(t *testing.T, s flow.Step) {
	t.Helper()
	if err := flow.Setup(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := flow.Teardown(context.Background(), s); err != nil {
			t.Error(err)
		}
	})
}

// TestDropoutFitPathOnly: dropout changes what the fit path computes
// (FitTransform), never what Transform does.
func TestDropoutFitPathOnly(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checked(t)
	ctx := flow.WithAllocator(deadline(t, 30*time.Second), mem)
	xs, ys := blobs(8, 3)
	// Rows 4 to 7 repeat row 0: without dropout they give row 0's outputs.
	for r := 4; r < 8; r++ {
		copy(xs[r*4:(r+1)*4], xs[:4])
	}
	y := int64Record(mem, "y", ys)
	b := batch(mem, 4, xs, y)
	defer b.Release()

	for _, dropout := range []float64{0, 0.5} {
		spec := smallSpec()
		spec.Dropout = dropout
		m := newClassifier(t, spec, mlp.WithProba())
		setUp(t, m)
		if err := m.Fit(ctx, b); err != nil { // initialises the weights
			t.Fatal(err)
		}
		c := m.Copy().(*mlp.Classifier)
		setUp(t, c)

		t1, err := m.Transform(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		t2, err := m.Transform(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		p1, p2 := outputs(t, t1, mlp.ProbaColumn), outputs(t, t2, mlp.ProbaColumn)
		t1.Release()
		t2.Release()
		if !slices.Equal(p1, p2) {
			t.Errorf("dropout %v: two Transform passes differ", dropout)
		}
		for r := 4; r < 8; r++ {
			if !slices.Equal(p1[r*3:(r+1)*3], p1[:3]) {
				t.Errorf("dropout %v: Transform: row %d repeats row 0 but got %v; want %v", dropout, r, p1[r*3:(r+1)*3], p1[:3])
			}
		}
		// The copy has m's weights: its fit pass computes what m's
		// Transform does, but for dropout.
		f1, err := c.FitTransform(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		f2, err := c.FitTransform(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		q1, q2 := outputs(t, f1, mlp.ProbaColumn), outputs(t, f2, mlp.ProbaColumn)
		f1.Release()
		f2.Release()
		if dropout == 0 {
			if !approxEqual(q1, p1, 1e-6) {
				t.Errorf("no dropout: FitTransform gave %v; want Transform's %v", q1[:3], p1[:3])
			}
			continue
		}
		if approxEqual(q1, p1, 1e-3) {
			t.Error("dropout 0.5: FitTransform gave Transform's outputs; want dropped units")
		}
		if slices.Equal(q1, q2) {
			t.Error("dropout 0.5: two FitTransform passes gave the same outputs")
		}
		same := 0
		for r := 4; r < 8; r++ {
			if approxEqual(q1[r*3:(r+1)*3], q1[:3], 1e-6) {
				same++
			}
		}
		if same == 4 {
			t.Error("dropout 0.5: FitTransform: every row that repeats row 0 got row 0's outputs; want other masks")
		}
	}
}

func approxEqual(a, b []float32, tol float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if d := a[i] - b[i]; d > tol || d < -tol {
			return false
		}
	}
	return true
}

// TestConcurrentModels builds and fits two models at once (run with
// -race: gorgonia's graph building is serialized).
func TestConcurrentModels(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := deadline(t, 60*time.Second)
	var wg sync.WaitGroup
	models := make([]*mlp.Classifier, 4)
	errs := make([]error, len(models))
	for i := range models {
		spec := smallSpec()
		spec.Activation = []nn.Activation{nn.ReLU, nn.Tanh}[i%2]
		spec.Dropout = 0.1
		models[i] = newClassifier(t, spec)
		wg.Go(func() {
			xs, ys := blobs(300, 7)
			src := memorySource(t, mem, xs, ys)
			defer src.Close()
			r := flow.Runner{Engine: flow.Engine(i / 2), Allocator: mem}
			p, err := flow.NewPipeline([]flow.Node{flow.Named("mlp", models[i])})
			if err != nil {
				errs[i] = err
				return
			}
			perm, err := minibatch.Permute(src, 32, minibatch.WithSeed(0))
			if err != nil {
				errs[i] = err
				return
			}
			defer perm.Close()
			stream, err := minibatch.Repeat(perm, 3)
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = r.Fit(ctx, p, stream)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// Models 0 and 2 are alike (ReLU, seed 0), fitted by two engines.
	if !equalLayers(models[0].Weights(), models[2].Weights()) {
		t.Error("two alike models fitted at once on the same stream ended with different weights")
	}
}

// TestConcurrentTransform: replicas share the step on the transform
// path; every call gives the same outputs.
func TestConcurrentTransform(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := checked(t)
	ctx := flow.WithAllocator(deadline(t, 30*time.Second), mem)
	xs, ys := blobs(64, 3)
	y := int64Record(mem, "y", ys)
	b := batch(mem, 4, xs, y)
	defer b.Release()
	m := newClassifier(t, smallSpec(), mlp.WithProba())
	setUp(t, m)
	if err := m.Fit(ctx, b); err != nil {
		t.Fatal(err)
	}
	want, err := m.Transform(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	wantP := outputs(t, want, mlp.ProbaColumn)
	want.Release()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			for range 20 {
				out, err := m.Transform(ctx, b)
				if err != nil {
					errs[i] = err
					return
				}
				got := outputs(t, out, mlp.ProbaColumn)
				out.Release()
				if !slices.Equal(got, wantP) {
					errs[i] = errors.New("a concurrent Transform gave other outputs")
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// TestCopyAndSeed: a copy made before Setup is an identical, independent
// model; the same seed gives the same weights, another seed others.
func TestCopyAndSeed(t *testing.T) {
	engines(t, func(t *testing.T, r flow.Runner) {
		ctx := deadline(t, 30*time.Second)
		spec := smallSpec()
		spec.Dropout = 0.2 // the generator's state matters
		a := newClassifier(t, spec)
		fitBlobs(t, ctx, r, pipeline(t, a), 1)
		b := a.Copy().(*mlp.Classifier) // fitted, not set up
		if !equalLayers(a.Weights(), b.Weights()) || a.Steps() != b.Steps() {
			t.Fatal("a copy has other weights")
		}
		fitBlobs(t, ctx, r, pipeline(t, a), 1)
		fitBlobs(t, ctx, r, pipeline(t, b), 1)
		if !equalLayers(a.Weights(), b.Weights()) {
			t.Error("a model and its copy, fitted alike, differ: the copy did not copy the optimizer or the generator")
		}
		before := b.Weights()
		fitBlobs(t, ctx, r, pipeline(t, a), 1)
		if !equalLayers(b.Weights(), before) {
			t.Error("fitting a model changed its copy")
		}

		c := newClassifier(t, spec)
		fitBlobs(t, ctx, r, pipeline(t, c), 3)
		c2 := newClassifier(t, spec)
		fitBlobs(t, ctx, r, pipeline(t, c2), 3)
		spec.Seed = 1
		d := newClassifier(t, spec)
		fitBlobs(t, ctx, r, pipeline(t, d), 3)
		if !equalLayers(c2.Weights(), c.Weights()) {
			t.Error("two models of seed 0 fitted alike differ")
		}
		if equalLayers(c.Weights(), d.Weights()) {
			t.Error("models of seeds 0 and 1 have the same weights")
		}
		// Reset: back to the initial weights of the seed.
		c.Reset()
		fitBlobs(t, ctx, r, pipeline(t, c), 3)
		e := newClassifier(t, smallSpecDropout(0.2))
		fitBlobs(t, ctx, r, pipeline(t, e), 3)
		if !equalLayers(c.Weights(), e.Weights()) {
			t.Error("a reset model refitted differs from a new one")
		}
	})
}

func smallSpecDropout(p float64) nn.Spec {
	s := smallSpec()
	s.Dropout = p
	return s
}

// TestReplicasRefused: not a Merger, so a replicated fit is an error
// that says why.
func TestReplicasRefused(t *testing.T) {
	defer goleak.VerifyNone(t)
	r := flow.Runner{Engine: flow.Streaming, Allocator: checked(t)}
	ctx := deadline(t, 10*time.Second)
	xs, ys := blobs(30, 1)
	src := memorySource(t, r.Allocator, xs, ys)
	defer src.Close()
	_, err := r.Fit(ctx, pipeline(t, newClassifier(t, smallSpec()), flow.Replicas(2)), src)
	if err == nil || !strings.Contains(err.Error(), "flow.Merger") {
		t.Errorf("fit with 2 replicas: got %v; want an error saying the step is not a flow.Merger", err)
	}
}

// TestLifecycle: learned weights survive Teardown; outside a run the
// step refuses to work; a second run transforms with the first's model.
func TestLifecycle(t *testing.T) {
	engines(t, func(t *testing.T, r flow.Runner) {
		ctx := deadline(t, 30*time.Second)
		m := newClassifier(t, smallSpec())
		xs, ys := blobs(16, 2)
		y := int64Record(r.Allocator, "y", ys)
		b := batch(r.Allocator, 4, xs, y)
		defer b.Release()
		bctx := flow.WithAllocator(ctx, r.Allocator)
		if err := m.Fit(bctx, b); err == nil || !strings.Contains(err.Error(), "not set up") {
			t.Errorf("fit outside a run: got %v; want an error saying it is not set up", err)
		}
		if err := transformErr(ctx, r, pipeline(t, m), minibatchOf(t, b)); err == nil || !strings.Contains(err.Error(), "not fitted") {
			t.Errorf("transform before a fit: got %v; want an error saying it is not fitted", err)
		}
		fitBlobs(t, ctx, r, pipeline(t, m), 1)
		w := m.Weights()
		if w == nil {
			t.Fatal("no weights after a fit")
		}
		s, err := r.Transform(ctx, pipeline(t, m), minibatchOf(t, b))
		if err != nil {
			t.Fatal(err)
		}
		out, err := flow.Collect(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out {
			if o.X.Schema().Field(0).Name != mlp.ClassColumn || o.Y == nil {
				t.Errorf("output %v; want the column %q and Y passed through", o.X.Schema(), mlp.ClassColumn)
			}
			o.Release()
		}
		if !equalLayers(m.Weights(), w) {
			t.Error("a transform run changed the weights")
		}
	})
}

// minibatchOf returns a Memory holding b, closed at the end of the test.
func minibatchOf(t *testing.T, b flow.Batch) flow.Source {
	t.Helper()
	m, err := minibatch.FromRecords([]arrow.RecordBatch{b.X}, []arrow.RecordBatch{b.Y})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// transformErr runs a transform and returns its error.
func transformErr(ctx context.Context, r flow.Runner, p *flow.Pipeline, src flow.Source) error {
	s, err := r.Transform(ctx, p, src)
	if err != nil {
		return err
	}
	out, err := flow.Collect(ctx, s)
	for _, b := range out {
		b.Release()
	}
	return err
}
