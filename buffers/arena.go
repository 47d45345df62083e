package buffers

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Kind is the backing an arena asks for. Each kind is the start of a
// fallback chain: Hugepage → THP → Plain; what a mapping actually got is
// reported per extent (Report), never assumed.
//
// There is no "heap" kind: memory from the Go heap is what you get by not
// using this package (memory.NewGoAllocator); the settings layer maps
// `arena: heap` to that and every other value to a Kind.
type Kind int

const (
	// KindPlain is anonymous memory in base pages (4 KiB), with transparent
	// hugepages turned off for it (MADV_NOHUGEPAGE), so that it stays plain
	// even when THP is "always".
	KindPlain Kind = iota
	// KindTHP is anonymous memory advised with MADV_HUGEPAGE and aligned to
	// 2 MiB: the kernel backs it with transparent hugepages when it can
	// (THP "always" or "madvise"; none when "never").
	KindTHP
	// KindHugepage is MAP_HUGETLB memory from the kernel's reserved pool
	// (/proc/sys/vm/nr_hugepages for 2 MiB pages; 1 GiB pages when
	// ArenaConfig.Page asks).
	KindHugepage
)

// String returns the name used in settings and reports: "plain", "thp",
// "hugepage".
func (k Kind) String() string {
	switch k {
	case KindPlain:
		return "plain"
	case KindTHP:
		return "thp"
	case KindHugepage:
		return "hugepage"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ParseKind is the inverse of String; it also accepts "hugetlb" for
// KindHugepage. "heap" is not a kind (see Kind).
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "plain":
		return KindPlain, nil
	case "thp":
		return KindTHP, nil
	case "hugepage", "hugetlb":
		return KindHugepage, nil
	}
	return 0, fmt.Errorf("buffers: unknown arena kind %q (known: plain, thp, hugepage)", s)
}

// NoNode stands for "no node" in reports (an unbound arena, no pages
// observed). An arena is unbound unless ArenaConfig.Bind is set: pages then
// come from the node of the CPU that first touches them (the kernel's
// default policy).
const NoNode = -1

// Sizes of the pages an arena can ask for.
const (
	Page2MiB = 2 << 20
	Page1GiB = 1 << 30
)

// Defaults applied by New to zero fields.
const (
	DefaultExtentSize = 64 << 20
	DefaultSoftWait   = 50 * time.Millisecond
	DefaultLargeCache = 256 << 20
)

// ArenaConfig says what memory an Allocator is made of. The zero value is a
// plain-page arena, unbound, with no budget.
type ArenaConfig struct {
	// Kind is the backing asked for, the start of the fallback chain.
	Kind Kind
	// Page is the hugepage size for KindHugepage: Page2MiB (the default, 0)
	// or Page1GiB. For the other kinds it must be 0.
	Page int64
	// Bind binds every mapping to NUMA node Node with mbind(MPOL_BIND);
	// without it Node is ignored and the arena is unbound. A node the
	// machine does not have is not an error: New logs why and carries on
	// unbound, and Report says so.
	Bind bool
	Node int
	// Budget is the hard limit on bytes in use (blocks handed out, counted
	// at their class size); 0 means none. An Allocate beyond it panics with
	// a *BudgetError.
	Budget int64
	// SoftBudget is where backpressure starts; 0 means none. An Allocate
	// that would go above it waits for frees, at most SoftWait, then goes
	// ahead anyway.
	SoftBudget int64
	// SoftWait bounds each wait at the soft budget; 0 means DefaultSoftWait.
	SoftWait time.Duration
	// Lock mlocks every mapping (it then never swaps; as a side effect the
	// pages are faulted in).
	Lock bool
	// Prefault faults every page in when the mapping is made
	// (MADV_POPULATE_WRITE, or a write per page on kernels without it), so
	// that the hot path never takes a page fault.
	Prefault bool
	// ExtentSize is the size of each region size classes are carved from;
	// 0 means DefaultExtentSize. It is rounded up to the page size and to at
	// least MaxClassSize, and down to the budget when that is smaller.
	ExtentSize int64
	// LargeCache is how many bytes of freed large allocations (above
	// MaxClassSize, mapped on their own) are kept mapped for reuse; 0 means
	// DefaultLargeCache, negative means none.
	LargeCache int64
	// Logger receives each fallback once, with its reason; nil means
	// slog.Default().
	Logger *slog.Logger
	// Regions, when set, supplies the arena's memory instead of mmap (a
	// shared segment: see RegionSource). Kind then says what the source's
	// memory is backed by (for reports), and Bind, Lock and Prefault must
	// be off: the source's memory is placed and backed as it is.
	Regions RegionSource
	// QuietFallback logs fallbacks at Info instead of Warn: for an arena
	// nobody asked for (the default hugepage arena on a machine without
	// hugepages reserved is expected to fall back, and saying so on every
	// run is noise). The Report still gives every fallback and its reason.
	QuietFallback bool
}

// Arena is the set of mappings behind an Allocator: the extents its size
// classes are carved from and the mappings of its large allocations. It is
// created by New and unmapped by Allocator.Close.
type Arena struct {
	cfg      ArenaConfig // normalized
	log      *slog.Logger
	pageSize uintptr // of the kind asked for: 4 KiB, 2 MiB or 1 GiB
	osPage   uintptr

	mu      sync.Mutex
	maps    map[uintptr]*mapping // every live mapping, by base address
	logged  map[string]bool      // fallback steps already logged
	reasons []string             // distinct fallback reasons, in order met
	unbound string               // why mbind was given up, if it was

	// hugetlbFailed is set once a hugetlb mapping could not be made: large
	// allocations are then rounded to the THP size, not the hugepage size
	// asked (which may be 1 GiB).
	hugetlbFailed atomic.Bool
	mapped        atomic.Int64
	byKind        [3]atomic.Int64 // bytes mapped by the kind got
	extentsN      [3]atomic.Int64 // mappings by the kind got
}

// newArena checks and normalizes cfg; it maps nothing yet. On an OS other
// than Linux it fails (after checking cfg) with an error that says so.
func newArena(cfg ArenaConfig) (*Arena, error) {
	if cfg.Kind < KindPlain || cfg.Kind > KindHugepage {
		return nil, fmt.Errorf("buffers: arena kind %v not supported", cfg.Kind)
	}
	osPage := uintptr(os.Getpagesize())
	page := osPage
	switch cfg.Kind {
	case KindHugepage:
		switch cfg.Page {
		case 0, Page2MiB:
			cfg.Page = Page2MiB
		case Page1GiB:
		default:
			return nil, fmt.Errorf("buffers: hugepage size %s not supported (2 MiB or 1 GiB)", humanBytes(cfg.Page))
		}
		page = uintptr(cfg.Page)
	case KindTHP:
		if cfg.Page != 0 && cfg.Page != Page2MiB {
			return nil, fmt.Errorf("buffers: page size %s with arena kind thp: transparent hugepages are 2 MiB (leave Page 0)", humanBytes(cfg.Page))
		}
		cfg.Page = 0
	default:
		if cfg.Page != 0 && cfg.Page != int64(osPage) {
			return nil, fmt.Errorf("buffers: page size %s with arena kind plain: leave Page 0", humanBytes(cfg.Page))
		}
		cfg.Page = 0
	}
	if !cfg.Bind {
		cfg.Node = NoNode
	} else if cfg.Node < 0 {
		return nil, fmt.Errorf("buffers: bind to NUMA node %d: want a node id ≥ 0", cfg.Node)
	}
	if cfg.Budget < 0 || cfg.SoftBudget < 0 || cfg.ExtentSize < 0 || cfg.SoftWait < 0 {
		return nil, fmt.Errorf("buffers: negative size in arena config %+v", cfg)
	}
	if cfg.Regions != nil && (cfg.Bind || cfg.Lock || cfg.Prefault) {
		return nil, fmt.Errorf("buffers: an arena over a region source cannot bind, lock or prefault (the source's memory is placed as it is)")
	}
	if cfg.Budget > 0 && cfg.SoftBudget > cfg.Budget {
		return nil, fmt.Errorf("buffers: soft budget %s above the hard budget %s", humanBytes(cfg.SoftBudget), humanBytes(cfg.Budget))
	}
	if cfg.SoftWait == 0 {
		cfg.SoftWait = DefaultSoftWait
	}
	if cfg.LargeCache == 0 {
		cfg.LargeCache = DefaultLargeCache
	}
	if cfg.ExtentSize == 0 {
		cfg.ExtentSize = DefaultExtentSize
	}
	if cfg.Budget > 0 && cfg.ExtentSize > cfg.Budget {
		cfg.ExtentSize = cfg.Budget
	}
	align := max(int64(page), granule, MaxClassSize)
	cfg.ExtentSize = roundUp(max(cfg.ExtentSize, MaxClassSize), align)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg.Logger = log
	if err := arenaSupported(); err != nil { // checked after cfg: a bad config is an error everywhere
		return nil, err
	}
	return &Arena{
		cfg:      cfg,
		log:      log,
		pageSize: page,
		osPage:   osPage,
		maps:     make(map[uintptr]*mapping),
		logged:   make(map[string]bool),
	}, nil
}

// Config returns the arena's configuration with defaults applied.
func (ar *Arena) Config() ArenaConfig { return ar.cfg }

// Mapped returns the bytes currently mapped (extents, large allocations
// and the large cache).
func (ar *Arena) Mapped() int64 { return ar.mapped.Load() }

// fallback records a reason the arena got less than it asked for, and logs
// it the first time its step (e.g. "hugetlb", "thp", "mbind") fails.
func (ar *Arena) fallback(step, reason string) {
	ar.mu.Lock()
	first := !ar.logged[step]
	ar.logged[step] = true
	if first {
		ar.reasons = append(ar.reasons, reason)
	}
	ar.mu.Unlock()
	if first {
		level := slog.LevelWarn
		if ar.cfg.QuietFallback {
			level = slog.LevelInfo
		}
		ar.log.Log(context.Background(), level, "buffers: arena fallback", "step", step, "reason", reason)
	}
}

// add and remove keep the set of live mappings and the mapped counters.
func (ar *Arena) add(m *mapping) {
	ar.mu.Lock()
	ar.maps[m.base] = m
	ar.mu.Unlock()
	ar.mapped.Add(int64(m.size))
	ar.byKind[m.got].Add(int64(m.size))
	ar.extentsN[m.got].Add(1)
}

func (ar *Arena) remove(m *mapping) error {
	ar.mu.Lock()
	delete(ar.maps, m.base)
	ar.mu.Unlock()
	ar.mapped.Add(-int64(m.size))
	ar.byKind[m.got].Add(-int64(m.size))
	ar.extentsN[m.got].Add(-1)
	return m.unmap()
}

// Extents returns the arena's extents mapped so far (the regions size
// classes are carved from; large allocations' own mappings are not
// included), sorted by address. It is what an io_uring ring registers as
// fixed buffers (IORING_REGISTER_BUFFERS) so reads land straight in the
// Arrow buffers carved from them. The slices stay valid until
// Allocator.Close; extents mapped later are not in this list.
func (ar *Arena) Extents() [][]byte {
	ar.mu.Lock()
	out := make([][]byte, 0, len(ar.maps))
	for _, m := range ar.maps {
		if !m.large {
			out = append(out, bytesAt(m.base, m.size))
		}
	}
	ar.mu.Unlock()
	slices.SortFunc(out, func(a, b []byte) int {
		return cmp.Compare(uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	})
	return out
}

// closeAll unmaps every mapping left.
func (ar *Arena) closeAll() error {
	ar.mu.Lock()
	ms := make([]*mapping, 0, len(ar.maps))
	for _, m := range ar.maps {
		ms = append(ms, m)
	}
	ar.mu.Unlock()
	var first error
	for _, m := range ms {
		if err := ar.remove(m); err != nil && first == nil {
			first = err
		}
	}
	return first
}
