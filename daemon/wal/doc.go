// Package wal is the daemon's HTTP ingest: POST /v1/ingest takes a post
// (an Arrow IPC stream) into a write-ahead log, and the Log, a
// source.Source, sends the log's record batches to the daemon in log
// order.
//
// # When a post is acknowledged
//
// A post is answered 202 Accepted only after its record is written to the
// log and fsynced (fdatasync on Linux): after a crash, even kill -9 or a
// power cut on a disk that honours fsync, every acknowledged post is in
// the log, and Run sends it (again, from the daemon's checkpointed
// position). Posts are appended by one writer goroutine in group commit:
// every post that arrived while the previous group was written and
// fsynced goes in the next group (up to 8 MiB), with one write and one
// fsync, and each post of it is answered when that fsync returns. The
// order of the log is the order of acknowledgement: a post answered
// before another was sent comes first. Run sends only records whose fsync
// is done.
//
// # Statuses
//
// The body of every answer is a short JSON object (Answer):
// {"status":"accepted"|"duplicate"|"error","record":N,"error":…,"column":…}.
//
//   - 202: appended and fsynced ("accepted", with the record's sequence
//     number), or a retry of a post already appended ("duplicate",
//     header Idempotent-Replayed: true): not appended again.
//   - 400: the body is not a valid Arrow IPC stream, holds no record
//     batch, a batch is over 8×MaxBody bytes once decompressed, or the
//     Idempotency-Key is over MaxKeyBytes.
//   - 404: another path; 405 (Allow: POST): another method.
//   - 413: the body is over MaxBody, by its Content-Length or, without
//     one, as it is read (http.MaxBytesReader).
//   - 415: Content-Type is not application/vnd.apache.arrow.stream, or
//     a Content-Encoding other than identity is given (bodies are never
//     decompressed, so a compressed bomb costs only its own bytes).
//   - 422: the stream's schema is not Options.Schema: "column" names the
//     first column that does not match, "error" what was expected.
//   - 503 with Retry-After: 1: full (the bytes accepted and not yet sent
//     by Run would exceed MaxPending; a post is always taken when nothing
//     is pending), draining (after Run's drain channel closed; a post
//     whose body is still being read then is cut off at once, so that a
//     client that stalls its body cannot hold up the drain), closed,
//     or the log failed to append (an I/O error: the log takes no more
//     posts until a restart).
//   - 500: the append of this post failed (I/O error).
//
// Every refusal but 404 and 405 (not posts), and every duplicate, is
// reported to Options.Reporter with its source.Reason, the error naming
// the request (method, path, client address, key) and what is wrong.
//
// # Idempotency
//
// A post with an Idempotency-Key header (at most 256 bytes) whose key
// was already appended is answered 202 with Idempotent-Replayed: true and
// the first post's record number, and is not appended; its body is not
// read or compared with the first one. That answer comes before any
// refusal but 405, 415, 413 by Content-Length and 400 for the key: also
// while draining or full. Two posts with the same key at the same
// time make one append: the second waits for the first, then is a
// duplicate (or, if the first was refused, is taken itself). The log
// remembers the most recent Options.MaxKeys keys (default 100 000; older
// ones are forgotten, and a retry of one is appended again), across
// restarts: Open rebuilds them from the segments, and before Durable
// deletes segments it writes them to the file "keys" of the log's
// directory (written to keys.tmp, fsynced, renamed, directory fsynced).
//
// # Files and recovery
//
// The directory holds segments named by the sequence number of their
// first record (00000000000000000001.wal), each a magic header and
// records: length (uint32), crc32c of the length and the payload, and the
// payload (sequence number, idempotency key, the body as posted). A
// segment is closed once it holds SegmentBytes (default 64 MiB). The
// segment being written is zeroed up to 2 MiB past its records (never
// past SegmentBytes) before records are written there, so that a group
// commit overwrites zeros on disk rather than growing the file, and its
// fdatasync need not write the file's size: on ext4 that takes a third
// to a half off the fsync. The zeros are cut off when the segment is
// closed (by the next segment, or by Close). Open verifies every record;
// in the last segment, zeros after the last record that verifies are
// that space, kept; otherwise the first record that does not verify and
// everything after it is a torn write of a crash: it is truncated and
// logged (offset, bytes dropped). Only the fsynced part of the log was
// acknowledged, so nothing acknowledged is lost. A record
// that does not verify in an older segment, or a missing segment, is
// damage rather than a crash: Open returns an error naming the segment
// and offset, and what to do.
//
// # Run, positions and Durable
//
// Run sends one source.Input per record batch (X: the schema's Inputs
// columns, in order; Y: its Labels; Seq: the batch's index in its post;
// batches without rows are skipped), with Pos, the JSON of a Pos
// {segment, offset, record, batch}: just after that batch. Run from a
// Pos resumes at the next batch of the same post, or at the next post.
// The same log gives the same batches on every run. Batches come from
// Options.Alloc; the receiver owns them. Posts that this process took are
// kept in memory for Run until it sends them (at most about MaxPending
// bytes of them), and Run does not read them back: a post for the fast
// path (below) is checked by the handler and its batches made by Run from
// the post's bytes; any other is decoded by the handler and its batches
// kept. Run reads (CRC checked) and decodes the posts it finds in the log
// from before.
//
// Durable(pos) deletes the segments wholly before the oldest of the last
// KeepPositions positions it was given (default 3, so that the daemon can
// fall back to an older checkpoint), never the segment being written or
// read; a position past the log's end (a record not yet appended) is an
// error and deletes nothing. Pending bytes (for MaxPending) are the log's bytes after Run's
// position plus the posts being appended; before Run starts, the whole
// log counts.
//
// # Concurrency and cost
//
// The handler is safe for any number of concurrent requests; Run is
// called once; Durable from one goroutine; Close after Run has returned.
// The log's goroutines (the writer, and one that watches drain while Run
// runs) end by Close and by Run's return. A post costs one read of its
// body (into a pooled buffer), one decode and validation of its IPC
// stream, a copy into the group's buffer, and its share of one write and
// fsync.
//
// The decode is minibatch's IPC reader (bounded, checked), except for the
// common post: an uncompressed stream whose schema message is byte for
// byte one that the reader accepted before (the log remembers 16 of them)
// and whose record batches hold fixed-width primitive or fixed-size list
// columns. Such a post is read directly: every length, offset, alignment
// and null count of its batches checked against its body, the body copied
// once into Options.Alloc and sliced by the arrays, as arrow-go's reader
// does. Whatever that path does not take whole goes to minibatch's
// reader, which gives the errors; the batches are the same either way.
package wal
