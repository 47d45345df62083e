//go:build linux

package uring

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// zcCancelTag is the user_data of the IORING_OP_ASYNC_CANCEL requests
// Cancel submits; Reap consumes their completions itself.
const zcCancelTag = ^uint64(0) - 1

// IOVMax is the most buffers one vectored zero-copy send takes (IOV_MAX).
const IOVMax = 1024

var (
	zcOnce     sync.Once
	zcVectored bool
	zcErr      error
)

// SendZCSupport says whether this kernel has IORING_OP_SEND_ZC (Linux ≥
// 6.0): nil, or why not; vectored is whether it also has
// IORING_OP_SENDMSG_ZC (Linux ≥ 6.1), which sends a whole scatter-gather
// list in one request. It is probed once per process with
// IORING_REGISTER_PROBE.
func SendZCSupport() (vectored bool, err error) {
	zcOnce.Do(func() {
		if zcErr = Available(); zcErr != nil {
			return
		}
		p, err := giouring.GetProbe()
		if err != nil {
			zcErr = fmt.Errorf("uring: IORING_REGISTER_PROBE: %w", err)
			return
		}
		if !p.IsSupported(giouring.OpSendZC) {
			zcErr = errors.New("uring: this kernel has no IORING_OP_SEND_ZC (Linux 6.0 or later has it)")
			return
		}
		zcVectored = p.IsSupported(giouring.OpSendMsgZC)
	})
	return zcVectored, zcErr
}

// ZCEvent is one completion of a zero-copy send. Every request first gets
// a result (Notif false): Res is the bytes sent or -errno, and More says a
// notification will follow. The notification (Notif true) comes when the
// kernel no longer reads the request's memory; Copied says the kernel
// copied the bytes after all (IORING_NOTIF_USAGE_ZC_COPIED, always so on
// loopback).
type ZCEvent struct {
	Tag    uint64
	Notif  bool
	Res    int32
	More   bool
	Copied bool
}

// ZCSocket sends on one socket with IORING_OP_SENDMSG_ZC (or SEND_ZC, one
// buffer per request, where the kernel has no SENDMSG_ZC) through a ring
// of its own. It is used by one goroutine at a time. It does not own the
// socket: the caller closes the descriptor, and must keep it open while a
// request's result is outstanding.
type ZCSocket struct {
	r        *giouring.Ring
	fd       int
	vectored bool
	inflight int // results and notifications not reaped yet
	msg      unix.Msghdr
	iov      []syscall.Iovec
	ts       syscall.Timespec
	cqes     []*giouring.CompletionQueueEvent
	closed   bool
	// fixed: registered buffers (IORING_REGISTER_BUFFERS); a SEND_ZC of a
	// buffer inside one goes with IORING_RECVSEND_FIXED_BUF.
	fixed        []region
	fixedSends   int64
	vecFixed     bool // try registered buffers in SENDMSG_ZC (newer kernels take them)
	lastVecFixed bool // the last Submit was a SENDMSG_ZC with a registered buffer
}

// NewZCSocket makes a ring of entries SQEs (0: 64) for sending on fd; the
// error says why zero-copy sends through io_uring are not possible here.
func NewZCSocket(fd, entries int) (*ZCSocket, error) {
	vectored, err := SendZCSupport()
	if err != nil {
		return nil, err
	}
	if entries <= 0 {
		entries = 64
	}
	r := giouring.NewRing()
	if err := r.QueueInit(uint32(entries), 0); err != nil {
		return nil, fmt.Errorf("uring: create a ring of %d entries for zero-copy sends: %w", entries, err)
	}
	return &ZCSocket{
		r:        r,
		fd:       fd,
		vectored: vectored,
		iov:      make([]syscall.Iovec, 0, IOVMax),
		cqes:     make([]*giouring.CompletionQueueEvent, 2*entries),
	}, nil
}

// RegisterBuffers registers regions (an arena's extents,
// buffers.Arena.Extents; each at most 1 GiB) as the ring's fixed buffers
// (IORING_REGISTER_BUFFERS), so the kernel takes the pages pinned at
// registration instead of pinning them per request. A later Submit sends
// a run of buffers that lie in one registered region as one SENDMSG_ZC
// with IORING_RECVSEND_FIXED_BUF and the region's index (newer kernels, 6.18
// here; the
// iovecs keep their addresses, which the kernel finds inside the region),
// and a run of other buffers (frame headers, metadata) as a plain one;
// where the kernel has no SENDMSG_ZC, or refuses registered buffers in it
// (RefuseVectoredFixed), a SEND_ZC of one buffer, fixed where it lies in a
// region. The regions must stay mapped until Close.
func (s *ZCSocket) RegisterBuffers(regions [][]byte) error {
	if s.closed {
		return errors.New("uring: register buffers: ring closed")
	}
	if s.inflight != 0 {
		return fmt.Errorf("uring: register buffers with %d completions outstanding", s.inflight)
	}
	bufs, err := registerRegions(s.r, regions)
	if err != nil {
		return err
	}
	s.fixed = bufs
	s.vecFixed = s.vectored && len(bufs) > 0
	return nil
}

// LastVectoredFixed says whether the last Submit was a SENDMSG_ZC of
// registered buffers. A kernel that refuses those (older kernels)
// fails it with -EINVAL without sending anything; the caller then calls
// RefuseVectoredFixed and submits the same buffers again.
func (s *ZCSocket) LastVectoredFixed() bool { return s.lastVecFixed }

// RefuseVectoredFixed makes every later Submit with registered buffers a
// SEND_ZC of one buffer (fixed where it lies in a registered region).
func (s *ZCSocket) RefuseVectoredFixed() {
	s.vecFixed, s.vectored = false, false
}

// FixedSends counts the requests that went with a registered buffer.
func (s *ZCSocket) FixedSends() int64 { return s.fixedSends }

// Vectored says whether a send takes many buffers (SENDMSG_ZC).
func (s *ZCSocket) Vectored() bool { return s.vectored }

// SingleBuffer makes every later Submit a SEND_ZC of one buffer, as on a
// kernel without SENDMSG_ZC: tests and benchmarks exercise that path here.
func (s *ZCSocket) SingleBuffer() { s.vectored = false }

// InFlight is the number of completions (results and notifications) not
// reaped yet: zero when the kernel holds no reference to any buffer sent.
func (s *ZCSocket) InFlight() int { return s.inflight }

// Submit queues and submits one zero-copy send tagged tag of the leading
// buffers of bufs, and returns how many it took: up to IOVMax with
// SENDMSG_ZC, one with SEND_ZC. bufs[0] must not be empty. The caller
// keeps the buffers alive until the request's notification (or its result
// without More) was reaped. The request is sent with MSG_WAITALL, so the
// kernel goes on after a short send of a stream socket, and MSG_NOSIGNAL.
func (s *ZCSocket) Submit(tag uint64, bufs [][]byte) (int, error) {
	if s.closed {
		return 0, errors.New("uring: zero-copy send: ring closed")
	}
	if len(bufs) == 0 || len(bufs[0]) == 0 {
		return 0, errors.New("uring: zero-copy send of an empty buffer")
	}
	sqe := s.r.GetSQE()
	if sqe == nil {
		return 0, fmt.Errorf("uring: zero-copy send: submission queue full (%d completions outstanding)", s.inflight)
	}
	const flags = syscall.MSG_WAITALL | syscall.MSG_NOSIGNAL
	n := 1
	s.lastVecFixed = false
	if s.vectored {
		// With registered buffers and a kernel that takes them in
		// SENDMSG_ZC, a request holds a run of buffers that all lie in one
		// registered region (sent with IORING_RECVSEND_FIXED_BUF) or a run
		// of buffers in none.
		region, fixed := -1, false
		if s.vecFixed {
			for _, b := range bufs {
				if len(b) > 0 {
					region, fixed = findRegion(s.fixed, uintptr(unsafe.Pointer(unsafe.SliceData(b))), len(b))
					break
				}
			}
		}
		s.iov = s.iov[:0]
		n = 0
		for _, b := range bufs {
			if len(s.iov) == IOVMax {
				break
			}
			if len(b) == 0 {
				n++ // an empty buffer inside the list costs nothing
				continue
			}
			if s.vecFixed {
				r, ok := findRegion(s.fixed, uintptr(unsafe.Pointer(unsafe.SliceData(b))), len(b))
				if ok != fixed || (ok && r != region) {
					break // the run ends; the next request takes the rest
				}
			}
			n++
			var v syscall.Iovec
			v.Base = unsafe.SliceData(b)
			v.SetLen(len(b))
			s.iov = append(s.iov, v)
		}
		// unix.Msghdr has syscall.Msghdr's layout and sets Iovlen
		// portably.
		s.msg = unix.Msghdr{Iov: (*unix.Iovec)(unsafe.Pointer(unsafe.SliceData(s.iov)))}
		s.msg.SetIovlen(len(s.iov))
		sqe.PrepareSendmsgZC(s.fd, (*syscall.Msghdr)(unsafe.Pointer(&s.msg)), flags)
		if fixed {
			sqe.IoPrio |= giouring.RecvsendFixedBuf
			sqe.BufIG = uint16(region)
			s.fixedSends++
			s.lastVecFixed = true
		}
	} else {
		// giouring's PrepareSendZC passes the slice header's address, not
		// the data's: prepare a SEND and turn it into a SEND_ZC.
		p := uintptr(unsafe.Pointer(unsafe.SliceData(bufs[0])))
		n := min(len(bufs[0]), 1<<30)
		sqe.PrepareSend(s.fd, p, uint32(n), flags)
		sqe.OpCode = giouring.OpSendZC
		if i, ok := findRegion(s.fixed, p, n); ok {
			// The address stays the buffer's: the kernel finds it inside
			// registered buffer i.
			sqe.IoPrio |= giouring.RecvsendFixedBuf
			sqe.BufIG = uint16(i)
			s.fixedSends++
		}
	}
	sqe.IoPrio |= giouring.SendZCReportUsage
	sqe.UserData = tag
	for try := 0; ; try++ {
		_, err := s.r.Submit()
		if err == nil {
			break
		}
		if try < 1000 && (errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EBUSY)) {
			continue
		}
		return 0, fmt.Errorf("uring: submit a zero-copy send: %w", err)
	}
	// The kernel copies the msghdr and the iovecs when it takes the SQE
	// (io_uring_enter returned), so they may be reused now.
	runtime.KeepAlive(bufs)
	s.inflight++ // the result; its notification is counted when More says so
	return n, nil
}

// Cancel asks the kernel to cancel the request tagged tag
// (IORING_OP_ASYNC_CANCEL): a send still waiting for socket space ends
// with -ECANCELED (or the bytes it sent so far); its notification, if
// More says one follows, still comes.
func (s *ZCSocket) Cancel(tag uint64) error {
	if s.closed {
		return errors.New("uring: cancel a zero-copy send: ring closed")
	}
	sqe := s.r.GetSQE()
	for try := 0; sqe == nil && try < 1000; try++ {
		_, _ = s.r.Submit()
		sqe = s.r.GetSQE()
	}
	if sqe == nil {
		return errors.New("uring: cancel a zero-copy send: submission queue full")
	}
	sqe.PrepareCancel64(tag, 0)
	sqe.UserData = zcCancelTag
	s.inflight++
	if _, err := s.r.Submit(); err != nil && !errors.Is(err, syscall.EINTR) && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("uring: submit a cancel: %w", err)
	}
	return nil
}

// Reap calls fn for every completion ready now, waiting up to wait (0: not
// at all) for the first when none is.
func (s *ZCSocket) Reap(wait time.Duration, fn func(ZCEvent)) error {
	if s.inflight == 0 {
		return nil
	}
	if wait > 0 {
		s.ts = syscall.NsecToTimespec(wait.Nanoseconds())
		if _, err := s.r.WaitCQETimeout(&s.ts); err != nil && !errors.Is(err, syscall.ETIME) &&
			!errors.Is(err, syscall.EINTR) && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("uring: wait for zero-copy completions: %w", err)
		}
	}
	n := s.r.PeekBatchCQE(s.cqes)
	for _, c := range s.cqes[:n] {
		if c.UserData == zcCancelTag {
			s.inflight-- // a cancel's own completion
			continue
		}
		ev := ZCEvent{Tag: c.UserData, Res: c.Res}
		if c.Flags&giouring.CQEFNotif != 0 {
			ev.Notif = true
			ev.Copied = uint32(c.Res)&giouring.NotifUsageZCCopied != 0
			s.inflight--
		} else {
			ev.More = c.Flags&giouring.CQEFMore != 0
			s.inflight--
			if ev.More {
				s.inflight++
			}
		}
		fn(ev)
	}
	s.r.CQAdvance(n)
	return nil
}

// Close tears the ring down. It refuses while completions are outstanding
// (the kernel may still read their buffers); force tears it down anyway,
// for a caller that reset the connection and gave up waiting.
func (s *ZCSocket) Close(force bool) error {
	if s.closed {
		return nil
	}
	if s.inflight != 0 && !force {
		return fmt.Errorf("uring: close a zero-copy socket ring with %d completions outstanding", s.inflight)
	}
	s.closed = true
	s.r.QueueExit()
	return nil
}
