//go:build linux

package buffers

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// Regression tests for defects a review found: each failed before its fix.

// A refused big request must not make a concurrent small one that fits
// fail (the budget once added, then took back).
func TestBudgetRefusalDoesNotSpill(t *testing.T) {
	cfg := plainCfg()
	cfg.Budget = 16 << 20
	a, _ := newTest(t, cfg)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			func() {
				defer func() { recover() }()
				a.Allocate(32 << 20) // always beyond the budget
			}()
		}
	})
	defer func() { stop.Store(true); wg.Wait() }()
	for range 50000 {
		func() {
			defer func() {
				if r := recover(); r != nil {
					if err, ok := r.(error); ok && errors.Is(err, ErrBudgetExceeded) {
						t.Fatalf("a 64-byte Allocate with nothing in use was refused: %v", r)
					}
					panic(r)
				}
			}()
			a.Free(a.Allocate(64))
		}()
	}
}

// Growing a large block in place, inside a bigger cached mapping, charges
// the growth: the hard budget holds.
func TestLargeReallocInPlaceCharges(t *testing.T) {
	a, _ := newTest(t, plainCfg())
	a.Free(a.Allocate(8 << 20)) // an 8 MiB mapping in the cache
	b := a.Allocate(4<<20 + 4096)
	b = a.Reallocate(8<<20, b)
	if a.InUse() < 8<<20 {
		t.Errorf("8 MiB in use charged as %d", a.InUse())
	}
	a.Free(b)
	if a.InUse() != 0 {
		t.Errorf("%d bytes still charged after the free", a.InUse())
	}
}

// Two concurrent Closes unmap once.
func TestConcurrentClose(t *testing.T) {
	for i := range 200 {
		a, err := New(plainCfg())
		if err != nil {
			t.Fatal(err)
		}
		a.Free(a.Allocate(8 << 20))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 2 {
			wg.Go(func() { <-start; _ = a.Close() })
		}
		close(start)
		wg.Wait()
		if m := a.Arena().Mapped(); m != 0 {
			t.Fatalf("iteration %d: Mapped = %d after two concurrent Closes", i, m)
		}
	}
}

// A Close racing an Allocate either fails (something in use) or wins, and
// then the Allocate panics: it never returns memory that was unmapped.
func TestCloseVersusAllocate(t *testing.T) {
	for range 2000 {
		a, err := New(plainCfg())
		if err != nil {
			t.Fatal(err)
		}
		a.Free(a.Allocate(64)) // a block on a free list
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() { recover() }() // "Allocate on a closed allocator" is the right end
			for range 50 {
				b := a.Allocate(64)
				b[0] = 1 // faults if the arena was unmapped under us
				a.Free(b)
			}
		}()
		for a.Close() != nil {
		}
		<-done
	}
}
