package buffers

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// How blocks are carved and recycled.
//
// An extent is a region mapped by the arena. Each size class carves spans
// from extents (bump allocation, first fit; a span never crosses an extent
// and is never given back before Close); each span is a run of blocks of
// its class. The extent keeps a span table with one entry per 64 KiB
// granule, so Free finds the block of any address with a binary search
// over the extents and one table load — no header in front of the block,
// and no lookup in the Go heap.
//
// A span also keeps one state word per block, in the Go heap: 0 when the
// block is free, the owner's id when it is handed out. Allocate sets it
// with a compare-and-swap, Free clears it with a swap; a second Free of the
// same block finds 0 and panics instead of corrupting a free list.
//
// Freed blocks go on a free list of their class, sharded: a few stacks,
// each under its own mutex, picked by a hash of the calling goroutine's
// stack address (a cheap stand-in for "this P"). The link to the next free
// block is stored in the first word of the free block itself: extents are
// outside the Go heap, so the GC never sees these raw addresses. Allocate
// pops from its own shard and, when that is empty, steals from the others
// before carving fresh memory — a producer that allocates on one goroutine
// and a consumer that frees on another share the same blocks.

// extent is a mapping size classes carve spans from.
type extent struct {
	m         *mapping
	base, end uintptr
	bump      uintptr                // offset of the first uncarved byte; under Allocator.carveMu
	spans     []atomic.Pointer[span] // one per granule; nil where nothing is carved
}

// span is a run of blocks of one class.
type span struct {
	base   uintptr
	size   uintptr // block size
	blocks uintptr
	class  int
	state  []atomic.Uint32 // per block (at stateOf): 0 free, else the owner id
	stride uintptr         // see stateLayout; 0 for block i at state[i]
}

// stateLayout makes a span's state words. Neighbouring blocks are handed
// to different goroutines, and a CAS on one state word invalidates the
// cache line of its neighbours: with many blocks, block i's word is put at
// (i%16)*stride + i/16, so neighbours' words lie stride words apart, on
// different lines (a bijection onto 16*stride words).
func stateLayout(blocks int) ([]atomic.Uint32, uintptr) {
	if blocks < 256 {
		return make([]atomic.Uint32, blocks), 0
	}
	stride := (blocks + 15) / 16
	return make([]atomic.Uint32, 16*stride), uintptr(stride)
}

// stateOf returns block i's state word.
func (sp *span) stateOf(i uintptr) *atomic.Uint32 {
	if sp.stride == 0 {
		return &sp.state[i]
	}
	return &sp.state[(i&15)*sp.stride+i>>4]
}

// class is one size class: its shards of free blocks and the span it is
// carving.
type class struct {
	size       uintptr
	spanBlocks int
	spanBytes  uintptr
	shards     []shard

	mu     sync.Mutex // guards the fields below
	cur    *span      // the span being carved
	next   uintptr    // next uncarved block of cur
	carved int64      // blocks carved (each handed out once, fresh)
	nspans int64
}

// shard is one stack of free blocks, padded to its own cache line.
type shard struct {
	mu   sync.Mutex
	head uintptr      // first free block; its first word links the next
	n    atomic.Int64 // blocks on the stack; read without the lock as a hint
	// slot holds one free block, taken and given without the lock: the
	// common case of a block freed and allocated again on the same
	// goroutine costs one atomic each way. Its word is the block's address
	// and, in the top 16 bits, the id of an owner the block is still
	// charged to (0: charged to nobody); see Allocator.free.
	slot atomic.Uint64
	_    [32]byte // 8+8+8+8+32: a cache line of its own
}

// shardHint hashes the address of a local variable: goroutines run on
// distinct stacks, so they tend to spread over shards and one goroutine
// tends to stay on one.
func shardHint() uint32 {
	var x byte
	h := uint64(uintptr(unsafe.Pointer(&x)) >> 13)
	// Fibonacci hashing: the top bits of the product spread neighbouring
	// stacks (which differ by a stack size) over the shards; its middle
	// bits did not (two goroutines shared a shard in 4 runs of 10).
	return uint32((h * 0x9E3779B97F4A7C15) >> 58)
}

// A slot word: a block address (arena memory lies below 2^48) and the id
// of the owner it is still charged to, if any.
const slotAddr = 1<<48 - 1

func slotWord(p uintptr, owner uint32) uint64 { return uint64(p) | uint64(owner)<<48 }
func slotSplit(v uint64) (uintptr, uint32)    { return uintptr(v & slotAddr), uint32(v >> 48) }

// pop takes a free block, from shard h's stack first, then from any other
// shard's slot or stack; it returns 0 when the class has none, and the
// owner a stolen slot block is still charged to. A popped block is dirty:
// it held data (and its first word holds the link).
func (c *class) pop(h uint32) (uintptr, uint32) {
	mask := uint32(len(c.shards) - 1)
	for k := uint32(0); k <= mask; k++ {
		s := &c.shards[(h+k)&mask]
		if k > 0 && s.slot.Load() != 0 { // another goroutine's slot: better than carving
			if v := s.slot.Swap(0); v != 0 {
				return slotSplit(v)
			}
		}
		if s.n.Load() == 0 {
			continue
		}
		s.mu.Lock()
		if p := s.head; p != 0 {
			s.head = *(*uintptr)(ptrAt(p))
			s.n.Add(-1)
			s.mu.Unlock()
			return p, 0
		}
		s.mu.Unlock()
	}
	return 0, 0
}

// take takes shard h's slot word, or 0.
func (c *class) take(h uint32) uint64 {
	s := &c.shards[h&uint32(len(c.shards)-1)]
	if s.slot.Load() == 0 {
		return 0
	}
	return s.slot.Swap(0)
}

// putSlot puts block p (still charged to owner, or to nobody when 0) in
// shard h's slot if it is empty; it tells whether it did.
func (c *class) putSlot(p uintptr, h uint32, owner uint32) bool {
	s := &c.shards[h&uint32(len(c.shards)-1)]
	return s.slot.Load() == 0 && s.slot.CompareAndSwap(0, slotWord(p, owner))
}

// push returns block p (charged to nobody) to shard h: to its slot if
// empty, else its stack.
func (c *class) push(p uintptr, h uint32) {
	if c.putSlot(p, h, 0) {
		return
	}
	c.pushList(p, h)
}

// pushList puts block p on shard h's stack.
func (c *class) pushList(p uintptr, h uint32) {
	s := &c.shards[h&uint32(len(c.shards)-1)]
	s.mu.Lock()
	*(*uintptr)(ptrAt(p)) = s.head
	s.head = p
	s.n.Add(1)
	s.mu.Unlock()
}

// flushSlots moves every slot block to its shard's stack and gives back
// what it was still charged to, so that the owners' counts are exact.
func (a *Allocator) flushSlots() {
	for i := range a.classes {
		c := &a.classes[i]
		for j := range c.shards {
			s := &c.shards[j]
			if s.slot.Load() == 0 {
				continue
			}
			if v := s.slot.Swap(0); v != 0 {
				p, owner := slotSplit(v)
				if owner != 0 {
					a.uncharge(int64(c.size), a.ownerOf(owner))
				}
				c.pushList(p, uint32(j))
			}
		}
	}
}

// carve hands out the next fresh (zeroed, never used) block of c, carving
// a new span when the current one is used up.
func (a *Allocator) carve(c *class) (uintptr, *span, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil || c.next == c.cur.blocks {
		sp, err := a.newSpan(c)
		if err != nil {
			return 0, nil, err
		}
		c.cur, c.next = sp, 0
		c.nspans++
	}
	sp := c.cur
	p := sp.base + c.next*sp.size
	c.next++
	c.carved++
	return p, sp, nil
}

// newSpan carves a span for c from the first extent with room, mapping a
// new extent when none has.
func (a *Allocator) newSpan(c *class) (*span, error) {
	a.carveMu.Lock()
	defer a.carveMu.Unlock()
	var e *extent
	for _, x := range *a.exts.Load() {
		if x.end-x.base-x.bump >= c.spanBytes {
			e = x
			break
		}
	}
	if e == nil {
		var err error
		if e, err = a.newExtent(max(uintptr(a.ar.cfg.ExtentSize), c.spanBytes)); err != nil {
			return nil, err
		}
	}
	sp := &span{
		base:   e.base + e.bump,
		size:   c.size,
		blocks: uintptr(c.spanBlocks),
		class:  classOf(int(c.size)),
	}
	sp.state, sp.stride = stateLayout(c.spanBlocks)
	first := e.bump >> granuleShift
	e.bump += c.spanBytes
	for g := first; g < e.bump>>granuleShift; g++ {
		e.spans[g].Store(sp)
	}
	return sp, nil
}

// newExtent maps an extent and publishes it in the sorted extent list
// (copy on write: Free reads the list without a lock). Under carveMu.
func (a *Allocator) newExtent(size uintptr) (*extent, error) {
	m, err := a.ar.mapRegion(size, false)
	if err != nil {
		return nil, err
	}
	e := &extent{m: m, base: m.base, end: m.base + m.size, spans: make([]atomic.Pointer[span], m.size>>granuleShift)}
	old := *a.exts.Load()
	exts := make([]*extent, 0, len(old)+1)
	i := 0
	for i < len(old) && old[i].base < e.base {
		i++
	}
	exts = append(append(append(exts, old[:i]...), e), old[i:]...)
	a.exts.Store(&exts)
	return e, nil
}

// findExtent returns the extent holding p, or nil.
func (a *Allocator) findExtent(p uintptr) *extent {
	exts := *a.exts.Load()
	lo, hi := 0, len(exts)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if exts[mid].end <= p {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(exts) && exts[lo].base <= p {
		return exts[lo]
	}
	return nil
}

// blockOf returns the span and block index of p, which must be the start
// of a block of e at most its size long; anything else panics: it is not
// memory this allocator handed out.
func blockOf(e *extent, p uintptr, n int, op string) (*span, uintptr) {
	sp := e.spans[(p-e.base)>>granuleShift].Load()
	if sp == nil {
		panicBadBlock(op, p, n, 0, 0)
	}
	off := p - sp.base
	i := off / sp.size
	if off != i*sp.size || i >= sp.blocks || uintptr(n) > sp.size {
		panicBadBlock(op, p, n, sp.base+i*sp.size, sp.size)
	}
	return sp, i
}

//go:noinline
func panicBadBlock(op string, p uintptr, n int, block, size uintptr) {
	if size == 0 {
		panic(fmt.Errorf("buffers: %s of %d bytes at %#x: inside the arena but in no block this allocator handed out", op, n, p))
	}
	if p != block {
		panic(fmt.Errorf("buffers: %s of %d bytes at %#x: not the start of a block (the %d-byte block around it starts at %#x); pass the slice Allocate returned", op, n, p, size, block))
	}
	panic(fmt.Errorf("buffers: %s of %d bytes at %#x: longer than its %d-byte block", op, n, p, size))
}

//go:noinline
func panicNotOurs(op string, p uintptr, n int) {
	panic(fmt.Errorf("buffers: %s of %d bytes at %#x: not allocated by this allocator (or already freed and unmapped)", op, n, p))
}

//go:noinline
func panicFree(op string, p uintptr, n int) {
	panic(fmt.Errorf("buffers: %s of %d bytes at %#x: block is not in use (double free, or use after free)", op, n, p))
}
