package steps

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
)

// This file holds the saved state of the Imputer (persist.Stater).

var _ persist.Stater = (*Imputer)(nil)

func stateNewImputer(spec persist.Spec) (flow.Step, error) {
	strategy, _ := spec.Params["strategy"].(string)
	var opts []ImputeOption
	if spec.State.Has("columns") {
		cols, err := spec.State.Strings("columns")
		if err != nil {
			return nil, err
		}
		opts = append(opts, ImputeColumns(cols...))
	}
	return NewImputer(strategy, opts...)
}

// MarshalState writes the columns to impute ("columns", absent for every
// numeric column) and the statistics of each column seen: the tensors
// "stat_columns" (names, sorted), "stat_n" and "stat_mean", and the counts
// of the most frequent strategy as (column index, value, count) triples,
// "int_column", "int_value", "int_count" for integer columns and
// "float_column", "float_value", "float_count" for float ones, sorted.
func (m *Imputer) MarshalState(w *persist.StateWriter) error {
	if m.cfg.columns != nil {
		w.Strings("columns", m.cfg.columns)
	}
	names := slices.Sorted(maps.Keys(m.stats))
	ns, means := make([]int64, len(names)), make([]float64, len(names))
	var intCol, intVal, intCount, floatCol, floatCount []int64
	var floatVal []float64
	for i, name := range names {
		s := m.stats[name]
		ns[i], means[i] = s.n, s.mean
		for _, v := range slices.Sorted(maps.Keys(s.ints)) {
			intCol, intVal, intCount = append(intCol, int64(i)), append(intVal, v), append(intCount, s.ints[v])
		}
		for _, v := range slices.Sorted(maps.Keys(s.floats)) {
			floatCol, floatVal, floatCount = append(floatCol, int64(i)), append(floatVal, v), append(floatCount, s.floats[v])
		}
	}
	w.Strings("stat_columns", names)
	w.Int64s("stat_n", ns)
	w.Float64s("stat_mean", means)
	w.Int64s("int_column", intCol)
	w.Int64s("int_value", intVal)
	w.Int64s("int_count", intCount)
	w.Int64s("float_column", floatCol)
	w.Float64s("float_value", floatVal)
	w.Int64s("float_count", floatCount)
	return nil
}

// UnmarshalState reads the statistics that MarshalState wrote.
func (m *Imputer) UnmarshalState(r *persist.StateReader) error {
	names, err := r.Strings("stat_columns")
	if err != nil {
		return err
	}
	ns, err := r.Int64s("stat_n")
	if err != nil {
		return err
	}
	means, err := r.Float64s("stat_mean")
	if err != nil {
		return err
	}
	if len(ns) != len(names) || len(means) != len(names) {
		return fmt.Errorf("%s: %d columns, %d counts and %d means, want as many", imputerName, len(names), len(ns), len(means))
	}
	stats := make(map[string]*imputeStats, len(names))
	for i, name := range names {
		if stats[name] != nil {
			return fmt.Errorf("%s: column %q twice", imputerName, name)
		}
		if ns[i] < 0 || math.IsNaN(means[i]) || math.IsInf(means[i], 0) {
			return fmt.Errorf("%s: column %q: count %d, mean %v", imputerName, name, ns[i], means[i])
		}
		stats[name] = &imputeStats{n: ns[i], mean: means[i]}
	}
	if err := imputeCounts(r, "int", names, stats, func(s *imputeStats, i int, vals []int64, c int64) error {
		if s.ints == nil {
			s.ints = map[int64]int64{}
		}
		s.ints[vals[i]] += c
		return nil
	}); err != nil {
		return err
	}
	if err := imputeCounts(r, "float", names, stats, func(s *imputeStats, i int, vals []float64, c int64) error {
		if math.IsNaN(vals[i]) {
			return fmt.Errorf("%s: a count of NaN, which is a missing value", imputerName)
		}
		if s.floats == nil {
			s.floats = map[float64]int64{}
		}
		s.floats[vals[i]] += c
		return nil
	}); err != nil {
		return err
	}
	for name, s := range stats {
		if len(s.ints) > 0 && len(s.floats) > 0 {
			return fmt.Errorf("%s: column %q has integer and float counts", imputerName, name)
		}
	}
	m.stats = stats
	return nil
}

// imputeCounts reads the (column, value, count) triples of one kind and
// adds each with add.
func imputeCounts[T int64 | float64](r *persist.StateReader, kind string, names []string, stats map[string]*imputeStats,
	add func(s *imputeStats, i int, vals []T, count int64) error) error {
	cols, err := r.Int64s(kind + "_column")
	if err != nil {
		return err
	}
	counts, err := r.Int64s(kind + "_count")
	if err != nil {
		return err
	}
	var vals []T
	var zero T
	switch any(zero).(type) {
	case int64:
		v, err := r.Int64s(kind + "_value")
		if err != nil {
			return err
		}
		vals = any(v).([]T)
	default:
		v, err := r.Float64s(kind + "_value")
		if err != nil {
			return err
		}
		vals = any(v).([]T)
	}
	if len(vals) != len(cols) || len(counts) != len(cols) {
		return fmt.Errorf("%s: %d %s columns, %d values, %d counts, want as many", imputerName, len(cols), kind, len(vals), len(counts))
	}
	for i, c := range cols {
		if c < 0 || c >= int64(len(names)) || counts[i] < 1 {
			return fmt.Errorf("%s: %s count %d: column %d of %d, count %d", imputerName, kind, i, c, len(names), counts[i])
		}
		if err := add(stats[names[c]], i, vals, counts[i]); err != nil {
			return err
		}
	}
	return nil
}
