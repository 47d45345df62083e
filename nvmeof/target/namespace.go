package target

import (
	"fmt"
	"os"
	"sync"
)

// Namespace is the storage behind one NSID: positional reads and writes of
// whole blocks, and Flush, which returns once what was written before it is
// durable as far as the namespace can promise.
type Namespace interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Flush() error
	Size() int64     // bytes
	BlockShift() int // log2 of the block size, at least 9
}

// Deallocator is a namespace that can free blocks (Dataset Management's
// deallocate): afterwards they read as zeros.
type Deallocator interface {
	Deallocate(off, n int64) error
}

// RAM is a namespace in memory. Nothing survives the process; Flush does
// nothing. A reader-writer lock orders overlapping I/O from several queues.
type RAM struct {
	mu    sync.RWMutex
	b     []byte
	shift int
}

// NewRAM makes a RAM namespace of size bytes with 2^shift-byte blocks; the
// size must be a non-zero multiple of the block size.
func NewRAM(size int64, shift int) (*RAM, error) {
	if shift < 9 || shift > 16 || size <= 0 || size%(1<<shift) != 0 {
		return nil, fmt.Errorf("target: RAM namespace of %d bytes with %d-byte blocks: want a positive multiple of a block of 512 B to 64 KiB", size, 1<<shift)
	}
	return &RAM{b: make([]byte, size), shift: shift}, nil
}

func (r *RAM) ReadAt(p []byte, off int64) (int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return copy(p, r.b[off:]), nil
}

func (r *RAM) WriteAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return copy(r.b[off:], p), nil
}

// Deallocate zeroes the range (the memory stays allocated).
func (r *RAM) Deallocate(off, n int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.b[off : off+n])
	return nil
}

func (r *RAM) Flush() error    { return nil }
func (r *RAM) Size() int64     { return int64(len(r.b)) }
func (r *RAM) BlockShift() int { return r.shift }

// File is a namespace on a regular file through positional reads and
// writes; Flush is fsync, so a write acknowledged before a Flush that
// succeeded survives a restart of the target (and of the machine, as far
// as the file system and disk honour fsync).
type File struct {
	f     *os.File
	size  int64
	shift int
}

// OpenFile opens (creating it when missing) a file namespace of size bytes
// at path, with 512-byte blocks; the file is extended to size.
func OpenFile(path string, size int64) (*File, error) {
	if size <= 0 || size%512 != 0 {
		return nil, fmt.Errorf("target: file namespace %s of %d bytes: want a positive multiple of 512", path, size)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("target: open file namespace: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() < size {
		err = f.Truncate(size)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("target: size file namespace %s to %d bytes: %w", path, size, err)
	}
	return &File{f: f, size: size, shift: 9}, nil
}

func (f *File) ReadAt(p []byte, off int64) (int, error)  { return f.f.ReadAt(p, off) }
func (f *File) WriteAt(p []byte, off int64) (int, error) { return f.f.WriteAt(p, off) }
func (f *File) Flush() error                             { return f.f.Sync() }
func (f *File) Size() int64                              { return f.size }
func (f *File) BlockShift() int                          { return f.shift }

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }
