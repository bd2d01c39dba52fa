// Package source defines what the ingest-and-train daemon reads: a Source
// sends Inputs, each a batch with the source's position just after it, and
// is told when a durable checkpoint covers a position, so that it can let
// go of what is before (move files to done/, trim a write-ahead log,
// acknowledge messages).
//
// The daemon keeps each source's last position in every checkpoint and
// restarts the source from it, so that no input that a source acknowledged
// is lost or fitted twice. A Schema says what every input must look like:
// the Arrow fields (names and types) and which columns are the pipeline's
// inputs (X) and labels (Y); Schema.Check names the column that does not
// match.
//
// The sources themselves live in the subpackages of daemon: a directory
// (dirsource), NATS JetStream (natsource) and HTTP posts through a
// write-ahead log (wal).
package source
