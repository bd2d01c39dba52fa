package minibatch_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// lifecycleSource is what every source and wrapper of the package offers.
type lifecycleSource interface {
	flow.Source
	io.Closer
	Schema() *arrow.Schema
}

// TestLifecycle checks, over every source and wrapper, the one lifecycle
// that they share: Schema is X's, a batch can be read, Close twice is
// fine, Next after Close is an error (not a panic), Replayable turns false,
// and the checked allocator ends at zero — also when Close comes in the
// middle of a stream.
func TestLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t)
	type made struct {
		src  lifecycleSource
		done func() // closes what the case made besides src (its inner source)
	}
	csvData := "a,b,label\n" + strings.Repeat("1,2.5,0\n3,4.5,1\n", 20)
	cases := []struct {
		name     string
		make     func(t *testing.T, mem memory.Allocator) made
		wantX    []string // X's columns; nil: Schema is nil before the first Next
		rewinder bool
		pending  string // why the case is skipped: a source owned by another branch, not yet converted
	}{
		{"memory", func(t *testing.T, mem memory.Allocator) made {
			return made{newMemory(t, mem, 20, 6), func() {}}
		}, []string{"i"}, true, ""},
		{"channel", func(t *testing.T, mem memory.Allocator) made {
			ch := make(chan flow.Batch, 2)
			ch <- flow.Batch{X: float64Record(mem, "i", []float64{1, 2})}
			ch <- flow.Batch{X: float64Record(mem, "i", []float64{3})}
			close(ch)
			src := minibatch.FromChannel(ch)
			return made{src, func() {
				for b := range ch { // the sender's batches left in the channel
					b.Release()
				}
			}}
		}, nil, false, ""},
		{"generator", func(t *testing.T, mem memory.Allocator) made {
			return made{minibatch.Generate(func(_ context.Context, seq int64) (flow.Batch, error) {
				if seq == 3 {
					return flow.Batch{}, io.EOF
				}
				return flow.Batch{X: float64Record(mem, "i", []float64{float64(seq)})}, nil
			}), func() {}}
		}, nil, true, ""},
		{"csv", func(t *testing.T, mem memory.Allocator) made {
			src, err := minibatch.NewCSV(bytes.NewReader([]byte(csvData)), minibatch.WithAllocator(mem), minibatch.WithLabels("label"), minibatch.WithBatchRows(8))
			if err != nil {
				t.Fatal(err)
			}
			return made{src, func() {}}
		}, []string{"a", "b"}, true, ""},
		{"ipc stream", func(t *testing.T, mem memory.Allocator) made {
			var buf bytes.Buffer
			w := ipc.NewWriter(&buf, ipc.WithSchema(arrow.NewSchema([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Float64}}, nil)))
			rec := float64Record(mem, "i", []float64{1, 2, 3})
			if err := w.Write(rec); err != nil {
				t.Fatal(err)
			}
			rec.Release()
			w.Close()
			src, err := minibatch.NewIPCStream(bytes.NewReader(buf.Bytes()), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{src, func() {}}
		}, []string{"i"}, true, ""},
		{"rebatcher", func(t *testing.T, mem memory.Allocator) made {
			m := newMemory(t, mem, 20, 6)
			r, err := minibatch.NewRebatcher(m, 4, minibatch.Pad(0), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{r, func() { m.Close() }}
		}, []string{"i"}, true, ""},
		{"shuffler", func(t *testing.T, mem memory.Allocator) made {
			m := newMemory(t, mem, 20, 6)
			s, err := minibatch.Shuffle(m, 8, minibatch.WithSeed(3), minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{s, func() { m.Close() }}
		}, []string{"i"}, true, ""},
		{"ordered over memory", func(t *testing.T, mem memory.Allocator) made {
			m := newMemory(t, mem, 20, 6)
			o, err := minibatch.Permute(m, 5, minibatch.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			return made{o, func() { m.Close() }}
		}, []string{"i"}, true, ""},
		{"ordered windowed", func(t *testing.T, mem memory.Allocator) made {
			inner := &rowsSource{mem: mem, sizes: []int{6, 6, 6}}
			o, err := minibatch.Permute(inner, 5, minibatch.WithAllocator(mem), minibatch.WithWindowRows(5))
			if err != nil {
				t.Fatal(err)
			}
			return made{o, func() {}}
		}, nil, true, ""},
		{"repeater", func(t *testing.T, mem memory.Allocator) made {
			m := newMemory(t, mem, 20, 6)
			r, err := minibatch.Repeat(m, 2)
			if err != nil {
				t.Fatal(err)
			}
			return made{r, func() { m.Close() }}
		}, []string{"i"}, true, ""},
		{"split side", func(t *testing.T, mem memory.Allocator) made {
			m := newMemory(t, mem, 20, 6)
			train, val, err := minibatch.Holdout(testCtx(t), m, 0.25, minibatch.WithAllocator(mem), minibatch.WithStratify(false))
			if err != nil {
				t.Fatal(err)
			}
			return made{train, func() { val.Close(); m.Close() }}
		}, []string{"i"}, true, ""},
		{"walk-forward side", func(t *testing.T, mem memory.Allocator) made {
			m := newMemory(t, mem, 20, 6)
			folds, err := minibatch.WalkForward(testCtx(t), m, 2)
			if err != nil {
				t.Fatal(err)
			}
			return made{folds[1].Validation, func() { m.Close() }}
		}, []string{"i"}, true, ""},
		{"cache", func(t *testing.T, mem memory.Allocator) made {
			inner := &rowsSource{mem: mem, sizes: []int{6, 6, 6}}
			c, err := minibatch.NewCache(inner)
			if err != nil {
				t.Fatal(err)
			}
			return made{c, func() {}}
		}, nil, true, ""},
	}
	for _, tc := range cases {
		for _, mid := range []bool{false, true} {
			name := tc.name + "/drained"
			if mid {
				name = tc.name + "/closed mid-stream"
			}
			t.Run(name, func(t *testing.T) {
				if tc.pending != "" {
					t.Skip("pending: " + tc.pending)
				}
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				ctx := testCtx(t)
				m := tc.make(t, mem)
				defer m.done()
				src := m.src

				if s := src.Schema(); tc.wantX != nil && (s == nil || !sameNames(s, tc.wantX)) {
					t.Errorf("Schema() before Next = %v; want X's columns %v", s, tc.wantX)
				} else if tc.wantX == nil && s != nil && s.NumFields() == 0 {
					t.Errorf("Schema() before Next has no fields; want nil or X's")
				}
				b, err := src.Next(ctx)
				if err != nil {
					t.Fatalf("first Next: %v", err)
				}
				if s := src.Schema(); s == nil || !s.Equal(b.X.Schema()) && !sameNames(s, b.X.Schema().Fields()) {
					t.Errorf("Schema() after Next = %v; want the batch's X schema %v", s, b.X.Schema())
				}
				b.Release()
				if !mid {
					for {
						b, err := src.Next(ctx)
						if err == io.EOF {
							break
						}
						if err != nil {
							t.Fatalf("Next: %v", err)
						}
						b.Release()
					}
				}
				_, isRewinder := src.(flow.Rewinder)
				if isRewinder != tc.rewinder {
					t.Errorf("implements flow.Rewinder: %t; want %t", isRewinder, tc.rewinder)
				}
				for i := range 2 {
					if err := src.Close(); err != nil {
						t.Fatalf("Close #%d: %v; want nil", i+1, err)
					}
				}
				b, err = src.Next(ctx)
				if err == nil || err == io.EOF {
					b.Release()
					t.Fatalf("Next after Close: %v; want an error", err)
				}
				if !strings.Contains(err.Error(), "after Close") {
					t.Errorf("Next after Close: %q; want it to say after Close", err)
				}
				if r, ok := src.(interface{ Replayable() bool }); ok && r.Replayable() {
					t.Error("Replayable() = true after Close; want false")
				}
				if rw, ok := src.(flow.Rewinder); ok {
					if err := rw.Rewind(); err == nil {
						t.Error("Rewind after Close: nil; want an error")
					}
				}
			})
		}
	}
}

// sameNames reports whether schema's field names are want (strings or
// fields).
func sameNames[T string | arrow.Field](schema *arrow.Schema, want []T) bool {
	if schema.NumFields() != len(want) {
		return false
	}
	for i, w := range want {
		name := any(w)
		if f, ok := name.(arrow.Field); ok {
			name = f.Name
		}
		if schema.Field(i).Name != name.(string) {
			return false
		}
	}
	return true
}
