// Package minibatch reads data as streams of mini-batches and prepares them
// for training: sources, re-batching to N rows, shuffling, epochs,
// curricula, splitting and re-sampling.
//
// # Sources read like io
//
// Every source is a flow.Source: Next(ctx) returns the next flow.Batch (X
// and Y record batches, Seq, Epoch) or io.EOF after the last one; any other
// error ends the stream and is wrapped with the source's name and position
// (test with errors.Is / errors.As). Next honours ctx while it blocks.
//
// The sources are: Memory (FromSlices, FromRecords), Arrow IPC files and
// streams (OpenIPCFile, NewIPCFile, OpenIPCStream, NewIPCStream), CSV
// (OpenCSV, NewCSV), Parquet (OpenParquet, NewParquet), a Go channel
// (FromChannel) and a generator function (Generate). Tabular sources choose
// which columns form X and which Y with Roles (WithInputs, WithLabels).
//
// # Ownership
//
// Arrow reference counting, as in package flow: the caller owns every batch
// that Next returns and releases it (flow.Batch.Release), whenever it
// likes; batches stay valid after their source is released. A stage that
// wraps a source (Rebatcher, Shuffler, Ordered, Repeater, …) borrows it: it
// never releases it, and the caller releases both, the wrapper first. A
// wrapper abandoned before io.EOF is released with its Release method, which
// drops the batches that it holds. Every allocation comes from the
// memory.Allocator given (nil means memory.DefaultAllocator).
//
// # Replayable sources
//
// A source that can be read again implements flow.Rewinder. Memory,
// GeneratorSource, IPC files, Parquet and the file-backed CSV and IPC stream
// sources are replayable; a ChannelSource, or a source made from a plain
// io.Reader, is not (its Rewind, where it has one, returns an error wrapping
// ErrNotReplayable, and its Replayable method reports false). Wrappers are
// replayable when what they wrap is: Rewind on a Rebatcher or a Shuffler
// rewinds its source. Repeat, Permute and Curriculum need a replayable
// source and say so at construction.
//
// # Concurrency
//
// A source is read by one goroutine at a time: Next, Rewind and Release of
// one source must not be called concurrently. Functions that build values
// (FromSlices, Pack, …) and PackStep.Transform are safe for concurrent use.
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
//     batches that span input batches are concatenated.
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
// re-sampling) use math/rand/v2 PCG: the same seed and input give the same
// output in every run.
package minibatch
