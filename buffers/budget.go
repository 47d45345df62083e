package buffers

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
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

// BudgetError is the panic value of an Allocate beyond a hard budget, and
// the error of Account.Reserve and Account.TryAllocate.
type BudgetError struct {
	// Owner is the name given to Allocator.For or Pool.Account, "" for the
	// allocator itself.
	Owner string
	// Own is set when the limit refused is the owner's own (Pool.Account's
	// limit), not the pool's budget.
	Own bool
	// Asked is the size the caller asked for; InUse the bytes in use before
	// the call (the owner's when Own, the pool's otherwise); Limit the
	// budget refused.
	Asked, InUse, Limit int64
	// Waited is how long the allocation waited for the owner's bytes to
	// come back before it was refused (see ownerWaitIdle); 0 for Reserve,
	// which never waits.
	Waited time.Duration
}

// Error reads e.g. `memory budget exceeded: operator "big" asked for 64 MiB
// with 1.94 GiB of 2 GiB in use`, or with Own, `... with 60 MiB of its own
// 64 MiB budget in use`.
func (e *BudgetError) Error() string {
	who := ""
	if e.Owner != "" {
		who = " operator " + strconv.Quote(e.Owner)
	}
	if e.Own {
		waited := ""
		if e.Waited > 0 {
			waited = fmt.Sprintf(" (after waiting %s for its consumers to free some)", e.Waited.Round(time.Millisecond))
		}
		return fmt.Sprintf("memory budget exceeded:%s asked for %s with %s of its own %s budget in use%s",
			who, humanBytes(e.Asked), humanBytes(e.InUse), humanBytes(e.Limit), waited)
	}
	return fmt.Sprintf("memory budget exceeded:%s asked for %s with %s of %s in use",
		who, humanBytes(e.Asked), humanBytes(e.InUse), humanBytes(e.Limit))
}

// Is makes errors.Is(err, ErrBudgetExceeded) true.
func (e *BudgetError) Is(target error) bool { return target == ErrBudgetExceeded }

// limited is a byte count held under a limit (0: none), with its peak.
// add never publishes a total above the limit, even for a moment: a
// refused request must not make a concurrent one that fits fail.
type limited struct {
	inUse, peak atomic.Int64
	limit       int64
}

// add takes n more bytes; it returns the new total, or ok false and the
// total it saw when the limit refuses them.
func (l *limited) add(n int64) (v int64, ok bool) {
	if l.limit == 0 {
		v = l.inUse.Add(n)
		raise(&l.peak, v)
		return v, true
	}
	for {
		cur := l.inUse.Load()
		if v = cur + n; v > l.limit {
			return cur, false
		}
		if l.inUse.CompareAndSwap(cur, v) {
			raise(&l.peak, v)
			return v, true
		}
	}
}

// share is one owner's bytes in use. With a limit of its own the owner
// keeps one exact count, held under the limit. Without one (the common
// case) it counts allocated and freed bytes in lanes picked by the calling
// goroutine (shardHint), each count on a cache line of its own: an
// operator allocates on its goroutine and its consumers free on theirs, and
// parallel instances of one operator allocate on several, so no two of
// them write one line on every call. In use is the sum, read when asked;
// the peak is sampled every sampleEvery bytes a lane allocates, and the
// owner's claim on a budget-less pool's total is moved then and every
// sampleEvery bytes a lane frees.
type share struct {
	limit int64
	used  atomic.Int64 // with a limit: in use
	peak  atomic.Int64

	claimMu sync.Mutex
	claimed atomic.Int64

	// With a limit, allocations the limit refuses wait for frees
	// (waitFreed): every free wakes them while there are any.
	waiters atomic.Int32
	waitMu  sync.Mutex
	waitCh  chan struct{}

	lanes [shareLanes]lane
}

const (
	shareLanes  = 16
	sampleEvery = 32 << 10
)

// lane is one goroutine group's counts: allocated (and the value at the
// last sample) on one cache line, freed (and its last sample) on another.
type lane struct {
	_     [64]byte
	alloc atomic.Int64
	mark  atomic.Int64
	_     [48]byte
	freed atomic.Int64
	fmark atomic.Int64
	_     [48]byte
}

// inUse is the owner's bytes in use now. Without a limit it reads every
// lane's freed count before any allocated count: a block is allocated
// before it is freed and the counts only grow, so the sum is never
// negative (it may include allocations made while it reads).
func (s *share) inUse() int64 {
	if s.limit > 0 {
		return s.used.Load()
	}
	var freed, alloc int64
	for i := range s.lanes {
		freed += s.lanes[i].freed.Load()
	}
	for i := range s.lanes {
		alloc += s.lanes[i].alloc.Load()
	}
	return alloc - freed
}

// touched tells whether the owner ever allocated.
func (s *share) touched() bool {
	if s.used.Load() != 0 || s.peak.Load() != 0 {
		return true
	}
	for i := range s.lanes {
		if s.lanes[i].alloc.Load() != 0 {
			return true
		}
	}
	return false
}

// Peak is the most bytes the owner had in use at once (sampled without a
// limit: see share).
func (s *share) Peak() int64 { return max(s.peak.Load(), s.inUse()) }

// add takes n more bytes. It refuses bytes over the limit, returning what
// was in use. sample says cur is the owner's use now (the caller raises
// the peak once the pool has accepted the bytes too, and moves the claim).
func (s *share) add(n int64) (cur int64, ok, sample bool) {
	if s.limit > 0 {
		for {
			c := s.used.Load()
			v := c + n
			if v > s.limit && n > 0 {
				return c, false, false
			}
			if s.used.CompareAndSwap(c, v) {
				return v, true, true
			}
		}
	}
	l := &s.lanes[shardHint()&(shareLanes-1)]
	v := l.alloc.Add(n)
	if v-l.mark.Load() < sampleEvery && v > sampleEvery {
		return 0, true, false
	}
	l.mark.Store(v)
	return s.inUse(), true, true
}

// sub gives n bytes back; sample says the claim should be looked at.
func (s *share) sub(n int64) (sample bool) {
	if s.limit > 0 {
		s.used.Add(-n)
		if s.waiters.Load() > 0 {
			s.waitMu.Lock()
			if s.waitCh != nil {
				close(s.waitCh)
				s.waitCh = nil
			}
			s.waitMu.Unlock()
		}
		return false
	}
	l := &s.lanes[shardHint()&(shareLanes-1)]
	v := l.freed.Add(n)
	if v-l.fmark.Load() < sampleEvery {
		return false
	}
	l.fmark.Store(v)
	return true
}

// An allocation over its owner's own limit does not fail at once: the
// bytes an operator has in use include the batches it emitted that its
// consumers still hold (queued on the edge, or waiting in a sink's encoder),
// and those come back as the consumers go on. So the allocation waits for
// the owner's frees, and is refused only when none has come for
// ownerWaitIdle, or after ownerWaitMax in all: an operator then runs at its
// consumers' pace inside its budget, and one that holds its budget itself
// still fails, a moment later. Reserve never waits: operators use it to
// decide whether to spill.
const (
	ownerWaitIdle = 2 * time.Second
	ownerWaitMax  = time.Minute
)

// chargeWaiting runs charge, which charges bytes to s or refuses them;
// when s's own limit refuses, it waits for s's frees and tries again, as
// the comment above says. The error of the last refusal says how long it
// waited.
func chargeWaiting(s *share, n int64, charge func() *BudgetError) *BudgetError {
	err := charge()
	if err == nil || !err.Own || s.limit == 0 {
		return err
	}
	start := time.Now()
	for {
		if !s.waitFreed(n, start) {
			err.Waited = time.Since(start)
			return err
		}
		if err = charge(); err == nil || !err.Own {
			return err
		}
	}
}

// waitFreed blocks until s has room for n bytes (true), or until no free
// has come for ownerWaitIdle or ownerWaitMax has passed since start
// (false). A waiter registers before it looks, so no free is missed.
func (s *share) waitFreed(n int64, start time.Time) bool {
	s.waiters.Add(1)
	defer s.waiters.Add(-1)
	idle := time.NewTimer(ownerWaitIdle)
	defer idle.Stop()
	for {
		s.waitMu.Lock()
		if s.waitCh == nil {
			s.waitCh = make(chan struct{})
		}
		ch := s.waitCh
		s.waitMu.Unlock()
		if s.limit-s.used.Load() >= n {
			return true
		}
		if time.Since(start) >= ownerWaitMax {
			return false
		}
		select {
		case <-ch:
			idle.Reset(ownerWaitIdle)
		case <-idle.C:
			return false
		}
	}
}

// total is a pool's bytes in use. A pool with a budget (hard or soft)
// counts every charge in it, exactly, to hold the budget. A pool without
// one counts what its owners claim, moved a quantum at a time when they
// sample: each owner's allocations then touch only the owner's own
// counters (no cache line shared by every operator on every allocation),
// and the total and its peak are over by at most a quantum and a sample
// per owner. Exact figures in use are the sum over the owners (Stats,
// Usage).
type total struct {
	limited
	exact bool
}

// claimQuantum is the step in which owners claim from a pool's total.
const claimQuantum = 64 << 10

// charge takes n more bytes for owner s (named owner, for the error),
// under s's own limit and the pool's budget; it charges nothing when it
// refuses.
func (t *total) charge(s *share, n int64, asked int, owner string) *BudgetError {
	cur, ok, sample := s.add(n)
	if !ok {
		return &BudgetError{Owner: owner, Own: true, Asked: int64(asked), InUse: cur, Limit: s.limit}
	}
	if t.exact {
		if pc, ok := t.add(n); !ok {
			s.sub(n)
			return &BudgetError{Owner: owner, Asked: int64(asked), InUse: pc, Limit: t.limit}
		}
	}
	if sample {
		raise(&s.peak, cur)
		if c := s.claimed.Load(); !t.exact && (cur > c || c-cur > claimQuantum) {
			t.claim(s)
		}
	}
	return nil
}

// uncharge gives n bytes of s back.
func (t *total) uncharge(s *share, n int64) {
	sample := s.sub(n)
	if t.exact {
		t.inUse.Add(-n)
	} else if sample && s.claimed.Load()-s.inUse() > claimQuantum {
		t.claim(s)
	}
}

// claim moves s's claim to its use, rounded up to a quantum.
func (t *total) claim(s *share) {
	s.claimMu.Lock()
	want := roundUp(max(s.inUse(), 0), claimQuantum)
	if d := want - s.claimed.Load(); d != 0 {
		t.add(d) // no limit: never refused
		s.claimed.Store(want)
	}
	s.claimMu.Unlock()
}

// charge accounts n more bytes in use for owner o, asked bytes asked: it
// waits at the soft budget, panics beyond a hard one, and keeps the peaks.
// It is on the hot path: a few atomics when no budget is near.
func (a *Allocator) charge(n int64, asked int, o *owner) {
	if err := a.tryCharge(n, asked, o); err != nil {
		panic(err)
	}
}

// tryCharge is charge returning the budget error instead of panicking. An
// allocation over o's own limit waits for o's frees first (chargeWaiting).
func (a *Allocator) tryCharge(n int64, asked int, o *owner) *BudgetError {
	return a.counted(chargeWaiting(&o.use, n, func() *BudgetError { return a.chargeOnce(n, asked, o) }), o)
}

// chargeNow is tryCharge without waiting at o's own limit (Reserve).
func (a *Allocator) chargeNow(n int64, asked int, o *owner) *BudgetError {
	return a.counted(a.chargeOnce(n, asked, o), o)
}

// chargeOnce waits at the soft budget, then charges n bytes to o or
// refuses them.
func (a *Allocator) chargeOnce(n int64, asked int, o *owner) *BudgetError {
	if a.soft > 0 {
		if cur := a.use.inUse.Load(); cur > 0 && cur+n > a.soft {
			a.softWait(n)
		}
	}
	return a.use.charge(&o.use, n, asked, o.name)
}

// counted counts a refusal, if err is one, and returns it.
func (a *Allocator) counted(err *BudgetError, o *owner) *BudgetError {
	if err != nil {
		a.budgetFailures.Add(1)
		o.budgetFailures.Add(1)
	}
	return err
}

// uncharge is the other half, on free; it wakes soft-budget waiters.
func (a *Allocator) uncharge(n int64, o *owner) {
	a.use.uncharge(&o.use, n)
	a.wakeSoft()
}

// wakeSoft wakes the allocations waiting at the soft budget, if any.
func (a *Allocator) wakeSoft() {
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
		cur := a.use.inUse.Load()
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
