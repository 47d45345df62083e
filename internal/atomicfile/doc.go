// Package atomicfile writes a file under a temporary name in its final
// directory and publishes it with a rename, so that readers of the final
// name see either the previous file or the complete new one, never a
// partial write.
//
// The sequence follows the usual POSIX recipe (as github.com/google/renameio
// does): create a temporary file next to the final path, write, fsync the
// file, close, rename over the final name, fsync the directory so the rename
// itself is durable. Commit does that in one step.
//
// Publish, Forget and Rollback split it in two, so that several files can be
// committed all or none: Publish renames but keeps the replaced file as a
// hard link (and a second link to the new file, the mark of a pending
// commit); Forget drops both once every file is published; Rollback puts
// the previous file back (or removes the new one if there was none).
//
// Every file made next to the final name carries its owner in its name
// (host and pid namespace hash, boot id, pid, process start time; see
// FormatName and Owner), so that Recover, run before the next write of the
// same final name, can tell the leftovers of a killed run from the work of
// a live one: it removes the former's temporary files and undoes its pending
// commit, and touches nothing else.
//
// Limits: two live processes writing the same final name at once race (the
// last rename wins, as with any rename-based writer); a run in another pid
// namespace (another container, another host over a shared filesystem) is
// never judged, so what it leaves behind stays until removed by hand, as do
// the ".name.tmp-<random>" files of zflow versions before owner-named files.
package atomicfile
