package barrier_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/barrier"
)

func TestReorderRestoresOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, window = 1000, 8
	// Positions arrive shuffled within a sliding window, as replicas finish.
	order := make([]int64, n)
	for i := range order {
		order[i] = int64(i)
	}
	for i := 0; i < n; i += window {
		end := min(i+window, n)
		rng.Shuffle(end-i, func(a, b int) { order[i+a], order[i+b] = order[i+b], order[i+a] })
	}
	r := barrier.NewReorder[int64](0, window)
	var got []int64
	for _, pos := range order {
		if err := r.Push(pos, pos*10); err != nil {
			t.Fatal(err)
		}
		for {
			v, ok := r.Pop()
			if !ok {
				break
			}
			got = append(got, v)
		}
	}
	if len(got) != n {
		t.Fatalf("popped %d items; want %d", len(got), n)
	}
	for i, v := range got {
		if v != int64(i)*10 {
			t.Fatalf("item %d: got %d; want %d", i, v, i*10)
		}
	}
}

func TestReorderRefuses(t *testing.T) {
	r := barrier.NewReorder[string](0, 2)
	for _, tc := range []struct {
		pos  int64
		want string
	}{
		{1, ""},
		{1, "pushed twice"},
		{2, ""},
		{3, "buffer full"},
	} {
		err := r.Push(tc.pos, fmt.Sprint(tc.pos))
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Fatalf("Push(%d): got %v; want %q", tc.pos, err, tc.want)
		}
	}
	if _, ok := r.Pop(); ok {
		t.Fatal("Pop before position 0 arrived returned an item")
	}
	var released []string
	r.Drain(func(s string) { released = append(released, s) })
	if len(released) != 2 || r.Len() != 0 {
		t.Fatalf("Drain released %v, %d left; want 2 released, none left", released, r.Len())
	}
	if err := r.Push(0, "0"); err != nil {
		t.Fatal(err)
	}
	if v, ok := r.Pop(); !ok || v != "0" {
		t.Fatalf("Pop: got %q, %v", v, ok)
	}
	if err := r.Push(0, "again"); err == nil {
		t.Fatal("Push of a released position succeeded")
	}
}

func TestKind(t *testing.T) {
	for _, tc := range []struct {
		k       barrier.Kind
		s       string
		ordered bool
	}{{barrier.InOrder, "in-order", true}, {barrier.OutOfOrder, "out-of-order", false}, {barrier.Joiner, "joiner", true}} {
		if tc.k.String() != tc.s || tc.k.Ordered() != tc.ordered || !tc.k.Valid() {
			t.Errorf("%v: got %q ordered=%v", tc.k, tc.k.String(), tc.k.Ordered())
		}
	}
	if barrier.Kind(7).Valid() {
		t.Error("Kind(7) is valid")
	}
}

func BenchmarkReorder(b *testing.B) {
	r := barrier.NewReorder[int](0, 16)
	b.ReportAllocs()
	pos := int64(0)
	for b.Loop() {
		// Two replicas finishing in swapped order.
		_ = r.Push(pos+1, 1)
		_ = r.Push(pos, 0)
		r.Pop()
		r.Pop()
		pos += 2
	}
}
