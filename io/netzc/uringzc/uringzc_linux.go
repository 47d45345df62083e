//go:build linux

package uringzc

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zflowdev/zflow/io/netzc"
	"github.com/zflowdev/zflow/io/uring"
)

func init() {
	netzc.RegisterUringZC(probe, func(conn *net.TCPConn, opts netzc.Options) (netzc.Sender, error) {
		return New(conn, opts)
	})
}

func probe() error {
	_, err := uring.SendZCSupport()
	return err
}

// closeWait is how long Close waits for the notifications that follow a
// reset when its context has already ended.
const closeWait = 2 * time.Second

// call is one request: its tag (user_data), the bytes it sent, whether its
// result and notification arrived, and the release of the list it ends
// (nil for requests inside a list).
type call struct {
	tag              uint64
	n                int
	result, notified bool
	more             bool
	release          func()
	// keep holds the request's buffers until its notification: the
	// kernel reads their pages after the result, and a buffer of Go
	// memory nothing else refers to could otherwise be collected under it.
	keep [][]byte
}

func (c *call) done() bool { return c.result && (!c.more || c.notified) }

// Sender is the uring_zc netzc.Sender.
type Sender struct {
	conn   *net.TCPConn
	zs     *uring.ZCSocket
	opts   netzc.Options
	reason string
	st     netzc.Stats

	nextTag  uint64
	calls    []call // in tag order; calls[0] is the oldest not yet released
	inflight int    // bytes sent whose notification has not arrived
	rem      [][]byte
	last     uring.ZCEvent // the newest result
	gotLast  bool
	failed   error
	deadline atomic.Int64 // UnixNano; sends still waiting then are cancelled (0: none)
}

// New makes a uring_zc Sender on conn; the error says why io_uring
// zero-copy sends are impossible here.
func New(conn *net.TCPConn, opts netzc.Options) (*Sender, error) {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = netzc.DefaultMaxInFlight
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("uringzc: %w", err)
	}
	var zs *uring.ZCSocket
	var zerr error
	if err := rc.Control(func(fd uintptr) { zs, zerr = uring.NewZCSocket(int(fd), 0) }); err != nil {
		return nil, fmt.Errorf("uringzc: %w", err)
	}
	if zerr != nil {
		return nil, fmt.Errorf("%w: %v", netzc.ErrUnsupported, zerr)
	}
	s := &Sender{conn: conn, zs: zs, opts: opts}
	if len(opts.Registered) > 0 {
		if err := zs.RegisterBuffers(opts.Registered); err != nil {
			zs.Close(false)
			return nil, fmt.Errorf("uringzc: %w", err)
		}
		s.reason = fmt.Sprintf("send: uring_zc asked for (io_uring SENDMSG_ZC, IORING_RECVSEND_FIXED_BUF for runs of buffers in one of the %d registered regions, where the kernel takes them, as 6.18 does; else SEND_ZC per buffer)", len(opts.Registered))
	} else if zs.Vectored() {
		s.reason = fmt.Sprintf("send: uring_zc asked for (io_uring SENDMSG_ZC, up to %d buffers per request)", uring.IOVMax)
	} else {
		s.reason = "send: uring_zc asked for (io_uring SEND_ZC, one request per buffer: this kernel has no SENDMSG_ZC)"
	}
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
		s.reason += "; the peer is on loopback, where the kernel copies every zero-copy send (counted as copied)"
	}
	return s, nil
}

func (s *Sender) Mode() netzc.Mode { return netzc.UringZC }
func (s *Sender) Reason() string   { return s.reason }
func (s *Sender) Stats() netzc.Stats {
	st := s.st
	st.FixedSends = s.zs.FixedSends()
	return st
}

// SetWriteDeadline bounds later sends (netzc.WriteDeadliner): a request
// still waiting for its result at t is cancelled and Send fails with
// os.ErrDeadlineExceeded. It also sets conn's write deadline. The zero
// time means no bound.
// Another goroutine may call it while Send waits (stream.Sender.Write
// does when its context ends).
func (s *Sender) SetWriteDeadline(t time.Time) error {
	d := int64(0)
	if !t.IsZero() {
		d = max(t.UnixNano(), 1)
	}
	s.deadline.Store(d)
	return s.conn.SetWriteDeadline(t)
}

// InFlight is the number of completions the ring still expects (tests).
func (s *Sender) InFlight() int { return s.zs.InFlight() }

// Send writes bufs with zero-copy requests; release runs once every
// request's notification arrived.
func (s *Sender) Send(bufs [][]byte, release func()) error {
	s.st.Sends++
	if s.failed != nil {
		if release != nil {
			release()
		}
		return s.failed
	}
	n := netzc.Total(bufs)
	for s.inflight > 0 && s.inflight+n > s.opts.MaxInFlight {
		if err := s.reap(50 * time.Millisecond); err != nil {
			return s.attach(release, err)
		}
	}
	s.rem = append(s.rem[:0], bufs...)
	rem := s.rem
	defer clear(s.rem)
	for len(rem) > 0 {
		if len(rem[0]) == 0 {
			rem = rem[1:]
			continue
		}
		tag := s.nextTag
		s.nextTag++
		k, err := s.zs.Submit(tag, rem)
		s.st.Syscalls++
		if err != nil {
			s.failed = fmt.Errorf("uringzc: %w", err)
			return s.attach(release, s.failed)
		}
		s.calls = append(s.calls, call{tag: tag, keep: append([][]byte(nil), rem[:k]...)})
		ev, err := s.waitResult(tag)
		if err != nil {
			return s.attach(release, err)
		}
		if ev.Res < 0 {
			errno := syscall.Errno(-ev.Res)
			if errno == syscall.EAGAIN || errno == syscall.EINTR {
				continue // nothing sent: submit the same again
			}
			if errno == syscall.EINVAL && s.zs.LastVectoredFixed() {
				// This kernel takes no registered buffers in SENDMSG_ZC
				// (older kernels): nothing was sent; go on with
				// SEND_ZC per buffer.
				s.zs.RefuseVectoredFixed()
				s.reason += "; this kernel refuses registered buffers in SENDMSG_ZC (EINVAL), so SEND_ZC per buffer"
				continue
			}
			s.failed = fmt.Errorf("uringzc: sendmsg_zc %d bytes: %w", netzc.Total(rem[:k]), errno)
			return s.attach(release, s.failed)
		}
		w := int(ev.Res)
		for w > 0 {
			if w >= len(rem[0]) {
				w -= len(rem[0])
				rem = rem[1:]
				continue
			}
			rem[0] = rem[0][w:]
			w = 0
		}
	}
	err := s.attach(release, nil)
	if rerr := s.reap(0); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// waitResult reaps until the result of tag arrived. Past the write
// deadline it cancels the request, still waits for its result, and fails.
func (s *Sender) waitResult(tag uint64) (uring.ZCEvent, error) {
	s.gotLast = false
	cancelled := false
	for !s.gotLast || s.last.Tag != tag {
		if err := s.reap(20 * time.Millisecond); err != nil {
			return uring.ZCEvent{}, err
		}
		if d := s.deadline.Load(); !cancelled && d != 0 && time.Now().UnixNano() >= d && (!s.gotLast || s.last.Tag != tag) {
			if err := s.zs.Cancel(tag); err != nil {
				s.failed = fmt.Errorf("uringzc: %w", err)
				return uring.ZCEvent{}, s.failed
			}
			cancelled = true
		}
	}
	if cancelled {
		// Part of the list may have gone: the stream is broken.
		s.failed = fmt.Errorf("uringzc: send waited past the write deadline and was cancelled (%d bytes of the request sent): %w", max(s.last.Res, 0), os.ErrDeadlineExceeded)
		return s.last, s.failed
	}
	return s.last, nil
}

// attach hands release to the newest request, or runs it now when no
// request awaits its result or notification; it returns err. The newest
// request may be done while an older one of the same list is not (a
// notification can overtake another): the release then waits for
// releaseDone, which runs releases oldest first once everything before
// them is done.
func (s *Sender) attach(release func(), err error) error {
	if release == nil {
		return err
	}
	if len(s.calls) > 0 && s.calls[len(s.calls)-1].release == nil && !s.allDone() {
		s.calls[len(s.calls)-1].release = release
		return err
	}
	release()
	return err
}

func (s *Sender) allDone() bool {
	for i := range s.calls {
		if !s.calls[i].done() {
			return false
		}
	}
	return true
}

// reap handles the completions ready now (waiting up to wait for the
// first) and releases the lists whose requests are all done, oldest first.
func (s *Sender) reap(wait time.Duration) error {
	if err := s.zs.Reap(wait, s.event); err != nil {
		s.failed = fmt.Errorf("uringzc: %w", err)
		return s.failed
	}
	s.releaseDone()
	return nil
}

func (s *Sender) event(ev uring.ZCEvent) {
	var c *call
	for i := range s.calls {
		if s.calls[i].tag == ev.Tag {
			c = &s.calls[i]
			break
		}
	}
	if c == nil {
		return // not ours: cannot happen, the ring is this sender's
	}
	if !ev.Notif {
		c.result, c.more = true, ev.More
		if ev.Res > 0 {
			c.n = int(ev.Res)
			s.st.Bytes += int64(c.n)
		}
		if ev.More {
			s.st.ZeroCopySends++
			s.inflight += c.n
		}
		s.last, s.gotLast = ev, true
		return
	}
	c.notified, c.more = true, true
	s.inflight -= c.n
	s.st.Completions++
	if ev.Copied {
		s.st.CopiedCompletions++
		s.st.CopiedBytes += int64(c.n)
	} else {
		s.st.ZeroCopyBytes += int64(c.n)
	}
}

// releaseDone drops the done requests at the front, running releases.
func (s *Sender) releaseDone() {
	i := 0
	for i < len(s.calls) && s.calls[i].done() {
		if r := s.calls[i].release; r != nil {
			s.calls[i].release = nil
			r()
		}
		i++
	}
	if i > 0 {
		n := copy(s.calls, s.calls[i:])
		clear(s.calls[n:])
		s.calls = s.calls[:n]
	}
}

// Flush waits until every release has run.
func (s *Sender) Flush(ctx context.Context) error {
	for len(s.calls) > 0 {
		if s.failed != nil {
			return s.failed
		}
		if err := s.reap(100 * time.Millisecond); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("uringzc: waiting for %d zero-copy notifications: %w", len(s.calls), err)
		}
	}
	return nil
}

// Close flushes (or, with abort or when that fails, resets the
// connection), closes it, waits for the notifications still due, releases
// what is left and tears the ring down.
func (s *Sender) Close(ctx context.Context, abort bool) error {
	var err error
	if !abort {
		if err = s.Flush(ctx); err != nil {
			abort = true
		}
	}
	if abort {
		// Reset: the kernel drops what it has not sent, and with it its
		// references to our pages, so the notifications come.
		_ = s.conn.SetLinger(0)
	}
	if cerr := s.conn.Close(); err == nil {
		err = cerr
	}
	start := time.Now()
	for s.zs.InFlight() > 0 {
		if ctx.Err() != nil && time.Since(start) > closeWait {
			break
		}
		if rerr := s.zs.Reap(20*time.Millisecond, s.event); rerr != nil {
			break
		}
	}
	left := s.zs.InFlight()
	for i := range s.calls {
		if r := s.calls[i].release; r != nil {
			s.calls[i].release = nil
			r()
		}
	}
	s.calls = s.calls[:0]
	if zerr := s.zs.Close(true); zerr != nil && err == nil {
		err = zerr
	}
	if left > 0 && err == nil {
		err = fmt.Errorf("uringzc: closed with %d zero-copy completions outstanding after the connection was reset", left)
	}
	return err
}
