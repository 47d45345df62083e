package cxl

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/zflowdev/zflow/buffers"
)

// The data region is cut into extents of Header.ExtentSize; the extent
// table has one entry per extent (ExtentEntryBytes, little-endian):
//
//	off size field
//	  0    4 owner: 0 free, else the holder's participant slot + 1
//	  4    4 flags: extentDirty (used before: zeroed when claimed again)
//	  8    4 run: for the first extent of a claim, how many extents it
//	         holds (a large allocation holds several in a row); 0 otherwise
//	 12    4 zero
//
// A process claims an extent by compare-and-swap of its owner from 0, so
// several processes can take extents from one segment without a lock;
// only the owner writes an owned entry. Inside its extents a process
// allocates with package buffers' size classes, its free lists linked
// through the blocks as in any arena: no other process reads them. What
// another process needs to know — which extents a process holds, so that
// they can be reclaimed when it dies — is in the table.
const (
	extOwner = 0
	extFlags = 4
	extRun   = 8

	extentDirty = 1
)

// ErrNoSpace is wrapped by the error of a claim the segment cannot serve.
var ErrNoSpace = errors.New("no run of free extents long enough")

func (s *Segment) extentEntry(i int) int64 {
	return s.hdr.Extents.Off + int64(i)*int64(s.hdr.Extents.Bytes)
}

// claimExtents claims n free extents in a row for owner (a participant
// slot + 1, or a channel's mark) and returns the first one's index; it
// zeroes the ones used before.
func (s *Segment) claimExtents(owner uint32, n int, hint int) (int, error) {
	count := s.hdr.Extents.Count
	if n < 1 || n > count {
		return 0, fmt.Errorf("cxl: segment %s: %d extents of %d asked: %w", s.name, n, count, ErrNoSpace)
	}
	me := owner
	for tries := 0; tries < 2; tries++ {
		for start := hint % count; start+n <= count; {
			got := 0
			for got < n && s.u32(s.extentEntry(start+got)+extOwner).CompareAndSwap(0, me) {
				got++
			}
			if got == n {
				for i := start; i < start+n; i++ {
					e := s.extentEntry(i)
					if s.u32(e+extFlags).Load()&extentDirty != 0 {
						clear(s.extentBytes(i, 1))
					}
					s.u32(e + extFlags).Store(extentDirty)
					s.u32(e + extRun).Store(0)
				}
				s.u32(s.extentEntry(start) + extRun).Store(uint32(n))
				return start, nil
			}
			for i := start; i < start+got; i++ {
				s.u32(s.extentEntry(i) + extOwner).Store(0)
			}
			start += got + 1
		}
		hint = 0
	}
	return 0, fmt.Errorf("cxl: segment %s: claim %d extent(s) of %d bytes: %w (%d extents, %d free)",
		s.name, n, s.hdr.ExtentSize, ErrNoSpace, count, s.freeExtents())
}

// releaseExtents frees the claim starting at extent i, which owner holds.
func (s *Segment) releaseExtents(owner uint32, i int) error {
	if i < 0 || i >= s.hdr.Extents.Count {
		return fmt.Errorf("cxl: segment %s: release extent %d of %d", s.name, i, s.hdr.Extents.Count)
	}
	head := s.extentEntry(i)
	n := int(s.u32(head + extRun).Load())
	if n < 1 || n > s.hdr.Extents.Count-i {
		return fmt.Errorf("cxl: segment %s: extent table at offset %d: run %d from extent %d of %d", s.name, head+extRun, n, i, s.hdr.Extents.Count)
	}
	for k := i; k < i+n; k++ {
		e := s.extentEntry(k)
		if o := s.u32(e + extOwner).Load(); o != owner {
			return fmt.Errorf("cxl: segment %s: extent table at offset %d: extent %d is held by owner %#x, not %#x", s.name, e, k, o, owner)
		}
	}
	s.u32(head + extRun).Store(0)
	for k := i; k < i+n; k++ {
		s.u32(s.extentEntry(k) + extOwner).Store(0)
	}
	return nil
}

// releaseSlotExtents frees every extent slot holds (its holder died).
func (s *Segment) releaseSlotExtents(slot int) (n int) {
	me := uint32(slot + 1)
	for i := 0; i < s.hdr.Extents.Count; i++ {
		e := s.extentEntry(i)
		if s.u32(e+extOwner).Load() == me {
			s.u32(e + extRun).Store(0)
			s.u32(e + extOwner).Store(0)
			n++
		}
	}
	return n
}

func (s *Segment) freeExtents() (n int) {
	for i := 0; i < s.hdr.Extents.Count; i++ {
		if s.u32(s.extentEntry(i)+extOwner).Load() == 0 {
			n++
		}
	}
	return n
}

// extentBytes is n extents from extent i, in this mapping.
func (s *Segment) extentBytes(i, n int) []byte {
	off := s.hdr.DataOff + int64(i)*s.hdr.ExtentSize
	return s.mem[off : off+int64(n)*s.hdr.ExtentSize : off+int64(n)*s.hdr.ExtentSize]
}

// extentSource is a participant's buffers.RegionSource: an arena in this
// process whose extents are claimed from the segment.
type extentSource struct {
	seg  *Segment
	part *Participant
	mu   sync.Mutex
	next int // where the next claim starts looking
}

// Backing names the segment's memory in the pool's report: "devdax" for
// a device (whatever its page size), else by page kind as for any arena.
func (x *extentSource) Backing() string {
	switch x.seg.backing {
	case BackingDevDAX:
		return "devdax"
	case BackingHugetlbfs:
		return "hugetlb"
	}
	return "plain"
}

func (x *extentSource) Take(size uintptr, large bool) ([]byte, error) {
	es := uintptr(x.seg.hdr.ExtentSize)
	n := int((size + es - 1) / es)
	x.mu.Lock()
	defer x.mu.Unlock()
	i, err := x.seg.claimExtents(uint32(x.part.slot+1), n, x.next)
	if err != nil {
		return nil, err
	}
	x.next = i + n
	return x.seg.extentBytes(i, n), nil
}

func (x *extentSource) Give(region []byte) error {
	off := int64(uintptr(unsafe.Pointer(unsafe.SliceData(region))) - uintptr(unsafe.Pointer(unsafe.SliceData(x.seg.mem))))
	rel := off - x.seg.hdr.DataOff
	if rel < 0 || rel%x.seg.hdr.ExtentSize != 0 || off >= x.seg.hdr.DataOff+x.seg.hdr.DataBytes {
		return fmt.Errorf("cxl: segment %s: give back a region at offset %d: not the start of an extent", x.seg.name, off)
	}
	return x.seg.releaseExtents(uint32(x.part.slot+1), int(rel/x.seg.hdr.ExtentSize))
}

// Contains says whether b lies in the segment's data region, and where.
func (s *Segment) Contains(b []byte) (off int64, ok bool) {
	if len(b) == 0 || len(s.mem) == 0 {
		return 0, false
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	base := uintptr(unsafe.Pointer(unsafe.SliceData(s.mem)))
	if p < base+uintptr(s.hdr.DataOff) || p+uintptr(len(b)) > base+uintptr(s.hdr.DataOff+s.hdr.DataBytes) {
		return 0, false
	}
	return int64(p - base), true
}

// Pool is the cxl arena kind: package buffers' allocator over extents
// claimed from a segment, so every Arrow buffer an operator allocates
// lives where another process that maps the segment can read it.
type Pool struct {
	*buffers.Allocator
	seg     *Segment
	part    *Participant
	unshare func() error
}

// NewPool opens (or, with cfg.Size, makes) the segment at cfg.Path,
// attaches as a producer and returns an arena over it. Budgets apply as
// in any arena; binding, locking and prefaulting do not (the segment's
// memory is placed where its device or file system put it).
func NewPool(cfg buffers.PoolConfig) (*Pool, error) {
	if cfg.Path == "" {
		return nil, errors.New("cxl: arena cxl needs the path of a segment (a device-DAX device such as /dev/dax0.0, or a file on tmpfs or hugetlbfs)")
	}
	if cfg.Bind || cfg.Lock {
		return nil, fmt.Errorf("cxl: arena cxl on %s: a segment cannot be bound to a node or locked (its memory is where its device or file system put it)", cfg.Path)
	}
	seg, unshare, err := Share(cfg.Path, Options{Create: cfg.Size > 0, Size: cfg.Size, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	part, err := seg.Attach(RoleProducer, "arena")
	if err != nil {
		unshare()
		return nil, err
	}
	kind := buffers.KindPlain
	if seg.backing == BackingHugetlbfs || seg.backing == BackingDevDAX && seg.hdr.Align >= 2<<20 {
		kind = buffers.KindHugepage
	}
	a, err := buffers.New(buffers.ArenaConfig{
		Kind: kind, Budget: cfg.Budget, SoftBudget: cfg.SoftBudget,
		ExtentSize: seg.hdr.ExtentSize, LargeCache: -1,
		Logger: cfg.Logger, QuietFallback: cfg.QuietFallback,
		Regions: &extentSource{seg: seg, part: part},
	})
	if err != nil {
		part.Detach()
		unshare()
		return nil, err
	}
	return &Pool{Allocator: a, seg: seg, part: part, unshare: unshare}, nil
}

// Segment is the segment the pool allocates in (this process's one
// mapping of it: see Share).
func (p *Pool) Segment() *Segment { return p.seg }

// Kind is "cxl".
func (p *Pool) Kind() string { return "cxl" }

// Report is the arena's report with the segment's path.
func (p *Pool) Report() buffers.PoolReport {
	r := p.Allocator.Report()
	r.Arena, r.Path = "cxl", p.seg.name
	return r
}

// Close gives the extents back and detaches from the segment. With
// allocations outstanding it releases nothing and says so, like any arena.
func (p *Pool) Close() error {
	if err := p.Allocator.Close(); err != nil {
		return err
	}
	p.part.Detach()
	return p.unshare()
}

func init() {
	buffers.RegisterKind(buffers.KindSpec{
		Name: "cxl",
		Doc:  "an arena in a shared segment (device DAX, or a file on hugetlbfs or tmpfs) that other processes map: batches cross to them by reference",
		Path: true,
		New:  func(cfg buffers.PoolConfig) (buffers.Pool, error) { return NewPool(cfg) },
	})
}
