// Package metrics scores predictions against the truth over a stream of
// mini-batches: accuracy, macro F1 (and F1 per class), log-loss, mean
// squared and absolute error, and R², each accumulated batch by batch and
// mergeable across replicas, with the values of scikit-learn.
//
// # Metrics
//
// A Metric (Accuracy, MacroF1, LogLoss, MSE, MAE, R2) keeps sufficient
// statistics — counters, compensated sums, confusion counts per class,
// moments of the truth — never the predictions: its memory is O(1), or
// O(classes) for MacroF1 and O(targets) for the regression metrics, however
// long the stream. Update adds one batch; Value is the score of every row
// so far; Merge adds the statistics of another metric of the same kind, so
// that metrics that each saw part of a stream, merged, give the score of
// the whole stream (to rounding: the sums are floating point); Reset
// forgets. Name names the metric, HigherIsBetter tells a search which way
// to go.
//
// The column types each metric reads are in its constructor's doc: integer
// class columns (int8 to int64, uint8 to uint32), value columns (float32,
// float64 or integers), and vectors per row (fixed_size_list<float32> or
// fixed_size_list<float64>) for class probabilities, one-hot labels and
// several regression targets. A column of another type, nulls, NaN where a
// number is needed, and columns whose lengths or widths do not agree are
// errors that name the metric, the role (prediction or truth), the type or
// the row, and what was expected; Update and Merge change nothing when they
// fail.
//
// # Edge cases
//
// Following scikit-learn:
//
//   - no rows: Value is NaN, and Result returns an error wrapping ErrEmpty;
//   - a class that is never predicted, or never true, has precision,
//     recall and F1 of 0 and counts in the macro average (zero_division=0);
//   - log-loss clips probabilities to [Eps, 1-Eps] with Eps = 1e-15, then
//     divides each row by its sum;
//   - R² of a target whose true values are all equal is 1 when every
//     prediction is exact and 0 otherwise (force_finite=True); over fewer
//     than two rows it is NaN (Result: ErrUndefined).
//
// The reference values of the tests come from scikit-learn; the script is
// testdata/sklearn_reference.py.
//
// # Scoring a pipeline
//
// Score runs a pipeline's Transform over a source and scores its output in
// one call: the predictions are a column of each output batch's X, the
// truth a column of its Y (the steps pass Y through). ScoreStream scores a
// Stream that is already running (a FitTransform, for a training score),
// and Update scores one flow.Batch.
//
// # Ownership and concurrency
//
// Metrics borrow the arrays and batches they are given and never retain
// them: the caller may release them as soon as Update returns. Score and
// ScoreStream hold one output batch at a time and release it, and close
// the stream on every path, so that a checked allocator given to the
// runner is back at zero when they return.
//
// A Metric is not safe for concurrent use: Update, Merge, Value and Reset
// of one metric must not run at once. To score in parallel, give each
// replica its own metric and Merge them when the replicas are done. Score
// uses its metrics from the goroutine that calls it, so they belong to one
// Score at a time.
//
// # Cost
//
// Update is O(rows × width) with no Arrow allocation; reading class scores
// (argmax) allocates one int64 per row on the Go heap. Value is O(1), or
// O(classes × log classes) for MacroF1 (classes are summed in order, so the
// result does not depend on map order) and O(targets) for the regression
// metrics.
package metrics
