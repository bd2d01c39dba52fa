package barrier

import "fmt"

// Reorder restores sequence order: items are pushed in any order with their
// positions 0, 1, 2, … and popped in position order. It holds at most the
// limit given to NewReorder; the caller keeps the number of items in flight
// at or below that limit (a streaming run bounds it with a window on its
// source), so a full buffer is a bug upstream and Push reports it instead
// of growing. The bound is on items, not positions: a position beyond the
// window is held while there is room.
//
// Cost: Push and Pop are O(1) amortised (a map keyed by position).
type Reorder[T any] struct {
	next    int64
	limit   int
	pending map[int64]T
}

// NewReorder returns a buffer that expects position first next and holds at
// most limit items (at least one).
func NewReorder[T any](first int64, limit int) *Reorder[T] {
	if limit < 1 {
		limit = 1
	}
	return &Reorder[T]{next: first, limit: limit, pending: make(map[int64]T, limit)}
}

// Push adds the item at position pos. It returns an error, and keeps
// nothing, if pos is held already or is before Next (popped, or skipped by
// the first position), or if the buffer is full (even for pos == Next).
func (r *Reorder[T]) Push(pos int64, v T) error {
	if pos < r.next {
		return fmt.Errorf("barrier: reorder: position %d pushed after position %d was released", pos, r.next)
	}
	if _, dup := r.pending[pos]; dup {
		return fmt.Errorf("barrier: reorder: position %d pushed twice", pos)
	}
	if len(r.pending) >= r.limit {
		return fmt.Errorf("barrier: reorder: buffer full (%d items) waiting for position %d", r.limit, r.next)
	}
	r.pending[pos] = v
	return nil
}

// Pop removes and returns the item at the next position, if it is there.
func (r *Reorder[T]) Pop() (T, bool) {
	v, ok := r.pending[r.next]
	if ok {
		delete(r.pending, r.next)
		r.next++
	}
	return v, ok
}

// Next returns the position that Pop is waiting for.
func (r *Reorder[T]) Next() int64 { return r.next }

// Len returns the number of items held.
func (r *Reorder[T]) Len() int { return len(r.pending) }

// Drain removes every held item and passes each to release, in no
// particular order. The owner calls it when a run stops early.
func (r *Reorder[T]) Drain(release func(T)) {
	for pos, v := range r.pending {
		delete(r.pending, pos)
		release(v)
	}
}
