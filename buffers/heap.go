package buffers

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// heapPool is a Pool over another memory.Allocator: Go's (kind heap) or
// one the caller passed (kind caller, e.g. memory.CheckedAllocator in
// tests). It maps nothing; what it adds is per-owner accounting, the
// owners' own limits and a hard budget, so a run on the heap reports and
// enforces the same per-operator figures as a run on an arena.
type heapPool struct {
	kind string
	mem  memory.Allocator
	use  total

	mu    sync.Mutex
	accts map[string]*heapAccount
}

// NewHeapPool returns a pool over mem (nil: Go's allocator) that reports
// itself as kind. Of cfg it takes Budget; a soft budget, binding or
// locking need an arena and are refused.
func NewHeapPool(kind string, mem memory.Allocator, cfg PoolConfig) (Pool, error) {
	var bad []string
	if cfg.SoftBudget > 0 {
		bad = append(bad, "a soft budget")
	}
	if cfg.Bind {
		bad = append(bad, "a NUMA node")
	}
	if cfg.Lock {
		bad = append(bad, "lock")
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("buffers: memory kind %s cannot honour %v (it needs an arena: hugepage, thp or plain)", kind, bad)
	}
	if cfg.Budget < 0 {
		return nil, fmt.Errorf("buffers: negative budget %d", cfg.Budget)
	}
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	return &heapPool{kind: kind, mem: mem, use: total{limited: limited{limit: cfg.Budget}, exact: cfg.Budget > 0},
		accts: map[string]*heapAccount{}}, nil
}

func (p *heapPool) Kind() string { return p.kind }

func (p *heapPool) Account(owner string, limit int64) Account {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.accts[owner]; ok {
		return a
	}
	a := &heapAccount{p: p, name: owner}
	a.use.limit = max(limit, 0)
	p.accts[owner] = a
	return a
}

func (p *heapPool) Usage() Usage {
	return Usage{InUse: p.inUse(), Peak: p.use.peak.Load()}
}

// inUse is the exact bytes in use: the pool's total with a budget, the sum
// over the accounts otherwise.
func (p *heapPool) inUse() int64 {
	if p.use.exact {
		return p.use.inUse.Load()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, a := range p.accts {
		n += a.use.inUse()
	}
	return n
}

func (p *heapPool) Report() PoolReport {
	return PoolReport{Arena: p.kind, Node: NoNode, NodeSeen: NoNode, ByBacking: map[string]int64{},
		Peak: p.use.peak.Load(), Budget: p.use.limit}
}

// Close has nothing to unmap: the Go heap is collected. Reservations still
// outstanding are a caller's bug and reported.
func (p *heapPool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, a := range p.accts {
		if r := a.reserved.Load(); r != 0 {
			errs = append(errs, fmt.Errorf("buffers: close %s pool: owner %q still holds %s reserved", p.kind, a.name, humanBytes(r)))
		}
	}
	return errors.Join(errs...)
}

// heapAccount is one owner's Account of a heapPool.
type heapAccount struct {
	p        *heapPool
	name     string
	use      share
	reserved atomic.Int64
}

// charge charges n bytes (asked asked) to the account, waiting at its own
// limit for its frees (chargeWaiting); chargeNow does not wait (Reserve).
func (a *heapAccount) charge(n int64, asked int) *BudgetError {
	return chargeWaiting(&a.use, n, func() *BudgetError { return a.chargeNow(n, asked) })
}

func (a *heapAccount) chargeNow(n int64, asked int) *BudgetError {
	return a.p.use.charge(&a.use, n, asked, a.name)
}

func (a *heapAccount) uncharge(n int64) { a.p.use.uncharge(&a.use, n) }

func (a *heapAccount) Allocate(size int) []byte {
	if size < 0 {
		panicSize("Allocate", size)
	}
	if err := a.charge(int64(size), size); err != nil {
		panic(err)
	}
	return a.p.mem.Allocate(size)
}

func (a *heapAccount) Reallocate(size int, b []byte) []byte {
	if size < 0 {
		panicSize("Reallocate", size)
	}
	old := len(b)
	if size > old {
		if err := a.charge(int64(size-old), size); err != nil {
			panic(err)
		}
	}
	out := a.p.mem.Reallocate(size, b)
	if size < old {
		a.uncharge(int64(old - size))
	}
	return out
}

func (a *heapAccount) Free(b []byte) {
	n := len(b)
	a.p.mem.Free(b)
	a.uncharge(int64(n))
}

func (a *heapAccount) Used() int64      { return a.use.inUse() }
func (a *heapAccount) Limit() int64     { return a.use.limit }
func (a *heapAccount) Peak() int64      { return a.use.Peak() }
func (a *heapAccount) Available() int64 { return min(a.use.room(), room(&a.p.use.limited)) }

func (a *heapAccount) Reserve(n int64) error {
	if n < 0 {
		return fmt.Errorf("buffers: reserve %d bytes: negative", n)
	}
	if err := a.chargeNow(n, int(min(n, math.MaxInt))); err != nil {
		return err
	}
	a.reserved.Add(n)
	return nil
}

func (a *heapAccount) Unreserve(n int64) {
	if n <= 0 {
		return
	}
	a.reserved.Add(-n)
	a.uncharge(n)
}

func (a *heapAccount) TryAllocate(size int) ([]byte, error) {
	if size < 0 {
		return nil, fmt.Errorf("buffers: allocate %d bytes: negative", size)
	}
	if err := a.charge(int64(size), size); err != nil {
		return nil, err
	}
	return a.p.mem.Allocate(size), nil
}
