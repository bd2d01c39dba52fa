package metrics

import "testing"

// TestCompensatedSum checks that small terms added to a large one are not
// lost, as they are in a plain float64 sum (ulp(1e16) is 2), also across
// a merge.
func TestCompensatedSum(t *testing.T) {
	var a, b sum
	plain := 1e16
	a.add(1e16)
	for range 1000 {
		a.add(1)
		b.add(1)
		plain++
	}
	if got, want := a.value(), 1e16+1000; got != want || plain == want {
		t.Errorf("got %v (plain sum %v); want %v, which the plain sum misses", got, plain, want)
	}
	a.merge(b)
	if got, want := a.value(), 1e16+2000; got != want {
		t.Errorf("after merge: got %v; want %v", got, want)
	}
}
