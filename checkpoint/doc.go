// Package checkpoint is the crash-safe store of a run's checkpoints.
//
// A run directory holds one directory per checkpoint, named by the global step with at least
// eight digits (step-00001234, see DirName). It holds the caller's opaque payload files (for
// example model.pt, optim.pt, rng.pt: bytes this package never parses) and manifest.json, written
// last, which records the position of the run and the size and SHA-256 of every payload file (see
// Manifest).
//
// # Writing
//
// Store.Begin creates a temporary directory .tmp-step-NNNNNNNN-<random> in the run directory;
// Pending.Write writes each payload file there, hashing it and fsyncing it; Pending.Commit writes
// manifest.json, fsyncs it and the temporary directory, renames the directory to its final name
// and fsyncs the run directory (the protocol of hashicorp/raft's file_snapshot.go). Re-saving a
// step that exists renames the old directory aside to .old-step-NNNNNNNN-<random>, renames the new
// one in, fsyncs the run directory and only then removes the old one. Retention (Options.Keep,
// Options.BestMetric) deletes older checkpoints only after that fsync, each by renaming it to
// .del-step-NNNNNNNN-<random>, fsyncing the run directory and removing the renamed tree.
//
// # Guarantees
//
//   - Atomic: a directory appears under the name step-NNNNNNNN only complete, with its manifest;
//     partial work only ever lives under a name that starts with a dot.
//   - Durable: when Commit returns a Checkpoint, the checkpoint's files, manifest and directory
//     entry have been fsynced: it survives a crash or a power loss from then on.
//   - Isolated: a failed Begin, Write or Commit leaves the previous checkpoints untouched and
//     removes its temporary directory (best effort; a leftover one is harmless, see below).
//   - Exclusive: Open takes an advisory lock (flock) on the run directory's .lock file, held until
//     Close or the death of the process, so two trainers never write one run directory.
//
// A crash (SIGKILL, power loss) at any instant leaves every checkpoint committed before it intact
// and readable, and at most these leftovers, all named with a leading dot: a .tmp-* directory (an
// interrupted write: skipped, reported and removed by the next Store.Latest), a .del-* directory
// (an interrupted deletion: same), or a .old-step-* directory (a replaced step: removed if
// step-NNNNNNNN exists; renamed back to step-NNNNNNNN by the next Store.Latest if the crash came
// between the two renames of a replacement, so the only copy of that step is never lost).
//
// # Reading
//
// Readers trust nothing: a directory is a checkpoint only if its manifest parses, has a known
// format version and the step of the directory name, and every listed file exists with the
// listed size and SHA-256 (files not listed are ignored). Store.Latest returns the newest such
// checkpoint, verifying newest-first until one verifies, reports the rest (Invalid) and removes
// only temporary directories and directories proven invalid, and nothing at all when no valid
// checkpoint was found. A directory that could not be read (a permission or I/O error) is
// reported but never removed. List and Load verify without changing anything.
//
// # Object storage
//
// A Remote is a run directory's copy in object storage (gs://, s3://, file://, through
// gocloud.dev/blob): the same step-NNNNNNNN/ prefixes holding the same files. An object store has
// no rename, so there the manifest is the commit marker: Remote.Upload writes it only after every
// payload object, each streamed from the local checkpoint and checked against its manifest on the
// way; a re-saved step loses its old manifest before its new files go up. Each object is written
// whole or not at all, so a crash, a network failure or a cancel at any instant leaves every
// checkpoint uploaded before valid, and at most a prefix without a manifest, which readers skip
// and retention removes. Remote.Download verifies the manifest and every object's size and
// SHA-256 before committing the copy into a local Store (a crash leaves a .tmp-* directory).
// Mirror uploads a store's commits in the background, newest first, applies the store's
// retention to the remote after each (a pruned checkpoint loses its manifest first), and Flush
// waits for it with a deadline, abandoning the upload in flight when it passes.
//
// All file operations go through FS (OSFS by default, Options.FS in tests), except the lock,
// which needs a real file descriptor.
package checkpoint
