// Package serve is the serving side of the ingest-and-train daemon:
// predictions from hot-swapped versions of the fitted pipeline (Models and
// the handler of NewPredictor), and the operations endpoints (Metrics for
// /metrics, Health for /livez and /readyz).
//
// # Versions
//
// The daemon publishes a copy of the pipeline in training (flow.Copy at a
// consistent cut) with Models.Publish, numbered from 1. Publish sets the copy up
// (flow.Setup) and makes it the current version by an atomic pointer swap;
// from then on the copy is the Models' own. If Setup fails, Publish returns
// the error and the current version stays. A version is reference counted:
// one reference while it is current, one per request that runs on it. A
// request takes its reference with Acquire — one atomic load of the current
// version and one compare-and-swap on its count, no lock — runs entirely on
// that version and gives the reference back with Release. A superseded
// version lives until its last request releases it; that release tears it
// down (flow.Teardown of each of its set-up copies, exactly once) and drops
// it, so memory does not grow with swaps (TestSwapMemory: the heap after
// 1 000 swaps is within 10 % of the heap after 10). Teardown runs in the
// goroutine of that last release: a request (after its answer has been
// flushed), Publish or Close. Close refuses new requests (ErrClosed),
// releases the current version and waits for every version to be torn
// down.
//
// Two runs may not share set-up steps, so each version keeps a pool of
// set-up copies: the first is the published pipeline itself; more are made
// on demand (flow.Copy and flow.Setup, in the request that needs one) up
// to ModelOptions.Pool (default GOMAXPROCS). A request takes a free copy
// (Version.Take), runs the pipeline directly (Pipeline.Transform on each of
// its batches), and puts it back; when every copy is busy it waits, as long
// as its context allows. A pipeline that cannot be copied (a step with state
// that is no flow.Copier) is served by the published pipeline alone, one
// request at a time, after one logged warning.
//
// # What a request sees
//
// A request runs on the version that was current when it started and on
// no other: its whole answer comes from that version, and the response
// header Penstock-Model-Version (VersionHeader) names it — on every answer,
// errors included ("0" where no version was taken: before the first
// Publish and after Close). A request that starts after Publish(p, v) has
// returned runs on v or a later version; so a client that sends one
// request after another never sees a version older than one it saw, as
// long as the daemon publishes increasing numbers (Models does not check
// the order).
//
// # Requests
//
// The predictor takes POST requests (405 otherwise) whose body is one of:
//
//   - An Arrow IPC stream (Content-Type application/vnd.apache.arrow.stream)
//     of one or more record batches with exactly the columns of the input
//     schema, in any order. The answer is an IPC stream with one record
//     batch per input batch: the pipeline's output X, followed by the
//     columns of its Y that X has no column of the same name for (Y is
//     nil for predictions unless a step makes one).
//   - JSON rows (application/json): an array of objects, or an object
//     {"rows": [...]} with that array. Each object has a key for every
//     input column and no other: a number for a floating-point or integer
//     column (integers without fraction or exponent, within the type's
//     range), true or false for a boolean one, a string for a string one,
//     null only for a nullable one; inputs of other types take IPC (415).
//     The rows make one batch. The answer has the same form (an array, or
//     {"rows": [...]}): one object per output row, its keys the output
//     columns; a tensor column (FixedSizeList<float32>) becomes an array of
//     numbers, NaN and infinities null.
//
// The status codes: 200 the answer; 400 a body that is not a valid stream
// or JSON rows, or has no rows (an IPC stream without a record batch, or
// whose batches all have no rows); 405 not POST; 413 a body over
// PredictOptions.MaxBody (default 8 MiB; read through http.MaxBytesReader);
// 415 another content type, or a Content-Encoding other than identity
// (bodies are never decompressed); 422 a column missing, extra or of another type
// (the body names it, with the JSON row: source.Schema.Check's
// *source.SchemaError); 500 a failing pipeline (the body names the step);
// 503 with Retry-After before the first Publish, after Close, and when
// every copy of the version stayed busy until the request's context ended.
// Error bodies are one line of text.
//
// # Memory and cost
//
// The body is read whole (bounded by MaxBody), decoded with the hardened
// minibatch IPC reader or the JSON decoder, run, and the answer encoded
// whole before its first byte is sent, so a failure is a status code, never
// a cut stream. Every Arrow buffer of a request — the decoded batches, those
// the steps make (PredictOptions.Alloc is the run's allocator,
// flow.Allocator), the encoder's — comes from PredictOptions.Alloc and is
// released before the handler returns. Beyond the pipeline itself, a
// request costs the body's and the answer's bytes, an atomic load and two
// counter updates, and a channel receive and send for its copy. A swap
// costs the Publish (Setup of the new version), one flow.Copy and Setup per
// extra copy that the new version's requests need, and the Teardown of the
// old version (BenchmarkPredictDuringSwap measures its effect on the p99
// latency of concurrent requests).
//
// # Metrics
//
// NewMetrics makes a prometheus.Registry of its own (never the global
// one) with the Go runtime, process and build-info collectors and these
// series (labels bounded: stage names come from the pipeline, source names
// from the configuration, reasons from source.Reason, codes from this
// handler):
//
//	penstock_stage_busy_seconds_total{stage}                 counter   Metrics.StageBusy (flow.Stats, cumulative)
//	penstock_fitted_batches_total                            counter   Metrics.FittedBatches
//	penstock_ingest_rows_total{source}                       counter   Metrics.IngestRows
//	penstock_ingest_rejected_total{source,reason}            counter   Metrics.Rejected (source.Reporter; also logs one line)
//	penstock_checkpoints_total{result="ok"|"error"}          counter   Metrics.CheckpointDone
//	penstock_checkpoint_duration_seconds                     histogram Metrics.CheckpointDone
//	penstock_checkpoint_last_success_timestamp_seconds       gauge     Metrics.CheckpointDone (on success)
//	penstock_model_version                                   gauge     Metrics.ModelVersion
//	penstock_model_publishes_total                           counter   Metrics.ModelVersion
//	penstock_predict_requests_total{code}                    counter   the predictor (PredictOptions.Metrics)
//	penstock_predict_duration_seconds                        histogram the predictor
//	penstock_predict_in_flight_requests                      gauge     the predictor
//
// Metrics.Handler serves them (mount it at /metrics).
//
// # Health
//
// Health holds named checks that the daemon sets: CheckModel ("model",
// failing until the first model is published) and CheckDraining
// ("draining", failing once the daemon drains). Livez answers 200 "ok"
// always; Readyz answers 200 while every check passes and 503 while one
// fails, and with ?verbose lists each check as "[+]name ok" or "[-]name
// failed: reason", as Kubernetes does.
//
// Every exported method of Models, Version, Metrics and Health, and the
// predictor, may be called from any goroutine.
package serve
