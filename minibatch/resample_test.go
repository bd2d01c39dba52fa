package minibatch_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// resampleBatch returns one batch of len(labels) rows: X has "row" (the
// row's index) and "f" (row/2), Y has "y". The caller releases it.
func resampleBatch(t *testing.T, mem memory.Allocator, labels []int64) flow.Batch {
	t.Helper()
	src := splitSource(t, mem, labels, max(len(labels), 1))
	defer src.Close()
	b, err := src.Next(splitCtx(t))
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return b
}

// resampleRows returns the "row" values of b's X and checks that Y's
// labels match labels[row] on every row and that rows are ascending.
func resampleRows(t *testing.T, b flow.Batch, labels []int64) []int64 {
	t.Helper()
	rows := b.X.Column(0).(*array.Int64).Int64Values()
	f := b.X.Column(1).(*array.Float64).Float64Values()
	ys := b.Y.Column(0).(*array.Int64).Int64Values()
	if len(ys) != len(rows) {
		t.Fatalf("X has %d rows and Y %d; want the same", len(rows), len(ys))
	}
	for i, r := range rows {
		if ys[i] != labels[r] || f[i] != float64(r)/2 {
			t.Fatalf("output row %d (input row %d): y = %d, f = %v; want y = %d, f = %v", i, r, ys[i], f[i], labels[r], float64(r)/2)
		}
	}
	if !slices.IsSorted(rows) {
		t.Errorf("rows are not in their original order: %v", rows)
	}
	return slices.Clone(rows)
}

func TestResamplerTargets(t *testing.T) {
	counts := []int{20, 5, 2}
	tests := []struct {
		name string
		opts []minibatch.Option
		want map[int64]int
	}{
		{"default balances to the majority", nil, map[int64]int{0: 20, 1: 20, 2: 20}},
		{"to majority 1", []minibatch.Option{minibatch.WithOversampleToMajority(1)}, map[int64]int{0: 20, 1: 20, 2: 20}},
		{"to majority 0.5", []minibatch.Option{minibatch.WithOversampleToMajority(0.5)}, map[int64]int{0: 20, 1: 10, 2: 10}},
		{"to majority 0.2 keeps larger classes", []minibatch.Option{minibatch.WithOversampleToMajority(0.2)}, map[int64]int{0: 20, 1: 5, 2: 4}},
		{"to minority 1", []minibatch.Option{minibatch.WithUndersampleToMinority(1)}, map[int64]int{0: 2, 1: 2, 2: 2}},
		{"to minority 2", []minibatch.Option{minibatch.WithUndersampleToMinority(2)}, map[int64]int{0: 4, 1: 4, 2: 2}},
		{"to count 8", []minibatch.Option{minibatch.WithClassRows(8)}, map[int64]int{0: 8, 1: 8, 2: 8}},
		{"weights", []minibatch.Option{minibatch.WithClassWeights(map[string]float64{"1": 3, "2": 0})}, map[int64]int{0: 20, 1: 15}},
		{"func", []minibatch.Option{minibatch.WithClassTargets(func(c map[string]int) map[string]int {
			return map[string]int{"0": c["0"] / 4, "2": 7}
		})}, map[int64]int{0: 5, 1: 5, 2: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := splitCtx(t)
			labels := splitLabels(counts...)
			in := resampleBatch(t, mem, labels)
			defer in.Release()
			in.Seq, in.Epoch = 4, 1

			r, err := minibatch.NewResampler(append(append(tt.opts, minibatch.WithSeed(1)), minibatch.WithAllocator(mem))...)
			if err != nil {
				t.Fatalf("NewResampler: %v", err)
			}
			out, err := r.FitTransform(ctx, in)
			if err != nil {
				t.Fatalf("FitTransform: %v", err)
			}
			defer out.Release()
			if out.Seq != 4 || out.Epoch != 1 {
				t.Errorf("got Seq %d, Epoch %d; want 4, 1 kept", out.Seq, out.Epoch)
			}
			rows := resampleRows(t, out, labels)
			got := map[int64]int{}
			times := map[int64]int{}
			for _, r := range rows {
				got[labels[r]]++
				times[r]++
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("rows per class: got %v; want %v", got, tt.want)
			}
			// Each row appears floor(t/n) or ceil(t/n) times; a class that
			// keeps or gains rows keeps every row.
			for r, l := range labels {
				n, want := counts[l], tt.want[l]
				lo, hi := want/n, (want+n-1)/n
				if k := times[int64(r)]; k < lo || k > hi {
					t.Errorf("row %d (class %d, %d → %d rows) appears %d times; want %d to %d", r, l, n, want, k, lo, hi)
				}
			}
		})
	}
}

func TestResamplerWeightsRandomRounding(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)
	labels := splitLabels(10, 5)
	in := resampleBatch(t, mem, labels)
	defer in.Release()
	r, err := minibatch.NewResampler(minibatch.WithClassWeights(map[string]float64{"1": 1.5}), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatalf("NewResampler: %v", err)
	}
	seen := map[int]int{}
	const batches = 400
	total := 0
	for seq := range int64(batches) {
		in.Seq = seq
		out, err := r.FitTransform(ctx, in)
		if err != nil {
			t.Fatalf("FitTransform: %v", err)
		}
		n := 0
		for _, y := range out.Y.Column(0).(*array.Int64).Int64Values() {
			if y == 1 {
				n++
			}
		}
		out.Release()
		seen[n]++
		total += n
	}
	if len(seen) != 2 || seen[7] == 0 || seen[8] == 0 {
		t.Errorf("class 1 (5 rows, weight 1.5) got row counts %v; want only 7 and 8, both", seen)
	}
	if mean := float64(total) / batches; mean < 7.3 || mean > 7.7 {
		t.Errorf("class 1 averaged %.3f rows over %d batches; want about 7.5", mean, batches)
	}
}

func TestResamplerDeterministic(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)
	labels := splitLabels(30, 7, 4)
	in := resampleBatch(t, mem, labels)
	defer in.Release()

	rowsFor := func(seed uint64, seq int64, epoch int) []int64 {
		r, err := minibatch.NewResampler(minibatch.WithSeed(seed), minibatch.WithClassRows(10), minibatch.WithAllocator(mem))
		if err != nil {
			t.Fatalf("NewResampler: %v", err)
		}
		b := in
		b.Seq, b.Epoch = seq, epoch
		out, err := r.FitTransform(ctx, b)
		if err != nil {
			t.Fatalf("FitTransform: %v", err)
		}
		defer out.Release()
		return resampleRows(t, out, labels)
	}
	base := rowsFor(1, 0, 0)
	tests := []struct {
		name      string
		seed      uint64
		seq       int64
		epoch     int
		wantEqual bool
	}{
		{"same seed, Seq and Epoch", 1, 0, 0, true},
		{"other seed", 2, 0, 0, false},
		{"other Seq", 1, 1, 0, false},
		{"other Epoch", 1, 0, 1, false},
	}
	for _, tt := range tests {
		if got := rowsFor(tt.seed, tt.seq, tt.epoch); slices.Equal(got, base) != tt.wantEqual {
			t.Errorf("%s: got rows %v, base %v; want equal = %v", tt.name, got, base, tt.wantEqual)
		}
	}
}

// TestResamplerTrainOnly checks that the transform path passes batches
// through untouched, also inside a pipeline, while the fit path resamples.
func TestResamplerTrainOnly(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)
	labels := splitLabels(12, 3)
	in := resampleBatch(t, mem, labels)
	defer in.Release()
	r, err := minibatch.NewResampler(minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatalf("NewResampler: %v", err)
	}
	out, err := r.Transform(ctx, in)
	if err != nil {
		t.Fatalf("Transform: %v", err)
	}
	if out.X != in.X || out.Y != in.Y {
		t.Errorf("Transform returned new records; want the input passed through")
	}
	out.Release() // the input must stay valid: Transform retained it
	if got := in.X.NumRows(); got != 15 {
		t.Fatalf("input has %d rows after Transform; want 15", got)
	}

	p, err := flow.NewPipeline([]flow.Node{flow.Named("resample", r)})
	if err != nil {
		t.Fatalf("NewPipeline: %v", err)
	}
	for _, tt := range []struct {
		name string
		run  func(context.Context, flow.Batch) (flow.Batch, error)
		want int64
	}{
		{"pipeline transform", p.Transform, 15},
		{"pipeline fit-transform", p.FitTransform, 24},
	} {
		out, err := tt.run(ctx, in)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if out.Rows() != tt.want {
			t.Errorf("%s: got %d rows; want %d", tt.name, out.Rows(), tt.want)
		}
		out.Release()
	}
}

func TestResamplerLabels(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)
	// Labels are strings in X column "kind"; there is no Y.
	kinds := []string{"cat", "cat", "cat", "cat", "dog", "eel", "cat", "cat"}
	schema := arrow.NewSchema([]arrow.Field{{Name: "kind", Type: arrow.BinaryTypes.String}, {Name: "v", Type: arrow.PrimitiveTypes.Float32}}, nil)
	b := array.NewRecordBuilder(mem, schema)
	for i, k := range kinds {
		b.Field(0).(*array.StringBuilder).Append(k)
		b.Field(1).(*array.Float32Builder).Append(float32(i))
	}
	rec := b.NewRecordBatch()
	b.Release()
	in := flow.Batch{X: rec}
	defer in.Release()

	r, err := minibatch.NewResampler(minibatch.WithClassLabel("kind"), minibatch.WithClassWeights(map[string]float64{"cat": 0.5, "eel": 2}), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatalf("NewResampler: %v", err)
	}
	out, err := r.FitTransform(ctx, in)
	if err != nil {
		t.Fatalf("FitTransform: %v", err)
	}
	defer out.Release()
	if out.Y != nil {
		t.Errorf("got a Y; want nil as in the input")
	}
	got := map[string]int{}
	ks, vs := out.X.Column(0).(*array.String), out.X.Column(1).(*array.Float32)
	for i := range ks.Len() {
		got[ks.Value(i)]++
		if kinds[int(vs.Value(i))] != ks.Value(i) {
			t.Errorf("row %d: kind %q with v %v; want kind %q", i, ks.Value(i), vs.Value(i), kinds[int(vs.Value(i))])
		}
	}
	if want := map[string]int{"cat": 3, "dog": 1, "eel": 2}; !maps.Equal(got, want) {
		t.Errorf("rows per class: got %v; want %v", got, want)
	}
}

func TestResamplerErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)

	for _, tt := range []struct {
		name string
		opts []minibatch.Option
		want string
	}{
		{"two targets", []minibatch.Option{minibatch.WithClassRows(3), minibatch.WithUndersampleToMinority(1)}, "2 targets given (WithClassRows, WithUndersampleToMinority)"},
		{"count", []minibatch.Option{minibatch.WithClassRows(0)}, "WithClassRows(0): want at least 1"},
		{"majority ratio", []minibatch.Option{minibatch.WithOversampleToMajority(0)}, "WithOversampleToMajority(0): want a positive"},
		{"minority ratio", []minibatch.Option{minibatch.WithUndersampleToMinority(0.5)}, "WithUndersampleToMinority(0.5): want a finite ratio of at least 1"},
		{"negative weight", []minibatch.Option{minibatch.WithClassWeights(map[string]float64{"a": -1})}, `class "a" has weight -1`},
		{"no weights", []minibatch.Option{minibatch.WithClassWeights(nil)}, "no weights"},
		{"nil func", []minibatch.Option{minibatch.WithClassTargets(nil)}, "WithClassTargets(nil)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := minibatch.NewResampler(append(tt.opts, minibatch.WithAllocator(mem))...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v; want one containing %q", err, tt.want)
			}
		})
	}

	labelled := resampleBatch(t, mem, []int64{0, 1, 1})
	defer labelled.Release()
	noY := flow.Batch{X: labelled.X}
	listY := func() flow.Batch {
		lb := array.NewListBuilder(mem, arrow.PrimitiveTypes.Int64)
		for range 3 {
			lb.Append(true)
			lb.ValueBuilder().(*array.Int64Builder).Append(1)
		}
		col := lb.NewArray()
		lb.Release()
		defer col.Release()
		y := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "tags", Type: col.DataType()}}, nil), []arrow.Array{col}, 3)
		labelled.X.Retain()
		return flow.Batch{X: labelled.X, Y: y}
	}
	nullY := func() flow.Batch {
		ib := array.NewInt64Builder(mem)
		ib.AppendValues([]int64{1, 0, 1}, []bool{true, false, true})
		col := ib.NewArray()
		ib.Release()
		defer col.Release()
		y := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "y", Type: col.DataType(), Nullable: true}}, nil), []arrow.Array{col}, 3)
		labelled.X.Retain()
		return flow.Batch{X: labelled.X, Y: y}
	}
	negative := minibatch.WithClassTargets(func(map[string]int) map[string]int { return map[string]int{"1": -2} })
	for _, tt := range []struct {
		name  string
		batch func() flow.Batch
		opts  []minibatch.Option
		want  []string
	}{
		{"no Y", func() flow.Batch { labelled.X.Retain(); return noY }, nil, []string{"label the first column of Y", "has no Y"}},
		{"missing column", func() flow.Batch { labelled.Retain(); return labelled }, []minibatch.Option{minibatch.WithClassLabel("class")},
			[]string{`label column "class"`, `no column "class" in Y or X`}},
		{"list labels", listY, nil, []string{`label Y column "tags"`, "got type list<item: int64, nullable>", "want an integer, floating-point, string or boolean column"}},
		{"null label", nullY, nil, []string{`label Y column "y"`, "row 1 is null"}},
		{"negative target", func() flow.Batch { labelled.Retain(); return labelled }, []minibatch.Option{negative},
			[]string{`target for class "1" of label Y column "y" is -2 rows`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.batch()
			defer b.Release()
			r, err := minibatch.NewResampler(append(tt.opts, minibatch.WithAllocator(mem))...)
			if err != nil {
				t.Fatalf("NewResampler: %v", err)
			}
			out, err := r.FitTransform(ctx, b)
			if err == nil {
				out.Release()
				t.Fatalf("got no error; want one containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q; want it to contain %q", err, w)
				}
			}
		})
	}

	r, err := minibatch.NewResampler(minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.FitTransform(cctx, labelled); !errors.Is(err, context.Canceled) {
		t.Errorf("FitTransform on a cancelled context: got %v; want context.Canceled", err)
	}
}

// TestResamplerConcurrent runs FitTransform from several goroutines on
// one Resampler (as replicas sharing a step would) and checks that every
// result equals the sequential one.
func TestResamplerConcurrent(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)
	labels := splitLabels(40, 9, 3)
	in := resampleBatch(t, mem, labels)
	defer in.Release()
	r, err := minibatch.NewResampler(minibatch.WithSeed(3), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	rep := r.Replica()
	if err := r.Merge([]flow.Step{rep}); err != nil {
		t.Fatalf("Merge: %v", err)
	}
	const workers = 8
	want := make([][]int64, workers)
	for w := range workers {
		b := in
		b.Seq = int64(w)
		out, err := r.FitTransform(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		want[w] = resampleRows(t, out, labels)
		out.Release()
	}
	var wg sync.WaitGroup
	got := make([][]int64, workers)
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			b := in
			b.Seq = int64(w)
			step := flow.Step(r)
			if w%2 == 1 {
				step = rep
			}
			out, err := step.(flow.FitTransformer).FitTransform(ctx, b)
			if err != nil {
				errs[w] = err
				return
			}
			got[w] = slices.Clone(out.X.Column(0).(*array.Int64).Int64Values())
			out.Release()
		})
	}
	wg.Wait()
	for w := range workers {
		if errs[w] != nil {
			t.Errorf("worker %d: %v", w, errs[w])
		} else if !slices.Equal(got[w], want[w]) {
			t.Errorf("worker %d: got rows %v; want %v", w, got[w], want[w])
		}
	}
	if err := r.Merge([]flow.Step{fakeStep{}}); err == nil || !strings.Contains(err.Error(), "replica 0 is minibatch_test.fakeStep") {
		t.Errorf("Merge of a foreign step: got %v; want an error naming it", err)
	}
}

type fakeStep struct{}

func (fakeStep) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

func ExampleNewResampler() {
	mem := memory.NewGoAllocator()
	// Nine rows of class 0 and three of class 1 in one batch.
	labels := []int64{0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0}
	src, err := minibatch.FromSlices(len(labels), []minibatch.Column{minibatch.Float64s("x", make([]float64, len(labels)))}, []minibatch.Column{minibatch.Int64s("y", labels)}, minibatch.WithAllocator(mem))
	if err != nil {
		panic(err)
	}
	defer src.Close()
	in, err := src.Next(context.Background())
	if err != nil {
		panic(err)
	}
	defer in.Release()

	r, err := minibatch.NewResampler(minibatch.WithOversampleToMajority(1), minibatch.WithSeed(1), minibatch.WithAllocator(mem))
	if err != nil {
		panic(err)
	}
	for _, path := range []struct {
		name string
		run  func(context.Context, flow.Batch) (flow.Batch, error)
	}{{"transform", r.Transform}, {"fit-transform", r.FitTransform}} {
		out, err := path.run(context.Background(), in)
		if err != nil {
			panic(err)
		}
		count := map[int64]int{}
		for _, y := range out.Y.Column(0).(*array.Int64).Int64Values() {
			count[y]++
		}
		fmt.Printf("%s: %d rows, class 0: %d, class 1: %d\n", path.name, out.Rows(), count[0], count[1])
		out.Release()
	}
	// Output:
	// transform: 12 rows, class 0: 9, class 1: 3
	// fit-transform: 18 rows, class 0: 9, class 1: 9
}
