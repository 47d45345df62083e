package buffers

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// A Pool is memory a run allocates batches from: an arena of hugepages, the
// Go heap, a shared-memory segment, a set of registered I/O buffers. Pools
// are made by kinds registered with RegisterKind (the database/sql driver
// pattern), so a package can supply one without this package importing it.
//
// Nobody allocates from a Pool directly: each owner (an operator) gets an
// Account, which attributes what it allocates to the owner and holds it
// under the owner's own limit and the pool's budget.
type Pool interface {
	// Kind is the registered kind that made the pool.
	Kind() string
	// Account returns the allocator owner allocates through, held under
	// limit bytes (0: only the pool's budget). The same owner always gets
	// the same account (the first call's limit stands). Cheap, but not
	// free: call it when an operator starts, not per batch.
	Account(owner string, limit int64) Account
	// Usage returns the pool's counters; cheap enough for a metrics pump.
	Usage() Usage
	// Report says what the pool asked for and got, for a run's summary. It
	// may read from the kernel: call it once, at the end.
	Report() PoolReport
	// Close releases the pool's memory. A pool that would unmap memory
	// still in use (an arena with allocations or reservations outstanding)
	// releases nothing and returns an error saying so; a pool on the Go
	// heap, whose memory the collector frees, reports reservations still
	// held.
	Close() error
}

// Account is one owner's allocator in a Pool: arrow-go's memory.Allocator
// (whose Allocate panics with a *BudgetError beyond a hard budget, as it
// cannot return an error) and the Budget the owner can plan with.
type Account interface {
	memory.Allocator
	Budget
}

// Extenter is implemented by the accounts of arena pools: Extents is the
// arena's extents mapped so far (Arena.Extents), the regions an io_uring
// ring registers as fixed buffers so requests on buffers carved from them
// skip the per-request page pinning. Extents mapped later are not in it.
type Extenter interface {
	Extents() [][]byte
}

// Unzeroed is implemented by the accounts of arena pools:
// AllocateUnzeroed is Allocate (memory.Allocator's contract: zeroed bytes)
// without clearing a block that is being reused, for a caller that writes
// every byte before anything reads it — a file read straight into the
// buffer. Clearing costs a pass over the memory as long as the read's own
// copy on a file in memory (the arrow source's read-ahead on tmpfs spent
// a third of its CPU on it).
type Unzeroed interface {
	AllocateUnzeroed(size int) []byte
}

// AllocateUnzeroed is n bytes from mem for a caller that writes every
// byte it later reads: mem's AllocateUnzeroed where it has one (Unzeroed),
// else its Allocate. Free them to mem.
func AllocateUnzeroed(mem memory.Allocator, n int) []byte {
	if u, ok := mem.(Unzeroed); ok {
		return u.AllocateUnzeroed(n)
	}
	return mem.Allocate(n)
}

// UnzeroedBuffer is an Arrow buffer of n bytes from mem for a caller that
// writes all n before anything reads one (a receive or a read straight
// into it): taken with AllocateUnzeroed when mem has it, else with
// Allocate. Its capacity is n rounded up to 64 bytes, as arrow-go's
// resizable buffers have, and the bytes past n are cleared; Release
// frees it to mem.
func UnzeroedBuffer(mem memory.Allocator, n int) *memory.Buffer {
	if _, ok := mem.(Unzeroed); !ok {
		b := memory.NewResizableBuffer(mem)
		b.Resize(n)
		return b
	}
	raw := AllocateUnzeroed(mem, (n+63)&^63)
	clear(raw[n:])
	b := memory.NewBufferWithAllocator(raw, mem)
	b.ResizeNoShrink(n) // the length; the capacity stays
	return b
}

// Budget is what an owner can see and do about its memory: what a
// spilling aggregate, join or sort needs to decide when to spill.
type Budget interface {
	// Used is the bytes the owner has in use: allocated and not freed, and
	// reserved.
	Used() int64
	// Peak is the most bytes the owner had in use at once.
	Peak() int64
	// Limit is the owner's own limit, 0 for none (the pool's budget still
	// applies; see Available).
	Limit() int64
	// Available is how many more bytes the owner may take now under both
	// its own limit and the pool's budget; math.MaxInt64 when neither has
	// one.
	Available() int64
	// Reserve claims n bytes against the budgets without allocating them,
	// or returns a *BudgetError (errors.Is ErrBudgetExceeded) and claims
	// nothing. Reserved bytes count as used until Unreserve.
	Reserve(n int64) error
	// Unreserve gives back n reserved bytes.
	Unreserve(n int64)
	// TryAllocate is Allocate returning the *BudgetError instead of
	// panicking.
	TryAllocate(size int) ([]byte, error)
}

// Usage is a pool's counters.
type Usage struct {
	InUse, Peak int64 // bytes allocated or reserved, now and at most
	Mapped      int64 // bytes the pool holds from the OS (0 for the heap)
	// MappedBy splits Mapped by what backs it: hugetlb, thp, plain, shm...
	MappedBy []Backed
}

// Backed is a byte count by backing.
type Backed struct {
	Backing string
	Bytes   int64
}

// PoolReport is what a pool asked for and what it got, read back from the
// kernel where the pool can (smaps, move_pages), not assumed. It is the
// memory report of a run's summary.
type PoolReport struct {
	Arena      string           `json:"arena"`                // the kind asked: hugepage, thp, plain, heap, caller, ...
	Page       int64            `json:"page_bytes,omitempty"` // hugepage size asked
	Node       int              `json:"node"`                 // NUMA node asked, -1 for none
	NodeSeen   int              `json:"node_observed"`        // node holding the sampled pages, -1 if none were present
	Mapped     int64            `json:"mapped_bytes"`         // bytes mapped at the end
	Huge       int64            `json:"huge_bytes"`           // of which observed on hugepages (hugetlb or THP)
	ByBacking  map[string]int64 `json:"mapped_by_backing"`    // mapped bytes by what each mapping got: hugetlb, thp, plain
	Peak       int64            `json:"peak_bytes"`           // most bytes allocated at once
	Budget     int64            `json:"budget_bytes,omitempty"`
	SoftBudget int64            `json:"soft_budget_bytes,omitempty"`
	SoftWaits  int64            `json:"soft_budget_waits,omitempty"` // allocations that waited on the soft budget
	Path       string           `json:"path,omitempty"`              // the file or device behind a shared pool
	Fallbacks  []string         `json:"fallbacks,omitempty"`         // why it got less than asked
	// Operators lists who allocated from the pool (filled in by the engine).
	Operators []string `json:"operators,omitempty"`
}

// PoolConfig says what pool to make: the kind and its options. Kinds ignore
// the options that mean nothing to them; a kind refuses options it cannot
// honour (heap: a soft budget, a node, lock).
type PoolConfig struct {
	// Kind names a registered kind: hugepage, thp, plain, heap, or one
	// another package registered (cxl).
	Kind string
	// Page is the hugepage size for kind hugepage: Page2MiB (0) or Page1GiB.
	Page int64
	// Bind binds the pool's memory to NUMA node Node; the zero value is no
	// binding.
	Bind bool
	Node int
	// Budget is the hard limit on bytes in use, 0 for none; SoftBudget
	// where allocations start waiting for frees, 0 for none.
	Budget, SoftBudget int64
	// Lock mlocks the memory; Prefault faults it in when mapped.
	Lock, Prefault bool
	// Path is the file or device behind a shared pool (cxl: /dev/dax0.0, a
	// file on tmpfs or hugetlbfs); Size its size.
	Path string
	Size int64
	// Logger receives each fallback once, with its reason.
	Logger *slog.Logger
	// QuietFallback logs the fallbacks at Info instead of Warn (see
	// ArenaConfig.QuietFallback): the engine sets it for the default
	// memory, and package pipelines unless the file names an arena.
	QuietFallback bool
}

// KindSpec declares a kind of pool.
type KindSpec struct {
	Name string // snake_case, unique
	Doc  string // one line, for `zflow doctor` and the reference
	// Path says the kind maps a file or device named by PoolConfig.Path
	// (which it then requires); other kinds refuse a path.
	Path bool
	// New makes a pool. It fails only when no memory at all can be had;
	// getting less than asked is logged and shown in the pool's Report.
	New func(cfg PoolConfig) (Pool, error)
}

var kinds = struct {
	sync.RWMutex
	m map[string]KindSpec
}{m: map[string]KindSpec{}}

// RegisterKind adds a kind of pool; it panics on a duplicate or invalid
// spec (a programming error found at init).
func RegisterKind(k KindSpec) {
	if k.Name == "" || k.Name != strings.ToLower(k.Name) || strings.ContainsAny(k.Name, " -.") || k.New == nil {
		panic(fmt.Sprintf("buffers: register kind %q: want a snake_case name and New", k.Name))
	}
	kinds.Lock()
	defer kinds.Unlock()
	if _, dup := kinds.m[k.Name]; dup {
		panic(fmt.Sprintf("buffers: register kind %q: already registered", k.Name))
	}
	kinds.m[k.Name] = k
}

// KindNames lists the registered kinds, sorted.
func KindNames() []string {
	kinds.RLock()
	defer kinds.RUnlock()
	out := make([]string, 0, len(kinds.m))
	for n := range kinds.m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// LookupKind finds a registered kind; the error lists the known ones.
func LookupKind(name string) (KindSpec, error) {
	kinds.RLock()
	k, ok := kinds.m[name]
	kinds.RUnlock()
	if !ok {
		return k, fmt.Errorf("unknown memory kind %q (known: %s)", name, strings.Join(KindNames(), ", "))
	}
	return k, nil
}

// NewPool makes a pool of cfg.Kind.
func NewPool(cfg PoolConfig) (Pool, error) {
	k, err := LookupKind(cfg.Kind)
	if err != nil {
		return nil, fmt.Errorf("buffers: %w", err)
	}
	p, err := k.New(cfg)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func init() {
	for _, k := range []struct {
		kind Kind
		doc  string
	}{
		{KindHugepage, "an arena of MAP_HUGETLB pages (2 MiB or 1 GiB), falling back to thp, then plain pages"},
		{KindTHP, "an arena of anonymous memory with transparent hugepages (madvise MADV_HUGEPAGE)"},
		{KindPlain, "an arena of plain mmap'd pages"},
	} {
		RegisterKind(KindSpec{Name: k.kind.String(), Doc: k.doc, New: func(cfg PoolConfig) (Pool, error) {
			return New(ArenaConfig{
				Kind: k.kind, Page: cfg.Page, Bind: cfg.Bind, Node: cfg.Node,
				Budget: cfg.Budget, SoftBudget: cfg.SoftBudget, Lock: cfg.Lock, Prefault: cfg.Prefault,
				Logger: cfg.Logger, QuietFallback: cfg.QuietFallback,
			})
		}})
	}
	RegisterKind(KindSpec{Name: "heap", Doc: "the Go heap (no arena): per-operator accounting and a hard budget only",
		New: func(cfg PoolConfig) (Pool, error) { return NewHeapPool("heap", nil, cfg) }})
}

// The Allocator is a Pool: its accounts are its For views with a limit.

// Kind is the arena kind asked.
func (a *Allocator) Kind() string { return a.ar.cfg.Kind.String() }

// Account returns owner's view with its own limit (0: none). The first
// call for an owner sets the limit.
func (a *Allocator) Account(owner string, limit int64) Account {
	a.ownerMu.Lock()
	defer a.ownerMu.Unlock()
	return a.viewLocked(owner, limit)
}

// Usage reads the allocator's counters without stopping it.
func (a *Allocator) Usage() Usage {
	u := Usage{InUse: a.InUse(), Peak: a.use.peak.Load(), Mapped: a.ar.Mapped()}
	for k := KindPlain; k <= KindHugepage; k++ {
		if n := a.ar.byKind[k].Load(); n > 0 {
			u.MappedBy = append(u.MappedBy, Backed{Backing: backingName(k), Bytes: n})
		}
	}
	return u
}

// Report reads back what the arena got (Backing) and adds the budgets and
// peaks.
func (a *Allocator) Report() PoolReport {
	rep, st := a.Backing(), a.Stats()
	cfg := a.ar.Config()
	m := PoolReport{
		Arena: rep.Kind.String(), Node: rep.Node, NodeSeen: NoNode,
		Mapped: rep.Mapped, Huge: rep.Huge, ByBacking: map[string]int64{},
		Peak: st.Peak, Budget: cfg.Budget, SoftBudget: cfg.SoftBudget,
		SoftWaits: st.SoftWaits, Fallbacks: rep.Fallbacks,
	}
	if rep.Kind == KindHugepage {
		m.Page = rep.Page
	}
	present := map[int]int{}
	for _, e := range rep.Extents {
		if e.Backing != "" {
			m.ByBacking[e.Backing] += e.Size
		} else {
			m.ByBacking[backingName(e.Got)] += e.Size
		}
		if e.NodeObserved != NoNode {
			present[e.NodeObserved] += e.Present
		}
	}
	best := 0
	for n, c := range present {
		if c > best || (c == best && n < m.NodeSeen) {
			m.NodeSeen, best = n, c
		}
	}
	if rep.Unbound != "" {
		m.Fallbacks = append(m.Fallbacks, rep.Unbound)
	}
	if rep.ReadErr != "" {
		m.Fallbacks = append(m.Fallbacks, "could not read back the mappings: "+rep.ReadErr)
	}
	return m
}

// backingName names a mapping's backing as reports and metrics do.
func backingName(k Kind) string {
	switch k {
	case KindHugepage:
		return "hugetlb"
	case KindTHP:
		return "thp"
	}
	return "plain"
}

// The ownerView is an Account.

// Used may count, for an owner without a limit, blocks it freed that wait
// in a shard's slot for its next allocation (one per shard and class).
func (v *ownerView) Used() int64  { return v.o.use.inUse() }
func (v *ownerView) Limit() int64 { return v.o.use.limit }
func (v *ownerView) Peak() int64  { return v.o.use.Peak() }

func (v *ownerView) Available() int64 {
	return min(v.o.use.room(), room(&v.a.use.limited))
}

func (v *ownerView) Reserve(n int64) error {
	if n < 0 {
		return fmt.Errorf("buffers: reserve %d bytes: negative", n)
	}
	if err := v.a.chargeNow(n, int(min(n, math.MaxInt)), v.o); err != nil {
		return err
	}
	return nil
}

func (v *ownerView) Unreserve(n int64) {
	if n <= 0 {
		return
	}
	v.a.use.uncharge(&v.o.use, n)
	v.a.wakeSoft()
}

func (v *ownerView) TryAllocate(size int) (b []byte, err error) {
	if size < 0 {
		return nil, fmt.Errorf("buffers: allocate %d bytes: negative", size)
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(error) // a budget refused, or the OS had no memory to map
			if !ok {
				panic(r)
			}
			b, err = nil, e
		}
	}()
	return v.a.alloc(size, v.o, true), nil
}

// room is what is left under s's own limit, math.MaxInt64 without one.
func (s *share) room() int64 {
	if s.limit == 0 {
		return math.MaxInt64
	}
	return max(0, s.limit-s.inUse())
}

// room is what is left under l's limit, math.MaxInt64 without one.
func room(l *limited) int64 {
	if l.limit == 0 {
		return math.MaxInt64
	}
	return max(0, l.limit-l.inUse.Load())
}
