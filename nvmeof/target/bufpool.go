package target

import "math/bits"

// bufPool keeps a queue's data buffers for reuse, so a command does not
// allocate (and the runtime zero) a new buffer for its data: one free list
// per power-of-two size from 4 KiB to the largest transfer (1 MiB), each
// at most poolDepth long. It belongs to the queue's goroutine: no locks.
// A buffer whose data is queued for sending is held until the flush that
// sends it (release).
type bufPool struct {
	free [poolClasses][][]byte
	held [][]byte
}

const (
	poolMinShift = 12
	poolClasses  = mdts + 1 // 4 KiB << 0 .. 4 KiB << mdts
	poolDepth    = 32
)

func poolClass(n int) int {
	if n <= 1<<poolMinShift {
		return 0
	}
	return bits.Len(uint(n-1)) - poolMinShift
}

// get returns a buffer of n bytes; its contents are whatever it last held.
func (p *bufPool) get(n int) []byte {
	c := poolClass(n)
	if c >= poolClasses {
		return make([]byte, n)
	}
	if l := p.free[c]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		p.free[c] = l[:len(l)-1]
		return b[:n]
	}
	return make([]byte, n, 1<<(poolMinShift+c))
}

// put gives b back for reuse.
func (p *bufPool) put(b []byte) {
	c := poolClass(cap(b))
	if c >= poolClasses || cap(b) != 1<<(poolMinShift+c) || len(p.free[c]) >= poolDepth {
		return
	}
	p.free[c] = append(p.free[c], b[:0])
}

// hold keeps b out of reuse until release: its data is queued for sending.
func (p *bufPool) hold(b []byte) { p.held = append(p.held, b) }

// release gives back every held buffer: what held them has been sent.
func (p *bufPool) release() {
	for i, b := range p.held {
		p.put(b)
		p.held[i] = nil
	}
	p.held = p.held[:0]
}
