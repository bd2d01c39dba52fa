// Package natsource is the daemon's NATS source: every message body is an
// Arrow IPC stream, whose record batches are sent one input each.
//
// # JetStream: exactly the messages after the checkpoint
//
// With Options.Stream set, Run reads the stream through an ordered
// consumer (package github.com/nats-io/nats.go/jetstream; filtered by
// Options.Subject when set): from its first message, or, given a position,
// from the message after it. The position sent with each input is JSON
// {"stream": S, "seq": N, "batch": i}, N the message's stream sequence and
// i the 0-based index of the record batch in it, with "last": true on a
// message's last batch; resuming from a position in the middle of a
// message reads that message again and sends the batches after i, so a
// cut between two batches of one message loses and repeats nothing. A
// message gives the same batches every time it is decoded.
//
// The consumer is ephemeral and acknowledges nothing: the position lives
// in the daemon's checkpoint, not on the server, so Durable does nothing
// but check the position. The stream must keep its messages (limits
// retention, not work-queue or interest) for as long as a restart may need
// them; messages that its limits removed before they were read are logged
// as gone (when there is no subject filter, which makes gaps normal). A
// position past the stream's end, as after the stream was purged or made
// anew, is warned about when Run starts (its last sequence and the one
// resumed at): the messages before that sequence are never read.
//
// # Rejections
//
// A message over Options.MaxMsgBytes (ReasonTooBig), one that is not an
// IPC stream (ReasonDecode) or whose schema does not match Options.Schema
// (ReasonSchema, naming the column) is decoded wholly before any of its
// batches is sent, so it is all or nothing: Reporter.Rejected is called
// and the message is skipped. The position of the next good message is
// past it, so it is not read again after that message's checkpoint; it is
// read and rejected again (and counted again) only when the daemon
// restarts from a position before it.
//
// # Core NATS: at most once
//
// With Options.Stream empty, Run subscribes to Options.Subject. Core NATS
// keeps nothing: messages published while the daemon is down, before Run
// subscribed, or while more than Prefetch messages wait for Run (the
// client drops them as a slow consumer, logged) are lost, and the inputs
// carry no position (Pos nil): a restart starts from what is published
// next. Use a stream for anything that must not be lost.
//
// # Run, drain, cancel, goroutines
//
// Run connects (Options.URL; reconnecting forever, with
// Options.ConnectOptions), reads, and closes its connection before it
// returns; a failure to connect or to make the consumer is an error of
// Run. When drain closes, Run sends the rest of the message it is sending
// and returns nil (messages not sent were not accepted: a restart reads
// them). When ctx is done it returns context.Cause(ctx) promptly, releasing
// the batches it had not sent. Besides the NATS client's own, ended by
// closing the connection, Run starts one goroutine, which watches drain and
// ends before Run returns. Memory: up to Prefetch messages buffered by the
// client and one message's decoded batches.
package natsource
