//go:build linux

package buffers

import (
	"errors"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// pools returns an arena pool and a heap pool over a checked allocator,
// both with budget as their hard budget, and a check to run at the end.
func pools(t *testing.T, budget int64) map[string]Pool {
	t.Helper()
	cfg := plainCfg()
	cfg.Budget = budget
	arena, _ := newTest(t, cfg)
	checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
	heap, err := NewHeapPool("caller", checked, PoolConfig{Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		checked.AssertSize(t, 0)
		if err := heap.Close(); err != nil {
			t.Error(err)
		}
	})
	return map[string]Pool{"arena": arena, "heap": heap}
}

// TestAccountBudget: an owner sees its usage and limits, and a
// reservation or TryAllocate over a limit is refused with a *BudgetError,
// without a panic and without charging anything.
func TestAccountBudget(t *testing.T) {
	for name, p := range pools(t, 1<<20) {
		t.Run(name, func(t *testing.T) {
			a := p.Account("agg", 256<<10)
			b := p.Account("join", 0)
			if a.Limit() != 256<<10 || b.Limit() != 0 || a.Used() != 0 {
				t.Fatalf("limits %d %d, used %d", a.Limit(), b.Limit(), a.Used())
			}
			if got := a.Available(); got != 256<<10 {
				t.Fatalf("available %d, want the own limit", got)
			}
			if got := b.Available(); got != 1<<20 {
				t.Fatalf("available %d, want the pool budget", got)
			}
			if err := a.Reserve(200 << 10); err != nil {
				t.Fatal(err)
			}
			if a.Used() != 200<<10 || a.Available() != 56<<10 || a.Peak() != 200<<10 {
				t.Fatalf("after reserve: used %d available %d peak %d", a.Used(), a.Available(), a.Peak())
			}
			// Over the owner's own limit.
			err := a.Reserve(100 << 10)
			var be *BudgetError
			if !errors.As(err, &be) || !be.Own || be.Owner != "agg" || be.Limit != 256<<10 || !errors.Is(err, ErrBudgetExceeded) {
				t.Fatalf("reserve over the own limit: %v", err)
			}
			if !strings.Contains(err.Error(), `operator "agg" asked for 100 KiB with 200 KiB of its own 256 KiB budget in use`) {
				t.Errorf("message: %v", err)
			}
			if a.Used() != 200<<10 {
				t.Fatalf("a refused reservation charged: used %d", a.Used())
			}
			buf, err := a.TryAllocate(100 << 10)
			if buf != nil || !errors.As(err, &be) || !be.Own {
				t.Fatalf("TryAllocate over the own limit: %v", err)
			}
			// Over the pool's budget, from an owner with no limit of its own.
			if err := b.Reserve(700 << 10); err != nil {
				t.Fatal(err)
			}
			if got := b.Available(); got != 1<<20-900<<10 {
				t.Fatalf("available %d under the pool budget", got)
			}
			err = b.Reserve(200 << 10)
			if !errors.As(err, &be) || be.Own || be.Limit != 1<<20 || be.InUse != 900<<10 {
				t.Fatalf("reserve over the pool budget: %+v", err)
			}
			// Allocate (the memory.Allocator path) still panics with the
			// same error: the engine turns it into the operator's error.
			v := mustPanic(t, "Allocate over budget", func() { b.Allocate(200 << 10) })
			if _, ok := v.(*BudgetError); !ok {
				t.Fatalf("panic value %T %v", v, v)
			}
			// What fits is allocated, and counts.
			buf, err = b.TryAllocate(64 << 10)
			if err != nil || len(buf) != 64<<10 {
				t.Fatalf("TryAllocate that fits: %v", err)
			}
			if b.Used() < 764<<10 {
				t.Fatalf("used %d after a 64 KiB allocation", b.Used())
			}
			b.Free(buf)
			b.Unreserve(700 << 10)
			a.Unreserve(200 << 10)
			if a.Used() != 0 || b.Used() != 0 || p.Usage().InUse != 0 {
				t.Fatalf("after unreserve: %d %d pool %d", a.Used(), b.Used(), p.Usage().InUse)
			}
			if p.Usage().Peak < 900<<10 {
				t.Fatalf("pool peak %d", p.Usage().Peak)
			}
			if err := a.Reserve(-1); err == nil {
				t.Fatal("negative reservation accepted")
			}
			if p.Account("agg", 1) != a {
				t.Fatal("the same owner got another account")
			}
		})
	}
}

// TestAccountNoLimits: with no budget anywhere Available is unbounded.
func TestAccountNoLimits(t *testing.T) {
	for name, p := range pools(t, 0) {
		t.Run(name, func(t *testing.T) {
			a := p.Account("x", 0)
			if a.Available() != math.MaxInt64 {
				t.Fatalf("available %d", a.Available())
			}
		})
	}
}

// TestOwnLimitConcurrent: owners racing for their limits never take more
// than it between them, and the refused ones get errors, not panics.
func TestOwnLimitConcurrent(t *testing.T) {
	for name, p := range pools(t, 0) {
		t.Run(name, func(t *testing.T) {
			a := p.Account("shared", 1<<20)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var got [][]byte
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 64 {
						b, err := a.TryAllocate(4096)
						if err != nil {
							return
						}
						mu.Lock()
						got = append(got, b)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if a.Peak() > 1<<20 || a.Used() > 1<<20 {
				t.Fatalf("peak %d used %d over the 1 MiB limit", a.Peak(), a.Used())
			}
			for _, b := range got {
				a.Free(b)
			}
			if a.Used() != 0 {
				t.Fatalf("used %d after freeing all", a.Used())
			}
		})
	}
}

// TestKinds: the built-in kinds are registered; an unknown kind lists the
// known ones; a duplicate registration panics.
func TestKinds(t *testing.T) {
	names := strings.Join(KindNames(), ",")
	for _, k := range []string{"heap", "hugepage", "plain", "thp"} {
		if !strings.Contains(names, k) {
			t.Errorf("kind %s not registered: %s", k, names)
		}
	}
	if _, err := NewPool(PoolConfig{Kind: "dax"}); err == nil || !strings.Contains(err.Error(), `unknown memory kind "dax" (known: heap, hugepage, plain, thp`) {
		t.Errorf("unknown kind: %v", err)
	}
	mustPanic(t, "duplicate kind", func() { RegisterKind(KindSpec{Name: "heap", New: func(PoolConfig) (Pool, error) { return nil, nil }}) })
	mustPanic(t, "bad name", func() {
		RegisterKind(KindSpec{Name: "Bad-Name", New: func(PoolConfig) (Pool, error) { return nil, nil }})
	})
	p, err := NewPool(PoolConfig{Kind: "plain", Budget: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind() != "plain" || p.Report().Budget != 8<<20 {
		t.Errorf("kind %s report %+v", p.Kind(), p.Report())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPool(PoolConfig{Kind: "heap", SoftBudget: 1 << 20, Lock: true}); err == nil || !strings.Contains(err.Error(), "cannot honour [a soft budget lock]") {
		t.Errorf("heap with a soft budget: %v", err)
	}
}

// TestCloseWithReservation: a pool does not close over a reservation.
func TestCloseWithReservation(t *testing.T) {
	p, err := NewPool(PoolConfig{Kind: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	a := p.Account("x", 0)
	if err := a.Reserve(1 << 20); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err == nil {
		t.Fatal("closed with 1 MiB reserved")
	}
	a.Unreserve(1 << 20)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	h, _ := NewPool(PoolConfig{Kind: "heap"})
	ha := h.Account("y", 0)
	if err := ha.Reserve(10); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err == nil || !strings.Contains(err.Error(), `owner "y" still holds 10 B reserved`) {
		t.Fatalf("heap close: %v", err)
	}
}

// TestAccountHotPathNoAllocs: allocating through an account allocates
// nothing on the Go heap (arena) — budgets included.
func TestAccountHotPathNoAllocs(t *testing.T) {
	cfg := plainCfg()
	cfg.Budget = 64 << 20
	p, _ := newTest(t, cfg)
	a := p.Account("op", 32<<20)
	n := testing.AllocsPerRun(1000, func() {
		b := a.Allocate(4096)
		a.Free(b)
	})
	if n != 0 {
		t.Fatalf("%v allocations per Allocate+Free", n)
	}
}

// TestRegionSourceRefusals: an arena over a region source cannot bind,
// lock or prefault memory it did not map.
func TestRegionSourceRefusals(t *testing.T) {
	for _, cfg := range []ArenaConfig{{Bind: true}, {Lock: true}, {Prefault: true}} {
		cfg.Regions = nilSource{}
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "cannot bind, lock or prefault") {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

type nilSource struct{}

func (nilSource) Take(uintptr, bool) ([]byte, error) { return nil, errors.New("empty") }
func (nilSource) Give([]byte) error                  { return nil }

// shareOf is the byte count behind an Account of either pool kind.
func shareOf(t *testing.T, a Account) *share {
	t.Helper()
	switch v := a.(type) {
	case *ownerView:
		return &v.o.use
	case *heapAccount:
		return &v.use
	}
	t.Fatalf("account %T", a)
	return nil
}

// TestOwnLimitWaitsForFrees: an Allocate over its owner's own limit waits
// for the owner's bytes to be freed (by a consumer, on another goroutine)
// and then succeeds; a Reserve over it is refused at once, without
// waiting; and an Allocate for which no free comes is refused once the
// wait is over, its error saying how long it waited. No timing is
// asserted beyond "waited more than nothing".
func TestOwnLimitWaitsForFrees(t *testing.T) {
	for name, p := range pools(t, 0) {
		t.Run(name, func(t *testing.T) {
			a := p.Account("join", 256<<10)
			s := shareOf(t, a)
			held := a.Allocate(200 << 10) // an output batch its consumer still holds
			if err := a.Reserve(100 << 10); err == nil {
				t.Fatal("reserve over the own limit succeeded")
			} else if be := (*BudgetError)(nil); !errors.As(err, &be) || be.Waited != 0 {
				t.Fatalf("reserve: %v (waited %v), want a refusal at once", err, be.Waited)
			}
			got := make(chan []byte)
			go func() { got <- a.Allocate(100 << 10) }()
			for s.waiters.Load() == 0 {
				runtime.Gosched()
			}
			a.Free(held) // the consumer lets go
			b := <-got
			if len(b) != 100<<10 || a.Used() < 100<<10 {
				t.Fatalf("allocation after the wait: %d bytes, used %d", len(b), a.Used())
			}
			a.Free(b)
			if a.Used() != 0 {
				t.Fatalf("used %d at the end", a.Used())
			}
		})
	}
	t.Run("no free comes", func(t *testing.T) {
		p := pools(t, 0)["heap"]
		a := p.Account("sort", 64<<10)
		held := a.Allocate(60 << 10)
		defer a.Free(held)
		v := mustPanic(t, "Allocate over the own limit with nothing freed", func() { a.Allocate(8 << 10) })
		be, ok := v.(*BudgetError)
		if !ok || !be.Own || be.Waited <= 0 {
			t.Fatalf("panic %T %v, want an own-limit *BudgetError that waited", v, v)
		}
		if !strings.Contains(be.Error(), "of its own 64 KiB budget in use (after waiting") {
			t.Errorf("message %q", be.Error())
		}
	})
}
