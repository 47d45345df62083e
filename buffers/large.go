package buffers

import (
	"fmt"
	"sync"
)

// Large allocations: above MaxClassSize a block gets a mapping of its own,
// made with the arena's fallback chain (hugetlb, THP, plain), bound and
// prefaulted like an extent. On Free the mapping goes to a small cache (up
// to ArenaConfig.LargeCache bytes) for the next large allocation that fits
// it, so a pipeline that keeps allocating the same big buffers maps them
// once; when the cache is full the oldest cached mappings are unmapped. A large allocation is charged its
// size rounded up to the arena's page.
//
// Reuse must hand out zeroed memory: each mapping remembers how far its
// users were given bytes (dirty), and only that much is cleared again.

// largeBlock is one large mapping, in use or cached.
type largeBlock struct {
	m       *mapping
	owner   uint32  // id, while in use
	charged int64   // what the allocation was charged
	dirty   uintptr // bytes from the start that may be non-zero
}

// largeSet holds the large mappings in use, by base address, and the
// cache of free ones.
type largeSet struct {
	mu         sync.Mutex
	inUse      map[uintptr]*largeBlock
	cache      []*largeBlock
	cacheBytes int64
	limit      int64 // cache limit in bytes; <= 0: no cache
	maps       int64 // mappings made
	reuses     int64 // allocations served from the cache
	allocs     int64
	frees      int64
	bytes      int64 // charged bytes in use
}

func (l *largeSet) init(limit int64) {
	l.inUse = make(map[uintptr]*largeBlock)
	l.limit = limit
}

// take removes from the cache the smallest mapping that holds need bytes
// without wasting more than half of it, or returns nil.
func (l *largeSet) take(need uintptr) *largeBlock {
	best := -1
	for i, lb := range l.cache {
		if lb.m.size >= need && lb.m.size <= 2*need && (best < 0 || lb.m.size < l.cache[best].m.size) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	lb := l.cache[best]
	l.cache[best] = l.cache[len(l.cache)-1]
	l.cache[len(l.cache)-1] = nil
	l.cache = l.cache[:len(l.cache)-1]
	l.cacheBytes -= int64(lb.m.size)
	return lb
}

// drop forgets every large mapping (Close unmaps them through the arena).
func (l *largeSet) drop() {
	l.mu.Lock()
	clear(l.inUse)
	l.cache, l.cacheBytes = nil, 0
	l.mu.Unlock()
}

// largeRound is what a large allocation is rounded (and charged) to.
func (a *Allocator) largeRound() uintptr {
	switch a.ar.cfg.Kind {
	case KindHugepage:
		if !a.ar.hugetlbFailed.Load() {
			return a.ar.pageSize
		}
		return thpPMD
	case KindTHP:
		return thpPMD
	}
	return a.ar.osPage
}

func (a *Allocator) allocLarge(size int, o *owner, zero bool) []byte {
	need := roundUp(uintptr(size), a.largeRound())
	a.charge(int64(need), size, o)
	if a.closed.Load() { // Close ran between Allocate's check and the charge
		a.uncharge(int64(need), o)
		panicClosed("Allocate")
	}
	l := &a.large
	l.mu.Lock()
	lb := l.take(need)
	if lb != nil {
		l.reuses++
	}
	l.mu.Unlock()
	if lb == nil {
		m, err := a.ar.mapRegion(need, true)
		if err != nil {
			a.uncharge(int64(need), o)
			panic(fmt.Errorf("buffers: Allocate(%d): %w", size, err))
		}
		lb = &largeBlock{m: m}
		l.mu.Lock()
		l.maps++
		l.mu.Unlock()
	}
	b := bytesAt(lb.m.base, uintptr(size))[:size:size]
	if zero {
		clear(b[:min(lb.dirty, uintptr(size))])
	}
	lb.dirty = max(lb.dirty, uintptr(size))
	lb.owner, lb.charged = o.id, int64(need)
	l.mu.Lock()
	l.inUse[lb.m.base] = lb
	l.allocs++
	l.bytes += lb.charged
	l.mu.Unlock()
	return b
}

func (a *Allocator) freeLarge(p uintptr, n int) {
	l := &a.large
	l.mu.Lock()
	lb := l.inUse[p]
	if lb == nil || uintptr(n) > lb.m.size {
		l.mu.Unlock()
		panicNotOurs("Free", p, n)
	}
	delete(l.inUse, p)
	l.frees++
	// Read before the block is in the cache, where another Allocate may
	// take it at once.
	charged, id, m := lb.charged, lb.owner, lb.m
	l.bytes -= charged
	// Keep it, evicting the oldest cached mappings to make room; a mapping
	// larger than the whole cache is unmapped.
	var evict []*mapping
	if int64(m.size) <= l.limit {
		for len(l.cache) > 0 && l.cacheBytes+int64(m.size) > l.limit {
			old := l.cache[0]
			evict = append(evict, old.m)
			l.cacheBytes -= int64(old.m.size)
			l.cache[0] = nil
			l.cache = l.cache[1:]
		}
		l.cache = append(l.cache, lb)
		l.cacheBytes += int64(m.size)
	} else {
		evict = append(evict, m)
	}
	l.mu.Unlock()
	for _, m := range evict {
		if err := a.ar.remove(m); err != nil {
			panic(err) // munmap of our own mapping failing is a bug
		}
	}
	a.uncharge(charged, a.ownerOf(id))
}

// reallocLarge resizes in place when p is a large block whose mapping
// holds size bytes and size still needs a large block using at least half
// the mapping; ok is false when the caller must move the data. It panics
// when p is not a large block of ours.
func (a *Allocator) reallocLarge(p uintptr, old, size int) ([]byte, bool) {
	l := &a.large
	l.mu.Lock()
	lb := l.inUse[p]
	if lb == nil || uintptr(old) > lb.m.size {
		l.mu.Unlock()
		panicNotOurs("Reallocate", p, old)
	}
	inPlace := size > MaxClassSize && uintptr(size) <= lb.m.size && uintptr(size) >= lb.m.size/2
	if inPlace {
		// Growing past what the block was charged (it may sit in a larger
		// cached mapping) charges the difference first, outside the lock:
		// the budget holds for in-place growth too.
		if extra := int64(roundUp(uintptr(size), a.largeRound())) - lb.charged; extra > 0 {
			id := lb.owner
			l.mu.Unlock()
			a.charge(extra, size, a.ownerOf(id))
			l.mu.Lock()
			if l.inUse[p] != lb { // freed meanwhile: a misuse by the caller
				l.mu.Unlock()
				a.uncharge(extra, a.ownerOf(id))
				panicNotOurs("Reallocate", p, old)
			}
			lb.charged += extra
			l.bytes += extra
		}
		out := bytesAt(p, uintptr(size))[:size:size]
		if size > old {
			clear(out[old:min(uintptr(size), max(lb.dirty, uintptr(old)))])
		}
		lb.dirty = max(lb.dirty, uintptr(size))
		l.mu.Unlock()
		return out, true
	}
	l.mu.Unlock()
	return nil, false
}
