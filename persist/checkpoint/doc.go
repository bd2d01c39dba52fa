// Package checkpoint caches the fit of the expensive first part of a
// pipeline, so that fits that differ only after it (a sweep over the
// model's hyperparameters) run that part once.
//
// # Placing a checkpoint
//
// A checkpoint splits a pipeline in two: New(cache, prefix, suffix) is
// prefix → checkpoint → suffix; Split(cache, p, "model") places it in
// the pipeline p just before its top-level node "model". Pipeline.Fit fits the prefix on the
// source and the suffix on the prefix's fit outputs, as a flow.Runner's
// Fit of the whole would (Pipeline.Full is the whole, to transform new
// data with). Every step of the prefix must be registered in the cache's
// persist registry (see Registry): its type name and version are part of
// the key, and its fitted state is stored with persist.Marshal.
//
// # The key
//
// The key of a fit is a hash chain (SHA-256): the module version (by
// default Penstock's version in the binary's build information,
// runtime/debug.ReadBuildInfo; ModuleVersion sets it), then for every
// active step of the prefix, depth first, its path, its registered type
// name and version, its hyperparameters (hparams.Tunable, with their Go
// types), its node options and, for a step that is no composite, the
// SHA-256 of persist.Marshal of it as the fit finds it (a fit continues
// from the state a step has: one already fitted does not hit the entry of
// one that was not; this costs a save of each active step per Fit), then
// the data. The data is the source's
// Fingerprint where it is a Fingerprinter (a file's path, size,
// modification time and content hash, cheaper than a read), else the
// hash of its content: a replayable source is read once, every batch's
// X and Y hashed as an Arrow IPC stream with its Epoch and row count, and
// rewound; any other source is first spilled to a temporary directory
// of the cache (Arrow IPC, zstd, batch by batch), hashed from there, and
// the fit reads the spill (so it hits the entries of the same data read
// from a replayable source). So changing any input value, any hyperparameter,
// node option or starting state of an active step of the prefix, a prefix
// step's version, the module version, or which branch of a choice is
// active, misses; changing the suffix, or an inactive branch, does not.
//
// # Hits and misses
//
// On a miss the prefix runs (r.FitTransform); each output batch is
// written to the new entry as it passes on to the suffix's fit, and the
// fitted prefix is stored when the source ends. On a hit the prefix does
// not run: it is restored from the entry (a new value, see
// Pipeline.Prefix: the steps given to New are left unfitted) and the
// suffix is fitted on the cached outputs, read back batch by batch. The
// restored prefix transforms new data as the fitted one did. A damaged
// entry — its model does not load, or an output file is not the bytes
// stored (the size and SHA-256 of each are in the entry's meta.json,
// checked before the entry is used) — is dropped and fitted as a miss.
// The outputs are read back with minibatch's IPC stream reader, which
// checks each message before arrow decodes it and bounds what a batch
// may allocate by twice the largest batch stored, so a file that changes
// on disk while it is read is an error (ErrDamaged), never a crash.
//
// # The cache
//
// Open(dir) opens a cache directory, shared by any number of runs and
// processes. Entries live under the experiment's subdirectory
// (Experiment; default "default"); the size budget (Budget, for the whole
// directory; default 10 GiB) is kept after every store by evicting the
// least recently used entries (a hit marks an entry used). An entry is
// written in a temporary directory, fsynced, and renamed into place, so
// a concurrent run sees a complete entry or none; an evicted entry is
// renamed away before it is removed; what a crashed run left (temporary
// directories older than StaleAfter) is removed by a later store. Off, or the environment variable
// PENSTOCK_CACHE=off (read at every Fit), turns caching off for every
// cache of the process: every fit runs every step and stores nothing.
//
// # Cost and memory
//
// Outputs are stored as Arrow IPC streams compressed with zstd, written
// and read one batch at a time: memory stays bounded by the runners'
// queues, plus 16 bytes per batch for its Seq and Epoch. Hashing a
// replayable source costs one extra read of it; a hit reads each output
// file of the entry once more, to check its SHA-256. Both engines are
// supported; the suffix may hold Joiners (its fit re-reads the cached
// outputs, which are replayable).
//
// # Concurrency
//
// A Cache is safe for concurrent use; a Pipeline is used by one goroutine
// at a time.
//
// # Transform
//
// Pipeline.Transform caches the prefix's transform outputs the same way,
// under a key that also chains the prefix's fitted state (the hash of
// persist.Marshal of it): transforming the same data again with the same
// fitted prefix (a validation set, once per trial of a sweep) reads the
// outputs back and does not run the prefix. Its Outputs stream stores
// the entry at Close, only when the prefix's outputs reached their end.
// Pipeline.Full, run with a flow.Runner, transforms uncached.
package checkpoint
