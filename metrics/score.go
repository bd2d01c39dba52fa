package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/penstock-ml/penstock/flow"
)

// Update gives every metric of ms the rows of one batch: the predictions
// are the column predCol of b.X, the truth the column truthCol of b.Y. b is
// borrowed. The error names the batch, the columns and the metric; a
// missing column, a column named twice, or a batch without Y (the steps of
// a pipeline pass Y through) is an error. Each metric's Update is all or
// nothing, but when one fails the metrics before it in ms have taken the
// batch.
func Update(b flow.Batch, predCol, truthCol string, ms ...Metric) error {
	if b.X == nil {
		return fmt.Errorf("metrics: batch %d has no X, want the prediction column %q in X", b.Seq, predCol)
	}
	if b.Y == nil {
		return fmt.Errorf("metrics: batch %d has no Y, want the truth column %q in Y (do the steps pass Y through?)", b.Seq, truthCol)
	}
	pred, err := column(b.X, "X", predCol)
	if err != nil {
		return fmt.Errorf("metrics: batch %d: %w", b.Seq, err)
	}
	truth, err := column(b.Y, "Y", truthCol)
	if err != nil {
		return fmt.Errorf("metrics: batch %d: %w", b.Seq, err)
	}
	for _, m := range ms {
		if err := m.Update(pred, truth); err != nil {
			return fmt.Errorf("metrics: batch %d, prediction X column %q, truth Y column %q: %w", b.Seq, predCol, truthCol, err)
		}
	}
	return nil
}

// column returns the column name of rec, a record playing role.
func column(rec arrow.RecordBatch, role, name string) (arrow.Array, error) {
	idx := rec.Schema().FieldIndices(name)
	switch len(idx) {
	case 0:
		names := make([]string, rec.Schema().NumFields())
		for i, f := range rec.Schema().Fields() {
			names[i] = fmt.Sprintf("%q", f.Name)
		}
		has := "no columns"
		if len(names) > 0 {
			has = "columns " + strings.Join(names, ", ")
		}
		return nil, fmt.Errorf("no %s column %q (%s has %s)", role, name, role, has)
	case 1:
		return rec.Column(idx[0]), nil
	}
	return nil, fmt.Errorf("%s column %q appears %d times; names must be unique", role, name, len(idx))
}

// Score transforms src with p, run by r, and scores the output: every
// output batch updates every metric of ms (see Update: the predictions are
// the column predCol of the batch's X, the truth the column truthCol of
// its Y). It resets ms first, reads the stream to its end and closes it,
// and returns each metric's Result keyed by its Name. The metrics must
// have distinct names, and belong to this call until it returns.
//
// Any error of the run or of a metric ends it (the stream closed, every
// batch released) and is returned, as is a stream without rows (ErrEmpty)
// or a metric that is undefined over the rows (ErrUndefined). Score holds
// one output batch at a time; its cost is the run's plus each metric's
// Update.
func Score(ctx context.Context, r flow.Runner, p *flow.Pipeline, src flow.Source, predCol, truthCol string, ms ...Metric) (map[string]float64, error) {
	if err := checkMetrics(ms); err != nil {
		return nil, err
	}
	s, err := r.Transform(ctx, p, src)
	if err != nil {
		return nil, fmt.Errorf("metrics: score: %w", err)
	}
	return ScoreStream(ctx, s, predCol, truthCol, ms...)
}

// ScoreStream scores the batches of s, the output of any run (Transform,
// or FitTransform for a training score), as Score does, and closes s, also
// on error.
func ScoreStream(ctx context.Context, s *flow.Stream, predCol, truthCol string, ms ...Metric) (map[string]float64, error) {
	if err := checkMetrics(ms); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	for _, m := range ms {
		m.Reset()
	}
	var updateErr error
	err := s.Each(ctx, func(b flow.Batch) error {
		updateErr = Update(b, predCol, truthCol, ms...)
		return updateErr
	})
	if err != nil {
		if err == updateErr { // already says where
			return nil, err
		}
		return nil, fmt.Errorf("metrics: score: %w", err)
	}
	scores := make(map[string]float64, len(ms))
	for _, m := range ms {
		v, err := Result(m)
		if err != nil {
			return nil, fmt.Errorf("metrics: score: %w", err)
		}
		scores[m.Name()] = v
	}
	return scores, nil
}

// checkMetrics refuses no metrics, a nil metric and two metrics of one
// name.
func checkMetrics(ms []Metric) error {
	if len(ms) == 0 {
		return errors.New("metrics: score: no metrics, want at least one")
	}
	seen := make(map[string]int, len(ms))
	for i, m := range ms {
		if m == nil {
			return fmt.Errorf("metrics: score: metric %d is nil", i)
		}
		if j, ok := seen[m.Name()]; ok {
			return fmt.Errorf("metrics: score: metrics %d and %d are both named %q; want distinct names", j, i, m.Name())
		}
		seen[m.Name()] = i
	}
	return nil
}
