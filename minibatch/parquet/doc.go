// Package parquet is the Parquet source of package minibatch: it reads a
// Parquet file through Arrow's pqarrow as a stream of flow.Batch, split
// into X and Y by minibatch.Roles.
//
// It lives in its own package so that importing flow and minibatch does
// not compile the Parquet stack (thrift, the page codecs, arrow's compute
// kernels and, through pqarrow, gRPC and protobuf): only programs that
// import minibatch/parquet pay for it.
//
// # Options
//
// Open and New take the options of package minibatch: WithRoles,
// WithInputs, WithLabels, WithBatchRows (default
// minibatch.DefaultBatchRows), WithAllocator (default
// memory.DefaultAllocator), WithName and WithRowGroups; options for other
// sources are ignored.
//
// # Lifecycle and ownership
//
// A Source is a flow.Source and a flow.Rewinder: Next returns batches of up
// to WithBatchRows rows and io.EOF at the end of a pass; Rewind starts a
// new pass, Replayable reports true until Close. The caller owns every
// batch that Next returns and releases it; batches stay valid after Close.
// Close (io.Closer) releases the reader and closes the file if Open opened
// it; calling it twice is safe, and Next and Rewind fail afterwards.
// Schema returns the schema of X, known from the footer before the first
// batch; FileSchema that of the whole file.
//
// # Cost, concurrency, errors
//
// Only the chosen columns of the chosen row groups are decoded, one batch
// at a time: memory is bounded by the batch size and the pages being
// decoded. A Source is read by one goroutine at a time. Errors name the
// file (or WithName), the batch and its first row; corrupt pages that make
// pqarrow panic are turned into errors.
package parquet
