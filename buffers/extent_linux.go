package buffers

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/zflowdev/zflow/topology"
	"golang.org/x/sys/unix"
)

// The mapping of one region, and the fallback chain behind it:
//
//	MAP_HUGETLB (2 MiB, or 1 GiB when asked)  hugetlb pool, reserved at mmap time
//	  → anonymous, 2 MiB aligned, madvise(MADV_HUGEPAGE)   transparent hugepages
//	  → anonymous, base pages (MADV_NOHUGEPAGE when plain was asked)
//
// then mbind to the node, mlock, prefault — each optional, each failure
// logged once and carried on without. The region is mapped outside the Go
// heap; the GC neither scans nor frees it, so it may hold raw addresses
// (the free lists live in it).

// Paths read to explain a fallback; variables for tests.
var (
	thpEnabledPath = "/sys/kernel/mm/transparent_hugepage/enabled"
	hugepagesDir   = "/sys/kernel/mm/hugepages"
)

// arenaSupported reports whether this OS can map arenas: Linux can.
func arenaSupported() error { return nil }

func (m *mapping) unmap() error {
	if m.src != nil {
		return m.src.Give(bytesAt(m.base, m.size))
	}
	if err := unix.MunmapPtr(ptrAt(m.rawBase), m.rawSize); err != nil {
		return fmt.Errorf("buffers: munmap %#x+%d: %w", m.rawBase, m.rawSize, err)
	}
	return nil
}

// mapRegion maps at least size bytes following the fallback chain, then
// binds, locks and prefaults them as configured. Only the last step of the
// chain failing (plain anonymous memory) is an error.
func (ar *Arena) mapRegion(size uintptr, large bool) (*mapping, error) {
	if ar.cfg.Regions != nil {
		return ar.takeRegion(size, large)
	}
	cfg := &ar.cfg
	var (
		m       *mapping
		reasons []string
	)
	if cfg.Kind == KindHugepage {
		sz := roundUp(size, ar.pageSize)
		base, err := mmapHugetlb(sz, ar.pageSize)
		if err == nil {
			m = &mapping{base: base, size: sz, rawBase: base, rawSize: sz, got: KindHugepage, page: ar.pageSize, node: NoNode}
			if r := ar.bindHugetlb(m); r != "" {
				_ = m.unmap()
				m = nil
				reasons = append(reasons, r)
				ar.fallback("hugetlb", r)
			}
		} else {
			r := ar.hugetlbReason(err, sz)
			reasons = append(reasons, r)
			ar.fallback("hugetlb", r)
		}
		if m == nil {
			ar.hugetlbFailed.Store(true)
			if !large && ar.pageSize > thpPMD {
				// An extent rounded to a 1 GiB page, falling back: map (and
				// prefault) the default extent, not a whole GiB.
				size = min(size, DefaultExtentSize)
			}
		}
	}
	if m == nil && cfg.Kind >= KindTHP {
		sz := roundUp(size, thpPMD)
		if mode := thpMode(); mode == "never" {
			r := fmt.Sprintf("transparent hugepages: %s is [never]; using plain pages", thpEnabledPath)
			reasons = append(reasons, r)
			ar.fallback("thp", r)
		} else {
			mm, err := mmapAligned(sz, thpPMD, ar.osPage)
			if err != nil {
				return nil, fmt.Errorf("buffers: map %s: %w", humanBytes(int64(sz)), err)
			}
			m = mm
			m.got, m.page = KindTHP, ar.osPage
			if err := unix.Madvise(bytesAt(m.base, m.size), unix.MADV_HUGEPAGE); err != nil {
				r := fmt.Sprintf("madvise(MADV_HUGEPAGE) %s: %v (%s); using plain pages", humanBytes(int64(sz)), err, errnoName(err))
				reasons = append(reasons, r)
				ar.fallback("thp", r)
				m.got = KindPlain
			}
		}
	}
	if m == nil {
		sz := roundUp(size, ar.osPage)
		mm, err := mmapAligned(sz, thpPMD, ar.osPage)
		if err != nil {
			return nil, fmt.Errorf("buffers: map %s: %w", humanBytes(int64(sz)), err)
		}
		m = mm
		m.got, m.page = KindPlain, ar.osPage
		if cfg.Kind == KindPlain {
			// Plain means plain, even where THP is "always". Not fatal: the
			// report shows any hugepages got anyway.
			if err := unix.Madvise(bytesAt(m.base, m.size), unix.MADV_NOHUGEPAGE); err != nil && !errors.Is(err, unix.EINVAL) {
				ar.fallback("nohugepage", fmt.Sprintf("madvise(MADV_NOHUGEPAGE): %v; plain mappings may get transparent hugepages", err))
			}
		}
	}
	m.asked, m.large = cfg.Kind, large
	if m.got != KindHugepage {
		m.node = NoNode
	}
	m.fallback = strings.Join(reasons, "; ")

	if cfg.Node >= 0 && m.node != cfg.Node {
		ar.mu.Lock()
		unbound := ar.unbound
		ar.mu.Unlock()
		if unbound == "" {
			if err := topology.Mbind(m.base, m.size, cfg.Node, 0); err != nil {
				r := fmt.Sprintf("mbind to NUMA node %d: %v; continuing unbound", cfg.Node, err)
				ar.mu.Lock()
				ar.unbound = r
				ar.mu.Unlock()
				ar.fallback("mbind", r)
			} else {
				m.node = cfg.Node
			}
		}
	}
	if cfg.Lock {
		if err := unix.Mlock(bytesAt(m.base, m.size)); err != nil {
			ar.fallback("mlock", fmt.Sprintf("mlock %s: %v (%s; see ulimit -l, RLIMIT_MEMLOCK, CAP_IPC_LOCK); continuing unlocked",
				humanBytes(int64(m.size)), err, errnoName(err)))
		} else {
			m.locked = true
		}
	}
	if cfg.Prefault && !m.locked && !m.populated { // mlock has faulted everything in already
		ar.prefault(m)
	}
	ar.add(m)
	return m, nil
}

// bindHugetlb binds a fresh hugetlb mapping to the configured node and
// faults it in at once. The pool reservation mmap made is machine-wide, not
// per node: a bound mapping whose node's pool is short would otherwise
// SIGBUS on first touch. It returns why the mapping cannot be used ("" when
// it can, including when binding is not asked or was given up: the general
// step then reports it).
func (ar *Arena) bindHugetlb(m *mapping) string {
	node := ar.cfg.Node
	ar.mu.Lock()
	unbound := ar.unbound
	ar.mu.Unlock()
	if node < 0 || unbound != "" {
		return ""
	}
	if err := topology.Mbind(m.base, m.size, node, 0); err != nil {
		return "" // the general mbind step fails the same way and says why
	}
	m.node = node
	if err := unix.Madvise(bytesAt(m.base, m.size), unix.MADV_POPULATE_WRITE); err != nil {
		return fmt.Sprintf("MAP_HUGETLB %s bound to node %d: cannot fault the pages in (%v: the node's pool is short, or the kernel predates MADV_POPULATE_WRITE); using THP",
			humanBytes(int64(m.size)), node, err)
	}
	m.populated = true
	return ""
}

// prefault faults every page of m in with MADV_POPULATE_WRITE (Linux 5.14),
// or by writing a zero to each page where the kernel lacks it. A hugetlb
// mapping is never touched by hand: its pages are reserved, but a failure
// there would be SIGBUS, so only the madvise is tried.
func (ar *Arena) prefault(m *mapping) {
	err := unix.Madvise(bytesAt(m.base, m.size), unix.MADV_POPULATE_WRITE)
	if err == nil {
		return
	}
	if m.got == KindHugepage || !errors.Is(err, unix.EINVAL) {
		ar.fallback("prefault", fmt.Sprintf("madvise(MADV_POPULATE_WRITE) %s: %v; pages fault in on first touch",
			humanBytes(int64(m.size)), err))
		return
	}
	ar.fallback("prefault", "madvise(MADV_POPULATE_WRITE) not supported by this kernel; prefaulting by writing a byte per page")
	b := bytesAt(m.base, m.size)
	for i := uintptr(0); i < m.size; i += m.page {
		b[i] = 0
	}
}

// mmapHugetlb maps size bytes (a multiple of page) of private anonymous
// hugetlb memory. The kernel reserves the pages at mmap time, so a pool too
// small fails here with ENOMEM rather than later with SIGBUS. Hugetlb
// mappings come aligned to their page size and never merge with a
// neighbour, so they need no guard pages.
func mmapHugetlb(size, page uintptr) (uintptr, error) {
	flags := unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_HUGETLB
	if page == Page1GiB {
		flags |= unix.MAP_HUGE_1GB
	} else {
		flags |= unix.MAP_HUGE_2MB
	}
	p, err := unix.MmapPtr(-1, 0, nil, size, unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		return 0, err
	}
	return uintptr(p), nil
}

// mmapAligned maps size bytes of private anonymous memory at an address
// aligned to align, between two PROT_NONE guard pages. It maps more than
// needed and unmaps the slack: no window where another thread could map
// into the range. The guards keep the kernel from merging the region with
// a neighbouring mapping, so /proc/self/smaps shows it on its own.
func mmapAligned(size, align, page uintptr) (*mapping, error) {
	total := size + align + 2*page
	p, err := unix.MmapPtr(-1, 0, nil, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	raw := uintptr(p)
	base := roundUp(raw+page, align)
	lo, hi := base-page, base+size+page // guards included
	if lo > raw {
		if err := unix.MunmapPtr(ptrAt(raw), lo-raw); err != nil {
			_ = unix.MunmapPtr(ptrAt(raw), total)
			return nil, fmt.Errorf("trim head: %w", err)
		}
	}
	if end := raw + total; end > hi {
		if err := unix.MunmapPtr(ptrAt(hi), end-hi); err != nil {
			_ = unix.MunmapPtr(ptrAt(lo), end-lo)
			return nil, fmt.Errorf("trim tail: %w", err)
		}
	}
	for _, g := range []uintptr{lo, base + size} {
		if err := unix.Mprotect(bytesAt(g, page), unix.PROT_NONE); err != nil {
			_ = unix.MunmapPtr(ptrAt(lo), hi-lo)
			return nil, fmt.Errorf("guard page: %w", err)
		}
	}
	return &mapping{base: base, size: size, rawBase: lo, rawSize: hi - lo}, nil
}

// hugetlbReason explains a failed MAP_HUGETLB mmap with the pool's state.
func (ar *Arena) hugetlbReason(err error, size uintptr) string {
	page := ar.pageSize
	name := humanBytes(int64(page))
	pool := fmt.Sprintf("%s/hugepages-%dkB", hugepagesDir, page>>10)
	var detail string
	if _, serr := os.Stat(pool); serr != nil {
		detail = fmt.Sprintf("no %s hugepage pool on this machine (%s missing)", name, pool)
	} else {
		free, _ := readInt64(pool + "/free_hugepages")
		total, _ := readInt64(pool + "/nr_hugepages")
		resv, _ := readInt64(pool + "/resv_hugepages")
		need := int64(size / page)
		how := "echo N > /proc/sys/vm/nr_hugepages"
		if page != Page2MiB {
			how = "echo N > " + pool + "/nr_hugepages"
		}
		detail = fmt.Sprintf("%s asked (%d pages), %d of %d %s hugepages free, %d reserved; reserve with %s",
			humanBytes(int64(size)), need, free, total, name, resv, how)
	}
	next := "THP"
	if thpMode() == "never" {
		next = "plain pages"
	}
	return fmt.Sprintf("MAP_HUGETLB %s: %s (%v; %s); using %s", strings.ReplaceAll(name, " ", ""), errnoName(err), err, detail, next)
}

// thpMode returns the bracketed word of transparent_hugepage/enabled
// ("always", "madvise", "never"), or "" when the kernel has no THP.
func thpMode() string {
	data, err := os.ReadFile(thpEnabledPath)
	if err != nil {
		return ""
	}
	s := string(data)
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return ""
	}
	return s[i+1 : j]
}

func readInt64(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}

// errnoName returns "ENOMEM" for unix.ENOMEM and so on, or "error".
func errnoName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
	}
	return "error"
}
