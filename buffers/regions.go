package buffers

import (
	"fmt"
	"unsafe"
)

// RegionSource supplies an arena's memory in place of mmap: package cxl
// hands out extents of a segment that other processes map, so that the
// Arrow buffers an operator allocates are already where a consumer in
// another process reads them. The arena carves size classes from the
// regions and keeps its free lists in them (only this process reads
// those), exactly as in memory it mapped itself.
type RegionSource interface {
	// Take returns a region of at least size bytes, 64-byte aligned and
	// zeroed, for an extent (large false) or for one large allocation. It
	// fails when the source has no room left; the arena then fails the
	// Allocate that needed it.
	Take(size uintptr, large bool) ([]byte, error)
	// Give returns a region Take handed out, whole: when a large
	// allocation's region leaves the cache and when the arena closes. The
	// arena never touches it afterwards.
	Give(region []byte) error
}

// RegionBacking is an optional interface of a RegionSource that names what
// its memory is in the pool's report (mapped_by_backing), where the kind
// of page alone would mislead: a device-DAX device's memory is not hugetlb
// even when mapped in 2 MiB pages.
type RegionBacking interface {
	Backing() string
}

// takeRegion is mapRegion for an arena whose memory comes from a
// RegionSource.
func (ar *Arena) takeRegion(size uintptr, large bool) (*mapping, error) {
	src := ar.cfg.Regions
	b, err := src.Take(size, large)
	if err != nil {
		return nil, fmt.Errorf("buffers: take %s from %s: %w", humanBytes(int64(size)), ar.cfg.Kind, err)
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if uintptr(len(b)) < size || base%64 != 0 {
		src.Give(b)
		return nil, fmt.Errorf("buffers: region source gave %d bytes at %#x for %d: want at least that many, 64-byte aligned", len(b), base, size)
	}
	page := ar.osPage
	if ar.cfg.Kind == KindHugepage {
		page = ar.pageSize
	}
	m := &mapping{
		base: base, size: uintptr(len(b)), rawBase: base, rawSize: uintptr(len(b)),
		asked: ar.cfg.Kind, got: ar.cfg.Kind, page: page, node: NoNode, large: large, src: src,
	}
	ar.add(m)
	return m, nil
}
