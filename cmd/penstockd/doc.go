// Command penstockd is the ingest-and-train daemon with Penstock's built-in
// steps: it fits a saved pipeline, endlessly, on what arrives in a
// directory, on NATS JetStream and over HTTP, checkpoints it atomically,
// resumes exactly after a crash, and serves predictions from hot-swapped
// copies of the model.
//
//	penstockd -config penstockd.json [-set key=value]... [-check-config]
//
// The configuration is one JSON file (see daemon.Config), decoded strictly;
// -set overrides a key ("checkpoint.every=10s", "sources.0.dir=/in"), and
// -check-config validates the result, prints it, and exits. SIGTERM or
// SIGINT drains (exit 0 once the final checkpoint is saved); a second
// signal, or the drain timeout, stops at once (exit 2), keeping the last
// good checkpoint.
package main
