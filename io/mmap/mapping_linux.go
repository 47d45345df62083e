//go:build linux

package mmap

import (
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sys/unix"
)

// Mapping is a read-only mapping of a whole file, reference counted
// through an Arrow memory.Buffer: the buffer's "allocator" is the mapping
// itself, whose Free unmaps. Slices of it (memory.SliceBuffer, what Adopt
// gives every array) retain it, so the pages stay mapped until the File
// is closed and the last array pointing into them is released.
type Mapping struct {
	buf      *memory.Buffer
	data     []byte
	name     string
	unmapped atomic.Bool
}

// unmapper is the memory.Allocator of a mapping's buffer: it only frees.
type unmapper struct{ m *Mapping }

func (u unmapper) Allocate(int) []byte { panic("mmap: a file mapping cannot allocate") }
func (u unmapper) Reallocate(int, []byte) []byte {
	panic("mmap: a file mapping cannot reallocate")
}

// Free unmaps the mapping: the buffer's reference count reached zero.
func (u unmapper) Free(b []byte) {
	if u.m.unmapped.Swap(true) {
		panic(fmt.Sprintf("mmap: %s unmapped twice", u.m.name))
	}
	if len(u.m.data) > 0 {
		if err := unix.Munmap(u.m.data); err != nil {
			panic(fmt.Sprintf("mmap: munmap %s: %v", u.m.name, err)) // a bug: we mapped it
		}
	}
	u.m.data = nil
}

// newMapping maps fd's first size bytes read-only with MADV_SEQUENTIAL and
// MADV_WILLNEED (the file is about to be read front to back).
func newMapping(fd int, size int64, name string) (*Mapping, error) {
	m := &Mapping{name: name}
	if size > 0 {
		data, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("mmap: map %d bytes of %s: %w", size, name, err)
		}
		// Advice is a hint: a kernel that ignores it reads the same bytes.
		_ = unix.Madvise(data, unix.MADV_SEQUENTIAL)
		_ = unix.Madvise(data, unix.MADV_WILLNEED)
		m.data = data
	}
	m.buf = memory.NewBufferWithAllocator(m.data, unmapper{m})
	return m, nil
}

// Bytes is the mapped file; valid while the caller holds a reference.
func (m *Mapping) Bytes() []byte { return m.data }

// Buffer is the mapping as an Arrow buffer (not retained for the caller).
func (m *Mapping) Buffer() *memory.Buffer { return m.buf }

// Retain adds a reference.
func (m *Mapping) Retain() { m.buf.Retain() }

// Release drops a reference; the last one unmaps.
func (m *Mapping) Release() { m.buf.Release() }

// Unmapped says whether the last reference is gone.
func (m *Mapping) Unmapped() bool { return m.unmapped.Load() }

// contains says whether b lies inside the mapping, and where.
func (m *Mapping) contains(b []byte) (int, bool) {
	if len(b) == 0 || len(m.data) == 0 {
		return 0, false
	}
	base := uintptrOf(m.data)
	p := uintptrOf(b)
	if p < base || p+uintptr(len(b)) > base+uintptr(len(m.data)) {
		return 0, false
	}
	return int(p - base), true
}
