//go:build linux

package uring

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
)

// Config configures a ring.
type Config struct {
	// Entries is the submission queue's size: the most requests in flight
	// (0: storage.DefaultQueueDepth).
	Entries int
	// SQPoll asks for a kernel thread that polls the submission queue, so
	// submitting needs no io_uring_enter while it is awake. It costs a
	// CPU spinning while busy; on 2 cores it rarely pays.
	SQPoll bool
	// Files is the size of the registered file table (0: 64).
	Files int
}

// Ring is one io_uring instance. Its methods take a lock: a ring belongs to
// a worker (a File opened through the backend gets a ring of its own), and
// sharing one between goroutines serialises them. No
// IORING_SETUP_SINGLE_ISSUER is asked for, so the goroutine need not stay
// on one OS thread (runtime.LockOSThread is not needed, SQPOLL included:
// the kernel thread polls whatever thread wrote the SQEs).
type Ring struct {
	mu       sync.Mutex
	r        *giouring.Ring
	entries  int
	sqpoll   bool
	inflight atomic.Int64
	cqes     []*giouring.CompletionQueueEvent
	closed   bool
	// broken is why the ring can no longer be used: io_uring_enter failed
	// with requests in flight, whose buffers the kernel may still write.
	broken error
	// queue is the ring's open Queue (one at a time), nil when none.
	queue *Queue

	// registered buffers, sorted by start address
	bufs []region
	// registered file table: slot → fd (-1 free); nil when the kernel
	// refused registration (files then go by descriptor)
	files []int
}

type region struct{ start, end uintptr }

// NewRing creates a ring; the error says why io_uring is unavailable.
func NewRing(cfg Config) (*Ring, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	entries := cfg.Entries
	if entries <= 0 {
		entries = 32
	}
	if entries > 4096 {
		entries = 4096
	}
	var flags uint32
	if cfg.SQPoll {
		flags |= giouring.SetupSQPoll
	}
	r := giouring.NewRing()
	if err := r.QueueInit(uint32(entries), flags); err != nil {
		if cfg.SQPoll {
			return nil, fmt.Errorf("uring: create a ring of %d entries with SQPOLL: %w", entries, err)
		}
		return nil, fmt.Errorf("uring: create a ring of %d entries: %w", entries, err)
	}
	ring := &Ring{r: r, entries: entries, sqpoll: cfg.SQPoll, cqes: make([]*giouring.CompletionQueueEvent, 2*entries)}
	nf := cfg.Files
	if nf <= 0 {
		nf = 64
	}
	if _, err := r.RegisterFilesSparse(uint32(nf)); err == nil {
		ring.files = make([]int, nf)
		for i := range ring.files {
			ring.files[i] = -1
		}
	}
	return ring, nil
}

// InFlight is the number of SQEs submitted whose CQE has not been reaped:
// zero whenever no batch is running.
func (r *Ring) InFlight() int { return int(r.inflight.Load()) }

// RegisterBuffers registers regions as the ring's fixed buffers
// (IORING_REGISTER_BUFFERS; each at most 1 GiB, at most 1024 of them):
// a request whose buffer lies inside one is issued as READ_FIXED /
// WRITE_FIXED, so the kernel skips pinning its pages per request; any
// other buffer goes as a plain READ/WRITE. The regions (arena extents) must
// stay mapped until the ring is closed or UnregisterBuffers returns.
// Registering again replaces the set.
func (r *Ring) RegisterBuffers(regions [][]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("uring: register buffers: ring closed")
	}
	if len(r.bufs) > 0 {
		if _, err := r.r.UnregisterBuffers(); err != nil {
			return fmt.Errorf("uring: unregister buffers: %w", err)
		}
		r.bufs = nil
	}
	bufs, err := registerRegions(r.r, regions)
	if err != nil {
		return err
	}
	r.bufs = bufs
	return nil
}

// registerRegions registers regions as ring's fixed buffers (each 1 byte
// to 1 GiB) and returns them in registration order, the kernel's index.
func registerRegions(ring *giouring.Ring, regions [][]byte) ([]region, error) {
	if len(regions) == 0 {
		return nil, nil
	}
	iov := make([]syscall.Iovec, len(regions))
	bufs := make([]region, len(regions))
	for i, b := range regions {
		if len(b) == 0 || len(b) > 1<<30 {
			return nil, fmt.Errorf("uring: register buffer %d: %d bytes (want 1 byte to 1 GiB)", i, len(b))
		}
		iov[i].Base = unsafe.SliceData(b)
		iov[i].SetLen(len(b))
		start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		bufs[i] = region{start, start + uintptr(len(b))}
	}
	if _, err := ring.RegisterBuffers(iov); err != nil {
		return nil, fmt.Errorf("uring: register %d buffers: %w", len(regions), err)
	}
	return bufs, nil
}

// UnregisterBuffers drops the fixed buffers.
func (r *Ring) UnregisterBuffers() error { return r.RegisterBuffers(nil) }

// fixedIndex is the registered buffer holding [p, p+n), if any. The
// registered set is small and kept in registration order (the kernel's
// index), so a linear scan over a copy sorted once would be premature.
func (r *Ring) fixedIndex(p uintptr, n int) (int, bool) { return findRegion(r.bufs, p, n) }

// findRegion is the index of the region holding [p, p+n), if any.
func findRegion(regions []region, p uintptr, n int) (int, bool) {
	for i, b := range regions {
		if p >= b.start && p+uintptr(n) <= b.end {
			return i, true
		}
	}
	return 0, false
}

// addFile puts fd in the registered file table; -1 when there is no
// table or no free slot (the file then goes by descriptor).
func (r *Ring) addFile(fd int) int {
	for i, f := range r.files {
		if f == -1 {
			if _, err := r.r.RegisterFilesUpdate(uint(i), []int{fd}); err != nil {
				return -1
			}
			r.files[i] = fd
			return i
		}
	}
	return -1
}

func (r *Ring) removeFile(slot int) {
	if slot < 0 || r.closed {
		return
	}
	_, _ = r.r.RegisterFilesUpdate(uint(slot), []int{-1})
	r.files[slot] = -1
}

// Close tears the ring down. Batches are synchronous and wait for every
// completion, so nothing is in flight; Close refuses (a bug) if something
// is.
func (r *Ring) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if n := r.inflight.Load(); n != 0 && r.broken == nil {
		return fmt.Errorf("uring: close with %d requests in flight", n)
	}
	r.closed = true
	r.r.QueueExit() // unregisters buffers and files with the ring
	r.bufs, r.files = nil, nil
	return nil
}
