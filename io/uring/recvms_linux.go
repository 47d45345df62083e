//go:build linux

package uring

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// Flags of the provided-buffer receive path that giouring (2023) does not
// name: IORING_CQE_F_BUF_MORE (Linux 6.12: the buffer is not used up, the
// next bytes go on in it) and IOU_PBUF_RING_INC (register a buffer ring
// whose buffers are consumed incrementally).
const (
	cqeFBufMore   = 1 << 4
	pbufRingInc   = 2
	recvTag       = 1
	recvCancelTag = 2
	recvGroup     = 0 // the buffer group id; a RecvRing has one ring of its own
)

var (
	msOnce sync.Once
	msInc  bool
	msErr  error
)

// RecvMultishotSupport says whether this kernel receives with a multishot
// IORING_OP_RECV into a provided buffer ring (IORING_REGISTER_PBUF_RING,
// IORING_RECV_MULTISHOT; Linux ≥ 6.0): nil, or why not; incremental is
// whether the ring's buffers may be consumed incrementally
// (IOU_PBUF_RING_INC, Linux ≥ 6.12), so a buffer fills up across
// completions instead of each completion using up a buffer. It is probed
// once per process by doing it: a multishot receive on a socket pair.
func RecvMultishotSupport() (incremental bool, err error) {
	msOnce.Do(func() {
		if msErr = Available(); msErr != nil {
			return
		}
		msErr = probeMultishot(false)
		if msErr == nil {
			msInc = probeMultishot(true) == nil
		}
	})
	return msInc, msErr
}

// probeMultishot receives one byte through a multishot RECV on a socket
// pair and checks the completion says the request goes on.
func probeMultishot(inc bool) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("uring: probe multishot receive: socketpair: %w", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	buf := make([]byte, 64)
	r, err := NewRecvRing(fds[0], 2, inc)
	if err != nil {
		return err
	}
	r.Provide(0, buf)
	if err := r.Arm(); err != nil {
		r.Close(true)
		return err
	}
	if _, err := unix.Write(fds[1], []byte{1}); err != nil {
		r.Close(true)
		return fmt.Errorf("uring: probe multishot receive: write: %w", err)
	}
	var got RecvEvent
	seen := false
	for try := 0; try < 100 && !seen; try++ {
		if err := r.Wait(10*time.Millisecond, func(ev RecvEvent) { got, seen = ev, true }); err != nil {
			r.Close(true)
			return err
		}
	}
	werr := error(nil)
	switch {
	case !seen:
		werr = errors.New("uring: a multishot IORING_OP_RECV on a socket pair completed nothing in 1s")
	case got.Res < 0:
		werr = fmt.Errorf("uring: this kernel refuses a multishot IORING_OP_RECV with a provided buffer ring (Linux 6.0 or later has it): %w", syscall.Errno(-got.Res))
	case got.Res != 1 || !got.HasBuf || !got.More:
		werr = fmt.Errorf("uring: multishot IORING_OP_RECV probe: res %d, buffer %v, more %v (want 1 byte in a provided buffer and more to come)", got.Res, got.HasBuf, got.More)
	}
	if err := r.Cancel(); err != nil && werr == nil {
		werr = err
	}
	for try := 0; try < 100 && r.InFlight() > 0; try++ {
		_ = r.Wait(10*time.Millisecond, func(RecvEvent) {})
	}
	if err := r.Close(false); err != nil && werr == nil {
		werr = err
	}
	return werr
}

// resetRecvProbe forgets the cached probe (tests).
func resetRecvProbe() {
	msOnce = sync.Once{}
	msInc, msErr = false, nil
}

// RecvEvent is one completion of a multishot receive. Res is the bytes
// received (0: the peer ended the stream) or -errno. HasBuf says Res bytes
// lie in the provided buffer Buf: from its start, or, in incremental mode,
// right after the bytes of the buffer's previous completions. BufMore (only
// in incremental mode) says the buffer is not used up: the kernel keeps it
// and later bytes go on in it; without it the buffer is the caller's again.
// More says the request goes on; without it the request has ended (an
// error, the end of the stream, no buffer left: -ENOBUFS, or a cancel) and
// Arm starts another.
type RecvEvent struct {
	Res     int32
	Buf     uint16
	HasBuf  bool
	BufMore bool
	More    bool
}

// bufEntry is struct io_uring_buf; the ring's tail is the resv field of
// entry 0 (struct io_uring_buf_ring).
type bufEntry struct {
	addr uint64
	len  uint32
	bid  uint16
	resv uint16
}

// RecvRing receives on one socket with a multishot IORING_OP_RECV whose
// bytes land in buffers the caller provides (a buffer ring registered with
// IORING_REGISTER_PBUF_RING, buffer group 0). It has a ring of its own and
// is used by one goroutine. It does not own the socket, whose descriptor
// must stay open until InFlight is zero, nor the buffers, which must stay
// valid until the kernel handed them back (a completion with the buffer
// and without BufMore) or the ring is closed.
type RecvRing struct {
	r        *giouring.Ring
	fd       int
	mem      []byte // the buffer ring, mmapped
	ents     []bufEntry
	mask     uint16
	tail     uint16
	inc      bool
	armed    bool
	inflight int // requests whose last completion has not been reaped
	cqes     []*giouring.CompletionQueueEvent
	ts       syscall.Timespec
	closed   bool
}

// NewRecvRing makes a ring for receiving on fd with a buffer ring of
// entries slots (a power of two, 1 to 32768); incremental asks for
// IOU_PBUF_RING_INC. The error says why it cannot be had.
func NewRecvRing(fd, entries int, incremental bool) (*RecvRing, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if entries < 1 || entries > 1<<15 || entries&(entries-1) != 0 {
		return nil, fmt.Errorf("uring: a buffer ring of %d entries (want a power of two up to 32768)", entries)
	}
	r := giouring.NewRing()
	if err := r.QueueInit(8, 0); err != nil {
		return nil, fmt.Errorf("uring: create a ring for receiving: %w", err)
	}
	size := entries * int(unsafe.Sizeof(bufEntry{}))
	size = (size + unix.Getpagesize() - 1) &^ (unix.Getpagesize() - 1)
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		r.QueueExit()
		return nil, fmt.Errorf("uring: map a buffer ring of %d entries: %w", entries, err)
	}
	reg := giouring.BufReg{RingAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), RingEntries: uint32(entries), Bgid: recvGroup}
	if incremental {
		reg.Pad = pbufRingInc // the flags field of struct io_uring_buf_reg
	}
	if _, err := r.RegisterBufferRing(&reg, 0); err != nil {
		unix.Munmap(mem)
		r.QueueExit()
		what := "IORING_REGISTER_PBUF_RING (Linux 5.19 or later has it)"
		if incremental {
			what = "IORING_REGISTER_PBUF_RING with IOU_PBUF_RING_INC (Linux 6.12 or later has it)"
		}
		return nil, fmt.Errorf("uring: this kernel refuses %s: %w", what, err)
	}
	return &RecvRing{
		r:    r,
		fd:   fd,
		mem:  mem,
		ents: unsafe.Slice((*bufEntry)(unsafe.Pointer(&mem[0])), entries),
		mask: uint16(entries - 1),
		inc:  incremental,
		cqes: make([]*giouring.CompletionQueueEvent, 64),
	}, nil
}

// Incremental says whether buffers are consumed incrementally.
func (r *RecvRing) Incremental() bool { return r.inc }

// Provide hands buf (at most 4 GiB - 1 bytes) to the kernel as buffer bid.
// At most entries buffers may be in the kernel's hands at once: the caller
// counts them (a buffer comes back with a completion without BufMore).
func (r *RecvRing) Provide(bid uint16, buf []byte) {
	e := &r.ents[r.tail&r.mask]
	e.addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
	e.len = uint32(min(len(buf), 1<<32-1))
	e.bid = bid
	r.tail++
	// Publish the tail after the entry (a release store the kernel reads
	// with smp_load_acquire); Go has no 16-bit atomic store, so store the
	// 32 bits of entry 0's bid and resv, bid unchanged. Entry 0's bid is
	// written only here and just above, by this goroutine.
	p := (*uint32)(unsafe.Pointer(&r.ents[0].bid))
	atomic.StoreUint32(p, uint32(r.tail)<<16|uint32(r.ents[0].bid))
}

// Armed says whether a multishot request is in flight.
func (r *RecvRing) Armed() bool { return r.armed }

// InFlight is the number of requests (the receive, a cancel) whose last
// completion has not been reaped: zero when the kernel writes into no
// buffer.
func (r *RecvRing) InFlight() int { return r.inflight }

// Arm submits a multishot IORING_OP_RECV on the socket that picks its
// buffers from the ring.
func (r *RecvRing) Arm() error {
	if r.closed {
		return errors.New("uring: receive: ring closed")
	}
	if r.armed {
		return nil
	}
	sqe := r.r.GetSQE()
	if sqe == nil {
		return errors.New("uring: receive: submission queue full")
	}
	sqe.PrepareRecvMultishot(r.fd, 0, 0, 0)
	sqe.Flags |= giouring.SqeBufferSelect
	sqe.BufIG = recvGroup
	sqe.UserData = recvTag
	if err := r.submit(); err != nil {
		return fmt.Errorf("uring: submit a multishot receive: %w", err)
	}
	r.armed = true
	r.inflight++
	return nil
}

func (r *RecvRing) submit() error {
	for try := 0; ; try++ {
		_, err := r.r.Submit()
		if err == nil {
			return nil
		}
		if try < 1000 && (errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EBUSY)) {
			continue
		}
		return err
	}
}

// Cancel asks the kernel to end the multishot request
// (IORING_OP_ASYNC_CANCEL); its last completion still comes, and Wait
// reaps it. Nothing happens when no request is armed.
func (r *RecvRing) Cancel() error {
	if r.closed || !r.armed {
		return nil
	}
	sqe := r.r.GetSQE()
	for try := 0; sqe == nil && try < 1000; try++ {
		_, _ = r.r.Submit()
		sqe = r.r.GetSQE()
	}
	if sqe == nil {
		return errors.New("uring: cancel a receive: submission queue full")
	}
	sqe.PrepareCancel64(recvTag, 0)
	sqe.UserData = recvCancelTag
	if err := r.submit(); err != nil {
		return fmt.Errorf("uring: submit a cancel: %w", err)
	}
	r.inflight++
	return nil
}

// Wait calls fn for every receive completion ready now, waiting up to wait
// (0: not at all) for the first when none is.
func (r *RecvRing) Wait(wait time.Duration, fn func(RecvEvent)) error {
	if r.inflight == 0 {
		return nil
	}
	if wait > 0 && r.r.CQReady() == 0 {
		r.ts = syscall.NsecToTimespec(wait.Nanoseconds())
		if _, err := r.r.WaitCQETimeout(&r.ts); err != nil && !errors.Is(err, syscall.ETIME) &&
			!errors.Is(err, syscall.EINTR) && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("uring: wait for receive completions: %w", err)
		}
	}
	n := r.r.PeekBatchCQE(r.cqes)
	for _, c := range r.cqes[:n] {
		if c.UserData == recvCancelTag {
			r.inflight--
			continue
		}
		ev := RecvEvent{Res: c.Res, More: c.Flags&giouring.CQEFMore != 0}
		if c.Flags&giouring.CQEFBuffer != 0 {
			ev.HasBuf, ev.Buf = true, uint16(c.Flags>>giouring.CQEBufferShift)
			ev.BufMore = r.inc && c.Flags&cqeFBufMore != 0
		}
		if !ev.More {
			r.armed = false
			r.inflight--
		}
		fn(ev)
	}
	r.r.CQAdvance(n)
	return nil
}

// Close unregisters the buffer ring and tears the ring down. It refuses
// while a request is in flight (the kernel may still write into a
// provided buffer) unless force; after it returns the kernel holds none of
// the buffers.
func (r *RecvRing) Close(force bool) error {
	if r.closed {
		return nil
	}
	if r.inflight != 0 && !force {
		return fmt.Errorf("uring: close a receive ring with %d requests in flight", r.inflight)
	}
	r.closed = true
	_, _ = r.r.UnregisterBufferRing(recvGroup)
	r.r.QueueExit()
	unix.Munmap(r.mem)
	r.ents, r.mem = nil, nil
	return nil
}
