package buffers

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/zflowdev/zflow/internal/units"
)

// Budgets. The hard budget is a limit: an Allocate that would take the
// bytes in use above it panics with a *BudgetError (memory.Allocator cannot
// return an error; the engine recovers the panic in the operator that
// allocated and fails the run with it). The soft budget is backpressure:
// an Allocate that would go above it waits until frees bring usage back
// under it, or SoftWait has passed, and then goes ahead in any case — so a
// producer slows down to its consumers' pace and can never deadlock on
// memory it is itself holding.
//
// Bytes are counted at the block size handed out (the size class, or the
// mapping of a large allocation), which is what the arena really spends.

// ErrBudgetExceeded is matched by errors.Is for every *BudgetError.
var ErrBudgetExceeded = errors.New("memory budget exceeded")

// BudgetError is the panic value of an Allocate beyond the hard budget.
type BudgetError struct {
	// Owner is the name given to Allocator.For, "" for the allocator
	// itself.
	Owner string
	// Asked is the size the caller asked for; InUse the bytes in use before
	// the call; Limit the hard budget.
	Asked, InUse, Limit int64
}

// Error reads e.g. `memory budget exceeded: operator "big" asked for 64 MiB
// with 1.94 GiB of 2 GiB in use`.
func (e *BudgetError) Error() string {
	who := ""
	if e.Owner != "" {
		who = " operator " + strconv.Quote(e.Owner)
	}
	return fmt.Sprintf("memory budget exceeded:%s asked for %s with %s of %s in use",
		who, humanBytes(e.Asked), humanBytes(e.InUse), humanBytes(e.Limit))
}

// Is makes errors.Is(err, ErrBudgetExceeded) true.
func (e *BudgetError) Is(target error) bool { return target == ErrBudgetExceeded }

// charge accounts n more bytes in use for owner o, asked bytes asked: it
// waits at the soft budget, panics beyond the hard one, and keeps the
// peaks. It is on the hot path: a few atomics when no budget is near.
func (a *Allocator) charge(n int64, asked int, o *owner) {
	if a.soft > 0 {
		if cur := a.inUse.Load(); cur > 0 && cur+n > a.soft {
			a.softWait(n)
		}
	}
	var v int64
	if a.hard == 0 {
		v = a.inUse.Add(n)
	} else {
		// Never publish a total above the hard limit, even for a moment: a
		// refused request must not make a concurrent one that fits fail.
		for {
			cur := a.inUse.Load()
			if v = cur + n; v > a.hard {
				a.budgetFailures.Add(1)
				o.budgetFailures.Add(1)
				panic(&BudgetError{Owner: o.name, Asked: int64(asked), InUse: cur, Limit: a.hard})
			}
			if a.inUse.CompareAndSwap(cur, v) {
				break
			}
		}
	}
	raise(&a.peak, v)
	raise(&o.peak, o.inUse.Add(n))
	o.allocs.Add(1)
}

// uncharge is the other half, on free; it wakes soft-budget waiters.
func (a *Allocator) uncharge(n int64, o *owner) {
	a.inUse.Add(-n)
	o.inUse.Add(-n)
	o.frees.Add(1)
	if a.softWaiters.Load() > 0 {
		a.softMu.Lock()
		close(a.softCh)
		a.softCh = make(chan struct{})
		a.softMu.Unlock()
	}
}

// softWait blocks while n more bytes would take usage above the soft
// budget, at most SoftWait. Every free broadcasts by closing softCh; the
// waiter registers before it checks, so no wake-up is lost.
func (a *Allocator) softWait(n int64) {
	start := time.Now()
	a.softWaiters.Add(1)
	timer := time.NewTimer(a.softMax)
	timedOut := false
	for {
		a.softMu.Lock()
		ch := a.softCh
		a.softMu.Unlock()
		cur := a.inUse.Load()
		if cur == 0 || cur+n <= a.soft {
			break
		}
		select {
		case <-ch:
			continue
		case <-timer.C:
			timedOut = true
		}
		break
	}
	timer.Stop()
	a.softWaiters.Add(-1)
	a.softWaits.Add(1)
	a.softWaited.Add(int64(time.Since(start)))
	if timedOut {
		a.softTimeouts.Add(1)
	}
}

// raise sets *p to v if v is larger (a peak).
func raise(p *atomic.Int64, v int64) {
	for {
		old := p.Load()
		if v <= old || p.CompareAndSwap(old, v) {
			return
		}
	}
}

// humanBytes is units.Bytes, the one format for byte counts.
func humanBytes(n int64) string { return units.Bytes(n) }

// ReportedPanic marks a BudgetError as an error raised by panic only because
// memory.Allocator has no error return: the engine reports it as the
// operator's error, not as a crash.
func (e *BudgetError) ReportedPanic() {}
