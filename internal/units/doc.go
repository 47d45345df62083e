// Package units renders quantities for people, in one format for every
// package (the CLI, the engine's summaries, the arena reports and errors,
// the topology check), so that the same number reads the same everywhere.
//
// Byte counts use binary (IEC 80000-13) prefixes, as /proc/meminfo and the
// hugepage sizes do: KiB, MiB, GiB.
package units
