// Package cifar provides CIFAR-10 and CIFAR-100 for image classification: readers of the official
// "binary version" (the .tar.gz, streamed, or its extracted files), a synthetic stand-in, the
// standard augmentation (padded random crop, horizontal flip) and normalization, and a Loader that
// fills batches in background goroutines so the device never waits for data.
//
// Guarantees:
//
//   - Faithful: a Set holds the images exactly as the files store them (CHW bytes) in file order,
//     training files concatenated in their official order, with the fine label of CIFAR-100.
//   - Readers trust nothing: every data file must hold exactly the official record count, every
//     label must be in range, the names file must name every class, an archive's gzip checksum
//     must hold. A missing or malformed data set is a *DataError whose one-line message names the
//     file (and archive member) and record, or, when nothing is there, says which file to
//     download and where to put it. Nothing falls back to synthetic data by itself.
//   - Read-only: Load writes nothing anywhere (an archive is streamed, not extracted) and holds
//     the whole data set in memory (CIFAR-100: 154 MB training, 31 MB test images).
//   - Deterministic: Synthetic is a pure function of its arguments; Fill's output a pure
//     function of (Set, index, Norm, Augment, seed, epoch); a Loader's batches depend only on
//     its Set, config, epoch and order, not on its worker count, prefetch depth or timing, so a
//     run resumed at a batch sees the batches an uninterrupted run would. The random draws are
//     spelled out here or use PCG's Uint64 only, so a Go release does not change them. (Across
//     CPU architectures a synthetic pixel may rarely differ by one, as Go may fuse multiply-adds.)
//   - Bounded: a Loader owns LoaderConfig.Prefetch+1 batch buffers and LoaderConfig.Workers+1
//     goroutines, all ended by Close, which waits for them.
//
// Sets are read-only once built and safe for concurrent use; a Loader is used by one goroutine.
package cifar
