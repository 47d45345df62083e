//go:build linux

package buffers

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestStress: 16 goroutines allocate, reallocate and free random sizes,
// write a pattern of their own into every buffer and check it is intact
// when they free it: two goroutines given overlapping memory, or a block
// handed out twice, would overwrite each other's patterns. Blocks also
// travel between goroutines (freed by another one than allocated them).
func TestStress(t *testing.T) {
	for _, kind := range []Kind{KindPlain, KindTHP} {
		t.Run("kind="+kind.String(), func(t *testing.T) {
			a, _ := newTest(t, ArenaConfig{Kind: kind, Node: NoNode, ExtentSize: 16 << 20})
			const workers = 16
			ops := 1000
			if testing.Short() {
				ops = 500
			}
			handoff := make(chan []byte, 64)
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					errs <- stressWorker(a, w, ops, handoff)
				}(w)
			}
			wg.Wait()
			close(handoff)
			for b := range handoff {
				a.Free(b)
			}
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			st := a.Stats()
			if st.InUse != 0 || st.Blocks != 0 {
				t.Errorf("after the stress: %d bytes in use, %d blocks", st.InUse, st.Blocks)
			}
			t.Logf("reallocs %d, mapped %s, peak %s", st.Reallocs, humanBytes(st.Mapped), humanBytes(st.Peak))
		})
	}
}

// pattern is the byte at offset i of a buffer stamped with tag.
func pattern(tag uint32, i int) byte { return byte(tag) ^ byte(i*31) ^ byte(i>>8) }

// probe calls f for the offsets a stamp covers: every byte of a small
// buffer; of a big one the first and last KiB and every 509th byte (any
// two overlapping blocks share one of those; writing every byte of
// megabytes under -race would take minutes).
func probe(n int, f func(i int) bool) {
	if n <= 16<<10 {
		for i := 0; i < n; i++ {
			if !f(i) {
				return
			}
		}
		return
	}
	for i := 0; i < n; {
		if !f(i) {
			return
		}
		if i < 1024 || i >= n-1024 {
			i++
		} else {
			i = min(i+509, n-1024)
		}
	}
}

func stamp(b []byte, tag uint32) {
	probe(len(b), func(i int) bool { b[i] = pattern(tag, i); return true })
}

func checkStamp(b []byte, tag uint32) error { return checkStampOf(b, len(b), tag) }

// checkStampOf checks b against a stamp made on a buffer of n bytes (b may
// be shorter: the kept prefix of a reallocated buffer).
func checkStampOf(b []byte, n int, tag uint32) (err error) {
	probe(n, func(i int) bool {
		if i >= len(b) {
			return true
		}
		if b[i] != pattern(tag, i) {
			err = fmt.Errorf("buffer %#x (%d bytes, tag %d): byte %d is %#x, want %#x: overwritten", addr(b), len(b), tag, i, b[i], pattern(tag, i))
		}
		return err == nil
	})
	return err
}

func checkZero(b []byte) (err error) {
	probe(len(b), func(i int) bool {
		if b[i] != 0 {
			err = fmt.Errorf("Allocate(%d) at %#x: byte %d is %#x, not zeroed", len(b), addr(b), i, b[i])
		}
		return err == nil
	})
	return err
}

func stressSize(r *rand.Rand) int {
	switch x := r.IntN(1000); {
	case x < 700:
		return 1 + r.IntN(4096)
	case x < 950:
		return 1 + r.IntN(64<<10)
	case x < 995:
		return 1 + r.IntN(MaxClassSize)
	default:
		return MaxClassSize + 1 + r.IntN(4<<20)
	}
}

func stressWorker(a *Allocator, w, ops int, handoff chan []byte) error {
	r := rand.New(rand.NewPCG(uint64(w), 42))
	type held struct {
		b   []byte
		tag uint32
	}
	var live []held
	tag := uint32(w) << 24
	for i := 0; i < ops; i++ {
		switch op := r.IntN(10); {
		case op < 5 || len(live) == 0: // allocate
			b := a.Allocate(stressSize(r))
			if addr(b)%64 != 0 {
				return fmt.Errorf("worker %d: Allocate(%d) at %#x not aligned", w, len(b), addr(b))
			}
			if err := checkZero(b); err != nil {
				return fmt.Errorf("worker %d: %w", w, err)
			}
			tag++
			stamp(b, tag)
			live = append(live, held{b, tag})
		case op < 6: // reallocate
			k := r.IntN(len(live))
			h := live[k]
			n := stressSize(r)
			nb := a.Reallocate(n, h.b)
			if err := checkStampOf(nb[:min(n, len(h.b))], len(h.b), h.tag); err != nil {
				return fmt.Errorf("worker %d: after Reallocate(%d) of %d: %w", w, n, len(h.b), err)
			}
			tag++
			stamp(nb, tag)
			live[k] = held{nb, tag}
		case op < 7: // hand a block to whoever frees next
			k := r.IntN(len(live))
			if err := checkStamp(live[k].b, live[k].tag); err != nil {
				return fmt.Errorf("worker %d: %w", w, err)
			}
			select {
			case handoff <- live[k].b:
				live = append(live[:k], live[k+1:]...)
			default:
			}
		case op < 8: // free a block another worker handed off
			select {
			case b := <-handoff:
				a.Free(b)
			default:
			}
		default: // free
			k := r.IntN(len(live))
			if err := checkStamp(live[k].b, live[k].tag); err != nil {
				return fmt.Errorf("worker %d: %w", w, err)
			}
			a.Free(live[k].b)
			live = append(live[:k], live[k+1:]...)
		}
		if len(live) > 32 { // keep memory bounded
			h := live[0]
			if err := checkStamp(h.b, h.tag); err != nil {
				return fmt.Errorf("worker %d: %w", w, err)
			}
			a.Free(h.b)
			live = live[1:]
		}
	}
	for _, h := range live {
		if err := checkStamp(h.b, h.tag); err != nil {
			return fmt.Errorf("worker %d: %w", w, err)
		}
		a.Free(h.b)
	}
	return nil
}
