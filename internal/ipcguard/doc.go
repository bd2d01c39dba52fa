// Package ipcguard checks Arrow IPC input for what arrow-go's IPC readers
// (github.com/apache/arrow-go/v18/arrow/ipc, v18.8.0) trust and should
// not, so that the minibatch IPC sources can read hostile files and
// streams with arrow-go's own readers: a corrupt input is an error, never a
// crash, a runaway allocation or a leak.
//
// What arrow-go trusts, and what this package does about it:
//
//   - The length written in front of each compressed buffer: arrow-go
//     allocates it before decompressing, so a 328-byte body that says
//     16 TiB kills the process. Allocator bounds what one read allocates
//     beyond its messages, and panics (which arrow-go recovers into an
//     error) before asking for more.
//   - Lengths of flatbuffer vectors in the metadata (schema fields and
//     children, custom metadata, union type ids, variadic buffer counts,
//     the footer's blocks): arrow-go sizes slices and loops by them, so a
//     few bytes can ask for hundreds of gigabytes. CheckMessage and
//     CheckFile check that each lies inside its buffer before arrow-go
//     parses it; for an IPC file, that means reading the footer here first.
//     They also bound the nesting of a schema (arrow-go parses it
//     recursively, without a bound).
//   - Its own recovery: when arrow-go fails in the middle of a batch, it
//     drops buffers without releasing them; Allocator keeps them and
//     Reclaim frees them once the reader is released, so a counting
//     allocator ends at zero. Allocator.Read also turns a panic that
//     arrow-go does not recover into an error.
//
// Message bodies are bounded by arrow-go's own option
// (ipc.WithBodySizeLimit) for files, and by MessageReader for streams.
// What the decoded arrays may still get wrong is the caller's to check
// (array.ValidateFull and the checks that it lacks: see the minibatch IPC
// sources).
//
// # Use
//
// For a stream: NewAllocator, then ipc.NewReaderFromMessageReader of a
// NewMessageReader, with ipc.WithAllocator, each call to the reader inside
// Allocator.Read. For a file: CheckFile, then ipc.NewFileReader with
// ipc.WithAllocator inside Allocator.Read (Allow each dictionary block),
// and before each record batch CheckBlock and RecordBatchAt inside
// Allocator.Read (Allow the block). Release the reader, then call
// ReleaseReader, with handedOut true if a batch of the reader was given to
// anyone (Reclaim alone is not enough: a panic that arrow-go recovers can
// leave what an earlier read allocated, such as a dictionary, referenced
// only by the reader, and a counting allocator then ends above zero).
//
// # Cost and concurrency
//
// CheckMessage is O(size of the metadata), CheckFile O(size of the footer
// and dictionary metadata); MessageReader reads each message once, like
// arrow-go's (a message over a MiB, from an input without a Len method, is
// also copied about once more as its buffer doubles). Allocator adds a map
// insertion per allocation during a read and a lookup per free. Allocate,
// Reallocate and Free are safe for concurrent use; the rest is called by
// the goroutine that reads.
package ipcguard
