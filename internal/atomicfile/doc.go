// Package atomicfile writes a file under a temporary name in its final
// directory and publishes it with a rename, so that readers of the final
// name see either the previous file or the complete new one, never a
// partial write.
//
// The sequence follows the usual POSIX recipe (as github.com/google/renameio
// does): create ".name.tmp-<random>" next to the final
// path, write, fsync the file, close, rename over the final name, fsync the
// directory so the rename itself is durable.
package atomicfile
