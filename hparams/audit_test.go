package hparams_test

// An adversarial audit of the promises of hparams' doc comments: values
// that no distribution holds (NaN, infinities, numbers too large for an
// int), distributions built around such values, and Set from several
// goroutines on trees of their own.

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/hparams"
)

// A NaN in a finite distribution is an impossible argument: no value
// equals it, so its own Contains (and Set) would refuse what it gives.
// Validate reports it, and a space holding it is refused.
func TestAuditNaNValueIsImpossible(t *testing.T) {
	for _, d := range []hparams.Distribution{
		hparams.Fixed(math.NaN()),
		hparams.Fixed(float32(math.NaN())),
		hparams.Choice(0.5, math.NaN()),
		hparams.PriorityChoice(math.NaN(), 1.0),
		hparams.WeightedChoice([]float64{1, 2}, 0.5, math.NaN()),
	} {
		err := d.Validate()
		if err == nil || !strings.Contains(err.Error(), "NaN") {
			t.Errorf("%v: Validate = %v; want an error naming the NaN", d, err)
		}
		space := hparams.Space{"x": d}
		if err := space.Check(); err == nil || !strings.Contains(err.Error(), `"x"`) {
			t.Errorf("a space of %v: Check = %v; want an error naming the key", d, err)
		}
		if _, err := space.Sample(hparams.NewRand(1)); err == nil {
			t.Errorf("a space of %v: Sample gave no error", d)
		}
	}
}

// Every value a distribution draws, it contains: for every kind, over
// many draws (the promise on which Set of a sample rests).
func TestAuditSamplesAreContained(t *testing.T) {
	r := hparams.NewRand(3)
	for _, d := range []hparams.Distribution{
		hparams.Fixed(2), hparams.Fixed("a"), hparams.Boolean(0.3),
		hparams.Choice(1, 2.5), hparams.PriorityChoice("a", "b"), hparams.WeightedChoice([]float64{1, 3}, true, false),
		hparams.IntRange(-3, 3), hparams.Uniform(-1, 1), hparams.LogUniform(1e-300, 1e300),
		hparams.Normal(0, 1e300), hparams.TruncatedNormal(0, 1, 5, 6), hparams.LogNormal(0, 3),
		hparams.Quantized(hparams.Uniform(0, 1), 0.3), hparams.Quantized(hparams.LogUniform(1, 1000), 7),
		hparams.Mixture([]float64{1, 1}, hparams.Uniform(0, 1), hparams.Uniform(5, 6)),
		hparams.Mixture([]float64{1, 2}, hparams.IntRange(0, 2), hparams.IntRange(10, 12)),
	} {
		if err := d.Validate(); err != nil {
			t.Errorf("%v: %v", d, err)
			continue
		}
		for range 2000 {
			v := d.Sample(r)
			if !d.Contains(v) {
				t.Errorf("%v drew %v (%T), which it does not contain", d, v, v)
				break
			}
		}
	}
}

// Set refuses a value that no declared distribution holds — NaN, an
// infinity, an int beyond range — naming the key and the distribution,
// and changes nothing.
func TestAuditSetRefusesNonFinite(t *testing.T) {
	for _, c := range []struct {
		key   string
		value any
		want  []string
	}{
		{"mlp__lr", math.NaN(), []string{`"mlp__lr"`, "LogUniform(1e-05, 1)"}},
		{"mlp__lr", math.Inf(1), []string{`"mlp__lr"`, "LogUniform(1e-05, 1)"}},
		{"features__scale__factor", math.Inf(-1), []string{`"features__scale__factor"`, "Uniform(0.5, 2)"}},
		{"mlp__hidden", math.NaN(), []string{`"mlp__hidden"`, "IntRange(16, 256)"}},
		{"mlp__hidden", 1e300, []string{`"mlp__hidden"`, "outside the range of an int"}},
		{"mlp__hidden", uint64(math.MaxUint64), []string{`"mlp__hidden"`, "outside the range of an int"}},
		{"mlp__solver", nil, []string{`"mlp__solver"`}},
		{"mlp__solver", []string{"sgd"}, []string{`"mlp__solver"`}},
	} {
		root := mustTree(t)
		before := mustGet(t, root)
		// A valid key alongside: all or nothing.
		err := hparams.Set(root, hparams.Values{c.key: c.value, "features__scale__with_mean": false})
		if err == nil {
			t.Errorf("Set %s = %v: no error", c.key, c.value)
			continue
		}
		if !errors.Is(err, hparams.ErrInvalidValue) {
			t.Errorf("Set %s = %v: %v does not wrap ErrInvalidValue", c.key, c.value, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Set %s = %v: %q does not say %q", c.key, c.value, err, w)
			}
		}
		if after := mustGet(t, root); !reflect.DeepEqual(after, before) {
			t.Errorf("Set %s = %v failed, yet changed the tree: %v; want %v", c.key, c.value, after, before)
		}
	}
}

// Trees of their own are tuned from several goroutines at once, from one
// shared Space: Get of each gives what was set (run with -race).
func TestAuditSetTreesConcurrently(t *testing.T) {
	space, err := hparams.Gather(mustTree(t))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Go(func() {
			r := hparams.NewRand(uint64(g))
			for range 20 {
				root, err := tree()
				if err != nil {
					errs <- err
					return
				}
				v, err := space.Sample(r)
				if err != nil {
					errs <- err
					return
				}
				if err := hparams.Set(root, v); err != nil {
					errs <- err
					return
				}
				got, err := hparams.Get(root)
				if err != nil {
					errs <- err
					return
				}
				for k, want := range v {
					if got[k] != want {
						errs <- errors.New("a tree tuned at the same time as others lost " + k)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// valuesWithin calls d.Values and fails the test where it does not return
// within a second (a loop that never ends).
func valuesWithin(t *testing.T, d hparams.Distribution) ([]any, bool) {
	t.Helper()
	type reply struct {
		vs []any
		ok bool
	}
	done := make(chan reply, 1)
	go func() {
		vs, ok := d.Values()
		done <- reply{vs, ok}
	}()
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.vs, r.ok
	case <-timer.C:
		t.Fatalf("%v: Values did not return within a second", d)
		return nil, false
	}
}

// An IntRange at the edges of the ints lists its few values: a loop to hi
// included must not overflow at math.MaxInt.
func TestAuditIntRangeValuesAtTheEdges(t *testing.T) {
	for _, c := range []struct {
		d    hparams.Distribution
		want []any
	}{
		{hparams.IntRange(math.MaxInt-2, math.MaxInt), []any{math.MaxInt - 2, math.MaxInt - 1, math.MaxInt}},
		{hparams.IntRange(math.MinInt, math.MinInt+1), []any{math.MinInt, math.MinInt + 1}},
		{hparams.IntRange(math.MaxInt, math.MaxInt), []any{math.MaxInt}},
	} {
		if err := c.d.Validate(); err != nil {
			t.Fatalf("%v: %v", c.d, err)
		}
		vs, ok := valuesWithin(t, c.d)
		if !ok || !reflect.DeepEqual(vs, c.want) {
			t.Errorf("%v: values %v (finite %v); want %v", c.d, vs, ok, c.want)
		}
	}
}

// A Quantized whose multiples are too large to count one by one in a
// float64 (there k+1 == k) is not finite rather than counting for ever;
// below 2^53 it lists exactly its multiples. Both are valid.
func TestAuditQuantizedValuesOfHugeMultiples(t *testing.T) {
	huge := hparams.Quantized(hparams.Uniform(1e17, 1e17+100), 1)
	if err := huge.Validate(); err != nil {
		t.Fatalf("%v: %v", huge, err)
	}
	if vs, ok := valuesWithin(t, huge); ok {
		t.Errorf("%v: %d values, finite; want not finite (its multiples cannot be counted by ones)", huge, len(vs))
	}
	if _, ok := huge.Stats(); !ok {
		t.Errorf("%v: no stats", huge)
	}
	if v := huge.Sample(hparams.NewRand(1)); !huge.Contains(v) {
		t.Errorf("%v: sampled %v, which it does not contain", huge, v)
	}
	const base = 1 << 52
	small := hparams.Quantized(hparams.Uniform(base, base+10), 1)
	vs, ok := valuesWithin(t, small)
	if !ok || len(vs) != 11 || vs[0] != float64(base) || vs[10] != float64(base+10) {
		t.Errorf("%v: values %v (finite %v); want the 11 multiples from 2^52", small, vs, ok)
	}
}

// Override of a continuous distribution checks that the new one's values
// lie in the old one, so that Set accepts what the result samples: bounds
// inside a Mixture's overall bounds are not enough where its components
// leave a gap, and the override is refused; one inside a component, or
// across components that overlap, is accepted.
func TestAuditOverrideIntoTheGapOfAMixture(t *testing.T) {
	gappy := hparams.Space{"x": hparams.Mixture([]float64{1, 1}, hparams.Uniform(0, 1), hparams.Uniform(5, 6))}
	_, err := gappy.Override(hparams.Space{"x": hparams.Uniform(2, 3)})
	if !errors.Is(err, hparams.ErrInvalidValue) {
		o, _ := gappy.Override(hparams.Space{"x": hparams.Uniform(2, 3)})
		v, _ := o.Sample(hparams.NewRand(1))
		t.Errorf("Uniform(2, 3) over the gap of %v: got %v; want ErrInvalidValue (it samples %v, which the space does not contain: %v)", gappy["x"], err, v["x"], gappy["x"].Contains(v["x"]))
	}
	for _, ok := range []hparams.Distribution{hparams.Uniform(0.2, 0.8), hparams.Uniform(5, 5.5)} {
		if _, err := gappy.Override(hparams.Space{"x": ok}); err != nil {
			t.Errorf("%v inside a component of %v: %v", ok, gappy["x"], err)
		}
	}
	overlapping := hparams.Space{"x": hparams.Mixture([]float64{1, 2}, hparams.Uniform(0, 4), hparams.LogUniform(3, 10))}
	if _, err := overlapping.Override(hparams.Space{"x": hparams.Uniform(1, 9)}); err != nil {
		t.Errorf("Uniform(1, 9) across the overlapping components of %v: %v", overlapping["x"], err)
	}
}

// Distributions over the widest valid ranges draw as documented: a
// Uniform over bounds whose width overflows a float64, and a LogUniform
// whose ratio hi/lo does, still give each half of the range (in length, in
// logarithm) half the draws, values they contain, and a finite density,
// CDF and deviation.
func TestAuditWideRangesDrawEveryPart(t *testing.T) {
	for _, c := range []struct {
		d      hparams.Distribution
		median float64
	}{
		{hparams.Uniform(-1.5e308, 1.5e308), 0},
		{hparams.Uniform(-1, 1), 0},
		{hparams.LogUniform(1e-300, 1e300), 1},
		{hparams.LogUniform(1e-5, 1e5), 1},
	} {
		if err := c.d.Validate(); err != nil {
			t.Fatalf("%v: %v", c.d, err)
		}
		r := hparams.NewRand(7)
		const n = 4000
		below := 0
		for range n {
			v := c.d.Sample(r)
			if !c.d.Contains(v) {
				t.Fatalf("%v drew %v, which it does not contain", c.d, v)
			}
			if v.(float64) < c.median {
				below++
			}
		}
		if frac := float64(below) / n; frac < 0.45 || frac > 0.55 {
			t.Errorf("%v: %.3f of the draws below %v; want half", c.d, frac, c.median)
		}
		cdf := c.d.(hparams.Cumulative)
		if p := cdf.CDF(c.median); math.Abs(p-0.5) > 1e-9 {
			t.Errorf("%v: CDF(%v) = %v; want 0.5", c.d, c.median, p)
		}
		if p := c.d.Density(c.median); !(p > 0) || math.IsInf(p, 0) {
			t.Errorf("%v: density %v at %v; want a positive number", c.d, p, c.median)
		}
		if st, ok := c.d.Stats(); !ok || !(st.Std > 0) || math.IsInf(st.Std, 0) || math.IsInf(st.Mean, 0) {
			t.Errorf("%v: stats %+v; want a finite mean and a finite positive deviation", c.d, st)
		}
	}
}

// A Normal or LogNormal whose draws can leave the float64s (a mean near
// MaxFloat64, exp of a large or very negative mean) still draws only
// values it contains: finite, and positive for a LogNormal.
func TestAuditNormalsAtTheEdgesDrawWhatTheyContain(t *testing.T) {
	r := hparams.NewRand(5)
	for _, d := range []hparams.Distribution{
		hparams.Normal(1e308, 1e308), hparams.Normal(-1e308, 1e308),
		hparams.LogNormal(705, 3), hparams.LogNormal(-740, 3),
	} {
		if err := d.Validate(); err != nil {
			t.Fatalf("%v: %v", d, err)
		}
		for range 2000 {
			if v := d.Sample(r); !d.Contains(v) {
				t.Errorf("%v drew %v, which it does not contain", d, v)
				break
			}
		}
	}
}

// Values of a finite distribution of more than MaxValues values is "nil
// and false", as documented, for a Choice and a Mixture too: a caller
// that looks only at the slice does not enumerate a grid it cannot.
func TestAuditValuesBeyondMaxValuesAreNil(t *testing.T) {
	many := make([]any, hparams.MaxValues+1)
	for i := range many {
		many[i] = i
	}
	for _, d := range []hparams.Distribution{
		hparams.Choice(many...),
		hparams.Mixture([]float64{1, 1}, hparams.IntRange(0, hparams.MaxValues/2), hparams.IntRange(hparams.MaxValues, hparams.MaxValues+hparams.MaxValues/2)),
		hparams.IntRange(0, hparams.MaxValues),
	} {
		if err := d.Validate(); err != nil {
			t.Fatalf("%T: %v", d, err)
		}
		if vs, ok := d.Values(); ok || vs != nil {
			t.Errorf("%T of more than MaxValues values: Values gave %d values and %v; want nil and false", d, len(vs), ok)
		}
	}
}

// Weights are positive and finite, their sum need not be: weights of
// 1e308 and 1e308 are drawn half and half (their sum overflows), each
// with density one half, in a WeightedChoice as in a Mixture.
func TestAuditWeightsWhoseSumOverflows(t *testing.T) {
	huge := []float64{1e308, 1e308, math.MaxFloat64}
	for _, d := range []hparams.Distribution{
		hparams.WeightedChoice(huge, "a", "b", "c"),
		hparams.Mixture(huge, hparams.Fixed("a"), hparams.Fixed("b"), hparams.Fixed("c")),
	} {
		if err := d.Validate(); err != nil {
			t.Fatalf("%v: Validate = %v", d, err)
		}
		total := huge[0]/4 + huge[1]/4 + huge[2]/4 // quartered, a sum that fits
		for i, v := range []string{"a", "b", "c"} {
			want := huge[i] / 4 / total
			if got := d.Density(v); math.Abs(got-want) > 1e-12 {
				t.Errorf("%v: Density(%q) = %v; want %v", d, v, got, want)
			}
		}
		r := hparams.NewRand(7)
		n := map[any]int{}
		for range 3000 {
			n[d.Sample(r)]++
		}
		for _, v := range []string{"a", "b", "c"} {
			if n[v] < 500 {
				t.Errorf("%v: %q drawn %d times of 3000 (%v)", d, v, n[v], n)
			}
		}
	}
	m := hparams.Mixture([]float64{1e308, 1e308}, hparams.Uniform(0, 1), hparams.Uniform(2, 3))
	if s, ok := m.Stats(); !ok || math.Abs(s.Mean-1.5) > 1e-12 {
		t.Errorf("%v: Stats = %+v, %t; want a mean of 1.5", m, s, ok)
	}
}

// A step so small that a bound divided by it overflows is an impossible
// argument: Quantized(Uniform(0, 1), 1e-320) drew +Inf, which its bounds
// leave out and Set would have taken (it said it contained 1e300).
func TestAuditQuantizedStepTooSmallForItsBounds(t *testing.T) {
	q := hparams.Quantized(hparams.Uniform(0, 1), 1e-320)
	if err := q.Validate(); err == nil || !strings.Contains(err.Error(), "step") {
		t.Fatalf("%v: Validate = %v; want an error naming the step", q, err)
	}
	if _, err := (hparams.Space{"x": q}).Sample(hparams.NewRand(1)); err == nil {
		t.Errorf("a space of %v: Sample gave no error", q)
	}
	// A small step that fits stays valid.
	if err := hparams.Quantized(hparams.Uniform(0, 1), 1e-300).Validate(); err != nil {
		t.Errorf("Quantized(Uniform(0, 1), 1e-300): %v", err)
	}
}
