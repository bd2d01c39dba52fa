package automl

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// Splitter splits the training data into train/validation pairs (the
// splits of minibatch: Holdout, KFold, WalkForward). A trial is fitted on
// the train side of every fold and scored on its validation side; its
// score is the mean over the folds.
type Splitter interface {
	Split(ctx context.Context, src flow.Source) ([]minibatch.Fold, error)
	String() string
}

// Holdout is one fold: a fraction validation of the rows for validation
// (see minibatch.Holdout; stratified by Y's labels unless told otherwise).
// opts are minibatch's split options (WithSeed, WithStratify,
// WithClassLabel, WithAllocator).
func Holdout(validation float64, opts ...minibatch.Option) Splitter {
	return splitter{name: fmt.Sprintf("Holdout(%v)", validation), split: func(ctx context.Context, src flow.Source) ([]minibatch.Fold, error) {
		train, val, err := minibatch.Holdout(ctx, src, validation, opts...)
		if err != nil {
			return nil, err
		}
		return []minibatch.Fold{{Train: train, Validation: val}}, nil
	}}
}

// KFold is k folds (see minibatch.KFold), with minibatch's split options.
func KFold(k int, opts ...minibatch.Option) Splitter {
	return splitter{name: fmt.Sprintf("KFold(%d)", k), split: func(ctx context.Context, src flow.Source) ([]minibatch.Fold, error) {
		return minibatch.KFold(ctx, src, k, opts...)
	}}
}

// WalkForward is folds folds of a time series that train on the past only
// (see minibatch.WalkForward), with its options (WithTrainWindow,
// WithValidationRows, WithGap).
func WalkForward(folds int, opts ...minibatch.Option) Splitter {
	return splitter{name: fmt.Sprintf("WalkForward(%d)", folds), split: func(ctx context.Context, src flow.Source) ([]minibatch.Fold, error) {
		return minibatch.WalkForward(ctx, src, folds, opts...)
	}}
}

type splitter struct {
	name  string
	split func(context.Context, flow.Source) ([]minibatch.Fold, error)
}

func (s splitter) Split(ctx context.Context, src flow.Source) ([]minibatch.Fold, error) {
	return s.split(ctx, src)
}

func (s splitter) String() string { return s.name }

// side is one side of a fold, read once and kept: its records, which
// every trial reads through its own minibatch.Memory.
type side struct {
	x, y []arrow.RecordBatch
	rows int64
}

// readSide reads src to its end and keeps its batches.
func readSide(ctx context.Context, name string, src flow.Source) (*side, error) {
	s := &side{}
	var hasY bool
	for i := 0; ; i++ {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.release()
			return nil, fmt.Errorf("automl: read %s, batch %d: %w", name, i, err)
		}
		if i == 0 {
			hasY = b.Y != nil
		} else if (b.Y != nil) != hasY {
			b.Release()
			s.release()
			return nil, fmt.Errorf("automl: read %s, batch %d: some batches have Y and others not; want all or none", name, i)
		}
		s.x = append(s.x, b.X)
		if b.Y != nil {
			s.y = append(s.y, b.Y)
		}
		s.rows += b.Rows()
	}
	if s.rows == 0 {
		s.release()
		return nil, fmt.Errorf("automl: %s has no rows", name)
	}
	return s, nil
}

// source returns a new reader of the side's batches, which the caller
// closes.
func (s *side) source() (*minibatch.Memory, error) {
	return minibatch.FromRecords(s.x, s.y)
}

func (s *side) release() {
	for _, r := range s.x {
		r.Release()
	}
	for _, r := range s.y {
		r.Release()
	}
	s.x, s.y = nil, nil
}

// fold is a split kept in memory.
type fold struct {
	train, validation *side
}

// readFolds splits src with sp and reads every side once, so that trials
// running at once read them independently. The split's sources are closed
// before it returns; the caller releases the folds.
func readFolds(ctx context.Context, sp Splitter, src flow.Source) ([]fold, error) {
	splits, err := sp.Split(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("automl: split %v: %w", sp, err)
	}
	defer func() {
		for _, f := range splits {
			closeSource(f.Train)
			closeSource(f.Validation)
		}
	}()
	if len(splits) == 0 {
		return nil, fmt.Errorf("automl: split %v: no folds", sp)
	}
	var out []fold
	release := func() {
		for _, f := range out {
			f.train.release()
			f.validation.release()
		}
	}
	for i, f := range splits {
		train, err := readSide(ctx, fmt.Sprintf("fold %d/%d train", i+1, len(splits)), f.Train)
		if err != nil {
			release()
			return nil, err
		}
		val, err := readSide(ctx, fmt.Sprintf("fold %d/%d validation", i+1, len(splits)), f.Validation)
		if err != nil {
			train.release()
			release()
			return nil, err
		}
		out = append(out, fold{train: train, validation: val})
	}
	return out, nil
}

func closeSource(s flow.Source) {
	if c, ok := s.(io.Closer); ok {
		c.Close()
	}
}
