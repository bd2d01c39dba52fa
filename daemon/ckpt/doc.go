// Package ckpt keeps the daemon's checkpoints: atomic, verified files of a
// fitted pipeline with what the daemon needs to resume exactly (Meta: the
// batches fitted, each source's position, the model version, the time,
// free-form extras).
//
// A Store is a directory of files ckpt-<seq>.pst, seq in 12 digits, higher
// newer. Each is what persist.Marshal writes (a tar archive of a manifest
// and checksummed blobs), with the Meta as JSON in the extra blob MetaName
// ("penstock.daemon.meta"), followed by a 48-byte footer: "PSTCKPT1", the
// archive's length and its SHA-256. persist checks each blob against the
// manifest but not the manifest itself (a flipped digit of a scalar loads
// as another model); the footer covers every byte. It lies after the tar
// archive's end, so persist.LoadFile and tar tools still read the file.
// Save writes the next one and removes the oldest beyond Options.Keep;
// Latest loads the newest that verifies.
//
// # Durability protocol
//
// Save returns only once its checkpoint survives a crash of the machine,
// since the daemon then tells its sources (source.Source.Durable) that
// they may let go of the inputs it covers. Its steps, each an FS call:
//
//  1. Marshal the step tree and the Meta in memory (nothing on disk yet),
//     and list the directory: seq is one above the highest there (and
//     above any this Store gave).
//  2. Create the temporary file .ckpt-<seq>.tmp in the same directory
//     (a rename is atomic only within one file system) and write the
//     archive and its footer to it.
//  3. Sync the file: its data is on disk before any name points to it.
//     Without it, the rename of step 5 may reach the disk before the data
//     (delayed allocation): after a crash ckpt-<seq>.pst exists but is
//     empty or truncated, and the checkpoint Save reported is lost.
//  4. Close it (some file systems report write errors only here), then
//     call Options.BeforeRename (the fault hook of the daemon's kill -9
//     tests).
//  5. Rename it to ckpt-<seq>.pst: atomic, so a reader never sees a part
//     of a checkpoint under a checkpoint's name.
//  6. SyncDir: the directory's entries (the new name, and the temporary
//     one gone) are on disk. Without it, a crash may undo the rename — the
//     file's data is durable, its name is not — and the checkpoint Save
//     reported is lost. Save returns its Info after this step.
//  7. Prune: remove the oldest checkpoints beyond Keep, oldest first, never
//     the new one. The removals are not synced: they are made after
//     step 6, so they reach the disk with or after the new entry, and a
//     crash never leaves the old checkpoints removed without the new one;
//     one that a crash brings back is removed by the next Save. A failed
//     removal is logged, not returned.
//
// A Save that fails at steps 2 to 5 removes its temporary file and leaves
// the checkpoints as they were; one that fails at step 6 leaves its
// complete file, which Latest may load (its data was synced).
//
// # What a crash leaves
//
// A crash (or kill -9) during step 1 leaves nothing new: the previous
// checkpoint loads. During steps 2 to 4, it leaves at most a temporary
// file, whole or partial (after a crash of the machine, maybe none): Latest
// does not take it for a checkpoint and removes it; the previous one loads.
// Between steps 5 and 6, a kill leaves the new checkpoint, whole (synced
// at step 3), and a crash of the machine either the new one or, the rename
// undone, the previous one. After step 6 the new one loads, whatever
// happens during step 7. So Latest gives the previous checkpoint or the
// new one, whole, never an error where one existed; and the new one once
// Save has returned. The tests check this before every FS call of a Save,
// for a crash and for a kill, and that a Save without step 3 or step 6
// fails that check.
//
// # Loading
//
// Latest lists ckpt-*.pst newest first and takes the first that loads:
// a file over Options.MaxBytes (default 1 GiB) is refused before it is
// read, and read with that bound; the footer's length and SHA-256 must
// match (any truncation, any flipped bit); persist.Unmarshal checks the
// manifest and every blob's size and SHA-256; the Meta is decoded strictly (an
// unknown or misspelt member, a member given twice, a newer
// format_version, negative counts are errors). Each file skipped is logged
// at Warn, one line with its path and the reason, and the next older one
// is tried. Latest also removes the temporary files that a killed save
// left. Its error wraps ErrNoCheckpoint where there is no checkpoint file
// (a first start), and ErrNoValidCheckpoint where there are some but none
// loads (not a first start: the sources may have let go of what those
// covered; stop rather than start from nothing). List gives the files'
// Info without reading them.
//
// # Testing the protocol
//
// The Store works on an FS: OSFS is the operating system's; FaultFS is an
// in-memory one that keeps, for each file, its content as of its last
// Sync and as of now, and for each directory its entries as of its last
// SyncDir and as of now. FaultFS.Crash brings back the durable state (a
// rename not followed by SyncDir is undone, a file created in a directory
// not synced since is gone, a file keeps a seeded random prefix of what
// was written after its last Sync); FaultFS.Restart models a kill of the
// process only. FailAt makes the n-th call of an operation fail, Halt
// makes every call after the next n fail, Trace lists the calls.
//
// # Concurrency and cost
//
// Save is called from one goroutine at a time; Latest and List may not
// run while a Save does (Latest removes temporary files). The step must
// not be fitted while it is saved (take the daemon's cut first). A Save
// holds the whole archive in memory, writes it once and makes two fsyncs
// (the file, the directory); BenchmarkSave measures a 1 MiB model, most
// of whose time is persist.Marshal's zstd encoding. Latest reads each file
// it tries whole into memory, bounded by MaxBytes.
package ckpt
