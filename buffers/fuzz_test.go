//go:build linux

package buffers

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"testing"
)

// FuzzAllocFree runs a sequence of Allocate, Free and Reallocate decoded
// from the input against a model of what must be live, and checks after
// every step: 64-byte alignment, zeroed new memory, contents kept, no two
// live buffers overlapping, the bytes in use and the block counts equal
// to the model's, the hard budget refusing exactly what the model says;
// and at the end that Close succeeds and unmaps everything.
//
// Input: byte 0 picks the budget (odd: 12 MiB hard budget); then 3 bytes
// per step: op (alloc, alloc, free, realloc), size band and size (or
// which live buffer).
func FuzzAllocFree(f *testing.F) {
	f.Add([]byte{0, 0, 0, 10, 2, 0, 0})
	f.Add([]byte{1, 0, 0x40, 0xff, 0, 0x80, 0x10, 3, 0x40, 0x01, 2, 0, 1, 2, 0, 0})
	f.Add([]byte{0, 0, 0xc0, 0x20, 3, 0xc0, 0x40, 3, 0x80, 0x01, 2, 0, 0})
	f.Add([]byte{1, 0, 0xc0, 0xff, 0, 0xc0, 0xff, 0, 0x80, 0xff, 0, 0x80, 0xff, 0, 0x80, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		if len(data) > 1+3*128 {
			data = data[:1+3*128]
		}
		cfg := ArenaConfig{
			Kind: KindPlain, Node: NoNode, ExtentSize: 4 << 20, LargeCache: 16 << 20,
			Logger: slog.New(slog.DiscardHandler),
		}
		if data[0]&1 == 1 {
			cfg.Budget = 12 << 20
		}
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		m := &model{t: t, a: a, page: int64(os.Getpagesize())}
		for i := 1; i+2 < len(data); i += 3 {
			op, band, x := data[i]%4, data[i+1], data[i+2]
			switch op {
			case 0, 1:
				m.alloc(sizeFrom(band, x))
			case 2:
				if len(m.live) > 0 {
					m.free(int(x) % len(m.live))
				}
			case 3:
				if len(m.live) > 0 {
					m.realloc(int(band)%len(m.live), sizeFrom(band, x))
				}
			}
			m.check()
		}
		for len(m.live) > 0 {
			m.free(len(m.live) - 1)
		}
		m.check()
		if err := a.Close(); err != nil {
			t.Fatalf("Close after freeing everything: %v", err)
		}
		if n := a.Arena().Mapped(); n != 0 {
			t.Fatalf("Close left %d bytes mapped", n)
		}
	})
}

// sizeFrom maps a band (top two bits) and a byte to a size: up to 256 B,
// up to 64 KiB, up to MaxClassSize, or a large block of up to 8 MiB.
func sizeFrom(band, x byte) int {
	v := int(band&0x3f)<<8 | int(x)
	switch band >> 6 {
	case 0:
		return 1 + int(x)
	case 1:
		return 1 + v*4%(64<<10)
	case 2:
		return 1 + v*256%MaxClassSize
	}
	return MaxClassSize + 1 + v*256%(4<<20)
}

type modelBuf struct {
	b      []byte
	tag    byte
	charge int64
}

type model struct {
	t     *testing.T
	a     *Allocator
	page  int64
	live  []modelBuf
	inUse int64
	tag   byte
}

// charge is what the allocator must count for a block of size bytes.
func (m *model) charge(size int) int64 {
	if size > MaxClassSize {
		return roundUp(int64(size), m.page)
	}
	return int64(classSizes[classOf(size)])
}

func (m *model) alloc(size int) {
	c := m.charge(size)
	over := m.a.use.limit > 0 && m.inUse+c > m.a.use.limit
	var b []byte
	func() {
		defer func() {
			if v := recover(); v != nil {
				var be *BudgetError
				if err, ok := v.(error); !over || !ok || !errors.As(err, &be) {
					m.t.Fatalf("Allocate(%d) with %d of %d in use: panic %v", size, m.inUse, m.a.use.limit, v)
				}
				if be.Asked != int64(size) || be.InUse != m.inUse || be.Limit != m.a.use.limit {
					m.t.Fatalf("Allocate(%d): %+v, model in use %d", size, be, m.inUse)
				}
			}
		}()
		b = m.a.Allocate(size)
	}()
	if over {
		if b != nil {
			m.t.Fatalf("Allocate(%d) with %d of %d in use: no budget error", size, m.inUse, m.a.use.limit)
		}
		return
	}
	m.checkNew(b, size, 0)
	m.tag++
	fillTag(b, m.tag)
	m.live = append(m.live, modelBuf{b, m.tag, c})
	m.inUse += c
}

func (m *model) free(k int) {
	mb := m.live[k]
	m.checkTag(mb.b, len(mb.b), mb.tag)
	m.a.Free(mb.b)
	m.live = append(m.live[:k], m.live[k+1:]...)
	m.inUse -= mb.charge
}

func (m *model) realloc(k, size int) {
	mb := m.live[k]
	m.checkTag(mb.b, len(mb.b), mb.tag)
	c := m.charge(size)
	// Whether it moves is the allocator's choice; the budget is checked
	// only when it moves, so keep the model's budget out of reach.
	if m.a.use.limit > 0 && m.inUse+c > m.a.use.limit {
		return
	}
	nb := m.a.Reallocate(size, mb.b)
	m.checkTag(nb, min(size, len(mb.b)), mb.tag)
	if size > len(mb.b) {
		m.checkNew(nb[len(mb.b):], size-len(mb.b), len(mb.b))
	}
	if len(nb) != size || addr(nb)%64 != 0 {
		m.t.Fatalf("Reallocate(%d): len %d at %#x", size, len(nb), addr(nb))
	}
	m.live = append(m.live[:k], m.live[k+1:]...)
	m.inUse -= mb.charge
	if addr(nb) == addr(mb.b) {
		c = mb.charge // in place: the block keeps its charge
	}
	m.tag++
	fillTag(nb, m.tag)
	m.live = append(m.live, modelBuf{nb, m.tag, c})
	m.inUse += c
	m.checkOverlap()
}

// checkNew checks a buffer just handed out: length, alignment (of a whole
// buffer), zeroed bytes, no overlap with a live one.
func (m *model) checkNew(b []byte, size, off int) {
	if len(b) != size {
		m.t.Fatalf("got %d bytes, asked %d", len(b), size)
	}
	if off == 0 && addr(b)%64 != 0 {
		m.t.Fatalf("Allocate(%d) at %#x: not 64-byte aligned", size, addr(b))
	}
	if i := firstNot(b, 0); i >= 0 {
		m.t.Fatalf("%d new bytes at %#x: byte %d is %#x, not zeroed", size, addr(b), off+i, b[i])
	}
	if off == 0 {
		lo, hi := addr(b), addr(b)+uintptr(size)
		for _, mb := range m.live {
			if l, h := addr(mb.b), addr(mb.b)+uintptr(len(mb.b)); lo < h && l < hi {
				m.t.Fatalf("Allocate(%d) at [%#x,%#x) overlaps a live buffer at [%#x,%#x)", size, lo, hi, l, h)
			}
		}
	}
}

func (m *model) checkOverlap() {
	for i, x := range m.live {
		for _, y := range m.live[i+1:] {
			if addr(x.b) < addr(y.b)+uintptr(len(y.b)) && addr(y.b) < addr(x.b)+uintptr(len(x.b)) {
				m.t.Fatalf("live buffers overlap: %#x+%d and %#x+%d", addr(x.b), len(x.b), addr(y.b), len(y.b))
			}
		}
	}
}

// fillTag sets every byte of b to tag (by doubling copies: fast even
// with the fuzzer's coverage instrumentation).
func fillTag(b []byte, tag byte) {
	if len(b) == 0 {
		return
	}
	b[0] = tag
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// firstNot returns the index of the first byte of b that is not v, or -1.
func firstNot(b []byte, v byte) int {
	var ref [4096]byte
	if v != 0 {
		fillTag(ref[:], v)
	}
	for off := 0; off < len(b); off += len(ref) {
		chunk := b[off:min(off+len(ref), len(b))]
		if !bytes.Equal(chunk, ref[:len(chunk)]) {
			for i, c := range chunk {
				if c != v {
					return off + i
				}
			}
		}
	}
	return -1
}

func (m *model) checkTag(b []byte, n int, tag byte) {
	if i := firstNot(b[:n], tag); i >= 0 {
		m.t.Fatalf("buffer %#x (%d bytes): byte %d is %#x, want %#x: contents lost", addr(b), len(b), i, b[i], tag)
	}
}

// check compares the allocator's accounting with the model's.
func (m *model) check() {
	st := m.a.Stats()
	if st.InUse != m.inUse {
		m.t.Fatalf("in use %d, model %d", st.InUse, m.inUse)
	}
	if n := st.Blocks; n != int64(len(m.live)) {
		m.t.Fatalf("%d blocks in use, model %d", n, len(m.live))
	}
	var blocks int64
	for _, c := range st.Classes {
		blocks += c.InUse
		if c.Bytes != c.InUse*c.Size {
			m.t.Fatalf("class %d: %d bytes for %d blocks", c.Size, c.Bytes, c.InUse)
		}
	}
	if blocks+st.Large.InUse != int64(len(m.live)) {
		m.t.Fatalf("%d class blocks + %d large in use, model %d", blocks, st.Large.InUse, len(m.live))
	}
}
