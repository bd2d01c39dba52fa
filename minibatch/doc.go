// Package minibatch reads data as streams of mini-batches and prepares them
// for training: sources, re-batching to N rows, shuffling, epochs,
// curricula, splitting and re-sampling.
//
// # Sources read like io
//
// Every source is a flow.Source: Next(ctx) returns the next flow.Batch (X
// and Y record batches, Seq, Epoch) or io.EOF after the last one; any other
// error ends the stream and is wrapped with the source's name and position
// (test with errors.Is / errors.As). Next honours ctx: once ctx is done it
// returns context.Cause(ctx), or an error wrapping it, checked before each
// read and while it waits on a channel; a source that reads a file or an
// io.Reader checks ctx between reads (its doc says how often) and blocks
// while the reader does.
//
// The sources are: Memory (FromSlices, FromRecords), Arrow IPC files and
// streams (OpenIPCFile, NewIPCFile, OpenIPCStream, NewIPCStream), CSV
// (OpenCSV, NewCSV), a Go channel (FromChannel) and a generator function
// (Generate). Parquet lives in package minibatch/parquet (parquet.Open,
// parquet.New), so that importing this package does not compile the
// Parquet stack and gRPC. Tabular sources choose which columns form X and
// which Y with Roles (WithInputs, WithLabels), whose column index a source
// builds once per schema (RoleSplitter).
//
// # One lifecycle: Close
//
// Every source and every wrapper (Rebatcher, Shuffler, Ordered, Repeater,
// the sides of a split, Cache) is an io.Closer: Close releases what it
// holds (records, buffered batches, open files), may be called twice, and
// after it Next and Rewind return an error and Replayable reports false.
// Every source and wrapper reports Schema() *arrow.Schema, the schema of
// the X records that Next returns. Wrappers return their source's Schema
// where it has one, else the schema of the first batch they read; sources
// that learn it from their data (ChannelSource, GeneratorSource) return nil
// until their first batch.
//
// # Ownership
//
// Arrow reference counting, as in package flow: the caller owns every batch
// that Next returns and releases it (flow.Batch.Release), whenever it
// likes; batches stay valid after their source is closed. A stage that
// wraps a source borrows it: it never closes it, and the caller closes
// both, the wrapper first.
//
// # Options and allocators
//
// Constructors take functional options of one type, Option, all named
// With…; each option's doc says which constructors read it. Sources ignore
// options meant for others (one list can configure several sources);
// stages, splits and NewResampler reject them with an error naming the
// option. The allocator is given the same way everywhere: WithAllocator(mem)
// (default memory.DefaultAllocator), never a positional argument of a
// constructor. Values that are not constructed — the PackStep struct (its
// Mem field) and the one-shot functions Pack and AllocTensor, which take
// mem like arrow's own functions — are the exception.
//
// # Replayable sources
//
// A source that can be read again implements flow.Rewinder and reports it
// with Replayable, which is true exactly when Rewind will succeed. Memory,
// GeneratorSource, Cache, IPC files, Parquet and the file-backed CSV and IPC
// stream sources are replayable; a ChannelSource, or a source made from a
// plain io.Reader, is not (its Rewind, where it has one, returns an error
// wrapping ErrNotReplayable, and its Replayable method reports false).
// Wrappers are replayable when what they wrap is: Rewind on a Rebatcher or
// a Shuffler rewinds its source. NewCache makes any source replayable by
// holding it in memory (up to WithMaxBytes). Repeat, Permute, Curriculum
// and the splits need a replayable source and say so at construction. The
// splits, and Permute or Curriculum over a source that is not a *Memory,
// re-read it and need the same rows in the same order on every pass: they
// refuse a Shuffler, a Permute or a Curriculum, whose order changes from
// epoch to epoch (split first and then shuffle or order each side, or
// cache one pass with NewCache).
//
// # Writing steps
//
// A step reads its batch and builds the batch it returns with a few
// functions: Features (a tensor column of X as a Matrix, a view valid while
// the batch is), LabelsInt64 and LabelsFloat32 (a column of Y, not copied
// where it already has the type), Classes (LabelsInt64 with each label
// checked against the number of classes), Examples (a classifier's
// Features and Classes, with their row counts checked), NewMatrix (a matrix from the run's
// allocator, flow.Allocator(ctx), released by its holder) and
// Matrix.Record, which flow.Batch.WithX makes the new X, Y passed through.
// MapRows is all of these for a step that maps rows to rows. A PackStep
// without Mem packs with the run's allocator too; one without Cols packs
// every column of X.
//
// # Concurrency
//
// A source is read by one goroutine at a time: Next, Rewind and Close of
// one source must not be called concurrently. Functions that build values
// (FromSlices, Pack, …), PackStep.Transform and the step helpers
// (Features, LabelsInt64, Classes, Examples, LabelsFloat32, NewMatrix, Matrix.Record,
// MapRows) are safe for concurrent use; Matrix.Release is not, on one
// matrix.
// Nothing in this package starts a goroutine, except where a source's doc
// says so.
//
// # Preparation stages and their memory
//
// Each stage holds a bounded amount of data, whatever the length of the
// stream:
//
//   - NewRebatcher (exactly N rows; Keep, Drop or Pad the incomplete batch
//     at the end of the stream and of each epoch): one input batch plus
//     fewer than N rows; cuts inside an input batch are zero-copy slices,
//     batches that span input batches are concatenated. A padded batch is
//     marked (RealRowsKey in its schemas' metadata): RealRows tells a loss
//     how many of its rows are real.
//   - NewCache (read any source once, replay it): the whole stream, at
//     most WithMaxBytes of buffers; past that, an error and nothing held.
//   - Shuffle (a buffer of B rows, like tf.data's shuffle): O(B + largest
//     input batch) rows.
//   - Permute (a seeded permutation of all rows per epoch) and Curriculum
//     (a user-defined order, subset or weighting per epoch; EasyFirst,
//     Weighted): over a Memory, one output batch plus one int per row of the
//     order; over another replayable source, a window of rows
//     (WithWindowRows) per partial pass over the source.
//   - Repeat (epochs): nothing but counters.
//   - Pack and PackStep (numeric columns to one FixedSizeList<float32>
//     tensor column) and Float32View (that column as a []float32, no copy):
//     one batch.
//   - Splits (Holdout, KFold, WalkForward) and class re-sampling
//     (NewResampler) re-read replayable sources rather than hold them; see
//     their docs for what they keep per row.
//
// Seeded stages (Shuffle, Permute, EasyFirst, Weighted, splits,
// re-sampling; WithSeed, default 0) use math/rand/v2 PCG: the same seed and
// input give the same output in every run.
package minibatch
