package stream

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
)

// RecvMode is how a Receiver takes bytes from its connection.
type RecvMode string

// The receive paths.
const (
	RecvAuto           RecvMode = "auto"
	RecvRead           RecvMode = "read"
	RecvUringMultishot RecvMode = "uring_multishot"
)

// RecvModes lists the modes a caller may ask for.
var RecvModes = []RecvMode{RecvAuto, RecvRead, RecvUringMultishot}

// ParseRecvMode checks s.
func ParseRecvMode(s string) (RecvMode, error) {
	names := make([]string, len(RecvModes))
	for i, m := range RecvModes {
		if string(m) == s {
			return m, nil
		}
		names[i] = string(m)
	}
	return "", fmt.Errorf("stream: unknown receive mode %q (known: %s)", s, strings.Join(names, ", "))
}

// Wire is where a Receiver's bytes come from once batches flow. Read
// copies the next bytes into p (frame headers and message metadata, a few
// hundred bytes); Body returns the next n bytes (a message body) as a
// buffer the caller owns one reference to — read into a buffer of mem, or
// a reference to memory the wire received them into. EOF says the peer
// ended the stream. Interrupt, callable from any goroutine, makes a
// blocked and every later Read or Body fail (a cancelled run). Close
// gives back what the wire holds; after it the kernel writes into no
// buffer of the wire's. A Wire is used by one goroutine; the buffers it
// hands out may be released from any.
type Wire interface {
	io.Reader
	Body(n int, mem memory.Allocator) (*memory.Buffer, error)
	EOF() bool
	Interrupt()
	Stats() WireStats
	Close() error
}

// WireStats count what a Wire did.
type WireStats struct {
	Bytes int64 // received from the connection
	// Bodies and BodyBytes count the message bodies handed out; of their
	// bytes, RefBytes were handed out where the kernel put them,
	// SplitBytes were copied into one buffer because the body spanned
	// two provided buffers, and MisalignedBytes were copied because the
	// body did not start on an 8-byte boundary (Arrow's buffers must).
	Bodies, BodyBytes                     int64
	RefBytes, SplitBytes, MisalignedBytes int64
	// Rearms counts multishot requests started again after the provided
	// buffers ran out; Buffers is the provided buffers made.
	Rearms, Buffers int64
}

// WireOptions tune a registered wire.
type WireOptions struct {
	// BufSize is the size of one provided buffer (0: chosen from the
	// bodies seen, see io/stream/uringrecv).
	BufSize int
	// Incremental: -1 forbids incremental buffer consumption (tests of
	// the older kernels' path), 0 uses it where the kernel has it.
	Incremental int
}

// uringWire is the uring_multishot path, set by io/stream/uringrecv when a
// binary links it (io_uring comes through io/uring, whose giouring needs
// -ldflags=-checklinkname=0; this package stays free of that).
var uringWire struct {
	probe func() error
	open  func(conn *net.TCPConn, mem memory.Allocator, opts WireOptions) (Wire, string, error)
}

// RegisterUringWire installs the uring_multishot receive path: probe says
// why it cannot be used here (nil if it can), open makes a Wire on conn
// whose buffers come from mem and says how it receives. A second
// registration panics.
func RegisterUringWire(probe func() error, open func(*net.TCPConn, memory.Allocator, WireOptions) (Wire, string, error)) {
	if uringWire.open != nil {
		panic("stream: uring_multishot registered twice")
	}
	uringWire.probe, uringWire.open = probe, open
}

// ErrRecvUnsupported says a receive path cannot be had here.
var ErrRecvUnsupported = errors.New("stream: receive path not supported")

// UringRecvSupport is nil when a Receiver can receive with
// uring_multishot, else the reason: the path is not linked into this
// binary (import io/stream/uringrecv), or the kernel lacks multishot
// receive into a provided buffer ring, or io_uring is refused.
func UringRecvSupport() error {
	if uringWire.open == nil {
		return fmt.Errorf("%w: uring_multishot is not linked into this binary (it lives in io/stream/uringrecv, which needs -ldflags=-checklinkname=0)", ErrRecvUnsupported)
	}
	if err := uringWire.probe(); err != nil {
		return fmt.Errorf("%w: uring_multishot: %v", ErrRecvUnsupported, err)
	}
	return nil
}

// readWire is the read path: read(2) on the connection, each body read
// straight into one buffer of the caller's allocator.
type readWire struct {
	r   io.Reader
	n   int64
	eof bool
	st  WireStats
}

func (w *readWire) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.n += int64(n)
	if err == io.EOF {
		w.eof = true
	}
	return n, err
}

func (w *readWire) Body(n int, mem memory.Allocator) (*memory.Buffer, error) {
	// Not cleared first: the read overwrites it (clearing cost a quarter
	// of the receiving process's CPU on loopback).
	b := buffers.UnzeroedBuffer(mem, n)
	if _, err := io.ReadFull(w, b.Bytes()); err != nil {
		b.Release()
		return nil, err
	}
	w.st.Bodies++
	w.st.BodyBytes += int64(n)
	return b, nil
}

func (w *readWire) EOF() bool  { return w.eof }
func (w *readWire) Interrupt() {} // the connection's read deadline does it
func (w *readWire) Stats() WireStats {
	st := w.st
	st.Bytes = w.n
	return st
}
func (w *readWire) Close() error { return nil }

// limitWire bounds a Wire to one frame's payload: reading past it is
// io.EOF, and a body longer than what is left consumes the rest and fails
// with io.ErrUnexpectedEOF, as a message that runs past its frame.
type limitWire struct {
	w Wire
	n int64
}

func (l *limitWire) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.w.Read(p)
	l.n -= int64(n)
	return n, err
}

func (l *limitWire) Body(n int, mem memory.Allocator) (*memory.Buffer, error) {
	if int64(n) > l.n {
		l.n = 0
		return nil, io.ErrUnexpectedEOF
	}
	b, err := l.w.Body(n, mem)
	if err == nil {
		l.n -= int64(n)
	}
	return b, err
}

// startWire switches to the receive path asked for, with the allocator
// the Receiver has now.
func (r *Receiver) startWire() error {
	switch r.recv {
	case RecvRead:
		r.why = "recv: read asked for (read(2) into one pool buffer per message body)"
		return nil
	case RecvAuto:
		r.why = "recv: auto picks read: " + autoRecvWhy
		return nil
	case RecvUringMultishot:
	default:
		return fmt.Errorf("stream: unknown receive mode %q", r.recv)
	}
	if err := UringRecvSupport(); err != nil {
		return err
	}
	tc, ok := r.conn.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("%w: uring_multishot receives on a TCP connection, not a %T", ErrRecvUnsupported, r.conn)
	}
	w, why, err := uringWire.open(tc, r.mem, r.wopts)
	if err != nil {
		return fmt.Errorf("stream: receive from %s with uring_multishot: %w", r.conn.RemoteAddr(), err)
	}
	r.w, r.why, r.mode = w, "recv: uring_multishot asked for ("+why+")", RecvUringMultishot
	return nil
}

// autoRecvWhy says why auto picks read; docs/stream.md has the figures.
const autoRecvWhy = "uring_multishot is not measured faster on loopback yet"

// RecvMode is the receive path in use once Start returned (auto resolved).
func (r *Receiver) RecvMode() RecvMode {
	if r.mode == "" {
		return RecvRead
	}
	return r.mode
}

// RecvReason says why the receive path was chosen (after Start).
func (r *Receiver) RecvReason() string { return r.why }
