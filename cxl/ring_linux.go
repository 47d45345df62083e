package cxl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A ring is a single-producer, single-consumer queue of fixed entries in a
// segment: one process pushes, one pops, each writing only its own
// cursor. Layout at the ring's offset (64-byte aligned), little-endian:
//
//	off size field
//	  0    8 tail: entries pushed (the producer's cursor)
//	  8    4 capacity (a power of two)
//	 12    4 entry bytes (RingEntryBytes)
//	 64    8 head: entries popped (the consumer's cursor), own cache line
//	 72    8 acked: entries the consumer is done with (≤ head; the producer
//	         may overwrite an entry only once it is acked, so the entries
//	         from acked to tail stay readable: a consumer that restarts
//	         pops again from acked)
//	128    4 data event: futex word the producer bumps when the consumer sleeps
//	132    4 consumer sleeping
//	136    4 space event: futex word the consumer bumps when the producer sleeps
//	140    4 producer sleeping
//	192      entries: capacity × RingEntryBytes
//
// An entry (RingEntryBytes): sequence u64 (its index: a reader checks it),
// A u64, B u64, C u64, CRC-32C of the first 32 bytes u32, zero u32. The producer
// writes an entry, then stores the tail; the consumer reads the tail, then
// the entry, then stores the head: the cursors are the only words both
// read, each written by one side (Go's atomics are sequentially consistent,
// and on amd64 and arm64 so are the instructions they compile to, across
// processes as within one).
//
// A side with nothing to do waits on a shared futex (no FUTEX_PRIVATE_FLAG:
// the word is in shared memory) after announcing it sleeps, and the other
// side wakes it only when it does: a push to a ring whose consumer is busy
// costs no system call. Every wait has a timeout, so a sleeper re-checks
// its context and its peer.
const (
	RingEntryBytes = 40
	ringHeader     = 192
	ringTail       = 0
	ringCap        = 8
	ringEntryB     = 12
	ringHead       = 64
	ringAcked      = 72
	ringDataEv     = 128
	ringConsSleep  = 132
	ringSpaceEv    = 136
	ringProdSleep  = 140
	maxRingCap     = 1 << 20
)

// RingBytes is the size of a ring of capacity entries, rounded up to a
// cache line (rings are laid out one after another, each 64-byte aligned).
func RingBytes(capacity int) int64 {
	return (ringHeader + int64(capacity)*RingEntryBytes + 63) &^ 63
}

// Entry is what a ring carries: three words whose meaning is the
// channel's.
type Entry struct {
	Seq     uint64
	A, B, C uint64
}

// RingOptions tune waiting.
type RingOptions struct {
	// Spin is how long a side spins (polling, yielding the processor now
	// and then) before it
	// sleeps on the futex: 0 sleeps at once (the default, no CPU burnt);
	// a few microseconds cut the handoff latency when both sides have a
	// core of their own.
	Spin time.Duration
	// Check bounds each futex sleep, after which the waiter calls its
	// alive function (a dead peer ends the wait with an error); 0 means
	// 100 ms.
	Check time.Duration
}

// Ring is one side's handle on a ring in a segment.
type Ring struct {
	seg  *Segment
	off  int64
	cap  uint64
	mask uint64
	opts RingOptions
	// the side's own cursor, and the other side's as last read
	mine, theirs uint64
	where        string // for errors: segment and offset
}

// ErrCorrupt is wrapped by errors about shared state that is not what
// the protocol writes.
var ErrCorrupt = errors.New("corrupted shared state")

// InitRing lays a ring of capacity entries out at off (its memory must be
// RingBytes(capacity) bytes of the segment, zero or stale: it is reset).
func (s *Segment) InitRing(off int64, capacity int) error {
	if capacity < 2 || capacity > maxRingCap || bits.OnesCount(uint(capacity)) != 1 {
		return fmt.Errorf("cxl: ring capacity %d: want a power of two in [2, %d]", capacity, maxRingCap)
	}
	if err := s.checkRange(off, RingBytes(capacity), 64); err != nil {
		return err
	}
	clear(s.mem[off : off+RingBytes(capacity)])
	binary.LittleEndian.PutUint32(s.mem[off+ringCap:], uint32(capacity))
	binary.LittleEndian.PutUint32(s.mem[off+ringEntryB:], RingEntryBytes)
	return nil
}

// checkRange says whether [off, off+n) lies in the segment past the header,
// aligned to align.
func (s *Segment) checkRange(off, n, align int64) error {
	if off < HeaderBytes || n < 0 || off%align != 0 || off > int64(len(s.mem))-n {
		return fmt.Errorf("cxl: segment %s: %d bytes at offset %d: outside the segment (%d bytes) or not %d-byte aligned: %w", s.name, n, off, len(s.mem), align, ErrCorrupt)
	}
	return nil
}

// OpenRing returns a handle on the ring at off, checking what the segment
// says of it. producer says which side this handle is.
func (s *Segment) OpenRing(off int64, producer bool, opts RingOptions) (*Ring, error) {
	if err := s.checkRange(off, ringHeader, 64); err != nil {
		return nil, err
	}
	c := binary.LittleEndian.Uint32(s.mem[off+ringCap:])
	eb := binary.LittleEndian.Uint32(s.mem[off+ringEntryB:])
	where := fmt.Sprintf("segment %s: ring at offset %d", s.name, off)
	if c < 2 || c > maxRingCap || bits.OnesCount32(c) != 1 || eb != RingEntryBytes {
		return nil, fmt.Errorf("cxl: %s: capacity %d, entry bytes %d: %w", where, c, eb, ErrCorrupt)
	}
	if err := s.checkRange(off, RingBytes(int(c)), 64); err != nil {
		return nil, err
	}
	if opts.Check <= 0 {
		opts.Check = 100 * time.Millisecond
	}
	r := &Ring{seg: s, off: off, cap: uint64(c), mask: uint64(c) - 1, opts: opts, where: where}
	head, acked, tail := r.word(ringHead).Load(), r.word(ringAcked).Load(), r.word(ringTail).Load()
	if acked > head || head > tail || tail-acked > r.cap {
		return nil, fmt.Errorf("cxl: %s: acked %d, head %d, tail %d: %w", where, acked, head, tail, ErrCorrupt)
	}
	if producer {
		r.mine, r.theirs = tail, acked
	} else {
		r.mine, r.theirs = head, tail
	}
	return r, nil
}

func (r *Ring) word(off int64) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&r.seg.mem[r.off+off]))
}

func (r *Ring) word32(off int64) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&r.seg.mem[r.off+off]))
}

func (r *Ring) entry(i uint64) []byte {
	at := r.off + ringHeader + int64(i&r.mask)*RingEntryBytes
	return r.seg.mem[at : at+RingEntryBytes : at+RingEntryBytes]
}

// Len is the number of entries pushed and not yet popped.
func (r *Ring) Len() int { return int(r.word(ringTail).Load() - r.word(ringHead).Load()) }

// Cap is the ring's capacity.
func (r *Ring) Cap() int { return int(r.cap) }

// Push appends (a, b) as entry number Seq (the ring's count so far) and
// returns it; with every slot holding an entry not yet acked it waits for
// room until ctx ends or alive (may be nil) says the consumer is gone.
func (r *Ring) Push(ctx context.Context, a, b uint64, alive func() error) (uint64, error) {
	return r.PushEntry(ctx, Entry{A: a, B: b}, alive)
}

// PushEntry is Push of all three words of e (its Seq is ignored: the
// entry gets the ring's count so far).
func (r *Ring) PushEntry(ctx context.Context, in Entry, alive func() error) (uint64, error) {
	t := r.mine
	if t-r.theirs >= r.cap {
		if err := r.wait(ctx, alive, ringSpaceEv, ringProdSleep, func() bool {
			r.theirs = r.word(ringAcked).Load()
			return t-r.theirs < r.cap
		}); err != nil {
			return 0, err
		}
		if t-r.theirs > r.cap {
			return 0, fmt.Errorf("cxl: %s: acked %d past tail %d: %w", r.where, r.theirs, t, ErrCorrupt)
		}
	}
	e := r.entry(t)
	le := binary.LittleEndian
	le.PutUint64(e[0:], t)
	le.PutUint64(e[8:], in.A)
	le.PutUint64(e[16:], in.B)
	le.PutUint64(e[24:], in.C)
	le.PutUint32(e[32:], crc32.Checksum(e[:32], castagnoli))
	le.PutUint32(e[36:], 0)
	r.mine = t + 1
	r.word(ringTail).Store(t + 1)
	if r.word32(ringConsSleep).Load() != 0 {
		r.word32(ringDataEv).Add(1)
		futexWake(r.word32(ringDataEv))
	}
	return t, nil
}

// Pop takes the next entry, waiting for one until ctx ends or alive (may
// be nil) says the producer is gone; an entry that is not what Push
// wrote is an error naming the segment and offset, and the ring is not
// advanced past it.
func (r *Ring) Pop(ctx context.Context, alive func() error) (Entry, error) {
	h := r.mine
	if r.theirs == h {
		if err := r.wait(ctx, alive, ringDataEv, ringConsSleep, func() bool {
			r.theirs = r.word(ringTail).Load()
			return r.theirs != h
		}); err != nil {
			return Entry{}, err
		}
	}
	if r.theirs-h > r.cap {
		return Entry{}, fmt.Errorf("cxl: %s: tail %d is %d entries past head %d, capacity %d: %w", r.where, r.theirs, r.theirs-h, h, r.cap, ErrCorrupt)
	}
	ent, err := r.read(h)
	if err != nil {
		return Entry{}, err
	}
	r.mine = h + 1
	r.word(ringHead).Store(h + 1)
	return ent, nil
}

// read copies entry i out and checks it: its checksum, and its sequence
// is i.
func (r *Ring) read(i uint64) (Entry, error) {
	var cp [RingEntryBytes]byte
	copy(cp[:], r.entry(i)) // read once: the checks and the result see the same bytes
	le := binary.LittleEndian
	ent := Entry{Seq: le.Uint64(cp[0:]), A: le.Uint64(cp[8:]), B: le.Uint64(cp[16:]), C: le.Uint64(cp[24:])}
	at := r.off + ringHeader + int64(i&r.mask)*RingEntryBytes
	if sum := crc32.Checksum(cp[:32], castagnoli); le.Uint32(cp[32:]) != sum {
		return Entry{}, fmt.Errorf("cxl: %s: entry %d at offset %d: checksum %#08x, the entry sums to %#08x: %w", r.where, i, at, le.Uint32(cp[32:]), sum, ErrCorrupt)
	}
	if ent.Seq != i {
		return Entry{}, fmt.Errorf("cxl: %s: entry at offset %d has sequence %d, want %d: %w", r.where, at, ent.Seq, i, ErrCorrupt)
	}
	return ent, nil
}

// Ack says the consumer is done with every entry before n (n ≤ the
// entries popped): the producer may reuse their slots. Acks only move
// forward.
// It may be called from another goroutine than Pop's.
func (r *Ring) Ack(n uint64) error {
	if h := r.word(ringHead).Load(); n > h {
		return fmt.Errorf("cxl: %s: ack %d entries, only %d popped", r.where, n, h)
	}
	w := r.word(ringAcked)
	if n <= w.Load() {
		return nil
	}
	w.Store(n)
	if r.word32(ringProdSleep).Load() != 0 {
		r.word32(ringSpaceEv).Add(1)
		futexWake(r.word32(ringSpaceEv))
	}
	return nil
}

// Acked is the consumer's acked count.
func (r *Ring) Acked() uint64 { return r.word(ringAcked).Load() }

// Rewind makes the consumer pop again from the first entry not acked:
// what a consumer that takes over from a dead one does, so that entries
// the dead one popped but never acked are delivered again.
func (r *Ring) Rewind() {
	a := r.word(ringAcked).Load()
	r.mine = a
	r.word(ringHead).Store(a)
}

// ErrPeerGone is wrapped by a wait that ended because alive said so.
var ErrPeerGone = errors.New("the other side is gone")

// wait spins for opts.Spin, then sleeps on the futex word ev (announcing
// it in sleep) until ready, ctx ends or alive fails.
func (r *Ring) wait(ctx context.Context, alive func() error, ev, sleep int64, ready func() bool) error {
	if r.opts.Spin > 0 {
		until := time.Now().Add(r.opts.Spin)
		for i := 0; ; i++ {
			if ready() {
				return nil
			}
			if i&63 == 63 && !time.Now().Before(until) {
				break
			}
			// Yield now and then only: on a thread locked to a CPU a yield
			// is a hand-off through the scheduler that costs more than the
			// handoff being waited for.
			if i&1023 == 1023 {
				runtime.Gosched()
			}
		}
	}
	word, flag := r.word32(ev), r.word32(sleep)
	for {
		flag.Store(1)
		seen := word.Load()
		if ready() {
			flag.Store(0)
			return nil
		}
		futexWait(word, seen, r.opts.Check)
		flag.Store(0)
		if ready() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if alive != nil {
			if err := alive(); err != nil {
				return fmt.Errorf("cxl: %s: %w: %w", r.where, ErrPeerGone, err)
			}
		}
	}
}

// futex(2) operations, shared (no FUTEX_PRIVATE_FLAG).
const (
	futexWaitOp = 0
	futexWakeOp = 1
)

// futexWait sleeps while *w == val, at most d (FUTEX_WAIT on a shared
// mapping: the kernel keys it by the page, so another process's wake on
// its own mapping of the same word finds it).
func futexWait(w *atomic.Uint32, val uint32, d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWaitOp, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// futexWake wakes the waiter on w, if any.
func futexWake(w *atomic.Uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWakeOp, 1, 0, 0, 0)
}
