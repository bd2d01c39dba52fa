// Package bench is Penstock's benchmark suite and its harness: the
// reference workload used by the benchmarks (so that figures compare with
// measurements of other systems) and the benchmarks themselves, run with
//
//	go test -bench . -benchtime 3x ./bench/
//
// The workload is 100 000 rows × 32 float32 features in one
// FixedSizeList<float32> column, batches of 64 rows, three steps (multiply
// by 2; a CPU-bound step that spins for a given time per batch, or does
// nothing; multiply by 0.5), queue capacity 8.
//
// Every figure is reported with b.ReportMetric, and wherever it is a target
// it is a ratio against a baseline measured in the same run (x-vs-…), since
// the machines that run these are shared and noisy. Set-up (building the
// data) happens outside the timer.
package bench
