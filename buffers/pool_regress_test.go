//go:build linux

// Regression tests for what a review of the pools found: stale claims
// inflating a pool's peak, a refused allocation raising an owner's peak,
// TryAllocate panicking on a negative size, free blocks stranded in other
// shards' slots (mapping past the budget), and torn reads making Used()
// negative.

package buffers

import (
	"fmt"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// R1: a budget-less pool's peak keeps an owner's stale claim after it freed
// everything: two owners that never overlap report the sum as the pool peak.
func TestPoolRegressStaleClaimPeak(t *testing.T) {
	arena, _ := newTest(t, plainCfg())
	heap, _ := NewHeapPool("caller", memory.NewGoAllocator(), PoolConfig{})
	for name, p := range map[string]Pool{"arena": arena, "heap": heap} {
		t.Run(name, func(t *testing.T) {
			for _, owner := range []string{"a", "b", "c", "d"} {
				acct := p.Account(owner, 0)
				var bufs [][]byte
				for range 16 {
					bufs = append(bufs, acct.Allocate(1<<20))
				}
				for _, b := range bufs {
					acct.Free(b)
				}
			}
			u := p.Usage()
			t.Logf("%s: in use %d, pool peak %d MiB (true peak 16 MiB)", name, u.InUse, u.Peak>>20)
			if u.Peak > 20<<20 {
				t.Errorf("pool peak %d MiB, never more than 16 MiB were in use at once", u.Peak>>20)
			}
		})
	}
}

// R2: an allocation refused by the pool's budget raises the owner's peak
// (share.add raises it before total.add refuses).
func TestPoolRegressRefusedRaisesPeak(t *testing.T) {
	arena, _ := newTest(t, func() ArenaConfig { c := plainCfg(); c.Budget = 1 << 20; return c }())
	heap, _ := NewHeapPool("caller", memory.NewGoAllocator(), PoolConfig{Budget: 1 << 20})
	for name, p := range map[string]Pool{"arena": arena, "heap": heap} {
		for _, lim := range []int64{0, 4 << 20} {
			t.Run(fmt.Sprint(name, lim), func(t *testing.T) {
				acct := p.Account(fmt.Sprint("o", lim), lim)
				b, err := acct.TryAllocate(512 << 10)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := acct.TryAllocate(1 << 20); err == nil {
					t.Fatal("not refused")
				}
				if err := acct.Reserve(3 << 20); err == nil {
					t.Fatal("not refused")
				}
				t.Logf("used %d, peak %d (pool budget 1 MiB)", acct.Used(), acct.Peak())
				if acct.Peak() > 1<<20 {
					t.Errorf("owner peak %d above the pool budget; only 512 KiB was ever in use", acct.Peak())
				}
				acct.Free(b)
			})
		}
	}
}

// R3: TryAllocate with a negative size panics on an arena account, returns
// an error on a heap account.
func TestPoolRegressTryAllocateNegative(t *testing.T) {
	arena, _ := newTest(t, plainCfg())
	heap, _ := NewHeapPool("caller", memory.NewGoAllocator(), PoolConfig{})
	for name, p := range map[string]Pool{"arena": arena, "heap": heap} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("TryAllocate(-1) panicked: %v", r)
				}
			}()
			_, err := p.Account("x", 0).TryAllocate(-1)
			t.Logf("err %v", err)
		})
	}
}

// R4: a block parked in another shard's slot is never stolen: an allocation
// carves fresh memory while the class has a free block.
func TestPoolRegressSlotStranded(t *testing.T) {
	a, _ := newTest(t, plainCfg())
	size := 1 << 20
	var wg sync.WaitGroup
	var hints []uint32
	var mu sync.Mutex
	// 8 goroutines each allocate and free one block: each block lands in its
	// freeing goroutine's slot.
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			hints = append(hints, shardHint()&uint32(len(a.classes[classOf(size)].shards)-1))
			b := a.Allocate(size)
			a.Free(b)
		}()
		wg.Wait()
	}
	st := a.Stats()
	for _, c := range st.Classes {
		if c.Size == int64(size) {
			t.Logf("shards used by frees %v; class 1 MiB: carved %d, free %d, in use %d, mapped %d MiB", hints, c.Carved, c.Free, c.InUse, st.Mapped>>20)
			if c.Carved > 1 {
				t.Errorf("carved %d blocks with at most 1 ever in use", c.Carved)
			}
		}
	}
}

// R5: Used/InUse read while another goroutine frees can be negative (lanes
// are summed without a snapshot).
func TestPoolRegressNegativeUsed(t *testing.T) {
	a, _ := newTest(t, plainCfg())
	acct := a.Account("op", 0)
	ch := make(chan []byte)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		t.Logf("producer lane %d", shardHint()&7)
		for range 2000000 {
			ch <- acct.Allocate(64)
		}
		close(ch)
	}()
	go func() {
		defer wg.Done()
		t.Logf("consumer lane %d", shardHint()&7)
		for b := range ch {
			acct.Free(b)
		}
	}()
	go func() { wg.Wait(); close(done) }()
	neg, minv := 0, int64(0)
	for {
		select {
		case <-done:
			t.Logf("negative reads %d, min %d", neg, minv)
			if neg > 0 {
				t.Errorf("Used() went negative %d times (min %d)", neg, minv)
			}
			return
		default:
		}
		if u := acct.Used(); u < 0 {
			neg++
			minv = min(minv, u)
		}
		if u := a.Usage().InUse; u < 0 {
			neg++
			minv = min(minv, u)
		}
	}
}

func TestPoolRegressSlotMappedOverBudget(t *testing.T) {
	cfg := plainCfg()
	cfg.Budget = 8 << 20
	a, _ := newTest(t, cfg)
	size := 4 << 20
	// 8 live goroutines (distinct stacks), taking turns: one block in use at a time.
	var wg sync.WaitGroup
	turns := make([]chan struct{}, 9)
	for i := range turns {
		turns[i] = make(chan struct{})
	}
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-turns[i]
			b := a.Allocate(size)
			a.Free(b)
			close(turns[i+1])
		}()
	}
	close(turns[0])
	wg.Wait()
	st := a.Stats()
	t.Logf("budget 8 MiB, one 4 MiB block in use at a time: mapped %d MiB, peak %d MiB", st.Mapped>>20, st.Peak>>20)
	for _, c := range st.Classes {
		if c.Size == int64(size) {
			t.Logf("4 MiB class: carved %d, free %d", c.Carved, c.Free)
		}
	}
	if st.Mapped > cfg.Budget {
		t.Errorf("mapped %d MiB with a budget of 8 MiB and 4 MiB ever in use", st.Mapped>>20)
	}
}
