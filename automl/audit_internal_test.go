package automl

import (
	"errors"
	"math"
	"testing"

	"github.com/penstock-ml/penstock/flow"
)

// EarlyStopping counts the epochs without a score better than the best so
// far, better as the search orders scores (NaN is worse than any number):
// a fit whose first epochs score NaN (diverged, then recovering) is not
// stopped while its scores improve from there, and one that only scores
// NaN is stopped after patience epochs.
func TestAuditEarlyStoppingAfterNaN(t *testing.T) {
	ctx := t.Context()
	nan := math.NaN()
	for _, c := range []struct {
		scores []float64
		stopAt int // the epoch whose end stops the fit; -1: none
	}{
		{[]float64{nan, 5, 4, 3, 2}, -1},
		{[]float64{nan, nan, 5, 4, 3}, -1},
		{[]float64{nan, nan, nan}, 2},
		{[]float64{3, nan, nan}, 2},
		{[]float64{3, 3, 2, 2, 2}, 4},
	} {
		fn := EarlyStopping(2, 0).Begin(Fit{})
		stopped := -1
		for i, s := range c.scores {
			err := fn(ctx, &EpochEnd{Epoch: i, scored: true, score: s})
			if errors.Is(err, flow.ErrStop) {
				stopped = i
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if stopped != c.stopAt {
			t.Errorf("scores %v (lower is better), patience 2: stopped at epoch %d; want %d", c.scores, stopped, c.stopAt)
		}
	}
}
