package minibatch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// splitCtx returns a context that fails a test that blocks for too long.
func splitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// splitLabels returns counts[c] rows of class c, interleaved in a fixed
// pseudo-random order so that classes are spread through the stream.
func splitLabels(counts ...int) []int64 {
	var labels []int64
	for c, n := range counts {
		for range n {
			labels = append(labels, int64(c))
		}
	}
	// A fixed permutation (multiplicative stride) so batches mix classes.
	n := len(labels)
	out := make([]int64, n)
	stride := 7919 % max(n, 1)
	for gcd(stride, n) != 1 {
		stride++
	}
	for i := range labels {
		out[(i*stride)%n] = labels[i]
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// splitSource returns a replayable source of len(labels) rows in batches
// of per rows: X has "row" (the row's index) and "f" (row/2), Y has "y".
// The caller releases it.
func splitSource(t *testing.T, mem memory.Allocator, labels []int64, per int) *minibatch.Memory {
	t.Helper()
	rows := make([]int64, len(labels))
	f := make([]float64, len(labels))
	for i := range rows {
		rows[i], f[i] = int64(i), float64(i)/2
	}
	src, err := minibatch.FromSlices(per, []minibatch.Column{minibatch.Int64s("row", rows), minibatch.Float64s("f", f)}, []minibatch.Column{minibatch.Int64s("y", labels)}, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatalf("FromSlices: %v", err)
	}
	return src
}

// splitRows reads src to its end and returns the "row" values of X and
// the "y" values of Y (nil without Y), checking that "f" is row/2 on every
// row (so that X's columns were taken in lockstep).
func splitRows(t *testing.T, ctx context.Context, src flow.Source) (rows, labels []int64) {
	t.Helper()
	for seq := int64(0); ; seq++ {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return rows, labels
		}
		if err != nil {
			t.Fatalf("%v: Next: %v", src, err)
		}
		if b.Seq != seq {
			t.Errorf("%v: batch Seq = %d; want %d", src, b.Seq, seq)
		}
		if b.Rows() == 0 {
			t.Errorf("%v: batch %d has no rows; want empty batches skipped", src, seq)
		}
		r := b.X.Column(0).(*array.Int64)
		f := b.X.Column(1).(*array.Float64)
		for i := range r.Len() {
			if f.Value(i) != float64(r.Value(i))/2 {
				t.Errorf("%v: row %d has f = %v; want %v", src, r.Value(i), f.Value(i), float64(r.Value(i))/2)
			}
		}
		rows = append(rows, r.Int64Values()...)
		if b.Y != nil {
			if b.Y.NumRows() != b.X.NumRows() {
				t.Errorf("%v: Y has %d rows; want %d", src, b.Y.NumRows(), b.X.NumRows())
			}
			labels = append(labels, b.Y.Column(0).(*array.Int64).Int64Values()...)
		}
		b.Release()
	}
}

func classCounts(labels []int64) map[int64]int {
	m := map[int64]int{}
	for _, l := range labels {
		m[l]++
	}
	return m
}

// checkPartition checks that sides are ascending, disjoint and cover
// 0..n-1.
func checkPartition(t *testing.T, n int, sides ...[]int64) {
	t.Helper()
	seen := make([]int, n)
	for s, rows := range sides {
		if !slices.IsSorted(rows) {
			t.Errorf("side %d rows are not in the parent's order: %v", s, rows)
		}
		for _, r := range rows {
			if r < 0 || int(r) >= n {
				t.Fatalf("side %d has row %d; want rows in [0, %d)", s, r, n)
			}
			seen[r]++
		}
	}
	for r, c := range seen {
		if c != 1 {
			t.Errorf("row %d is in %d sides; want exactly 1", r, c)
		}
	}
}

func TestHoldoutStratified(t *testing.T) {
	tests := []struct {
		name   string
		counts []int
		frac   float64
		per    int
	}{
		{"balanced", []int{50, 50}, 0.2, 16},
		{"imbalanced", []int{90, 9, 1}, 0.25, 7},
		{"many classes", []int{13, 17, 19, 23, 29, 31, 37}, 0.3, 10},
		{"odd fraction", []int{101, 55, 3}, 1.0 / 3, 1},
		{"one batch", []int{40, 20}, 0.5, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := splitCtx(t)
			labels := splitLabels(tt.counts...)
			src := splitSource(t, mem, labels, tt.per)
			defer src.Close()

			train, val, err := minibatch.Holdout(ctx, src, tt.frac, minibatch.WithSeed(7), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatalf("Holdout: %v", err)
			}
			n := len(labels)
			trainRows, trainLabels := splitRows(t, ctx, train)
			valRows, valLabels := splitRows(t, ctx, val)
			checkPartition(t, n, trainRows, valRows)
			wantVal := int(math.Round(float64(n) * tt.frac))
			if len(valRows) != wantVal || val.Rows() != int64(wantVal) {
				t.Errorf("validation has %d rows (Rows() = %d); want %d", len(valRows), val.Rows(), wantVal)
			}
			if train.Rows() != int64(n-wantVal) {
				t.Errorf("train.Rows() = %d; want %d", train.Rows(), n-wantVal)
			}
			for i, r := range valRows {
				if valLabels[i] != labels[r] {
					t.Fatalf("validation row %d has label %d; want %d", r, valLabels[i], labels[r])
				}
			}
			for i, r := range trainRows {
				if trainLabels[i] != labels[r] {
					t.Fatalf("train row %d has label %d; want %d", r, trainLabels[i], labels[r])
				}
			}
			vc := classCounts(valLabels)
			for c, total := range tt.counts {
				exact := float64(total) * tt.frac
				if got := vc[int64(c)]; math.Abs(float64(got)-exact) >= 1 {
					t.Errorf("class %d: %d of %d rows in validation; want within one row of %.3f", c, got, total, exact)
				}
			}
		})
	}
}

func TestHoldoutSeed(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)
	labels := splitLabels(60, 30, 10)
	src := splitSource(t, mem, labels, 9)
	defer src.Close()

	valRows := func(opts ...minibatch.Option) []int64 {
		_, val, err := minibatch.Holdout(ctx, src, 0.2, append(opts, minibatch.WithAllocator(mem))...)
		if err != nil {
			t.Fatalf("Holdout: %v", err)
		}
		rows, _ := splitRows(t, ctx, val)
		return rows
	}
	for _, stratify := range []bool{true, false} {
		a := valRows(minibatch.WithSeed(1), minibatch.WithStratify(stratify))
		b := valRows(minibatch.WithSeed(1), minibatch.WithStratify(stratify))
		c := valRows(minibatch.WithSeed(2), minibatch.WithStratify(stratify))
		if !slices.Equal(a, b) {
			t.Errorf("stratify %v: seed 1 twice gave different validation rows:\n%v\n%v", stratify, a, b)
		}
		if slices.Equal(a, c) {
			t.Errorf("stratify %v: seeds 1 and 2 gave the same validation rows %v; want different", stratify, a)
		}
	}
}

func TestKFold(t *testing.T) {
	tests := []struct {
		name     string
		counts   []int
		k, per   int
		stratify bool
	}{
		{"stratified 5", []int{50, 30, 20}, 5, 8, true},
		{"stratified uneven", []int{47, 23, 6, 2}, 4, 5, true},
		{"stratified k=2", []int{11, 10}, 2, 3, true},
		{"plain 3", []int{25, 25}, 3, 6, false},
		{"leave one out", []int{4, 3}, 7, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := splitCtx(t)
			labels := splitLabels(tt.counts...)
			n := len(labels)
			src := splitSource(t, mem, labels, tt.per)
			defer src.Close()

			folds, err := minibatch.KFold(ctx, src, tt.k, minibatch.WithSeed(3), minibatch.WithStratify(tt.stratify), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatalf("KFold: %v", err)
			}
			if len(folds) != tt.k {
				t.Fatalf("got %d folds; want %d", len(folds), tt.k)
			}
			var vals [][]int64
			for i, f := range folds {
				trainRows, _ := splitRows(t, ctx, f.Train)
				valRows, valLabels := splitRows(t, ctx, f.Validation)
				checkPartition(t, n, trainRows, valRows)
				vals = append(vals, valRows)
				if lo, hi := n/tt.k, (n+tt.k-1)/tt.k; len(valRows) < lo || len(valRows) > hi {
					t.Errorf("fold %d: %d validation rows; want %d or %d", i, len(valRows), lo, hi)
				}
				if int64(len(valRows)) != f.Validation.Rows() || int64(len(trainRows)) != f.Train.Rows() {
					t.Errorf("fold %d: read %d/%d rows; want Rows() %d/%d", i, len(trainRows), len(valRows), f.Train.Rows(), f.Validation.Rows())
				}
				if !tt.stratify {
					continue
				}
				vc := classCounts(valLabels)
				for c, total := range tt.counts {
					exact := float64(total) / float64(tt.k)
					if got := vc[int64(c)]; math.Abs(float64(got)-exact) >= 1 {
						t.Errorf("fold %d class %d: %d of %d rows; want within one row of %.3f", i, c, got, total, exact)
					}
				}
			}
			checkPartition(t, n, vals...)
		})
	}
}

func TestKFoldSeed(t *testing.T) {
	unique := make([]int64, 60) // every row a class of its own
	for i := range unique {
		unique[i] = int64(i)
	}
	for _, tt := range []struct {
		name   string
		labels []int64
	}{{"two classes", splitLabels(40, 20)}, {"unique labels", unique}} {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := splitCtx(t)
			src := splitSource(t, mem, tt.labels, 10)
			defer src.Close()

			firstFold := func(seed uint64) []int64 {
				folds, err := minibatch.KFold(ctx, src, 3, minibatch.WithSeed(seed), minibatch.WithAllocator(mem))
				if err != nil {
					t.Fatalf("KFold: %v", err)
				}
				rows, _ := splitRows(t, ctx, folds[0].Validation)
				return rows
			}
			a, b, c := firstFold(5), firstFold(5), firstFold(6)
			if !slices.Equal(a, b) {
				t.Errorf("seed 5 twice gave different folds:\n%v\n%v", a, b)
			}
			if slices.Equal(a, c) {
				t.Errorf("seeds 5 and 6 gave the same fold %v; want different", a)
			}
		})
	}
}

func TestWalkForward(t *testing.T) {
	type block struct{ trainLo, trainHi, valLo, valHi int64 }
	tests := []struct {
		name  string
		rows  int
		folds int
		opts  []minibatch.Option
		want  []block
	}{
		{"expanding", 12, 3, nil, []block{{0, 3, 3, 6}, {0, 6, 6, 9}, {0, 9, 9, 12}}},
		{"expanding uneven", 14, 3, nil, []block{{0, 5, 5, 8}, {0, 8, 8, 11}, {0, 11, 11, 14}}},
		{"sliding", 20, 3, []minibatch.Option{minibatch.WithTrainWindow(6), minibatch.WithValidationRows(4)},
			[]block{{2, 8, 8, 12}, {6, 12, 12, 16}, {10, 16, 16, 20}}},
		{"sliding short start", 10, 2, []minibatch.Option{minibatch.WithTrainWindow(5), minibatch.WithValidationRows(3)},
			[]block{{0, 4, 4, 7}, {2, 7, 7, 10}}},
		{"gap", 12, 2, []minibatch.Option{minibatch.WithGap(2)}, []block{{0, 2, 4, 8}, {0, 6, 8, 12}}},
		{"one fold", 5, 1, nil, []block{{0, 3, 3, 5}}},
	}
	span := func(lo, hi int64) []int64 {
		var s []int64
		for r := lo; r < hi; r++ {
			s = append(s, r)
		}
		return s
	}
	for _, tt := range tests {
		for _, per := range []int{1, 4, 100} {
			t.Run(fmt.Sprintf("%s/per=%d", tt.name, per), func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				ctx := splitCtx(t)
				src := splitSource(t, mem, make([]int64, tt.rows), per)
				defer src.Close()

				folds, err := minibatch.WalkForward(ctx, src, tt.folds, tt.opts...)
				if err != nil {
					t.Fatalf("WalkForward: %v", err)
				}
				if len(folds) != len(tt.want) {
					t.Fatalf("got %d folds; want %d", len(folds), len(tt.want))
				}
				prevVal := int64(-1)
				for i, f := range folds {
					w := tt.want[i]
					trainRows, _ := splitRows(t, ctx, f.Train)
					valRows, _ := splitRows(t, ctx, f.Validation)
					if !slices.Equal(trainRows, span(w.trainLo, w.trainHi)) {
						t.Errorf("fold %d train: got rows %v; want [%d, %d)", i, trainRows, w.trainLo, w.trainHi)
					}
					if !slices.Equal(valRows, span(w.valLo, w.valHi)) {
						t.Errorf("fold %d validation: got rows %v; want [%d, %d)", i, valRows, w.valLo, w.valHi)
					}
					if len(trainRows) > 0 && len(valRows) > 0 && trainRows[len(trainRows)-1] >= valRows[0] {
						t.Errorf("fold %d: train row %d is not before validation row %d", i, trainRows[len(trainRows)-1], valRows[0])
					}
					if len(valRows) > 0 && valRows[0] <= prevVal {
						t.Errorf("fold %d: validation starts at row %d, not after the previous block (ending at %d)", i, valRows[0], prevVal)
					}
					if len(valRows) > 0 {
						prevVal = valRows[len(valRows)-1]
					}
				}
			})
		}
	}
}

func TestWalkForwardZeroCopy(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)
	src := splitSource(t, mem, make([]int64, 40), 8)
	defer src.Close()
	folds, err := minibatch.WalkForward(ctx, src, 3)
	if err != nil {
		t.Fatalf("WalkForward: %v", err)
	}
	before := mem.CurrentAlloc()
	b, err := folds[1].Validation.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	defer b.Release()
	if got := mem.CurrentAlloc(); got != before {
		t.Errorf("walk-forward side allocated %d bytes; want 0 (zero-copy slices)", got-before)
	}
}

// TestSplitSidesInAnyOrder reads the two sides of a holdout in several
// sequential orders, interleaved included, and checks that each side always
// returns the same rows.
func TestSplitSidesInAnyOrder(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)
	labels := splitLabels(30, 20, 7)
	src := splitSource(t, mem, labels, 5)
	defer src.Close()
	train, val, err := minibatch.Holdout(ctx, src, 0.3, minibatch.WithSeed(11), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatalf("Holdout: %v", err)
	}
	wantTrain, _ := splitRows(t, ctx, train)
	wantVal, _ := splitRows(t, ctx, val)

	// read pulls one batch from s, or reports io.EOF.
	read := func(s *minibatch.SplitSource, into *[]int64) bool {
		b, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			t.Fatalf("%v: Next: %v", s, err)
		}
		*into = append(*into, b.X.Column(0).(*array.Int64).Int64Values()...)
		b.Release()
		return true
	}
	rewind := func() {
		if err := train.Rewind(); err != nil {
			t.Fatal(err)
		}
		if err := val.Rewind(); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		order func(gotTrain, gotVal *[]int64)
	}{
		{"validation then train", func(gt, gv *[]int64) {
			for read(val, gv) {
			}
			for read(train, gt) {
			}
		}},
		{"alternating", func(gt, gv *[]int64) {
			for more := true; more; {
				a, b := read(train, gt), read(val, gv)
				more = a || b
			}
		}},
		{"two of train, one of validation", func(gt, gv *[]int64) {
			for more := true; more; {
				a := read(train, gt)
				a = read(train, gt) || a
				more = read(val, gv) || a
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rewind()
			var gotTrain, gotVal []int64
			tt.order(&gotTrain, &gotVal)
			if !slices.Equal(gotTrain, wantTrain) {
				t.Errorf("train: got %v; want %v", gotTrain, wantTrain)
			}
			if !slices.Equal(gotVal, wantVal) {
				t.Errorf("validation: got %v; want %v", gotVal, wantVal)
			}
		})
	}
	// A side read to its end stays at io.EOF until it is rewound.
	if _, err := train.Next(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("train after its end: got %v; want io.EOF", err)
	}
	if err := train.Rewind(); err != nil {
		t.Fatal(err)
	}
	again, _ := splitRows(t, ctx, train)
	if !slices.Equal(again, wantTrain) {
		t.Errorf("train after Rewind: got %v; want %v", again, wantTrain)
	}
}

// TestHoldoutLabels stratifies on labels of several types, taken from Y's
// first column or from a named column of X.
func TestHoldoutLabels(t *testing.T) {
	const n = 60
	labelsOf := func(i int) int { return []int{0, 0, 0, 1, 1, 2}[i%6] } // shares 1/2, 1/3, 1/6
	tests := []struct {
		name   string
		column func(b *array.RecordBuilder, i int)
		typ    arrow.DataType
		inX    bool
	}{
		{"int32", func(b *array.RecordBuilder, i int) { b.Field(0).(*array.Int32Builder).Append(int32(labelsOf(i) - 1)) }, arrow.PrimitiveTypes.Int32, false},
		{"uint8", func(b *array.RecordBuilder, i int) { b.Field(0).(*array.Uint8Builder).Append(uint8(labelsOf(i))) }, arrow.PrimitiveTypes.Uint8, false},
		{"string", func(b *array.RecordBuilder, i int) {
			b.Field(0).(*array.StringBuilder).Append([]string{"cat", "dog", "eel"}[labelsOf(i)])
		}, arrow.BinaryTypes.String, false},
		{"float", func(b *array.RecordBuilder, i int) {
			b.Field(0).(*array.Float64Builder).Append(float64(labelsOf(i)) / 2)
		}, arrow.PrimitiveTypes.Float64, false},
		{"bool with nulls", func(b *array.RecordBuilder, i int) {
			if labelsOf(i) == 2 {
				b.Field(0).(*array.BooleanBuilder).AppendNull()
				return
			}
			b.Field(0).(*array.BooleanBuilder).Append(labelsOf(i) == 1)
		}, arrow.FixedWidthTypes.Boolean, false},
		{"named in X", func(b *array.RecordBuilder, i int) { b.Field(0).(*array.Int64Builder).Append(int64(labelsOf(i))) }, arrow.PrimitiveTypes.Int64, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx := splitCtx(t)
			schema := arrow.NewSchema([]arrow.Field{{Name: "label", Type: tt.typ, Nullable: true}, {Name: "i", Type: arrow.PrimitiveTypes.Int64}}, nil)
			var xs, ys []arrow.RecordBatch
			for lo := 0; lo < n; lo += 8 {
				b := array.NewRecordBuilder(mem, schema)
				for i := lo; i < min(lo+8, n); i++ {
					tt.column(b, i)
					b.Field(1).(*array.Int64Builder).Append(int64(i))
				}
				rec := b.NewRecordBatch()
				b.Release()
				xs = append(xs, rec)
				if !tt.inX {
					ys = append(ys, rec)
				}
			}
			if tt.inX {
				ys = nil
			}
			src, err := minibatch.FromRecords(xs, ys)
			for _, r := range xs {
				r.Release()
			}
			if err != nil {
				t.Fatalf("FromRecords: %v", err)
			}
			defer src.Close()
			var opts []minibatch.Option
			if tt.inX {
				opts = append(opts, minibatch.WithClassLabel("label"), minibatch.WithStratify(true))
			}
			_, val, err := minibatch.Holdout(ctx, src, 0.5, append(opts, minibatch.WithAllocator(mem))...)
			if err != nil {
				t.Fatalf("Holdout: %v", err)
			}
			perClass := map[int]int{}
			for {
				b, err := val.Next(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("Next: %v", err)
				}
				for _, i := range b.X.Column(1).(*array.Int64).Int64Values() {
					perClass[labelsOf(int(i))]++
				}
				b.Release()
			}
			// Exact halves: 30, 20 and 10 rows per class.
			if want := map[int]int{0: 15, 1: 10, 2: 5}; !mapsEqual(perClass, want) {
				t.Errorf("validation rows per class: got %v; want %v", perClass, want)
			}
		})
	}
}

func mapsEqual[K comparable](a, b map[K]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestSplitTakesColumns checks that rows are taken correctly from columns
// of several layouts: strings with nulls, tensors (fixed-size lists) and
// sliced parents.
func TestSplitTakesColumns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)
	const n, width = 30, 3
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "i", Type: arrow.PrimitiveTypes.Int64},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "t", Type: arrow.FixedSizeListOf(width, arrow.PrimitiveTypes.Float32), Nullable: true},
		{Name: "v", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	for i := range n + 4 {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if i%5 == 0 {
			b.Field(1).(*array.StringBuilder).AppendNull()
			b.Field(3).(*array.Float64Builder).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append(strings.Repeat("x", i))
			b.Field(3).(*array.Float64Builder).Append(float64(i) + 0.5)
		}
		lb := b.Field(2).(*array.FixedSizeListBuilder)
		if i%7 == 3 {
			lb.Append(false) // a null tensor whose elements are valid zeros
			for range width {
				lb.ValueBuilder().(*array.Float32Builder).Append(0)
			}
		} else {
			lb.Append(true)
			for w := range width {
				lb.ValueBuilder().(*array.Float32Builder).Append(float32(i*10 + w))
			}
		}
	}
	whole := b.NewRecordBatch()
	b.Release()
	// Three batches, sliced out of one record with an offset of 2.
	var xs []arrow.RecordBatch
	for lo := int64(2); lo < n+2; lo += 10 {
		xs = append(xs, whole.NewSlice(lo, lo+10))
	}
	whole.Release()
	src, err := minibatch.FromRecords(xs, nil)
	for _, r := range xs {
		r.Release()
	}
	if err != nil {
		t.Fatalf("FromRecords: %v", err)
	}
	defer src.Close()
	train, val, err := minibatch.Holdout(ctx, src, 0.4, minibatch.WithSeed(9), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatalf("Holdout: %v", err)
	}
	total := 0
	for _, side := range []*minibatch.SplitSource{train, val} {
		for {
			bt, err := side.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%v: Next: %v", side, err)
			}
			is := bt.X.Column(0).(*array.Int64)
			ss := bt.X.Column(1).(*array.String)
			ts := bt.X.Column(2).(*array.FixedSizeList)
			tv := ts.ListValues().(*array.Float32)
			vs := bt.X.Column(3).(*array.Float64)
			for r := range is.Len() {
				i := int(is.Value(r))
				total++
				if (i%5 == 0) != ss.IsNull(r) || (!ss.IsNull(r) && ss.Value(r) != strings.Repeat("x", i)) {
					t.Errorf("row %d: s = %q (null %v); want %d x's (null %v)", i, ss.Value(r), ss.IsNull(r), i, i%5 == 0)
				}
				if (i%5 == 0) != vs.IsNull(r) || (!vs.IsNull(r) && vs.Value(r) != float64(i)+0.5) {
					t.Errorf("row %d: v = %v (null %v); want %v", i, vs.Value(r), vs.IsNull(r), float64(i)+0.5)
				}
				if (i%7 == 3) != ts.IsNull(r) {
					t.Errorf("row %d: tensor null = %v; want %v", i, ts.IsNull(r), i%7 == 3)
				}
				if ts.IsNull(r) {
					continue
				}
				start, _ := ts.ValueOffsets(r)
				for w := range width {
					if got := tv.Value(int(start) + w); got != float32(i*10+w) {
						t.Errorf("row %d: tensor[%d] = %v; want %v", i, w, got, float32(i*10+w))
					}
				}
			}
			bt.Release()
		}
	}
	if total != n {
		t.Errorf("read %d rows over both sides; want %d", total, n)
	}
}

// failingSource is a replayable source whose reads fail once failAt batches
// have been read in a pass, while fail is set.
type failingSource struct {
	*minibatch.Memory
	read, failAt int
	fail         bool
}

var errSplitBroken = errors.New("disk on fire")

func (f *failingSource) Next(ctx context.Context) (flow.Batch, error) {
	if f.fail && f.read >= f.failAt {
		return flow.Batch{}, errSplitBroken
	}
	f.read++
	return f.Memory.Next(ctx)
}

func (f *failingSource) Rewind() error {
	f.read = 0
	return f.Memory.Rewind()
}

// notReplayable hides Rewind.
type notReplayable struct{ src flow.Source }

func (n notReplayable) Next(ctx context.Context) (flow.Batch, error) { return n.src.Next(ctx) }

func TestSplitErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)
	src := splitSource(t, mem, splitLabels(6, 4), 3)
	defer src.Close()
	noY, err := minibatch.FromSlices(4, []minibatch.Column{minibatch.Float64s("x", make([]float64, 10))}, nil, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer noY.Close()

	tests := []struct {
		name string
		run  func() error
		want []string
		is   error
	}{
		{"not replayable", func() error {
			_, _, err := minibatch.Holdout(ctx, notReplayable{src}, 0.2, minibatch.WithAllocator(mem))
			return err
		}, []string{"holdout", "not a flow.Rewinder"}, minibatch.ErrNotReplayable},
		{"fraction zero", func() error { _, _, err := minibatch.Holdout(ctx, src, 0, minibatch.WithAllocator(mem)); return err }, []string{"validation fraction is 0", "between 0 and 1"}, nil},
		{"fraction one", func() error { _, _, err := minibatch.Holdout(ctx, src, 1, minibatch.WithAllocator(mem)); return err }, []string{"validation fraction is 1"}, nil},
		{"empty side", func() error { _, _, err := minibatch.Holdout(ctx, src, 0.01, minibatch.WithAllocator(mem)); return err }, []string{"gives 0 validation", "at least one on each side"}, nil},
		{"k too small", func() error { _, err := minibatch.KFold(ctx, src, 1, minibatch.WithAllocator(mem)); return err }, []string{"k is 1", "at least 2"}, nil},
		{"k too large", func() error { _, err := minibatch.KFold(ctx, src, 11, minibatch.WithAllocator(mem)); return err }, []string{"k is 11", "10 rows"}, nil},
		{"missing label", func() error {
			_, _, err := minibatch.Holdout(ctx, src, 0.2, minibatch.WithClassLabel("class"), minibatch.WithAllocator(mem))
			return err
		}, []string{`label column "class"`, `no column "class"`, `"y", "row", "f"`}, nil},
		{"stratify without Y", func() error {
			_, _, err := minibatch.Holdout(ctx, noY, 0.2, minibatch.WithStratify(true), minibatch.WithAllocator(mem))
			return err
		}, []string{"first column of Y", "has no Y"}, nil},
		{"label type", func() error {
			_, _, err := minibatch.Holdout(ctx, noY, 0.2, minibatch.WithClassLabel("x"), minibatch.WithAllocator(mem))
			return err
		}, nil, nil}, // float labels are fine: no error
		{"walk-forward folds", func() error { _, err := minibatch.WalkForward(ctx, src, 0); return err }, []string{"folds is 0"}, nil},
		{"walk-forward too many", func() error { _, err := minibatch.WalkForward(ctx, src, 10); return err }, []string{"10 rows cannot make 10 folds"}, nil},
		{"walk-forward gap", func() error {
			_, err := minibatch.WalkForward(ctx, src, 2, minibatch.WithGap(4))
			return err
		}, []string{"gap of 4", "at least one"}, nil},
		{"walk-forward window", func() error {
			_, err := minibatch.WalkForward(ctx, src, 2, minibatch.WithTrainWindow(-1))
			return err
		}, []string{"WithTrainWindow(-1): want 0"}, nil},
		{"planning read fails", func() error {
			_, _, err := minibatch.Holdout(ctx, &failingSource{Memory: src, failAt: 2, fail: true}, 0.2, minibatch.WithAllocator(mem))
			return err
		}, []string{"planning pass, batch 2", "disk on fire"}, errSplitBroken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got error %v; want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error; want one containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q; want it to contain %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false; want true", err, tt.is)
			}
		})
	}
}

func TestSplitSideErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)
	inner := splitSource(t, mem, splitLabels(20, 20), 4)
	defer inner.Close()
	src := &failingSource{Memory: inner, failAt: 3}
	train, _, err := minibatch.Holdout(ctx, src, 0.5, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatalf("Holdout: %v", err)
	}
	src.fail = true
	var got error
	for range 10 {
		b, err := train.Next(ctx)
		if err != nil {
			got = err
			break
		}
		b.Release()
	}
	if !errors.Is(got, errSplitBroken) || !strings.Contains(got.Error(), "holdout train") {
		t.Errorf("got %v; want an error naming %q and wrapping %v", got, "holdout train", errSplitBroken)
	}
	// The source recovers: a later read rewinds and succeeds.
	src.fail = false
	if err := train.Rewind(); err != nil {
		t.Fatal(err)
	}
	rows, _ := splitRows(t, ctx, train)
	if len(rows) != 20 {
		t.Errorf("after recovery read %d rows; want 20", len(rows))
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := train.Next(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next on a cancelled context: got %v; want context.Canceled", err)
	}
	if _, _, err := minibatch.Holdout(cctx, inner, 0.5, minibatch.WithAllocator(mem)); !errors.Is(err, context.Canceled) {
		t.Errorf("Holdout on a cancelled context: got %v; want context.Canceled", err)
	}
}

// TestSplitSidesConcurrently reads every side of a k-fold split, each from
// its own goroutine, at the same time: slow (the parent is re-read at each
// switch) but correct and race-free.
func TestSplitSidesConcurrently(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := splitCtx(t)
	labels := splitLabels(40, 25, 15)
	src := splitSource(t, mem, labels, 6)
	defer src.Close()
	folds, err := minibatch.KFold(ctx, src, 3, minibatch.WithSeed(2), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatalf("KFold: %v", err)
	}
	var sides []*minibatch.SplitSource
	for _, f := range folds {
		sides = append(sides, f.Train, f.Validation)
	}
	want := make([][]int64, len(sides))
	for i, s := range sides {
		want[i], _ = splitRows(t, ctx, s)
		if err := s.Rewind(); err != nil {
			t.Fatal(err)
		}
	}
	got := make([][]int64, len(sides))
	errs := make([]error, len(sides))
	var wg sync.WaitGroup
	for i, s := range sides {
		wg.Go(func() {
			for {
				b, err := s.Next(ctx)
				if errors.Is(err, io.EOF) {
					return
				}
				if err != nil {
					errs[i] = err
					return
				}
				got[i] = append(got[i], b.X.Column(0).(*array.Int64).Int64Values()...)
				b.Release()
			}
		})
	}
	wg.Wait()
	for i, s := range sides {
		if errs[i] != nil {
			t.Errorf("%v: %v", s, errs[i])
		} else if !slices.Equal(got[i], want[i]) {
			t.Errorf("%v: got rows %v; want %v", s, got[i], want[i])
		}
	}
}
