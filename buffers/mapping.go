package buffers

import (
	"errors"
	"fmt"
	"unsafe"
)

// thpPMD is the size of a transparent hugepage on amd64 and arm64 with 4 KiB
// base pages, and the alignment every non-hugetlb region gets.
const thpPMD = 2 << 20

// mapping is one mmap'd region.
type mapping struct {
	base, size       uintptr // the usable region
	rawBase, rawSize uintptr // what to munmap: the region and its guard pages
	asked, got       Kind
	page             uintptr // page size of what got: hugetlb page or base page
	node             int     // node bound with mbind, or NoNode
	locked           bool
	populated        bool         // faulted in already (bound hugetlb)
	large            bool         // a large allocation's own mapping, not an extent
	fallback         string       // why got differs from asked; "" when it does not
	src              RegionSource // where the region came from; nil: mmap'd by the arena
}

// ptrAt turns an address inside one of our mappings (outside the Go heap,
// never moved) back into a pointer.
func ptrAt(addr uintptr) unsafe.Pointer { return unsafe.Add(unsafe.Pointer(nil), addr) }

// bytesAt is the n bytes at addr as a slice; the caller keeps it within a
// live mapping.
func bytesAt(addr, n uintptr) []byte { return unsafe.Slice((*byte)(ptrAt(addr)), n) }

// notLinux is the error New returns on an OS other than Linux (goos/goarch,
// as runtime.GOOS and runtime.GOARCH name it): arenas are built from
// mmap, madvise and mbind, and read back from /proc/self/smaps and
// move_pages, all Linux-only. The caller uses the Go heap instead (the
// engine logs this as the reason and does). It wraps errors.ErrUnsupported.
func notLinux(goos, goarch string) error {
	return fmt.Errorf("buffers: arenas need Linux (mmap, madvise, mbind); this is %s/%s: %w", goos, goarch, errors.ErrUnsupported)
}
