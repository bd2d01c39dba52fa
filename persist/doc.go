// Package persist saves trained pipelines and loads them back, safely:
// the format carries data only (no code runs from a file), every byte
// that carries data is checksummed (the manifest by a SHA-256 of its own,
// each blob by the SHA-256 that the manifest names; see Format) and
// verified before it is trusted, and a load refuses, with an error that
// names the problem, anything that is not what the format and its limits
// allow.
//
// # Saving and loading
//
// SaveDir, SaveFile and Marshal save a step tree (a *flow.Pipeline, or any
// step) to a directory, to one file, or to bytes (for a database column);
// LoadDir, LoadFile and Unmarshal give back a Model, whose Step (or
// Pipeline) gives outputs identical to the bit to the saved tree's. Saving
// walks the tree (flow.Walk), so a composite of any package is saved with
// no code here: each node's type name and version, its hyperparameters
// (hparams.Tunable's Params, of every step, active or not), its node
// settings (flow.NodeSettings: replicas, queue capacity, barrier,
// FitEpochs) and its state; loading rebuilds the tree bottom up, each
// composite from its rebuilt children, through the constructors of a
// Registry. WithExtra stores named blobs with the model (a daemon's source
// positions), returned in Model.Extra. FileSaver saves with SaveFile for
// automl.BestCheckpoint (it is an automl.Saver). A step value held at several places
// of a tree is saved at each and loaded as independent steps.
//
// Search spaces are not saved: a step's Space (hparams.Spacer) is computed
// from its configuration (a ChooseOneOf's from its branches), so it comes
// back with the step; a step that holds a space of its own (one narrowed
// with hparams.Space.Override) writes what rebuilds it in its state, since
// hparams distributions have no data form.
//
// # Step types
//
// A Registry maps type names to Types (a name, a version, a constructor
// from a Spec) and Go types to names. NewRegistry knows flow.Pipeline,
// flow.Union and minibatch.PackStep; package steps registers all its steps
// in Default when imported, and steps.Register registers them in a
// registry of a program's own (WithRegistry). Saving a step of an
// unregistered type, or loading one, is an ErrUnknownType error that names
// it (and, when loading, the registered types). A file saved by a newer
// version of a type, or of the format, is an ErrNewerFormat error; an
// older one is passed to the type (Spec.Version, StateReader.Version).
//
// # State
//
// A step declares its learned state by implementing Stater: MarshalState
// writes named tensors ([]float32, []float64, []int64, []string) and small
// scalars (ints, floats, bools, strings, bytes; Binary for a math/rand/v2
// generator's state) to a StateWriter; UnmarshalState reads them back from
// a StateReader. Nothing is read from a step's fields by reflection. The
// load of a node runs, in order: Type.New(spec) (which configures the step
// from spec.State and spec.Params, through the step's constructor), then
// SetParams(spec.Params), then UnmarshalState. A type whose state cannot be
// written as it is (a device context, a C handle), or that belongs to a
// package that does not know persist, gets its saver in its Type
// (Type.SaveState, read back by Type.New). Resources are never saved: a
// loaded step is not set up, and the runners call Setup on every step
// before its first batch (flow.Setupper), which re-acquires them.
//
// # Format
//
// A saved model is a manifest, manifest.json, and blobs. The manifest is
// JSON: "format" ("penstock-model"), "format_version" (FormatVersion),
// "root", the tree of nodes — each with "name", "type", "version",
// "settings", "params", "scalars" (typed values: {"int": 3},
// {"float": 0.1}, {"string": "x"}, …), "tensors" (dtype, shape and the
// SHA-256 of its blob) and "children" —, "blobs" (path and size of each
// blob, by SHA-256), "extra" (name → SHA-256) and, last,
// "manifest_sha256": the SHA-256, in lower-case hex, of every byte of
// manifest.json before this value's opening quote. The file ends with the
// quoted value, a newline and "}", so that a reader checks it with no JSON
// parser: the last 68 bytes are `"<64 hex digits>"\n}`, and the SHA-256 of
// the bytes before them (which end with `"manifest_sha256": `) is those
// digits. The manifest holds its own checksum, rather than an entry next
// to it, so that it stays one file, the atomic commit point of a
// directory, and is the same bytes in a directory, a file and Marshal's
// bytes. Format version 2 requires it: a version-2 manifest that does not
// end so is refused ("manifest checksum missing"), one whose digits are
// not its SHA-256 too ("manifest checksum mismatch"), both ErrFormat.
// Version 1 had no manifest checksum: a version-1 manifest is loaded as
// version 1 loaded it, its blobs checked and itself not (save it again to
// seal it); one that carries a manifest_sha256 is checked. A manifest
// edited on purpose is sealed again with ResealManifest. Each tensor is a blob
// blobs/<sha256>.arrows: an Arrow IPC stream of one column named after
// the tensor, flat (row-major), in record batches of at most 2²⁰ values,
// buffers compressed with zstd, its shape also in the schema's metadata
// "penstock.shape"; extra blobs are blobs/<sha256>.bin, stored as given.
// A directory holds these files; a single file (and Marshal's bytes) is a
// tar archive of them, manifest first. In the archive, what is read —
// each member's content, name, type and size — is covered: the content by
// the checksums, the names and sizes by the checksummed manifest (a member
// must be a declared blob, of its declared size), each header by tar's own
// header checksum. What no check covers changes nothing that is
// loaded: the zero padding of each member to 512 bytes, the padding of
// the digits of a header's checksum field (a leading zero, the NUL and the
// space after them, read the same when one of them becomes a space or a
// NUL; that field is outside the sum it holds), and anything after the
// end-of-archive marker. The header fields that a load ignores (mode,
// times, owner) are in their header's checksum.
// Any Arrow implementation reads the tensors (see the README: pyarrow).
//
// # Safety
//
// A load verifies the manifest's checksum before it decodes it, then
// checks the manifest before it reads a blob (format and version,
// types, names, the tree's depth and size, declared sizes, and the
// replicas and queue capacities that a run of the tree would make, against
// Limits),
// every blob's size and SHA-256 before it decodes one, and every tensor
// against its declared shape, with a decoder whose allocations are bounded
// by what that shape needs (so a small blob that inflates to gigabytes
// fails before the memory is asked for). Only then is the tree built:
// nothing is returned from a failed load. Errors wrap ErrFormat, ErrLimit,
// ErrNewerFormat or ErrUnknownType. The checksums find corruption and
// edits made by hand (a bit flipped on disk, a scalar changed in an
// editor); they are not a signature: whoever can write the file can also
// write checksums that match, so a model from a party that is not trusted
// is only as safe as the checks after them make it (no code runs, limits
// hold).
//
// SaveFile is atomic: a temporary file in the same directory, fsync,
// rename, fsync of the directory. In SaveDir the manifest is the commit
// point: blobs are content-addressed and written first, the manifest is
// replaced atomically, then blobs it no longer names are removed; a crash
// at any point leaves the old model or the new one. One save at a time
// per directory.
//
// # Cost and concurrency
//
// Saving costs one pass over the state (zstd and SHA-256, tensors encoded
// in parallel) and holds the encoded blobs in memory until they are
// written; loading reads each blob once, decodes it into a new slice, and
// from Unmarshal's bytes does not copy the blobs. Registry methods are safe
// for concurrent use; a tree must not be fitted while it is saved.
package persist
