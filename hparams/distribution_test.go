package hparams_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/hparams"
)

// known are distributions over numbers with their stats worked out by
// hand (NaN where only the other checks apply).
var known = []struct {
	d          hparams.Distribution
	mean, std  float64
	continuous bool
}{
	{hparams.Uniform(2, 5), 3.5, 3 / math.Sqrt(12), true},
	{hparams.LogUniform(1, math.E), math.E - 1, math.Sqrt((math.E*math.E-1)/2 - (math.E-1)*(math.E-1)), true},
	{hparams.LogUniform(1e-5, 1), (1 - 1e-5) / math.Log(1e5), math.NaN(), true},
	{hparams.Normal(1, 2), 1, 2, true},
	{hparams.TruncatedNormal(0, 1, 0, math.Inf(1)), math.Sqrt(2 / math.Pi), math.Sqrt(1 - 2/math.Pi), true},
	{hparams.TruncatedNormal(3, 2, 1, 4), math.NaN(), math.NaN(), true},
	{hparams.TruncatedNormal(0, 1, 5, 6), math.NaN(), math.NaN(), true}, // far in the tail
	{hparams.TruncatedNormal(0, 1, math.Inf(-1), -4), math.NaN(), math.NaN(), true},
	{hparams.LogNormal(0, 0.5), math.Exp(0.125), math.Sqrt(math.Expm1(0.25) * math.Exp(0.25)), true},
	{hparams.Mixture([]float64{1, 3}, hparams.Normal(0, 1), hparams.Normal(4, 1)), 3, 2, true},
	{hparams.IntRange(1, 6), 3.5, math.Sqrt(35.0 / 12), false},
	{hparams.Choice(1, 2, 3, 4), 2.5, math.Sqrt(1.25), false},
	{hparams.PriorityChoice(1, 2, 3), 5.0 / 3, math.Sqrt(10.0/3 - 25.0/9), false},
	{hparams.WeightedChoice([]float64{1, 3}, 0.5, 2), (0.5 + 6) / 4, math.NaN(), false},
	{hparams.Quantized(hparams.Uniform(0, 1), 0.25), 0.5, math.Sqrt(0.09375), false},
	{hparams.Quantized(hparams.Uniform(0.1, 0.9), 0.25), math.NaN(), math.NaN(), false}, // edges moved inward
	{hparams.Quantized(hparams.Normal(0, 1), 0.5), 0, math.Sqrt(1 + 0.25/12), false},
	{hparams.Quantized(hparams.LogUniform(1, 1000), 10), math.NaN(), math.NaN(), false},
	{hparams.Mixture([]float64{1, 1}, hparams.Choice(1, 2), hparams.Choice(2, 3)), 2, math.Sqrt(0.5), false},
	{hparams.Fixed(3), 3, 0, false},
}

const samples = 100_000

func TestStatsOfKnownDistributions(t *testing.T) {
	for _, c := range known {
		if err := c.d.Validate(); err != nil {
			t.Fatalf("%v: %v", c.d, err)
		}
		s, ok := c.d.Stats()
		if !ok {
			t.Fatalf("%v: no Stats", c.d)
		}
		if c.d.Continuous() != c.continuous {
			t.Errorf("%v: Continuous = %t", c.d, c.d.Continuous())
		}
		if !math.IsNaN(c.mean) && math.Abs(s.Mean-c.mean) > 1e-9*math.Max(1, math.Abs(c.mean)) {
			t.Errorf("%v: Mean = %v; want %v", c.d, s.Mean, c.mean)
		}
		if !math.IsNaN(c.std) && math.Abs(s.Std-c.std) > 1e-9*math.Max(1, c.std) {
			t.Errorf("%v: Std = %v; want %v", c.d, s.Std, c.std)
		}
	}
}

// Samples stay in bounds and in the distribution, and their mean and
// standard deviation match Stats.
func TestSampleMatchesStats(t *testing.T) {
	for i, c := range known {
		s, _ := c.d.Stats()
		r := hparams.NewRand(uint64(i))
		sum, sum2 := 0.0, 0.0
		for range samples {
			v := c.d.Sample(r)
			if !c.d.Contains(v) {
				t.Fatalf("%v: sampled %v, which it does not contain", c.d, v)
			}
			x, ok := v.(float64)
			if !ok {
				x = float64(v.(int))
			}
			if x < s.Min || x > s.Max {
				t.Fatalf("%v: sampled %v outside [%v, %v]", c.d, x, s.Min, s.Max)
			}
			sum += x
			sum2 += x * x
		}
		mean := sum / samples
		std := math.Sqrt(math.Max(sum2/samples-mean*mean, 0))
		if tol := 5*s.Std/math.Sqrt(samples) + 1e-12; math.Abs(mean-s.Mean) > tol {
			t.Errorf("%v: sample mean %v; want %v ± %v", c.d, mean, s.Mean, tol)
		}
		if math.Abs(std-s.Std) > 0.02*s.Std+1e-12 {
			t.Errorf("%v: sample std %v; want %v ± 2%%", c.d, std, s.Std)
		}
	}
}

// span returns the range over which to integrate d numerically.
func span(d hparams.Distribution) (lo, hi float64) {
	s, _ := d.Stats()
	lo, hi = s.Min, s.Max
	if math.IsInf(lo, -1) {
		lo = s.Mean - 14*s.Std
	}
	if math.IsInf(hi, 1) {
		hi = s.Mean + 40*s.Std
	}
	return lo, hi
}

// integrate integrates f over [lo, hi] by Simpson's rule, over log x
// where the range spans orders of magnitude.
func integrate(f func(float64) float64, lo, hi float64) float64 {
	if lo > 0 && hi/lo > 100 {
		return simpson(func(u float64) float64 {
			x := math.Min(math.Max(math.Exp(u), lo), hi) // exp(log(lo)) may round below lo
			return f(x) * x
		}, math.Log(lo), math.Log(hi))
	}
	return simpson(f, lo, hi)
}

func simpson(f func(float64) float64, lo, hi float64) float64 {
	const n = 200_000
	h := (hi - lo) / n
	sum := f(lo) + f(hi)
	for i := 1; i < n; i++ {
		w := 2.0
		if i%2 == 1 {
			w = 4
		}
		sum += w * f(lo+float64(i)*h)
	}
	return sum * h / 3
}

// Densities integrate (PDFs) or sum (PMFs) to 1, and their moments are
// Stats's.
func TestDensityIsNormalized(t *testing.T) {
	for _, c := range known {
		s, _ := c.d.Stats()
		var mass, mean, second float64
		if c.continuous {
			lo, hi := span(c.d)
			pdf := func(x float64) float64 { return c.d.Density(x) }
			mass = integrate(pdf, lo, hi)
			mean = integrate(func(x float64) float64 { return x * pdf(x) }, lo, hi)
			second = integrate(func(x float64) float64 { return x * x * pdf(x) }, lo, hi)
		} else {
			values, ok := c.d.Values()
			if !ok { // Quantized(Normal): the lattice within many stds.
				step := 0.5
				for k := -40.0; k <= 40; k++ {
					values = append(values, k*step)
				}
			}
			for _, v := range values {
				p := c.d.Density(v)
				x, ok := v.(float64)
				if !ok {
					x = float64(v.(int))
				}
				mass += p
				mean += p * x
				second += p * x * x
			}
		}
		if math.Abs(mass-1) > 1e-6 {
			t.Errorf("%v: total probability %v; want 1", c.d, mass)
		}
		// Quantized(Normal)'s Stats are Sheppard's approximation.
		tol := 1e-6
		if strings.HasPrefix(c.d.String(), "Quantized(Normal") {
			tol = 1e-3
		}
		if math.Abs(mean-s.Mean) > tol*math.Max(1, s.Std) {
			t.Errorf("%v: mean by density %v; Stats say %v", c.d, mean, s.Mean)
		}
		if std := math.Sqrt(second - mean*mean); math.Abs(std-s.Std) > tol*math.Max(1, s.Std) {
			t.Errorf("%v: std by density %v; Stats say %v", c.d, std, s.Std)
		}
	}
}

// The CDF is the integral of the PDF.
func TestCDFIntegratesDensity(t *testing.T) {
	for _, c := range known {
		cd, ok := c.d.(hparams.Cumulative)
		if !ok {
			continue
		}
		lo, hi := span(c.d)
		for _, f := range []float64{0.1, 0.3, 0.5, 0.9} {
			x := lo + f*(hi-lo)
			want := integrate(func(x float64) float64 { return c.d.Density(x) }, lo, x)
			if got := cd.CDF(x); math.Abs(got-want) > 1e-6 {
				t.Errorf("%v: CDF(%v) = %v; integral of the PDF %v", c.d, x, got, want)
			}
		}
		if cd.CDF(lo-1) != 0 && !math.IsInf(lo, 0) {
			s, _ := c.d.Stats()
			if !math.IsInf(s.Min, -1) {
				t.Errorf("%v: CDF below Min = %v", c.d, cd.CDF(lo-1))
			}
		}
	}
}

// The probabilities of discrete distributions are their frequencies.
func TestPMFMatchesFrequencies(t *testing.T) {
	for i, d := range []hparams.Distribution{
		hparams.Boolean(0.3),
		hparams.Choice("relu", "tanh", "gelu"),
		hparams.PriorityChoice("a", "b", "c", "d"),
		hparams.WeightedChoice([]float64{1, 2, 7}, "x", "y", "z"),
		hparams.IntRange(-2, 2),
		hparams.Quantized(hparams.Uniform(0.1, 0.9), 0.25),
		hparams.Quantized(hparams.LogNormal(0, 1), 1),
		hparams.Mixture([]float64{1, 1}, hparams.Choice(1, 2), hparams.Choice(2, 3)),
	} {
		r := hparams.NewRand(uint64(100 + i))
		count := map[any]int{}
		for range samples {
			count[d.Sample(r)]++
		}
		values, ok := d.Values()
		if !ok {
			values = []any{0.0, 1.0, 2.0, 3.0, 4.0}
		}
		for _, v := range values {
			p := d.Density(v)
			freq := float64(count[v]) / samples
			if tol := 5*math.Sqrt(p*(1-p)/samples) + 1e-9; math.Abs(freq-p) > tol {
				t.Errorf("%v: P(%v) = %v; frequency %v", d, v, p, freq)
			}
		}
		for v := range count {
			if d.Density(v) == 0 {
				t.Errorf("%v: sampled %v, of probability 0", d, v)
			}
		}
	}
	// PriorityChoice favours the first values, 4:3:2:1.
	d := hparams.PriorityChoice("a", "b", "c", "d")
	for i, v := range []string{"a", "b", "c", "d"} {
		if got, want := d.Density(v), float64(4-i)/10; math.Abs(got-want) > 1e-12 {
			t.Errorf("PriorityChoice: P(%s) = %v; want %v", v, got, want)
		}
	}
}

func TestValuesAndContains(t *testing.T) {
	for _, c := range []struct {
		d      hparams.Distribution
		values []any // nil: not finite
		in     []any
		out    []any
	}{
		{hparams.Fixed(int8(3)), []any{3}, []any{3, 3.0}, []any{3.5, "3"}},
		{hparams.Boolean(0.5), []any{false, true}, []any{true}, []any{1, "true"}},
		{hparams.Boolean(1), []any{true}, []any{true}, []any{false}},
		{hparams.Choice(0.5, 1), []any{0.5, 1.0}, []any{1, 0.5}, []any{2, "a"}},
		{hparams.IntRange(1, 3), []any{1, 2, 3}, []any{2, 2.0, uint8(3)}, []any{2.5, 0, 4, "2"}},
		{hparams.IntRange(0, hparams.MaxValues), nil, []any{hparams.MaxValues}, []any{-1}},
		{hparams.Uniform(0, 1), nil, []any{0, 1, 0.5}, []any{-0.1, math.NaN(), "a", true}},
		{hparams.LogNormal(0, 1), nil, []any{1e-300, 1e300}, []any{0, -1, math.Inf(1)}},
		{hparams.Quantized(hparams.Uniform(-1, 1), 0.5), []any{-1.0, -0.5, 0.0, 0.5, 1.0}, []any{0, -0.5, 1}, []any{0.25, 1.5}},
		{hparams.Quantized(hparams.Normal(0, 1), 0.1), nil, []any{0.3, -12.1}, []any{0.35}},
		{hparams.Mixture([]float64{1, 1}, hparams.IntRange(1, 2), hparams.IntRange(5, 5)), []any{1, 2, 5}, []any{5}, []any{3}},
		{hparams.Mixture([]float64{1, 1}, hparams.Uniform(0, 1), hparams.Uniform(2, 3)), nil, []any{0.5, 2.5}, []any{1.5}},
	} {
		got, finite := c.d.Values()
		if finite != (c.values != nil) || !slices.Equal(got, c.values) {
			t.Errorf("%v: Values = %d values %.20v, %t; want %v", c.d, len(got), got, finite, c.values)
		}
		for _, v := range c.in {
			if !c.d.Contains(v) {
				t.Errorf("%v: Contains(%v) = false", c.d, v)
			}
		}
		for _, v := range c.out {
			if c.d.Contains(v) {
				t.Errorf("%v: Contains(%v) = true", c.d, v)
			}
		}
	}
}

func TestValidateNamesTheMistake(t *testing.T) {
	for _, c := range []struct {
		d    hparams.Distribution
		want string
	}{
		{hparams.Uniform(1, 1), "Uniform(1, 1): want finite bounds, the lower below the upper"},
		{hparams.Uniform(math.NaN(), 1), "Uniform(NaN, 1)"},
		{hparams.LogUniform(0, 1), "LogUniform(0, 1): want finite bounds, 0 < lower < upper"},
		{hparams.Normal(0, 0), "Normal(0, 0): want a finite mean and a finite std > 0"},
		{hparams.TruncatedNormal(0, 1, 2, 1), "want the lower bound below the upper"},
		{hparams.TruncatedNormal(0, 1, 40, 41), "the bounds hold no probability"},
		{hparams.LogNormal(0, -1), "LogNormal(0, -1): want a finite mu and a finite sigma > 0"},
		{hparams.IntRange(3, 1), "IntRange(3, 1): the lower bound is above the upper"},
		{hparams.IntRange(math.MinInt, math.MaxInt), "the range is too wide"},
		{hparams.Boolean(1.5), "Boolean(1.5): the probability of true is not in [0, 1]"},
		{hparams.Fixed(nil), "Fixed: <nil> is nil"},
		{hparams.Fixed([]int{1}), "Fixed: [1] is a []int"},
		{hparams.Choice(), "Choice(): no values"},
		{hparams.Choice(1, "a"), `Choice(1, "a"): value 1 ("a") is a string, the others are an int`},
		{hparams.Choice(1, 1.0), "Choice(1, 1): 1 is listed twice"},
		{hparams.WeightedChoice([]float64{1}, 1, 2), "1 weights for 2 values"},
		{hparams.WeightedChoice([]float64{0, 1}, 1, 2), "weight 0 is 0, want a positive finite number"},
		{hparams.Quantized(hparams.IntRange(0, 3), 1), "IntRange(0, 3) is not a continuous distribution over floats with a CDF"},
		{hparams.Quantized(hparams.Uniform(0, 1), 0), "the step is 0"},
		{hparams.Quantized(hparams.Uniform(0.1, 0.2), 1), "no multiple of 1 lies between 0.1 and 0.2"},
		{hparams.Quantized(hparams.Uniform(1, 0), 0.1), "Uniform(1, 0): want finite bounds"},
		{hparams.Quantized(nil, 0.1), "no distribution"},
		{hparams.Mixture(nil), "no components"},
		{hparams.Mixture([]float64{1, 1}, hparams.Uniform(0, 1), hparams.IntRange(0, 1)), "component 1 (IntRange(0, 1)) is over ints, component 0 over floats"},
		{hparams.Mixture([]float64{1, 1}, hparams.Uniform(0, 1), hparams.Choice(0.5)), "mix continuous and discrete"},
		{hparams.Mixture([]float64{1, 1}, hparams.Uniform(0, 1), nil), "component 1 is nil"},
		{hparams.Mixture([]float64{1}, hparams.Uniform(2, 1)), "component 0: Uniform(2, 1)"},
		{hparams.When(hparams.Uniform(0, 1), ""), "no key"},
		{hparams.When(hparams.Uniform(0, 1), "a"), `no values for "a"`},
	} {
		err := c.d.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: Validate = %v; want %q", c.d, err, c.want)
		}
	}
}

func TestSpaceCheck(t *testing.T) {
	u := hparams.Uniform(0, 1)
	for _, c := range []struct {
		name string
		s    hparams.Space
		want string
	}{
		{"nil", hparams.Space{"a": nil}, `"a": no distribution (nil)`},
		{"empty key", hparams.Space{"": u}, "the empty key"},
		{"invalid", hparams.Space{"a": hparams.Uniform(1, 0)}, `"a": Uniform(1, 0)`},
		{"unknown condition", hparams.Space{"a": hparams.When(u, "b", 1)}, `"a": the condition on "b": not another key of the space`},
		{"self", hparams.Space{"a": hparams.When(u, "a", 1.0)}, `"a": the condition on "a": not another key`},
		{"wrong type", hparams.Space{"a": hparams.When(u, "b", "x"), "b": hparams.IntRange(0, 1)}, `"a": the condition on "b": "x": "x" is a string, want an int`},
		{"cycle", hparams.Space{"a": hparams.When(hparams.IntRange(0, 1), "b", 1), "b": hparams.When(hparams.IntRange(0, 1), "a", 1)}, "form a cycle: a → b → a"},
	} {
		err := c.s.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Check = %v; want %q", c.name, err, c.want)
		}
		if _, err := c.s.Sample(hparams.NewRand(1)); err == nil {
			t.Errorf("%s: Sample of an invalid space succeeded", c.name)
		}
		if _, err := c.s.Grid(); err == nil {
			t.Errorf("%s: Grid of an invalid space succeeded", c.name)
		}
	}
}

// A step's own conditions: momentum applies only to sgd, and a chain of
// them (nesterov only where momentum applies and is large) applies only
// where every link does.
func TestConditionalChain(t *testing.T) {
	s := hparams.Space{
		"solver":   hparams.Choice("adam", "sgd"),
		"momentum": hparams.When(hparams.Choice(0.5, 0.9), "solver", "sgd"),
		"nesterov": hparams.When(hparams.Boolean(0.5), "momentum", 0.9),
	}
	all := grid(t, s)
	// adam; sgd 0.5; sgd 0.9 × nesterov 2.
	if len(all) != 4 {
		t.Fatalf("grid = %v; want 4 combinations", all)
	}
	r := hparams.NewRand(7)
	for range 1000 {
		v, err := s.Sample(r)
		if err != nil {
			t.Fatal(err)
		}
		_, m := v["momentum"]
		_, n := v["nesterov"]
		if m != (v["solver"] == "sgd") || n != (v["momentum"] == 0.9) {
			t.Fatalf("sample %v breaks its conditions", v)
		}
	}
}

func TestTypeConversions(t *testing.T) {
	for _, c := range []struct {
		v    any
		t    hparams.Type
		want any
		err  string
	}{
		{3, hparams.Float, 3.0, ""},
		{float32(0.5), hparams.Float, 0.5, ""},
		{uint64(7), hparams.Int, 7, ""},
		{4.0, hparams.Int, 4, ""},
		{4.5, hparams.Int, nil, "4.5 is not a whole number, want an int"},
		{math.Inf(1), hparams.Int, nil, "+Inf is not a whole number"},
		{uint64(math.MaxUint64), hparams.Int, nil, "18446744073709551615 is outside the range of an int"},
		{"a", hparams.Float, nil, `"a" is a string, want a float`},
		{1, hparams.Bool, nil, "1 is an int, want a bool"},
		{true, hparams.String, nil, "true is a bool, want a string"},
	} {
		got, err := hparams.Convert(c.v, c.t)
		if c.err == "" && (err != nil || got != c.want) {
			t.Errorf("Convert(%v, %v) = %v (%T), %v; want %v", c.v, c.t, got, got, err, c.want)
		}
		if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("Convert(%v, %v) = %v, %v; want error %q", c.v, c.t, got, err, c.err)
		}
	}
}
