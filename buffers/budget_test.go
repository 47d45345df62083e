//go:build linux

package buffers

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestHardBudget: an Allocate past the budget panics with a *BudgetError
// naming the owner and the sizes, and nothing is charged for it.
func TestHardBudget(t *testing.T) {
	cfg := plainCfg()
	cfg.Budget = 1 << 20
	a, _ := newTest(t, cfg)
	big := a.For("big")
	b := big.Allocate(512 << 10)
	v := mustPanic(t, "Allocate past the budget", func() { big.Allocate(768 << 10) })
	be, ok := v.(*BudgetError)
	if !ok {
		t.Fatalf("panic %T %v, want *BudgetError", v, v)
	}
	want := BudgetError{Owner: "big", Asked: 768 << 10, InUse: 512 << 10, Limit: 1 << 20}
	if *be != want {
		t.Errorf("BudgetError %+v, want %+v", *be, want)
	}
	if got, w := be.Error(), `memory budget exceeded: operator "big" asked for 768 KiB with 512 KiB of 1 MiB in use`; got != w {
		t.Errorf("message %q, want %q", got, w)
	}
	if !errors.Is(be, ErrBudgetExceeded) {
		t.Error("not ErrBudgetExceeded")
	}
	// Large allocations are refused before anything is mapped.
	mapped := a.Arena().Mapped()
	v = mustPanic(t, "large past the budget", func() { a.Allocate(8 << 20) })
	if be, ok := v.(*BudgetError); !ok || be.Owner != "" || be.Asked != 8<<20 {
		t.Errorf("large: panic %v", v)
	}
	if a.Arena().Mapped() != mapped {
		t.Errorf("a refused large allocation mapped %d bytes", a.Arena().Mapped()-mapped)
	}
	st := a.Stats()
	if st.InUse != 512<<10 || st.BudgetFailures != 2 {
		t.Errorf("in use %d, budget failures %d; want %d, 2", st.InUse, st.BudgetFailures, 512<<10)
	}
	for _, o := range st.Owners {
		if o.Owner == "big" && o.BudgetFailures != 1 {
			t.Errorf("owner big: %+v", o)
		}
	}
	// What fits still fits.
	c := big.Allocate(512 << 10)
	big.Free(c)
	big.Free(b)
}

// TestSoftBudgetWaitsForConsumer: a producer above the soft budget waits
// until a consumer frees, then completes. Timings are not asserted: the
// bound is set far beyond what the test needs, and only the wait count is
// checked.
func TestSoftBudgetWaitsForConsumer(t *testing.T) {
	cfg := plainCfg()
	cfg.SoftBudget = 1 << 20
	cfg.SoftWait = time.Minute
	a, _ := newTest(t, cfg)
	const block = 256 << 10
	held := make(chan []byte, 16)
	for i := 0; i < 4; i++ { // exactly at the soft budget
		held <- a.Allocate(block)
	}
	done := make(chan []byte)
	go func() { done <- a.Allocate(block) }() // must wait
	for a.softWaiters.Load() == 0 {
		runtime.Gosched()
	}
	a.Free(<-held) // the consumer frees one
	b := <-done
	st := a.Stats()
	if st.SoftWaits != 1 || st.SoftTimeouts != 0 {
		t.Errorf("soft waits %d, timeouts %d; want 1, 0", st.SoftWaits, st.SoftTimeouts)
	}
	a.Free(b)
	close(held)
	for b := range held {
		a.Free(b)
	}
}

// TestSoftBudgetProducerConsumer: a producer goroutine and a consumer
// goroutine with a queue deeper than the soft budget: it completes, the
// producer waited, usage stayed bounded by the soft budget plus the blocks
// let through after a wait.
func TestSoftBudgetProducerConsumer(t *testing.T) {
	cfg := plainCfg()
	cfg.SoftBudget = 1 << 20
	cfg.SoftWait = time.Minute
	a, _ := newTest(t, cfg)
	const block, n = 64 << 10, 2000
	q := make(chan []byte, 1000) // far more than the soft budget holds
	go func() {
		p := a.For("producer")
		for i := 0; i < n; i++ {
			b := p.Allocate(block)
			b[0] = byte(i)
			q <- b
		}
		close(q)
	}()
	got := 0
	for b := range q {
		if b[0] != byte(got) {
			t.Fatalf("block %d holds %d", got, b[0])
		}
		got++
		if got%100 == 0 {
			runtime.Gosched()
		}
		a.Free(b)
	}
	st := a.Stats()
	if got != n || st.InUse != 0 {
		t.Fatalf("consumed %d of %d, %d bytes in use", got, n, st.InUse)
	}
	if st.SoftWaits == 0 {
		t.Errorf("the producer never waited: %+v", st)
	}
	if st.Peak > cfg.SoftBudget+2*block {
		t.Errorf("peak %s above the soft budget %s (waits %d, timeouts %d)", humanBytes(st.Peak), humanBytes(cfg.SoftBudget), st.SoftWaits, st.SoftTimeouts)
	}
	t.Logf("soft waits %d, waited %v, timeouts %d, peak %s", st.SoftWaits, st.SoftWaited, st.SoftTimeouts, humanBytes(st.Peak))
}

// TestSoftBudgetBounded: with nobody to free, the wait ends at SoftWait
// and the allocation goes ahead: backpressure, never a deadlock.
func TestSoftBudgetBounded(t *testing.T) {
	cfg := plainCfg()
	cfg.SoftBudget = 256 << 10
	cfg.SoftWait = time.Millisecond
	a, _ := newTest(t, cfg)
	b1 := a.Allocate(256 << 10)
	b2 := a.Allocate(256 << 10) // waits 1 ms, then proceeds
	st := a.Stats()
	if st.SoftWaits != 1 || st.SoftTimeouts != 1 || st.InUse != 512<<10 {
		t.Errorf("waits %d, timeouts %d, in use %d", st.SoftWaits, st.SoftTimeouts, st.InUse)
	}
	a.Free(b1)
	a.Free(b2)
	// A single allocation bigger than the soft budget, with nothing in use,
	// does not wait: nothing could be freed.
	b3 := a.Allocate(512 << 10)
	if st := a.Stats(); st.SoftWaits != 1 {
		t.Errorf("an allocation with nothing in use waited (%d waits)", st.SoftWaits)
	}
	a.Free(b3)
}
