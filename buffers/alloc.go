package buffers

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Allocator is arrow-go's memory.Allocator over an Arena: blocks of 64 to
// 4 MiB come from size classes carved from the arena's extents and are
// recycled through sharded free lists, never given back to the OS before
// Close; larger ones get a mapping of their own (kept in a small cache
// when freed). Memory from Allocate and Reallocate is 64-byte aligned and
// zeroed, as arrow-go assumes. It is safe for concurrent use.
//
// Allocate and Free of a size-class block take one free-list mutex, a few
// atomic adds and no Go heap allocation.
type Allocator struct {
	ar      *Arena
	soft    int64 // soft budget, 0 = none
	softMax time.Duration
	// zeroOnFree clears a whole block when it is freed instead of the
	// requested bytes when it is handed out again. Off: BenchmarkZeroing
	// found the two within run-to-run noise for class-sized requests
	// (4 KiB to 1 MiB, written in full between), and clearing on reuse
	// clears only the bytes asked for (not the whole class), only for
	// blocks actually reused, right before the caller writes them; the
	// free-list link must be cleared on reuse anyway. Kept for the
	// benchmark.
	zeroOnFree bool

	classes  [numClasses]class
	carveMu  sync.Mutex                // guards extent bumps and new extents
	exts     atomic.Pointer[[]*extent] // sorted by base; replaced, never mutated
	large    largeSet
	use      total // bytes in use, under the hard budget
	reallocs atomic.Int64

	budgetFailures atomic.Int64
	softMu         sync.Mutex
	softCh         chan struct{} // closed and replaced on each free while someone waits
	softWaiters    atomic.Int64
	softWaits      atomic.Int64
	softWaited     atomic.Int64 // nanoseconds
	softTimeouts   atomic.Int64

	ownerMu     sync.Mutex
	ownerByName map[string]*ownerView
	owners      atomic.Pointer[[]*owner] // owners[id-1]; replaced, never mutated
	self        *owner                   // id 1, name ""
	closed      atomic.Bool
}

var _ memory.Allocator = (*Allocator)(nil)

// owner is one name allocations are attributed to.
type owner struct {
	id             uint32
	name           string
	use            share // bytes in use, under the owner's own limit
	budgetFailures atomic.Int64
}

// New maps the first extent of an arena as cfg says (logging each fallback
// with its reason) and returns an Allocator over it. It fails only when no
// memory at all can be mapped or cfg is invalid; getting less than asked
// (no hugepages, a missing node) is logged and reported by Backing.
func New(cfg ArenaConfig) (*Allocator, error) {
	ar, err := newArena(cfg)
	if err != nil {
		return nil, err
	}
	a := &Allocator{
		ar:          ar,
		use:         total{limited: limited{limit: ar.cfg.Budget}, exact: ar.cfg.Budget > 0 || ar.cfg.SoftBudget > 0},
		soft:        ar.cfg.SoftBudget,
		softMax:     ar.cfg.SoftWait,
		softCh:      make(chan struct{}),
		ownerByName: make(map[string]*ownerView),
	}
	nshards := 16
	for nshards < 2*runtime.GOMAXPROCS(0) && nshards < 64 {
		nshards *= 2
	}
	for i := range a.classes {
		c := &a.classes[i]
		c.size = uintptr(classSizes[i])
		blocks, bytes := spanLayout(classSizes[i])
		c.spanBlocks, c.spanBytes = blocks, uintptr(bytes)
		c.shards = make([]shard, nshards)
	}
	a.exts.Store(new([]*extent))
	a.large.init(ar.cfg.LargeCache)
	a.self = &owner{id: 1}
	a.owners.Store(&[]*owner{a.self})
	a.carveMu.Lock()
	_, err = a.newExtent(uintptr(ar.cfg.ExtentSize))
	a.carveMu.Unlock()
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Arena returns the arena behind the allocator.
func (a *Allocator) Arena() *Arena { return a.ar }

// Backing reads back what the arena's mappings got (see Arena.Backing).
func (a *Allocator) Backing() Report { return a.ar.Backing() }

// InUse returns the bytes in use now, as the budgets count them.
func (a *Allocator) InUse() int64 {
	a.flushSlots()
	if a.use.exact {
		return a.use.inUse.Load()
	}
	var n int64
	for _, o := range *a.owners.Load() {
		n += o.use.inUse()
	}
	return n
}

// Allocate returns size zeroed bytes, 64-byte aligned, with len and cap
// size. The caller owns them until it passes the same slice to Free (or
// Reallocate). It panics with a *BudgetError beyond the hard budget, and
// with an error if the OS has no memory left to map.
func (a *Allocator) Allocate(size int) []byte { return a.alloc(size, a.self, true) }

// Reallocate returns a buffer of size bytes holding the first
// min(size, len(b)) bytes of b, the rest zeroed, and frees b; like
// memory.GoAllocator it may return b's own memory when the new size stays
// within b's block. b must come from this allocator (any of its For views).
func (a *Allocator) Reallocate(size int, b []byte) []byte { return a.realloc(size, b, a.self) }

// Free gives b back. b must be a slice Allocate or Reallocate returned,
// freed once; anything else panics with an error that says why (not ours,
// not the start of a block, double free). A slice of capacity 0 is a
// no-op.
func (a *Allocator) Free(b []byte) { a.free(b) }

// For returns a view of the allocator that attributes what it allocates to
// the owner name (an operator id), in Stats and in BudgetError. Views share the
// allocator's memory and budgets, a block may be freed through any of
// them, and the same name always gives the same view. Cheap, but not free:
// call it when an operator starts, not per batch.
func (a *Allocator) For(name string) memory.Allocator {
	if name == "" {
		return a
	}
	a.ownerMu.Lock()
	defer a.ownerMu.Unlock()
	return a.viewLocked(name, 0)
}

// viewLocked returns the view of owner name, made with limit if new.
func (a *Allocator) viewLocked(name string, limit int64) *ownerView {
	if v, ok := a.ownerByName[name]; ok {
		return v
	}
	if name == "" {
		v := &ownerView{a: a, o: a.self}
		a.ownerByName[name] = v
		return v
	}
	old := *a.owners.Load()
	o := &owner{id: uint32(len(old) + 1), name: name}
	o.use.limit = max(limit, 0)
	tab := append(append(make([]*owner, 0, len(old)+1), old...), o)
	a.owners.Store(&tab)
	v := &ownerView{a: a, o: o}
	a.ownerByName[name] = v
	return v
}

// ownerView is the memory.Allocator For returns, and the Account of
// Pool.Account.
type ownerView struct {
	a *Allocator
	o *owner
}

func (v *ownerView) Allocate(size int) []byte             { return v.a.alloc(size, v.o, true) }
func (v *ownerView) Reallocate(size int, b []byte) []byte { return v.a.realloc(size, b, v.o) }
func (v *ownerView) Free(b []byte)                        { v.a.free(b) }

// AllocateUnzeroed is Allocate without clearing a reused block
// (Unzeroed).
func (v *ownerView) AllocateUnzeroed(size int) []byte { return v.a.alloc(size, v.o, false) }

// AllocateUnzeroed is Allocate without clearing a reused block
// (Unzeroed).
func (a *Allocator) AllocateUnzeroed(size int) []byte { return a.alloc(size, a.self, false) }

// Extents is the arena's extents mapped so far (Arena.Extents), for an
// owner that registers them with io_uring (Extenter).
func (v *ownerView) Extents() [][]byte { return v.a.ar.Extents() }

// ownerOf returns the owner with id.
func (a *Allocator) ownerOf(id uint32) *owner { return (*a.owners.Load())[id-1] }

// zeroBlock is where zero-length allocations point: non-nil, capacity 0,
// so Free knows to ignore them.
var zeroBlock [64]byte

// alloc allocates size bytes for o; zero clears a reused block (fresh
// memory from the arena is zero already).
func (a *Allocator) alloc(size int, o *owner, zero bool) []byte {
	switch {
	case size == 0:
		return zeroBlock[:0:0]
	case size < 0:
		panicSize("Allocate", size)
	case a.closed.Load():
		panicClosed("Allocate")
	case size > MaxClassSize:
		return a.allocLarge(size, o, zero)
	}
	c := &a.classes[classOf(size)]
	h := shardHint()
	// A block in this shard's slot that o freed is still charged to o:
	// taking it back costs no accounting at all (see free).
	var p uintptr
	charged := false
	if v := c.take(h); v != 0 {
		var owner uint32
		p, owner = slotSplit(v)
		charged = owner == o.id
		if !charged && owner != 0 {
			a.uncharge(int64(c.size), a.ownerOf(owner))
		}
	}
	if !charged {
		if err := a.tryCharge(int64(c.size), size, o); err != nil {
			if p != 0 {
				c.push(p, h)
			}
			panic(err)
		}
	}
	if a.closed.Load() { // Close ran between the check above and the charge
		a.uncharge(int64(c.size), o)
		if p != 0 {
			c.push(p, h)
		}
		panicClosed("Allocate")
	}
	var sp *span
	if p == 0 {
		var owner uint32
		if p, owner = c.pop(h); owner != 0 {
			a.uncharge(int64(c.size), a.ownerOf(owner))
		}
	}
	dirty := p != 0
	if dirty {
		sp, _ = blockOf(a.findExtent(p), p, 0, "Allocate")
	} else {
		var err error
		if p, sp, err = a.carve(c); err != nil {
			a.uncharge(int64(c.size), o)
			panic(fmt.Errorf("buffers: Allocate(%d): %w", size, err))
		}
	}
	if !sp.stateOf((p-sp.base)/sp.size).CompareAndSwap(0, o.id) {
		panicFree("Allocate (free list corrupt)", p, size)
	}
	b := bytesAt(p, uintptr(size))[:size:size]
	if dirty {
		if a.zeroOnFree {
			*(*uintptr)(ptrAt(p)) = 0 // the free-list link
		} else if zero {
			clear(b)
		}
	}
	return b
}

func (a *Allocator) free(b []byte) {
	if cap(b) == 0 {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	e := a.findExtent(p)
	if e == nil {
		a.freeLarge(p, len(b))
		return
	}
	sp, i := blockOf(e, p, len(b), "Free")
	id := sp.stateOf(i).Swap(0)
	if id == 0 {
		panicFree("Free", p, len(b))
	}
	if a.zeroOnFree {
		clear(bytesAt(p, sp.size))
	}
	c := &a.classes[sp.class]
	o := a.ownerOf(id)
	// Into the slot still charged to its owner, when that costs no
	// precision anyone relies on (no budget on the pool, no limit on the
	// owner): the owner's next Allocate of this class on this goroutine
	// takes it back without touching a counter. The owner's Used() may
	// then count one such block per shard and class; InUse, Stats,
	// Usage, Report and Close flush the slots first.
	var keep uint32
	if !a.use.exact && o.use.limit == 0 && id < 1<<16 {
		keep = id
	}
	h := shardHint()
	if c.putSlot(p, h, keep) {
		if keep != 0 {
			return
		}
	} else {
		c.pushList(p, h)
	}
	a.uncharge(int64(sp.size), o)
}

func (a *Allocator) realloc(size int, b []byte, o *owner) []byte {
	if size < 0 {
		panicSize("Reallocate", size)
	}
	if cap(b) == 0 {
		return a.alloc(size, o, true)
	}
	a.reallocs.Add(1)
	if size == 0 {
		a.free(b)
		return zeroBlock[:0:0]
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	old := len(b)
	if e := a.findExtent(p); e != nil {
		sp, i := blockOf(e, p, old, "Reallocate")
		if sp.stateOf(i).Load() == 0 {
			panicFree("Reallocate", p, old)
		}
		if size <= MaxClassSize && classOf(size) == sp.class {
			out := bytesAt(p, uintptr(size))[:size:size]
			if size > old {
				clear(out[old:]) // may hold bytes of an earlier, longer use
			}
			return out
		}
	} else if out, ok := a.reallocLarge(p, old, size); ok {
		return out
	}
	out := a.alloc(size, o, true)
	copy(out, b)
	a.free(b)
	return out
}

// Close unmaps the arena. With allocations still outstanding it unmaps
// nothing (that would turn a leak into a crash) and returns an error that
// says how many; Close may then be called again once they are freed.
// After a successful Close, Allocate panics; Close again is a no-op.
func (a *Allocator) Close() error {
	// Claim the close first, then look at what is in use: an Allocate
	// charges before it checks closed, so one of the two sees the other
	// (and a second Close returns at once instead of unmapping again).
	if !a.closed.CompareAndSwap(false, true) {
		return nil
	}
	st := a.Stats()
	if st.Blocks != 0 || st.InUse != 0 {
		a.closed.Store(false)
		return fmt.Errorf("buffers: close: %d allocations (%s) still in use; arena left mapped", st.Blocks, humanBytes(st.InUse))
	}
	a.carveMu.Lock()
	a.exts.Store(new([]*extent))
	a.carveMu.Unlock()
	a.large.drop()
	return a.ar.closeAll()
}

//go:noinline
func panicSize(op string, size int) {
	panic(fmt.Errorf("buffers: %s(%d): negative size", op, size))
}

//go:noinline
func panicClosed(op string) {
	panic(fmt.Errorf("buffers: %s on a closed allocator", op))
}
