// Package dirsource is the daemon's directory source: it polls a directory
// (the inbox) for files matching a glob and sends their record batches, file
// by file in lexical order of their names, each with its position.
//
// # When a file is taken
//
// Only regular files directly in the inbox are read (directories, such as
// done/ and rejected/, and symbolic links are ignored). Names that start
// with "." or end in ".tmp" or ".part" are never read: producers write
// there and rename the file in when it is complete. Any other file
// matching Options.Glob is taken when it is complete:
//
//   - at once, when Settle is negative (the producer promises to rename
//     complete files in);
//   - at once, when its format shows that it was written to its end: an
//     Arrow IPC file that ends with its closing "ARROW1" magic, an IPC
//     stream that ends with the end-of-stream marker, a Parquet file that
//     ends with "PAR1";
//   - otherwise (CSV; an IPC or Parquet file without its end yet) once Run
//     has seen its size and modification time stay unchanged for Settle
//     (default 2 s; counted from when Run first saw it, so a CSV file
//     already there at start waits Settle too).
//
// A file that looked complete but does not read is not rejected at once:
// it may still be being written; it is read again once it has settled,
// and rejected then. Files are read strictly in lexical order: Run waits for
// the first file not yet taken to be complete before it reads the ones after
// it. Producers must therefore give files names that increase (a time stamp,
// a sequence number with leading zeros). A file that arrives with a name that
// sorts at or before the last file taken (a late or repeated file) is
// rejected with source.ReasonDup.
//
// # A file is all or nothing
//
// A file is read wholly before its first batch is sent: every batch is
// decoded, its arrays validated (by package minibatch), and checked against
// Options.Schema, and the batches are held in memory — at most
// Options.MaxFileBytes of Arrow buffers, and the file at most MaxFileBytes on
// disk (default 1 GiB), else it is rejected as too large. So the memory of
// the source is bounded by MaxFileBytes plus the batches the daemon has not
// released yet, and a file that is bad anywhere is rejected whole before any
// of its rows is fitted. A rejected file moves to rejected/ next to a
// rejected/<name>.reason.txt that says why (the reason and the error, which
// names the source, the file and the column, line or batch), and
// Reporter.Rejected is called with its source.Reason: ReasonType (an
// unknown extension), ReasonIO (cannot be opened), ReasonTooBig, ReasonSchema
// (a column missing, of another type or not in the schema), ReasonDecode
// (not a valid file of its format), ReasonDup (late). Rejections block
// nothing: the next file is read.
//
// # Formats
//
// Options.Format "ipc" reads an Arrow IPC file or stream (told apart by the
// "ARROW1" magic at the start), with the record batches as written; "csv" a
// CSV file with a header line (plain or gzip) in batches of BatchRows rows:
// the header may give the schema's columns in any order, the types come
// from the schema (minibatch.WithSchema); "parquet" a Parquet file in
// batches of BatchRows rows. Format "" chooses by extension (.arrow, .arrows,
// .feather, .ipc; .csv, .csv.gz; .parquet, .pq). Every file is read by the
// sources of package minibatch with the Options' allocator; its table
// schema is checked with source.Schema.Check and each batch split into X
// (Schema.Inputs) and Y (Schema.Labels) with source.Schema.Split.
//
// Determinism: a file gives the same batches every time it is read (an IPC
// file its record batches; CSV and Parquet BatchRows rows each), so the
// batch index of a position names the same rows after a restart.
//
// # Positions, resume and done/
//
// The position sent with each batch is JSON {"file": name, "batch": i} — i
// the 0-based index of the batch in the file — with "last": true on a
// file's last batch. Run from a position skips the files of the inbox that
// sort before its file, and its file when the position is at its last
// batch; it reads the position's file again (wholly, as always) and sends
// the batches after i. The files that the position covers and that are
// still in the inbox (a crash came before they moved) move to done/ at the
// next Durable. Durable(pos) moves to done/ every file whose batches have
// all been sent and that pos covers; files move nowhere before. A file
// that another was renamed over (the same name) since it was read is not
// moved: the new one was not read, and Run rejects it as a repeated name
// (ReasonDup). A file with
// no rows moves to done/ as soon as it is read, as it holds nothing to
// lose. Moving a file to done/ is not fsynced: a move lost in a crash leaves
// the file in the inbox, where the resumed position covers it. The other
// way round, Run from a position moves back into the inbox the files of
// done/ that the position does not cover: the daemon resumes from an older
// checkpoint than the one that moved them (the newest did not load), and
// they must be fitted again so that none is lost.
//
// # Run, drain and cancel
//
// Run is called once. When drain closes, Run finishes sending the file it
// is sending (all its batches: they were accepted together) and returns nil
// without taking another file. When ctx is done it returns
// context.Cause(ctx) promptly, sends nothing more and releases every batch
// it had not sent. Run starts no goroutine; Durable may be called from
// another goroutine while Run runs, and after. Close ends the source; files
// stay where they are.
//
// # Cost
//
// One directory listing per Poll while idle (and one per file taken), a
// stat of each file not yet taken, a read of 14 bytes of an IPC or Parquet
// file to see whether it is complete, then one pass of the minibatch decoder
// over each file.
package dirsource
