package barrier_test

// An adversarial audit of Reorder's documented promises under hostile
// use: positions pushed twice (held or already released), positions
// beyond the window, gaps, a full buffer, Drain at any point, and the
// bound of at least one item.

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/barrier"
)

// pushErr pushes and checks the error: want "" for none, else a part of
// the message.
func pushErr[T any](t *testing.T, r *barrier.Reorder[T], pos int64, v T, want string) {
	t.Helper()
	err := r.Push(pos, v)
	switch {
	case want == "" && err != nil:
		t.Fatalf("Push(%d): %v; want nil", pos, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("Push(%d): %v; want an error containing %q", pos, err, want)
	}
}

// A refused Push keeps nothing: the item held at that position is still
// the first one, Len does not change, and the refused item never comes out.
func TestAuditReorderRefusedPushKeepsNothing(t *testing.T) {
	r := barrier.NewReorder[string](10, 3)
	pushErr(t, r, 12, "first 12", "")
	pushErr(t, r, 12, "second 12", "position 12 pushed twice")
	pushErr(t, r, 9, "before first", "position 9 pushed after position 10 was released")
	pushErr(t, r, math.MinInt64, "far before", "was released")
	pushErr(t, r, 11, "11", "")
	pushErr(t, r, 13, "13", "")
	pushErr(t, r, 14, "14", "buffer full (3 items) waiting for position 10")
	if r.Len() != 3 || r.Next() != 10 {
		t.Fatalf("Len %d, Next %d; want 3, 10", r.Len(), r.Next())
	}
	if _, ok := r.Pop(); ok {
		t.Fatal("Pop with position 10 missing returned an item")
	}
	// Even the awaited position is refused when the buffer is full: the
	// caller let more than Limit items into flight.
	pushErr(t, r, 10, "10", "buffer full")
	var released []string
	r.Drain(func(s string) { released = append(released, s) })
	if len(released) != 3 || r.Len() != 0 || r.Next() != 10 {
		t.Fatalf("Drain released %q, Len %d, Next %d; want 3 items, 0, 10", released, r.Len(), r.Next())
	}
	for _, s := range released {
		if s == "second 12" || s == "14" || s == "before first" {
			t.Errorf("Drain released %q, whose Push was refused", s)
		}
	}
	r.Drain(func(s string) { t.Errorf("a second Drain released %q", s) })
}

// Once released, a position is refused for good, also after Drain; a gap
// holds everything after it until it is filled, in order.
func TestAuditReorderGapsAndReleased(t *testing.T) {
	r := barrier.NewReorder[int64](0, 4)
	for _, p := range []int64{3, 1, 2} {
		pushErr(t, r, p, p, "")
	}
	if _, ok := r.Pop(); ok {
		t.Fatal("Pop across the gap at 0 returned an item")
	}
	pushErr(t, r, 0, 0, "")
	for want := range int64(4) {
		v, ok := r.Pop()
		if !ok || v != want {
			t.Fatalf("Pop: %d, %v; want %d", v, ok, want)
		}
	}
	if _, ok := r.Pop(); ok || r.Next() != 4 {
		t.Fatalf("Pop of an empty buffer returned an item, or Next %d ≠ 4", r.Next())
	}
	for p := range int64(4) {
		pushErr(t, r, p, p, fmt.Sprintf("position %d pushed after position 4 was released", p))
	}
	pushErr(t, r, 6, 6, "")
	r.Drain(func(int64) {})
	pushErr(t, r, 3, 3, "was released")
	pushErr(t, r, 6, 6, "") // drained, not released: it may come again
	if r.Len() != 1 {
		t.Fatalf("Len %d; want 1", r.Len())
	}
}

// Positions beyond the window are held while there is room (the buffer
// bounds items, not positions), and the bound holds whatever positions
// come: at most limit items, then an error.
func TestAuditReorderBound(t *testing.T) {
	for _, limit := range []int{-5, 0, 1, 2, 64} {
		r := barrier.NewReorder[int](0, limit)
		bound := max(limit, 1)
		for i := range bound {
			pushErr(t, r, int64(1+i*1000), i, "")
		}
		pushErr(t, r, math.MaxInt64, 0, fmt.Sprintf("buffer full (%d items)", bound))
		if r.Len() != bound {
			t.Fatalf("limit %d: Len %d; want %d", limit, r.Len(), bound)
		}
	}
}

// String names a kind that is not one of the three by its number, for
// error messages about a bad configuration.
func TestAuditKindString(t *testing.T) {
	if got := barrier.Kind(9).String(); got != "barrier.Kind(9)" {
		t.Errorf("Kind(9).String() = %q; want barrier.Kind(9)", got)
	}
	if got := fmt.Sprint(barrier.OutOfOrder); got != "out-of-order" {
		t.Errorf("fmt.Sprint(OutOfOrder) = %q", got)
	}
}
