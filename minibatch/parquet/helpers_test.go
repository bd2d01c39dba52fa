package parquet_test

import "github.com/penstock-ml/penstock/internal/sourcetest"

// The source tests' helpers, shared with the other packages' tests in
// internal/sourcetest.
var (
	srcCtx         = sourcetest.Ctx
	srcTable       = sourcetest.Table
	releaseAll     = sourcetest.ReleaseAll
	drainSource    = sourcetest.Drain
	releaseBatches = sourcetest.ReleaseBatches
	nextErr        = sourcetest.NextErr
	sameRows       = sourcetest.SameRows
	wantErr        = sourcetest.WantErr
)
