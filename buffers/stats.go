package buffers

import (
	"cmp"
	"slices"
	"time"
)

// Stats is a snapshot of an Allocator's counters. Byte counts are at block
// size (the size class, or the rounded mapping of a large allocation), as
// the budgets count them.
type Stats struct {
	InUse  int64 // bytes handed out and not freed
	Peak   int64 // highest InUse so far
	Mapped int64 // bytes mapped from the OS: extents, large blocks, large cache

	// Blocks counts the blocks handed out and not freed: size-class
	// blocks by their state words, and large blocks. (The hot path keeps
	// no per-call counters: they would cost it more than the allocation.)
	Blocks   int64
	Reallocs int64 // Reallocate calls

	SoftWaits    int64         // Allocate calls that waited at the soft budget
	SoftWaited   time.Duration // total time they waited
	SoftTimeouts int64         // waits that ended because SoftWait passed
	// BudgetFailures counts Allocate calls refused by the hard budget.
	BudgetFailures int64

	// Classes has one entry per size class used so far, smallest first.
	Classes []ClassStats
	Large   LargeStats
	// Backing has one entry per kind of mapping got (hugepage, thp, plain)
	// with any mapped.
	Backing []BackingStats
	// Owners has one entry per name given to For, and one for "" (the
	// allocator itself) when it was used.
	Owners []OwnerStats
}

// ClassStats describes one size class.
type ClassStats struct {
	Size   int64 // block size
	InUse  int64 // blocks handed out, by their state words
	Bytes  int64 // InUse * Size
	Free   int64 // blocks on the free lists and in the shards' slots
	Carved int64 // blocks carved from extents so far
	Spans  int64 // spans carved
}

// LargeStats describes allocations above MaxClassSize.
type LargeStats struct {
	InUse       int64 // blocks handed out
	Bytes       int64 // bytes they were charged
	Cached      int64 // freed mappings kept for reuse
	CachedBytes int64
	Maps        int64 // mappings made for large blocks
	Reuses      int64 // allocations served from the cache
	Allocs      int64
	Frees       int64
}

// BackingStats is what the arena mapped of one kind, as got (the step of
// the fallback chain that succeeded; Arena.Backing observes the pages).
type BackingStats struct {
	Kind     Kind
	Mappings int64
	Mapped   int64
}

// OwnerStats is one owner's share (see Allocator.For).
type OwnerStats struct {
	Owner          string
	InUse, Peak    int64
	Limit          int64 // the owner's own limit (Pool.Account), 0 for none
	BudgetFailures int64
}

// Stats returns a snapshot, read counter by counter (under concurrent use
// the per-class figures may be a few blocks apart). It takes every
// free-list lock briefly: call it for reports and metrics, not per batch.
func (a *Allocator) Stats() Stats {
	a.flushSlots()
	s := Stats{
		InUse:          a.InUse(),
		Peak:           a.use.peak.Load(),
		Mapped:         a.ar.Mapped(),
		Reallocs:       a.reallocs.Load(),
		SoftWaits:      a.softWaits.Load(),
		SoftWaited:     time.Duration(a.softWaited.Load()),
		SoftTimeouts:   a.softTimeouts.Load(),
		BudgetFailures: a.budgetFailures.Load(),
	}
	inUse := a.blocksInUse()
	for i := range a.classes {
		c := &a.classes[i]
		cs := ClassStats{Size: int64(c.size)}
		c.mu.Lock()
		cs.Carved, cs.Spans = c.carved, c.nspans
		c.mu.Unlock()
		for j := range c.shards {
			sh := &c.shards[j]
			cs.Free += sh.n.Load()
			if sh.slot.Load() != 0 {
				cs.Free++
			}
		}
		if cs.Spans == 0 {
			continue
		}
		cs.InUse = inUse[i]
		cs.Bytes = cs.InUse * cs.Size
		s.Blocks += cs.InUse
		s.Classes = append(s.Classes, cs)
	}
	l := &a.large
	l.mu.Lock()
	s.Large = LargeStats{
		InUse: int64(len(l.inUse)), Bytes: l.bytes,
		Cached: int64(len(l.cache)), CachedBytes: l.cacheBytes,
		Maps: l.maps, Reuses: l.reuses, Allocs: l.allocs, Frees: l.frees,
	}
	l.mu.Unlock()
	s.Blocks += s.Large.InUse
	for k := KindPlain; k <= KindHugepage; k++ {
		if n := a.ar.extentsN[k].Load(); n > 0 {
			s.Backing = append(s.Backing, BackingStats{Kind: k, Mappings: n, Mapped: a.ar.byKind[k].Load()})
		}
	}
	for _, o := range *a.owners.Load() {
		if o.id == 1 && !o.use.touched() {
			continue
		}
		s.Owners = append(s.Owners, OwnerStats{
			Owner: o.name, InUse: o.use.inUse(), Peak: o.use.Peak(), Limit: o.use.limit,
			BudgetFailures: o.budgetFailures.Load(),
		})
	}
	slices.SortFunc(s.Owners, func(x, y OwnerStats) int { return cmp.Compare(x.Owner, y.Owner) })
	return s
}

// blocksInUse counts, by class, the blocks whose state word says they are
// handed out, over every span of every extent.
func (a *Allocator) blocksInUse() [numClasses]int64 {
	var n [numClasses]int64
	for _, e := range *a.exts.Load() {
		var last *span
		for g := range e.spans {
			sp := e.spans[g].Load()
			if sp == nil || sp == last {
				continue
			}
			last = sp
			for b := range sp.state {
				if sp.state[b].Load() != 0 {
					n[sp.class]++
				}
			}
		}
	}
	return n
}
