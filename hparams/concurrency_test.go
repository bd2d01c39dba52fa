package hparams_test

import (
	"reflect"
	"sync"
	"testing"

	"github.com/penstock-ml/penstock/hparams"
)

// A Space and its distributions are shared between goroutines, each with
// its own *rand.Rand: the draws are those of one goroutine alone (run
// with -race).
func TestSpaceIsSharedSafely(t *testing.T) {
	space, err := hparams.Gather(mustTree(t))
	if err != nil {
		t.Fatal(err)
	}
	draw := func(seed uint64) []hparams.Values {
		r := hparams.NewRand(seed)
		out := make([]hparams.Values, 50)
		for i := range out {
			if out[i], err = space.Sample(r); err != nil {
				t.Error(err)
			}
		}
		return out
	}
	want := make([][]hparams.Values, 8)
	for i := range want {
		want[i] = draw(uint64(i))
	}
	got := make([][]hparams.Values, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			r := hparams.NewRand(uint64(i))
			got[i] = make([]hparams.Values, 50)
			for j := range got[i] {
				v, err := space.Sample(r)
				if err != nil {
					t.Error(err)
					return
				}
				got[i][j] = v
			}
		})
	}
	wg.Wait()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("concurrent draws differ from sequential ones")
	}
}
