package target

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Deallocate punches a hole in the file: the blocks go back to the file
// system and read as zeros; the file keeps its size. On a file system
// that cannot punch holes the range is overwritten with zeros.
func (f *File) Deallocate(off, n int64) error {
	err := unix.Fallocate(int(f.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return writeZeroes(f, off, n) // a file system without holes
	}
	if err != nil {
		return fmt.Errorf("target: punch %d bytes at %d of %s: %w", n, off, f.f.Name(), err)
	}
	return nil
}
