//go:build linux

package netzc

import (
	"io"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Reader reads the data of a connection whose sends use MSG_ZEROCOPY.
// Go's netpoller cannot: a zero-copy notification makes epoll report
// EPOLLERR alone, and the poller then fails reads with "not pollable"
// until other data arrives. Reader reads with MSG_DONTWAIT and waits in an
// epoll of its own, edge-triggered: poll(2), or a level-triggered epoll,
// reports POLLERR for as long as notifications sit in the error queue
// (the sender drains it only on its next send), so a reader waiting for
// the peer's next frame would spin through poll and recv meanwhile; with
// EPOLLET it wakes once per new notification at most. Close (or closing
// the connection) ends a blocked Read within 50ms; Close also releases
// the epoll descriptor.
type Reader struct {
	conn   *net.TCPConn
	fd     int
	closed atomic.Bool

	mu       sync.Mutex // held by Read while it runs
	epfd     int
	freeOnce sync.Once
	waits    int // epoll_wait calls, for the test that Read does not spin
}

// NewReader returns a Reader of conn; the caller Closes it.
func NewReader(conn *net.TCPConn) (*Reader, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &Reader{conn: conn, epfd: -1}
	if err := rc.Control(func(fd uintptr) { r.fd = int(fd) }); err != nil {
		return nil, err
	}
	if r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, &net.OpError{Op: "epoll_create", Net: "tcp", Addr: conn.RemoteAddr(), Err: err}
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(r.fd)}
	if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, r.fd, &ev); err != nil {
		unix.Close(r.epfd)
		return nil, &net.OpError{Op: "epoll_ctl", Net: "tcp", Addr: conn.RemoteAddr(), Err: err}
	}
	return r, nil
}

// Close makes Read return net.ErrClosed and releases the epoll
// descriptor (at once, or when a Read in progress returns).
func (r *Reader) Close() {
	r.closed.Store(true)
	if r.mu.TryLock() {
		r.free()
		r.mu.Unlock()
	}
}

func (r *Reader) free() { r.freeOnce.Do(func() { unix.Close(r.epfd) }) }

func (r *Reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var evs [1]unix.EpollEvent
	for {
		if r.closed.Load() {
			r.free()
			return 0, net.ErrClosed
		}
		n, _, err := unix.Recvfrom(r.fd, p, unix.MSG_DONTWAIT)
		switch {
		case err == nil && n == 0 && len(p) > 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return 0, &net.OpError{Op: "read", Net: "tcp", Addr: r.conn.RemoteAddr(), Err: err}
		}
		// Edge-triggered: data that arrived after the recv above is a new
		// edge, reported to this wait.
		r.waits++
		if _, err := unix.EpollWait(r.epfd, evs[:], 50); err != nil && err != unix.EINTR {
			return 0, &net.OpError{Op: "epoll_wait", Net: "tcp", Addr: r.conn.RemoteAddr(), Err: err}
		}
	}
}
