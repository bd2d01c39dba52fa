// Package daemon is Penstock's ingest-and-train daemon as a library:
// Run fits one saved pipeline endlessly on what arrives — files in a
// directory, messages of a NATS JetStream stream, Arrow IPC bodies posted
// over HTTP — checkpoints it atomically, resumes exactly after a crash, and
// serves predictions from a published copy of the model. Command penstockd
// is this package with the built-in steps; a program with steps of its own
// calls Run with its persist.Registry.
//
// # Configuration
//
// One JSON file (Config), decoded strictly: an unknown key, a value of the
// wrong type or out of range is an error that names the key
// ("sources[1].settle"). Any key can be overridden ("checkpoint.every=10s",
// penstockd's -set); penstockd -check-config validates and prints it. It
// names the saved pipeline to start from, the inputs' schema, the sources,
// the checkpoint directory and intervals, the address and the drain
// timeout. A pipeline with a Joiner is refused: an endless fit never
// reaches the end that a Joiner waits for.
//
// # Training and the consistent cut
//
// The sources (package source: dirsource, natsource, wal) run in their
// own goroutines; a multiplexer hands their batches to one Runner.Fit in
// the order they arrive, through bounded channels, so memory stays flat.
// When a checkpoint or a publication is due (every checkpoint.every, every
// checkpoint.every_batches batches, every publish_every, and at the drain)
// the multiplexer's Next returns flow.ErrCut: the runner waits until every
// stage has fitted exactly the batches handed over before (replicas
// merged) and calls the daemon's OnCut, where the pipeline is quiet. There
// the daemon saves the checkpoint with the position of each source just
// after its last batch, tells each source that the position is durable
// (the directory moves its files to done/, the write-ahead log drops old
// segments), and publishes a copy.
//
// # Checkpoints and exact resume
//
// A checkpoint (package ckpt) is one persist file written to a temporary
// name, fsynced, renamed into place and its directory fsynced; the last
// Keep are kept. At start the newest that verifies is loaded (else the one
// before, logging why), with the sources' positions and the steps' state
// (weights, statistics, the random generators' positions), and every
// source restarts after its position. So no input that a source
// acknowledged is lost or fitted twice, and a crash costs at most the
// compute since the last checkpoint: for a deterministic pipeline on the
// sequential engine, a run killed at any moment and restarted ends with
// parameters identical to the bit to an uninterrupted run's (the tests
// kill it with SIGKILL, also between a checkpoint's write and rename).
// With several sources, the order in which their batches interleave is
// the order of arrival, which a restart does not reproduce.
//
// # Predictions
//
// POST /v1/predict (package serve) runs a published copy of the pipeline,
// never the one being fitted: Arrow IPC in and out, or JSON rows. Each
// checkpoint and each publish_every publishes a new version by an atomic
// swap; a request finishes on the version it started with, and a version
// is torn down after its last request. The version is in the
// Penstock-Model-Version header.
//
// # Operations
//
// /metrics (Prometheus, the daemon's own registry: Go, process and build
// information, penstock_ingest_rows_total{source},
// penstock_ingest_rejected_total{source,reason},
// penstock_stage_busy_seconds_total{stage},
// penstock_checkpoint_last_success_timestamp_seconds,
// penstock_model_version, penstock_predict_duration_seconds, …), /livez,
// /readyz (503 before a model is loaded and while draining; ?verbose lists
// the checks). Logs are log/slog, JSON (text on a terminal), one line per
// event: listening, resume, checkpoint, swap, reject, drain.
//
// # Drain
//
// When Run's context is done (penstockd: SIGTERM or SIGINT) the daemon
// drains: /readyz answers 503, the sources stop taking input (HTTP posts
// get 503 with Retry-After) and hand over what they accepted, the fit
// takes all of it, a final checkpoint is saved, and the HTTP server shuts
// down after answering every request it started; Run returns nil. If that
// takes longer than drain_timeout (a hung step), Run stops where it is and
// returns ErrHardStop; the last good checkpoint is what the next start
// resumes from. penstockd exits 0 after a drain and 2 after a hard stop
// (also on a second signal).
package daemon
