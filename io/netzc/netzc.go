package netzc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Mode is a send path.
type Mode string

// The send paths.
const (
	Auto        Mode = "auto"
	Copy        Mode = "copy"
	MsgZeroCopy Mode = "msg_zerocopy"
	UringZC     Mode = "uring_zc"
)

// Modes lists the modes a caller may ask for.
var Modes = []Mode{Auto, Copy, MsgZeroCopy, UringZC}

// ParseMode checks s.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("netzc: unknown send mode %q (known: %s)", s, strings.Join(names, ", "))
}

// DefaultThreshold is the smallest list auto sends with MSG_ZEROCOPY.
const DefaultThreshold = 64 << 10

// DefaultMaxInFlight bounds the bytes sent with zero copy whose completion
// has not arrived yet; a send beyond it waits for completions first.
const DefaultMaxInFlight = 64 << 20

// ErrUnsupported says a send path does not exist on this platform or kernel.
var ErrUnsupported = errors.New("netzc: send path not supported")

// Options tune a Sender. The zero value means the defaults.
type Options struct {
	Threshold   int // auto: lists of at least this many bytes go zero-copy
	MaxInFlight int // zero-copy bytes awaiting completion before Send waits
	// Registered (uring_zc) are memory regions — an arena's extents
	// (buffers.Arena.Extents) — to register with the ring
	// (IORING_REGISTER_BUFFERS): buffers inside one are sent with
	// IORING_RECVSEND_FIXED_BUF, saving the per-request page pinning
	// (io/netzc/uringzc says how lists are cut into requests). They must
	// stay mapped until Close.
	Registered [][]byte
}

func (o Options) withDefaults() Options {
	if o.Threshold <= 0 {
		o.Threshold = DefaultThreshold
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	return o
}

// Stats count what a Sender did. CopiedBytes are the bytes the kernel
// copied: all of a copy send, and those of zero-copy sends whose
// completion carried the copied flag; ZeroCopyBytes the bytes it sent from
// the caller's memory.
type Stats struct {
	Sends             int64 // Send calls
	Bytes             int64 // bytes sent
	Syscalls          int64 // writev/sendmsg calls
	ZeroCopySends     int64 // sendmsg calls with MSG_ZEROCOPY
	Completions       int64 // zero-copy notification ids completed
	CopiedCompletions int64 // of which the kernel reported it copied
	CopiedBytes       int64
	ZeroCopyBytes     int64
	FixedSends        int64 // uring_zc requests that sent a registered buffer
}

// Sender sends lists of buffers on one connection. It is used by one
// goroutine at a time.
type Sender interface {
	// Send writes every byte of bufs, in order. release (may be nil) is
	// called exactly once, error or not, when the kernel no longer reads
	// bufs: before Send returns on the copy path, after the completion on a
	// zero-copy one (from a later Send, Flush or Close). A caller keeps
	// bufs' memory alive until then.
	Send(bufs [][]byte, release func()) error
	// Flush waits until every release has run.
	Flush(ctx context.Context) error
	// Close waits for outstanding completions (up to ctx) and releases
	// what is left; with abort it first resets the connection
	// (SO_LINGER 0), which drops unsent data, so the kernel holds no page
	// of a released buffer. It closes the connection.
	Close(ctx context.Context, abort bool) error
	// Mode is the path in use (auto resolved), Reason why it was chosen.
	Mode() Mode
	Reason() string
	Stats() Stats
}

// WriteDeadliner is implemented by Senders that do not write through the
// connection's netpoller (uring_zc): the connection's write deadline does
// not reach their sends, so a caller that bounds a send sets it here too.
// A send still waiting when the deadline passes is cancelled and fails with
// an error wrapping os.ErrDeadlineExceeded; the stream is broken after it.
type WriteDeadliner interface {
	SetWriteDeadline(t time.Time) error
}

// SetWriteDeadline bounds the sends of snd and the writes on conn: the
// connection's deadline, and the Sender's where it is a WriteDeadliner.
func SetWriteDeadline(snd Sender, conn *net.TCPConn, t time.Time) error {
	err := conn.SetWriteDeadline(t)
	if d, ok := snd.(WriteDeadliner); ok {
		if derr := d.SetWriteDeadline(t); err == nil {
			err = derr
		}
	}
	return err
}

// New returns a Sender for conn with mode. It fails when mode cannot be
// had (msg_zerocopy refused by the kernel, uring_zc not linked or without
// kernel support: see UringZCSupport); auto never
// fails for lack of zero copy, it falls back to copy with a reason.
func New(conn *net.TCPConn, mode Mode, opts Options) (Sender, error) {
	opts = opts.withDefaults()
	switch mode {
	case Copy:
		return newCopy(conn, "send: copy asked for"), nil
	case UringZC:
		if err := UringZCSupport(); err != nil {
			return nil, err
		}
		return uringZC.open(conn, opts)
	case MsgZeroCopy, Auto:
		return newZeroCopy(conn, mode, opts)
	}
	return nil, fmt.Errorf("netzc: unknown send mode %q", mode)
}

// uringZC is the uring_zc path, set by io/netzc/uringzc when a binary
// links it. It lives in its own package because io_uring comes through
// io/uring (giouring), which needs -ldflags=-checklinkname=0: netzc, and
// every binary linking only netzc, stays free of that.
var uringZC struct {
	probe func() error
	open  func(*net.TCPConn, Options) (Sender, error)
}

// RegisterUringZC installs the uring_zc path: probe says why it cannot be
// used here (nil if it can), open makes its Sender. io/netzc/uringzc calls
// it in init; a second registration panics.
func RegisterUringZC(probe func() error, open func(*net.TCPConn, Options) (Sender, error)) {
	if uringZC.open != nil {
		panic("netzc: uring_zc registered twice")
	}
	uringZC.probe, uringZC.open = probe, open
}

// UringZCSupport is nil when New can make a uring_zc Sender, else the
// reason: the path is not linked into this binary (import
// io/netzc/uringzc), or the kernel has no IORING_OP_SEND_ZC, or io_uring
// is refused.
func UringZCSupport() error {
	if uringZC.open == nil {
		return fmt.Errorf("%w: uring_zc is not linked into this binary (it lives in io/netzc/uringzc, which needs -ldflags=-checklinkname=0)", ErrUnsupported)
	}
	if err := uringZC.probe(); err != nil {
		return fmt.Errorf("%w: uring_zc: %v", ErrUnsupported, err)
	}
	return nil
}

// Total is the byte length of bufs.
func Total(bufs [][]byte) int { return total(bufs) }

// total is the byte length of bufs.
func total(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// copySender is the copy path: net.Buffers, which is writev(2) where the
// platform has it.
type copySender struct {
	conn   *net.TCPConn
	reason string
	st     Stats
	iov    net.Buffers
}

func newCopy(conn *net.TCPConn, reason string) *copySender {
	return &copySender{conn: conn, reason: reason}
}

func (s *copySender) Send(bufs [][]byte, release func()) error {
	if release != nil {
		defer release()
	}
	n := total(bufs)
	s.iov = append(s.iov[:0], bufs...)
	iov := s.iov // WriteTo consumes the slice it is called on
	_, err := iov.WriteTo(s.conn)
	clear(s.iov)
	s.st.Sends++
	s.st.Syscalls++
	if err != nil {
		return fmt.Errorf("netzc: writev %d bytes: %w", n, err)
	}
	s.st.Bytes += int64(n)
	s.st.CopiedBytes += int64(n)
	return nil
}

func (s *copySender) Flush(context.Context) error { return nil }

func (s *copySender) Close(_ context.Context, abort bool) error {
	if abort {
		_ = s.conn.SetLinger(0)
	}
	return s.conn.Close()
}

func (s *copySender) Mode() Mode     { return Copy }
func (s *copySender) Reason() string { return s.reason }
func (s *copySender) Stats() Stats   { return s.st }
