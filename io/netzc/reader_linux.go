//go:build linux

package netzc

import (
	"io"
	"net"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Reader reads the data of a connection whose sends use MSG_ZEROCOPY.
// Go's netpoller cannot: a zero-copy notification makes epoll report
// EPOLLERR alone, and the poller then fails reads with "not pollable"
// until other data arrives. Reader waits with poll(2) for POLLIN instead,
// and reads with MSG_DONTWAIT. Close (or closing the connection) ends a
// blocked Read within 50ms.
type Reader struct {
	conn   *net.TCPConn
	fd     int
	closed atomic.Bool
}

// NewReader returns a Reader of conn.
func NewReader(conn *net.TCPConn) (*Reader, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &Reader{conn: conn}
	if err := rc.Control(func(fd uintptr) { r.fd = int(fd) }); err != nil {
		return nil, err
	}
	return r, nil
}

// Close makes Read return net.ErrClosed.
func (r *Reader) Close() { r.closed.Store(true) }

func (r *Reader) Read(p []byte) (int, error) {
	for {
		if r.closed.Load() {
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
		pfd := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		if _, err := unix.Poll(pfd, 50); err != nil && err != unix.EINTR {
			return 0, &net.OpError{Op: "poll", Net: "tcp", Addr: r.conn.RemoteAddr(), Err: err}
		}
	}
}
