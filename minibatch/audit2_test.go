package minibatch_test

// The second pass of the audit of minibatch's documented promises (see
// audit_test.go for the first): what that pass did not cover.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// TestAuditCSVNullInNonNullable: WithSchema says a field that is not
// nullable rejects null values, and CSVSource that a null in a
// non-nullable column is an error naming the line and the column. Every
// type, strings included: a string column took "" and "NA" as text.
func TestAuditCSVNullInNonNullable(t *testing.T) {
	types := []arrow.DataType{arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Float64, arrow.FixedWidthTypes.Boolean}
	good := map[arrow.Type]string{arrow.STRING: "x", arrow.INT64: "1", arrow.FLOAT64: "1.5", arrow.BOOL: "true"}
	for _, dt := range types {
		for _, null := range []string{"", "NA", "NaN"} {
			t.Run(dt.String()+"/"+null, func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "v", Type: dt}}, nil)
				in := "id,v\n1," + good[dt.ID()] + "\n2," + null + "\n"
				_, err := readCSVErr(t, mem, []byte(in), minibatch.WithSchema(schema), minibatch.WithNullValues("", "NA", "NaN"))
				if err == nil {
					t.Fatalf("%q in a non-nullable %s column: no error; want one", null, dt)
				}
				for _, want := range []string{"line 3", `column "v"`, "not nullable", "WithNullValues"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q; want it to contain %q", err, want)
					}
				}
			})
		}
	}
}

// TestAuditPadFloat16: Pad says numeric columns, and FixedSizeLists of a
// numeric type, hold the pad value; float16 is numeric (Pack packs it) but
// was padded with nulls, as strings are.
func TestAuditPadFloat16(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "h", Type: arrow.FixedWidthTypes.Float16, Nullable: true},
		{Name: "t", Type: arrow.FixedSizeListOf(2, arrow.FixedWidthTypes.Float16), Nullable: true},
	}, nil)
	rec, _, err := array.RecordFromJSON(mem, schema, strings.NewReader(`[{"h": 1.5, "t": [1, 2]}, {"h": 2, "t": [3, 4]}, {"h": 3, "t": [5, 6]}]`))
	if err != nil {
		t.Fatal(err)
	}
	src, err := minibatch.FromRecords([]arrow.RecordBatch{rec}, nil)
	rec.Release()
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rb, err := minibatch.NewRebatcher(src, 2, minibatch.Pad(-2.5), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	ctx := auditCtx(t)
	full, err := rb.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	full.Release()
	b, err := rb.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if minibatch.RealRows(b) != 1 || b.Rows() != 2 {
		t.Fatalf("padded batch: %d rows, %d real; want 2, 1 real", b.Rows(), minibatch.RealRows(b))
	}
	h := b.X.Column(0).(*array.Float16)
	if h.IsNull(1) || h.Value(1).Float32() != -2.5 {
		t.Errorf("padded float16 row: %v; want -2.5", h)
	}
	tl := b.X.Column(1).(*array.FixedSizeList)
	vals := tl.ListValues().(*array.Float16)
	if tl.IsNull(1) || vals.IsNull(2) || vals.Value(2).Float32() != -2.5 || vals.Value(3).Float32() != -2.5 {
		t.Errorf("padded fixed_size_list<float16> row: %v; want [-2.5 -2.5]", tl)
	}
}

// TestAuditRepeatEmptyRows: Repeat says an empty source repeated without
// end does not spin. A source of zero-row batches (an IPC stream of empty
// batches) is empty too, but each of its epochs returned batches, so Repeat
// went on for ever, and a stage over it that waits for rows (a Rebatcher,
// a Shuffler) spun inside one Next until its context ended.
func TestAuditRepeatEmptyRows(t *testing.T) {
	stages := map[string]func(src flow.Source, mem memory.Allocator) (lifecycleSource, error){
		"repeat": func(src flow.Source, _ memory.Allocator) (lifecycleSource, error) { return src.(lifecycleSource), nil },
		"rebatcher": func(src flow.Source, mem memory.Allocator) (lifecycleSource, error) {
			return minibatch.NewRebatcher(src, 4, minibatch.Keep, minibatch.WithAllocator(mem))
		},
		"shuffler": func(src flow.Source, mem memory.Allocator) (lifecycleSource, error) {
			return minibatch.Shuffle(src, 8, minibatch.WithAllocator(mem))
		},
	}
	for name, stage := range stages {
		for _, sizes := range [][]int{{0}, {0, 0, 0}} {
			t.Run(fmt.Sprintf("%s/%v", name, sizes), func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				rep, err := minibatch.Repeat(&rowsSource{mem: mem, sizes: sizes}, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer rep.Close()
				s, err := stage(rep, mem)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				for n := 0; ; n++ {
					b, err := s.Next(ctx)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("Next %d: %v; want io.EOF after the first epoch", n, err)
					}
					b.Release()
					if n > len(sizes) {
						t.Fatalf("%d batches from %d empty ones repeated; want the first epoch's, then io.EOF", n, len(sizes))
					}
				}
			})
		}
	}
}

// TestAuditShuffleSizes: the k-th output batch of a Shuffler has the rows
// of the k-th input batch that has rows; input batches of zero rows are
// dropped (the doc said the k-th input batch, which a zero-row one made
// false), at the end of the stream and across an epoch boundary alike.
func TestAuditShuffleSizes(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src := &rowsSource{mem: mem, sizes: []int{3, 0, 4, 0, 2, 5, 0}, epochs: []int{0, 0, 0, 0, 1, 1, 1}}
	sh, err := minibatch.Shuffle(src, 4, minibatch.WithSeed(3), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	got, xs, ys := drain(t, auditCtx(t), sh)
	want := []shape{{0, 0, 3}, {1, 0, 4}, {2, 1, 2}, {3, 1, 5}}
	if !slices.Equal(got, want) {
		t.Errorf("batches %v; want %v", got, want)
	}
	checkPaired(t, xs, ys)
	checkOnce(t, xs, 14)
}

// TestAuditResampleNoX: a batch with no X given to the Resampler's fit
// path is an error naming the batch, never a panic, whatever the target.
// A target that left the batch as it was passed it through, a resampling
// whose rows form one run (WithClassRows(1) keeping two neighbours) cut a
// slice of the nil X and panicked, and one whose rows did not failed with
// "take: no batch to take rows from".
func TestAuditResampleNoX(t *testing.T) {
	for name, opt := range map[string]minibatch.Option{
		"one run":   minibatch.WithClassRows(1),
		"gathered":  minibatch.WithOversampleToMajority(1),
		"unchanged": minibatch.WithClassTargets(func(c map[string]int) map[string]int { return c }),
	} {
		t.Run(name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			rs, err := minibatch.NewResampler(opt, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			in := flow.Batch{Seq: 4, Y: int64Rec(mem, "y", []int64{0, 0, 1, 1, 1})}
			defer in.Release()
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("panic: %v", r)
				}
			}()
			out, err := rs.FitTransform(auditCtx(t), in)
			if err == nil {
				out.Release()
				t.Fatal("FitTransform of a batch with no X: no error; want one")
			}
			for _, want := range []string{"resample", "batch 4", "no X"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q; want it to contain %q", err, want)
				}
			}
		})
	}
}

// TestAuditMemorySchemaWithoutRecords: a Memory from FromSlices of columns
// with no rows has no record but knows its X schema (the doc said nil for
// a Memory without records), and one from FromRecords of no records has
// none.
func TestAuditMemorySchemaWithoutRecords(t *testing.T) {
	m, err := minibatch.FromSlices(4, []minibatch.Column{minibatch.Float64s("a", nil), minibatch.Strings("s", nil)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Len() != 0 || m.Rows() != 0 {
		t.Errorf("FromSlices of no rows: %d records, %d rows; want none", m.Len(), m.Rows())
	}
	if s := m.Schema(); s == nil || s.NumFields() != 2 || s.Field(0).Name != "a" || s.Field(1).Name != "s" {
		t.Errorf("FromSlices of no rows: Schema() = %v; want the columns a and s", s)
	}
	if _, err := m.Next(auditCtx(t)); err != io.EOF {
		t.Errorf("Next: %v; want io.EOF", err)
	}
	e, err := minibatch.FromRecords(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if s := e.Schema(); s != nil {
		t.Errorf("FromRecords of no records: Schema() = %v; want nil", s)
	}
}

// TestAuditRealRowsThroughStages: RealRows says the real rows of a padded
// batch come first. Stages after a padding Rebatcher that cut or gather its
// rows kept the mark of the batch they cut from, or of the batch of their
// first row, whatever rows they took: a Rebatcher's slice of the end of a
// padded batch counted its padding as real, and a Shuffler's or a split's
// batch of real rows only was marked padded (or the reverse). Now no row
// before RealRows is padding, a batch without padding is unmarked, and a
// Rebatcher, which keeps the rows in order, marks exactly.
func TestAuditRealRowsThroughStages(t *testing.T) {
	const pad = -1
	type made struct {
		src   lifecycleSource
		exact bool // rows from RealRows on are all padding
		more  []func() error
	}
	stages := map[string]func(t *testing.T, mem memory.Allocator, padded *minibatch.Rebatcher) made{
		"rebatch 8": func(t *testing.T, mem memory.Allocator, p *minibatch.Rebatcher) made {
			r, err := minibatch.NewRebatcher(p, 8, minibatch.Keep, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{src: r, exact: true}
		},
		"rebatch 4": func(t *testing.T, mem memory.Allocator, p *minibatch.Rebatcher) made {
			r, err := minibatch.NewRebatcher(p, 4, minibatch.Keep, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{src: r, exact: true}
		},
		"rebatch 6": func(t *testing.T, mem memory.Allocator, p *minibatch.Rebatcher) made {
			r, err := minibatch.NewRebatcher(p, 6, minibatch.Keep, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{src: r, exact: true}
		},
		"rebatch 5 pad": func(t *testing.T, mem memory.Allocator, p *minibatch.Rebatcher) made {
			r, err := minibatch.NewRebatcher(p, 5, minibatch.Pad(pad), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{src: r}
		},
		"shuffle": func(t *testing.T, mem memory.Allocator, p *minibatch.Rebatcher) made {
			s, err := minibatch.Shuffle(p, 16, minibatch.WithSeed(1), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{src: s}
		},
		"permute": func(t *testing.T, mem memory.Allocator, p *minibatch.Rebatcher) made {
			s, err := minibatch.Permute(p, 5, minibatch.WithSeed(2), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{src: s}
		},
		"holdout validation": func(t *testing.T, mem memory.Allocator, p *minibatch.Rebatcher) made {
			train, val, err := minibatch.Holdout(auditCtx(t), p, 0.5, minibatch.WithStratify(false), minibatch.WithSeed(3), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{src: val, more: []func() error{train.Close}}
		},
	}
	for name, stage := range stages {
		t.Run(name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			m := newMemory(t, mem, 13, 13)
			defer m.Close()
			// Batches of 8 rows: 8 real, then 5 real and 3 of padding (-1).
			padded, err := minibatch.NewRebatcher(m, 8, minibatch.Pad(pad), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			defer padded.Close()
			s := stage(t, mem, padded)
			defer s.src.Close()
			for _, c := range s.more {
				defer c()
			}
			ctx := auditCtx(t)
			var real, pads int
			for {
				b, err := s.src.Next(ctx)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				xs := float64Values(t, b.X)
				n := int(minibatch.RealRows(b))
				for i, x := range xs {
					switch {
					case i < n && x == pad:
						t.Errorf("batch %d %v: RealRows %d, but row %d is padding", b.Seq, xs, n, i)
					case i >= n && x != pad && s.exact:
						t.Errorf("batch %d %v: RealRows %d, but row %d is real", b.Seq, xs, n, i)
					}
					if x == pad {
						pads++
					} else {
						real++
					}
				}
				if !slices.Contains(xs, pad) && n != len(xs) {
					t.Errorf("batch %d %v holds no padding; RealRows %d, want %d", b.Seq, xs, n, len(xs))
				}
				b.Release()
			}
			if real+pads == 0 {
				t.Fatal("no rows")
			}
		})
	}
}

// TestAuditCacheOfAnySourceIsReplayable: the package doc says NewCache
// makes any source replayable, and the Cache doc that epochs over it read
// the source once. But a Cache of a source that is not replayable reported
// Replayable false until its first pass had ended, so Repeat, Epochs,
// Permute and the splits, which need a replayable source and read it from
// its start, refused it at construction. A Cache that has read nothing is
// at its start: Rewind does nothing and Replayable is true.
func TestAuditCacheOfAnySourceIsReplayable(t *testing.T) {
	uses := map[string]func(t *testing.T, mem memory.Allocator, c *minibatch.Cache) (lifecycleSource, []func() error, error){
		"repeat": func(t *testing.T, _ memory.Allocator, c *minibatch.Cache) (lifecycleSource, []func() error, error) {
			r, err := minibatch.Repeat(c, 3)
			return r, nil, err
		},
		"epochs": func(t *testing.T, mem memory.Allocator, c *minibatch.Cache) (lifecycleSource, []func() error, error) {
			e, err := minibatch.Epochs(c, 3, minibatch.WithBatchRows(4), minibatch.WithShuffleRows(8), minibatch.WithAllocator(mem))
			return e, nil, err
		},
		"permute": func(t *testing.T, mem memory.Allocator, c *minibatch.Cache) (lifecycleSource, []func() error, error) {
			p, err := minibatch.Permute(c, 4, minibatch.WithAllocator(mem))
			if err != nil {
				return nil, nil, err
			}
			r, err := minibatch.Repeat(p, 3)
			return r, []func() error{p.Close}, err
		},
		"holdout": func(t *testing.T, mem memory.Allocator, c *minibatch.Cache) (lifecycleSource, []func() error, error) {
			train, val, err := minibatch.Holdout(auditCtx(t), c, 0.25, minibatch.WithAllocator(mem))
			if err != nil {
				return nil, nil, err
			}
			r, err := minibatch.Repeat(train, 3)
			return r, []func() error{train.Close, val.Close}, err
		},
	}
	for name, use := range uses {
		t.Run(name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			inner := &rowsSource{mem: mem, sizes: []int{5, 3, 7, 5}}
			c, err := minibatch.NewCache(onceSource{inner}, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, closers, err := use(t, mem, c)
			for _, cl := range closers {
				defer cl()
			}
			if err != nil {
				t.Fatalf("over a Cache of a source that is not replayable: %v; want it taken", err)
			}
			defer s.Close()
			rows := len(readIDs(t, auditCtx(t), s))
			want := 3 * 20
			if name == "holdout" {
				want = 3 * 15
			}
			if rows != want {
				t.Errorf("%d rows over 3 epochs; want %d", rows, want)
			}
			if inner.reads != 4 {
				t.Errorf("the source returned %d batches; want 4 (read once)", inner.reads)
			}
		})
	}
}

// TestAuditSplitOfReshuffledSource: a split re-reads its source and says
// the source must return the same rows in the same order on every pass. A
// Shuffler or a Permute draws a new order on every pass, and a Holdout over
// one put rows in both sides and lost others, silently (20 rows each side
// of 40, 31 distinct). The splits and a windowed Permute refuse such a
// source, also under a Rebatcher, Repeat or Epochs; a Cache of it, which
// replays its first pass, is split as any source.
func TestAuditSplitOfReshuffledSource(t *testing.T) {
	type use func(ctx context.Context, mem memory.Allocator, src flow.Source) ([]*minibatch.SplitSource, error)
	uses := map[string]use{
		"holdout": func(ctx context.Context, mem memory.Allocator, src flow.Source) ([]*minibatch.SplitSource, error) {
			tr, val, err := minibatch.Holdout(ctx, src, 0.5, minibatch.WithStratify(false), minibatch.WithAllocator(mem))
			return []*minibatch.SplitSource{tr, val}, err
		},
		"k-fold": func(ctx context.Context, mem memory.Allocator, src flow.Source) ([]*minibatch.SplitSource, error) {
			folds, err := minibatch.KFold(ctx, src, 4, minibatch.WithStratify(false), minibatch.WithAllocator(mem))
			var sides []*minibatch.SplitSource
			for _, f := range folds {
				sides = append(sides, f.Validation, f.Train)
			}
			return sides, err
		},
		"walk-forward": func(ctx context.Context, mem memory.Allocator, src flow.Source) ([]*minibatch.SplitSource, error) {
			folds, err := minibatch.WalkForward(ctx, src, 1, minibatch.WithAllocator(mem))
			var sides []*minibatch.SplitSource
			for _, f := range folds {
				sides = append(sides, f.Validation, f.Train)
			}
			return sides, err
		},
		"permute windowed": func(ctx context.Context, mem memory.Allocator, src flow.Source) ([]*minibatch.SplitSource, error) {
			p, err := minibatch.Permute(src, 8, minibatch.WithWindowRows(8), minibatch.WithAllocator(mem))
			if err == nil {
				p.Close()
			}
			return nil, err
		},
	}
	type made struct {
		src     flow.Source
		closers []func() error
	}
	sources := map[string]func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made{
		"shuffle": func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made {
			s, err := minibatch.Shuffle(m, 40, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{s, []func() error{s.Close}}
		},
		"permute": func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made {
			p, err := minibatch.Permute(m, 8, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{p, []func() error{p.Close}}
		},
		"rebatched shuffle": func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made {
			s, err := minibatch.Shuffle(m, 40, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			r, err := minibatch.NewRebatcher(s, 5, minibatch.Keep, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{r, []func() error{r.Close, s.Close}}
		},
		"epochs": func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made {
			e, err := minibatch.Epochs(m, 1, minibatch.WithShuffleRows(40), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{e, []func() error{e.Close}}
		},
	}
	for uname, use := range uses {
		for sname, mk := range sources {
			t.Run(uname+"/"+sname, func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				m := newMemory(t, mem, 40, 8)
				defer m.Close()
				src := mk(t, mem, m)
				for _, c := range src.closers {
					defer c()
				}
				sides, err := use(auditCtx(t), mem, src.src)
				for _, s := range sides {
					if s != nil {
						s.Close()
					}
				}
				if err == nil || !strings.Contains(err.Error(), "new order on every pass") {
					t.Fatalf("over a %s: %v; want an error saying the source's order changes from pass to pass", sname, err)
				}
			})
		}
	}
	t.Run("holdout/cached shuffle", func(t *testing.T) {
		checkCachedHoldout(t, "shuffle", func(m flow.Source, mem memory.Allocator) (orderedSource, error) {
			return minibatch.Shuffle(m, 40, minibatch.WithAllocator(mem))
		})
	})
}

// orderedSource is a source that reorders another one's rows.
type orderedSource interface {
	flow.Source
	Close() error
}

// checkCachedHoldout splits, through a Cache, a source that order makes
// from 40 rows in batches of 8: made replayable by the cache, the split
// puts every row on one side, once.
func checkCachedHoldout(t *testing.T, what string, order func(flow.Source, memory.Allocator) (orderedSource, error)) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := auditCtx(t)
	m := newMemory(t, mem, 40, 8)
	defer m.Close()
	s, err := order(m, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := minibatch.NewCache(s, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	train, val, err := minibatch.Holdout(ctx, c, 0.5, minibatch.WithStratify(false), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer train.Close()
	defer val.Close()
	ids := append(readIDs(t, ctx, train), readIDs(t, ctx, val)...)
	checkEveryRowOnce(t, "train and validation of a cached "+what, ids, 40)
}

// cancelMidway is a Memory that cancels ctx with a cause once it has
// returned after batches in a pass.
type cancelMidway struct {
	*minibatch.Memory
	cancel context.CancelCauseFunc
	after  int
	n      int
}

func (c *cancelMidway) Next(ctx context.Context) (flow.Batch, error) {
	if c.n == c.after {
		c.cancel(errAuditCause)
	}
	c.n++
	return c.Memory.Next(ctx)
}

func (c *cancelMidway) Rewind() error { c.n = 0; return c.Memory.Rewind() }

// TestAuditPlanningCancelCause: the splits' constructors read their source
// once to plan; a ctx cancelled with a cause in the middle of that pass is
// an error wrapping the cause, and nothing is held. The Resampler's fit
// path returns the cause too.
func TestAuditPlanningCancelCause(t *testing.T) {
	splits := map[string]func(ctx context.Context, mem memory.Allocator, src flow.Source) error{
		"holdout": func(ctx context.Context, mem memory.Allocator, src flow.Source) error {
			_, _, err := minibatch.Holdout(ctx, src, 0.2, minibatch.WithAllocator(mem))
			return err
		},
		"k-fold": func(ctx context.Context, mem memory.Allocator, src flow.Source) error {
			_, err := minibatch.KFold(ctx, src, 3, minibatch.WithAllocator(mem))
			return err
		},
		"walk-forward": func(ctx context.Context, mem memory.Allocator, src flow.Source) error {
			_, err := minibatch.WalkForward(ctx, src, 2, minibatch.WithAllocator(mem))
			return err
		},
	}
	for name, split := range splits {
		t.Run(name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx, cancel := context.WithCancelCause(auditCtx(t))
			defer cancel(nil)
			m := newMemory(t, mem, auditRows, 7)
			defer m.Close()
			err := split(ctx, mem, &cancelMidway{Memory: m, cancel: cancel, after: 3})
			if !errors.Is(err, errAuditCause) {
				t.Fatalf("planning cancelled with a cause: %v; want an error wrapping the cause", err)
			}
		})
	}
	t.Run("resampler", func(t *testing.T) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		rs, err := minibatch.NewResampler(minibatch.WithAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancelCause(auditCtx(t))
		cancel(errAuditCause)
		in := flow.Batch{X: float64Record(mem, "i", []float64{1, 2, 3}), Y: int64Rec(mem, "y", []int64{0, 0, 1})}
		defer in.Release()
		if out, err := rs.FitTransform(ctx, in); !errors.Is(err, errAuditCause) {
			out.Release()
			t.Errorf("FitTransform with a ctx cancelled with a cause: %v; want the cause", err)
		}
	})
}

// TestAuditCacheRewindMidFirstPass: Replayable is true for a Cache of any
// source, and a runner may end a pass early and rewind (flow spills only
// sources that are not replayable): a Rewind in the middle of the first
// pass over a source that is not replayable succeeds, and the next Next
// reads the rest of the source into the Cache, honouring its ctx, before
// the first batch; the source is read once.
func TestAuditCacheRewindMidFirstPass(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := auditCtx(t)
	inner := &rowsSource{mem: mem, sizes: []int{5, 3, 7, 5}}
	c, err := minibatch.NewCache(onceSource{inner}, minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	if !c.Replayable() {
		t.Fatal("Replayable() = false in the middle of the first pass; want true")
	}
	if err := c.Rewind(); err != nil {
		t.Fatalf("Rewind in the middle of the first pass: %v; want nil", err)
	}
	cctx, cancel := context.WithCancelCause(ctx)
	cancel(errAuditCause)
	if _, err := c.Next(cctx); !errors.Is(err, errAuditCause) {
		t.Fatalf("Next with a ctx cancelled with a cause: %v; want the cause", err)
	}
	if got := len(readIDs(t, ctx, c)); got != 20 {
		t.Errorf("the pass after the Rewind: %d rows; want 20", got)
	}
	if !c.Filled() || inner.reads != 4 {
		t.Errorf("Filled %t, the source returned %d batches; want filled, 4 (read once)", c.Filled(), inner.reads)
	}
}

// TestAuditEasyFirstFraction: EasyFirst's epoch e reads the easiest
// fraction start + (1 − start) × e / epochsToAll of the rows, rounded up.
// The float product's rounding error added a row where the fraction of the
// rows is a whole number: a start of 0.07 read 8 of 100 rows, and 394 of
// the cases below were off by one.
func TestAuditEasyFirstFraction(t *testing.T) {
	for _, n := range []int{1, 7, 25, 50, 75, 100, 200, 1234} {
		difficulty := make([]float64, n)
		for p := 1; p < 100; p++ {
			for E := 1; E <= 6; E++ {
				order, err := minibatch.EasyFirst(difficulty, float64(p)/100, E, 1)
				if err != nil {
					t.Fatal(err)
				}
				for e := 0; e <= E; e++ {
					idx, err := order(e, n)
					if err != nil {
						t.Fatal(err)
					}
					// ⌈n × (p/100 + (1 − p/100) × e/E)⌉ in whole numbers.
					num, den := n*(p*E+(100-p)*e), 100*E
					want := min(n, max(1, (num+den-1)/den))
					if len(idx) != want {
						t.Fatalf("start %v, epochsToAll %d, epoch %d, %d rows: %d rows read; want %d", float64(p)/100, E, e, n, len(idx), want)
					}
				}
			}
		}
	}
}

// TestAuditHoldoutRounding: Holdout's validation side holds
// round(rows × validation) rows. The float product's rounding error moved
// it across a half: 0.145 of 100 rows gave 14, not 15, and 0.58 of 25
// gave 14, not 15.
func TestAuditHoldoutRounding(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := auditCtx(t)
	for _, n := range []int{25, 45, 50, 100, 200} {
		m := newMemory(t, mem, n, 16)
		for p := 1; p < 1000; p++ {
			want := (2*p*n + 1000) / 2000 // round(n × p/1000), halves up
			if want < 1 || want > n-1 {
				continue
			}
			train, val, err := minibatch.Holdout(ctx, m, float64(p)/1000, minibatch.WithStratify(false), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			if val.Rows() != int64(want) || train.Rows() != int64(n-want) {
				t.Errorf("validation %v of %d rows: %d validation and %d train rows; want %d and %d", float64(p)/1000, n, val.Rows(), train.Rows(), want, n-want)
			}
			train.Close()
			val.Close()
		}
		m.Close()
	}
}

// TestAuditResampleRatioRounding: the Resampler's ratio targets raise or
// cut a class to round(ratio × the majority or minority count), a half
// rounded up; the float product's rounding error moved it across the half
// (0.145 of a majority of 100 raised the minority to 14, not 15; 1.005
// times a minority of 100 cut the majority to 100, not 101).
func TestAuditResampleRatioRounding(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := auditCtx(t)
	for _, tc := range []struct {
		opt        minibatch.Option
		big, small int
		wantClass  int64
		wantRows   int
	}{
		{minibatch.WithOversampleToMajority(0.145), 100, 1, 1, 15},
		{minibatch.WithUndersampleToMinority(1.005), 200, 100, 0, 101},
	} {
		rs, err := minibatch.NewResampler(tc.opt, minibatch.WithAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		labels := make([]int64, tc.big+tc.small)
		for i := tc.big; i < len(labels); i++ {
			labels[i] = 1
		}
		in := flow.Batch{X: float64Record(mem, "i", iota64(len(labels))), Y: int64Rec(mem, "y", labels)}
		out, err := rs.FitTransform(ctx, in)
		in.Release()
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, v := range out.Y.Column(0).(*array.Int64).Int64Values() {
			if v == tc.wantClass {
				got++
			}
		}
		out.Release()
		if got != tc.wantRows {
			t.Errorf("class %d: %d rows; want %d", tc.wantClass, got, tc.wantRows)
		}
	}
}

// TestAuditLabelsNullCountLies: a label column whose null count says nulls
// that its validity bitmap does not hold (an invalid array, built by hand
// or by a faulty step) is an error from LabelsInt64, Classes and
// LabelsFloat32; the search for its first null row ran past the end, for
// ever with no bitmap.
func TestAuditLabelsNullCountLies(t *testing.T) {
	vals := memory.NewBufferBytes(arrow.Int64Traits.CastToBytes([]int64{1, 0, 1}))
	d := array.NewData(arrow.PrimitiveTypes.Int64, 3, []*memory.Buffer{nil, vals}, nil, 1, 0)
	defer d.Release()
	col := array.MakeFromData(d)
	defer col.Release()
	y := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "y", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil), []arrow.Array{col}, 3)
	defer y.Release()
	b := flow.Batch{X: y, Y: y}
	helpers := map[string]func() error{
		"LabelsInt64":   func() error { _, err := minibatch.LabelsInt64(b, "y"); return err },
		"Classes":       func() error { _, err := minibatch.Classes(b, "y", 2); return err },
		"LabelsFloat32": func() error { _, err := minibatch.LabelsFloat32(b, "y"); return err },
	}
	for name, f := range helpers {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- f() }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), `column "y"`) {
					t.Errorf("%s over a column whose null count lies: %v; want an error naming the column", name, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s over a column whose null count lies: no answer in 5s", name)
			}
		})
	}
}
