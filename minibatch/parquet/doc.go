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
// at a time: memory is bounded by the batch size, the pages being decoded
// (at most 256 MiB each, arrow-go's pq.DefaultMaxUncompressedPageSize) and
// the compressed column chunks of the current row group, which arrow-go
// reads whole. A Source is read by one goroutine at a time. Errors name the
// file (or WithName), the batch and its first row.
//
// # Hostile files
//
// A footer or a page that lies is an error, not a crash or an allocation
// of what it claims: a footer that makes arrow-go panic (an invalid
// logical type, say), a column chunk that does not fit in the file
// (checked when the source is made), corrupt pages that make pqarrow
// panic, and Snappy or Zstd blocks that claim more bytes than their page
// header. For the last, importing this package registers, with arrow-go's
// parquet/compress.RegisterCodec, Snappy and Zstd decoders that refuse such
// blocks before allocating and are otherwise arrow-go's own; they apply to
// every arrow-go Parquet reader in the program, and read valid files as
// before (a valid page decodes to exactly its header's size).
package parquet
