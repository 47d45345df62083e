//go:build !linux

package netzc

import (
	"net"
	"sync/atomic"
)

// Reader reads a connection; on this platform through Go's netpoller.
type Reader struct {
	conn   *net.TCPConn
	closed atomic.Bool
}

// NewReader returns a Reader of conn.
func NewReader(conn *net.TCPConn) (*Reader, error) { return &Reader{conn: conn}, nil }

// Close makes Read return net.ErrClosed.
func (r *Reader) Close() { r.closed.Store(true) }

func (r *Reader) Read(p []byte) (int, error) {
	if r.closed.Load() {
		return 0, net.ErrClosed
	}
	return r.conn.Read(p)
}
