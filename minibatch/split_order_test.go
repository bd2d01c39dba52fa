package minibatch_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// reverseOddEpochs is an OrderFunc whose order changes from epoch to
// epoch: every row, in order on even epochs, reversed on odd ones.
func reverseOddEpochs(epoch, n int) ([]int, error) {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if epoch%2 == 1 {
		slices.Reverse(idx)
	}
	return idx, nil
}

// TestSplitOfCurriculum: a Curriculum gives its rows in the order of each
// epoch, and Rewind starts the next epoch; a split re-reads its source
// once per side, so over a curriculum its sides got rows of other epochs'
// orders (rows on both sides, others lost), as over a Shuffler, which the
// splits refuse. The splits (and an Ordered that re-reads a source that
// is not a *Memory) refuse a Curriculum too, also under a Rebatcher or
// Repeat, naming the split and the source and saying to split first and
// then order each side; a Cache of it, which replays its first pass, is
// split as any source.
func TestSplitOfCurriculum(t *testing.T) {
	type use struct {
		op    string
		split bool
		run   func(ctx context.Context, mem memory.Allocator, src flow.Source) ([]*minibatch.SplitSource, error)
	}
	uses := map[string]use{
		"holdout": {"holdout", true, func(ctx context.Context, mem memory.Allocator, src flow.Source) ([]*minibatch.SplitSource, error) {
			tr, val, err := minibatch.Holdout(ctx, src, 0.5, minibatch.WithStratify(false), minibatch.WithAllocator(mem))
			return []*minibatch.SplitSource{tr, val}, err
		}},
		"k-fold": {"k-fold", true, func(ctx context.Context, mem memory.Allocator, src flow.Source) ([]*minibatch.SplitSource, error) {
			folds, err := minibatch.KFold(ctx, src, 4, minibatch.WithStratify(false), minibatch.WithAllocator(mem))
			var sides []*minibatch.SplitSource
			for _, f := range folds {
				sides = append(sides, f.Validation, f.Train)
			}
			return sides, err
		}},
		"walk-forward": {"walk-forward", true, func(ctx context.Context, mem memory.Allocator, src flow.Source) ([]*minibatch.SplitSource, error) {
			folds, err := minibatch.WalkForward(ctx, src, 1, minibatch.WithAllocator(mem))
			var sides []*minibatch.SplitSource
			for _, f := range folds {
				sides = append(sides, f.Validation, f.Train)
			}
			return sides, err
		}},
		"permute windowed": {"permute", false, func(ctx context.Context, mem memory.Allocator, src flow.Source) ([]*minibatch.SplitSource, error) {
			p, err := minibatch.Permute(src, 8, minibatch.WithWindowRows(8), minibatch.WithAllocator(mem))
			if err == nil {
				p.Close()
			}
			return nil, err
		}},
	}
	easy := make([]float64, 40)
	for i := range easy {
		easy[i] = float64(i % 7)
	}
	easyFirst, err := minibatch.EasyFirst(easy, 0.5, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	weighted, err := minibatch.Weighted(easy, 1)
	if err != nil {
		t.Fatal(err)
	}
	type made struct {
		src     flow.Source
		closers []func() error
	}
	curriculum := func(order minibatch.OrderFunc) func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made {
		return func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made {
			c, err := minibatch.Curriculum(m, 8, order, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{c, []func() error{c.Close}}
		}
	}
	sources := map[string]func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made{
		"curriculum": curriculum(reverseOddEpochs),
		"easy first": curriculum(easyFirst),
		"weighted":   curriculum(weighted),
		"rebatched curriculum": func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made {
			c := curriculum(reverseOddEpochs)(t, mem, m)
			r, err := minibatch.NewRebatcher(c.src, 5, minibatch.Keep, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{r, append([]func() error{r.Close}, c.closers...)}
		},
		"repeated curriculum": func(t *testing.T, mem memory.Allocator, m *minibatch.Memory) made {
			c := curriculum(reverseOddEpochs)(t, mem, m)
			r, err := minibatch.Repeat(c.src, 2)
			if err != nil {
				t.Fatal(err)
			}
			return made{r, append([]func() error{r.Close}, c.closers...)}
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
				sides, err := use.run(auditCtx(t), mem, src.src)
				for _, s := range sides {
					if s != nil {
						s.Close()
					}
				}
				if err == nil {
					t.Fatalf("over a %s: got no error; want the source refused, its order changes from epoch to epoch", sname)
				}
				msg := err.Error()
				want := []string{"minibatch: " + use.op + ":", "new order on every pass", "a Curriculum"}
				if use.split {
					want = append(want, "split first", "then order each side")
				}
				for _, w := range want {
					if !strings.Contains(msg, w) {
						t.Errorf("over a %s: %v; want it to hold %q", sname, err, w)
					}
				}
			})
		}
	}
	t.Run("holdout/cached curriculum", func(t *testing.T) {
		checkCachedHoldout(t, "curriculum", func(m flow.Source, mem memory.Allocator) (orderedSource, error) {
			return minibatch.Curriculum(m, 8, reverseOddEpochs, minibatch.WithAllocator(mem))
		})
	})
}
