//go:build linux

package netzc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// iovMax is the most buffers one sendmsg takes (IOV_MAX).
const iovMax = 1024

// zcCall is one sendmsg(MSG_ZEROCOPY): its notification id, its bytes,
// and the release of the list it ends (nil for calls inside a list).
type zcCall struct {
	id           uint32
	n            int
	done, copied bool
	release      func()
	// keep holds the call's buffers until its completion: the kernel
	// reads their pages after sendmsg returned, and a buffer of Go memory
	// nothing else refers to (a frame header, say) could otherwise be
	// collected and reused under it.
	keep [][]byte
}

// zcSender is the msg_zerocopy path (and auto, which sends small lists by
// the copy path it holds).
type zcSender struct {
	conn   *net.TCPConn
	rc     syscall.RawConn
	fd     int
	auto   bool
	opts   Options
	reason string
	small  *copySender // auto: lists below the threshold, and all lists once copying
	st     Stats
	// copying: auto saw the kernel copy every one of its first copiedProbe
	// zero-copy sends, and sends everything by copy from then on.
	copying bool

	nextID   uint32   // the id the kernel gives the next zero-copy sendmsg
	calls    []zcCall // in id order; calls[0] is the oldest not yet released
	inflight int      // bytes of calls not completed
	oob      []byte
	rem      [][]byte
	failed   error // a fatal error of the error queue
}

func newZeroCopy(conn *net.TCPConn, mode Mode, opts Options) (Sender, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("netzc: %w", err)
	}
	s := &zcSender{conn: conn, rc: rc, auto: mode == Auto, opts: opts, oob: make([]byte, 512)}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		s.fd = int(fd)
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ZEROCOPY, 1)
	}); err != nil {
		return nil, fmt.Errorf("netzc: %w", err)
	}
	if serr != nil {
		if s.auto {
			return newCopy(conn, fmt.Sprintf("send: auto chose copy: the kernel refused SO_ZEROCOPY (%v)", serr)), nil
		}
		return nil, fmt.Errorf("%w: setsockopt SO_ZEROCOPY: %v", ErrUnsupported, serr)
	}
	if s.auto {
		s.small = newCopy(conn, "")
		s.reason = fmt.Sprintf("send: auto chose msg_zerocopy for messages of at least %d bytes (SO_ZEROCOPY accepted), copy (writev) below", opts.Threshold)
		if isLoopback(conn) {
			s.reason += "; the peer is on loopback, where the kernel copies every zero-copy send (counted as copied)"
		}
	} else {
		s.reason = "send: msg_zerocopy asked for (SO_ZEROCOPY accepted)"
	}
	return s, nil
}

func isLoopback(conn *net.TCPConn) bool {
	a, ok := conn.RemoteAddr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

func (s *zcSender) Mode() Mode {
	if s.auto {
		return Auto
	}
	return MsgZeroCopy
}

func (s *zcSender) Reason() string { return s.reason }

func (s *zcSender) Stats() Stats {
	st := s.st
	if s.small != nil {
		st.Sends += s.small.st.Sends
		st.Bytes += s.small.st.Bytes
		st.Syscalls += s.small.st.Syscalls
		st.CopiedBytes += s.small.st.CopiedBytes
	}
	return st
}

// copiedProbe is how many zero-copy completions auto reads before it
// judges the path: if the kernel copied every one, it copies from then on.
const copiedProbe = 8

func (s *zcSender) Send(bufs [][]byte, release func()) error {
	n := total(bufs)
	if s.auto && (n < s.opts.Threshold || s.copying) {
		err := s.small.Send(bufs, release)
		if len(s.calls) > 0 { // earlier zero-copy lists: release what completed
			if rerr := s.reap(context.Background(), 0); rerr != nil && err == nil {
				err = rerr
			}
		}
		return err
	}
	s.st.Sends++
	if s.failed != nil {
		if release != nil {
			release()
		}
		return s.failed
	}
	// Bound the memory the kernel holds pinned.
	for s.inflight > 0 && s.inflight+n > s.opts.MaxInFlight {
		if err := s.reap(context.Background(), 50*time.Millisecond); err != nil {
			return s.attach(release, err)
		}
	}
	s.rem = append(s.rem[:0], bufs...)
	rem := s.rem
	for len(rem) > 0 {
		if len(rem[0]) == 0 {
			rem = rem[1:]
			continue
		}
		chunk := rem[:min(len(rem), iovMax)]
		var w int
		var serr error
		err := s.rc.Write(func(fd uintptr) bool {
			w, serr = unix.SendmsgBuffers(int(fd), chunk, nil, nil, unix.MSG_ZEROCOPY|unix.MSG_NOSIGNAL)
			return serr != unix.EAGAIN
		})
		s.st.Syscalls++
		if err == nil {
			err = serr
		}
		if errors.Is(err, unix.ENOBUFS) {
			// Too many notifications outstanding (optmem_max): wait for
			// some, then try again.
			if rerr := s.reap(context.Background(), 50*time.Millisecond); rerr != nil {
				return s.attach(release, rerr)
			}
			continue
		}
		if err != nil {
			return s.attach(release, fmt.Errorf("netzc: sendmsg(MSG_ZEROCOPY) %d bytes: %w", total(chunk), err))
		}
		if w > 0 {
			s.calls = append(s.calls, zcCall{id: s.nextID, n: w, keep: keepBufs(chunk, w)})
			s.nextID++
			s.inflight += w
			s.st.ZeroCopySends++
			s.st.Bytes += int64(w)
		}
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
	clear(s.rem)
	err := s.attach(release, nil)
	if rerr := s.reap(context.Background(), 0); rerr != nil && err == nil {
		err = rerr
	}
	s.judge()
	return err
}

// judge turns auto to copy when the kernel copied each of the first
// copiedProbe zero-copy sends: the peer is on this host (loopback, a veth
// pair) or the device cannot send from user pages, so every later send
// would pay for pinning pages and reading completions on top of the copy.
// The kernel's MSG_ZEROCOPY documentation suggests exactly this use of
// SO_EE_CODE_ZEROCOPY_COPIED. Lists already sent complete as before.
func (s *zcSender) judge() {
	if !s.auto || s.copying || s.st.Completions < copiedProbe || s.st.CopiedCompletions != s.st.Completions {
		return
	}
	s.copying = true
	s.reason += fmt.Sprintf("; the kernel copied all of the first %d zero-copy sends (a peer on this host, or a device that cannot send from user pages), so auto sends by copy from then on", s.st.Completions)
}

// attach hands release to the newest call not yet released, or runs it
// now when no call of this list is in flight; it returns err.
func (s *zcSender) attach(release func(), err error) error {
	if release == nil {
		return err
	}
	if len(s.calls) > 0 && s.calls[len(s.calls)-1].release == nil && !s.allDone() {
		last := &s.calls[len(s.calls)-1]
		last.release = release
		return err
	}
	release()
	return err
}

func (s *zcSender) allDone() bool {
	for i := range s.calls {
		if !s.calls[i].done {
			return false
		}
	}
	return true
}

// reap reads the error queue: without waiting when wait is 0, else until at
// least one notification arrived, wait passed or ctx ended.
func (s *zcSender) reap(ctx context.Context, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		got, err := s.drain()
		if err != nil {
			s.failed = err
			return err
		}
		if got || wait == 0 || len(s.calls) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		pfd := []unix.PollFd{{Fd: int32(s.fd)}} // POLLERR is always reported
		if _, err := unix.Poll(pfd, int(min(left, 20*time.Millisecond)/time.Millisecond)+1); err != nil && err != unix.EINTR {
			return fmt.Errorf("netzc: poll error queue: %w", err)
		}
		if pfd[0].Revents&unix.POLLERR != 0 {
			if got, err := s.drain(); err != nil || got {
				if err != nil {
					s.failed = err
				}
				return err
			}
			// POLLERR with an empty error queue: the socket has an error.
			if soerr, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && soerr != 0 {
				s.failed = fmt.Errorf("netzc: socket error while waiting for zero-copy completions: %w", unix.Errno(soerr))
				return s.failed
			}
		}
	}
}

// drain reads every notification queued now and releases the lists whose
// calls all completed, oldest first.
func (s *zcSender) drain() (bool, error) {
	got := false
	for {
		_, oobn, _, _, err := unix.Recvmsg(s.fd, nil, s.oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err == unix.EAGAIN || err == unix.EINTR {
			break
		}
		if err != nil {
			return got, fmt.Errorf("netzc: recvmsg(MSG_ERRQUEUE): %w", err)
		}
		msgs, err := unix.ParseSocketControlMessage(s.oob[:oobn])
		if err != nil {
			return got, fmt.Errorf("netzc: error queue: %w", err)
		}
		for _, m := range msgs {
			lo, hi, copied, err := parseZeroCopy(m)
			if err != nil {
				return got, err
			}
			s.complete(lo, hi, copied)
			got = true
		}
	}
	s.releaseDone()
	return got, nil
}

// parseZeroCopy reads a zero-copy notification: the id range [lo, hi] and
// whether the kernel copied.
func parseZeroCopy(m unix.SocketControlMessage) (lo, hi uint32, copied bool, err error) {
	ip4 := m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR
	ip6 := m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR
	if !ip4 && !ip6 {
		return 0, 0, false, fmt.Errorf("netzc: error queue: unexpected control message level %d type %d", m.Header.Level, m.Header.Type)
	}
	if len(m.Data) < int(unsafe.Sizeof(unix.SockExtendedErr{})) {
		return 0, 0, false, fmt.Errorf("netzc: error queue: short sock_extended_err (%d bytes)", len(m.Data))
	}
	ee := (*unix.SockExtendedErr)(unsafe.Pointer(&m.Data[0]))
	if ee.Origin != unix.SO_EE_ORIGIN_ZEROCOPY || ee.Errno != 0 {
		return 0, 0, false, fmt.Errorf("netzc: socket error from the error queue (origin %d): %w", ee.Origin, unix.Errno(ee.Errno))
	}
	return ee.Info, ee.Data, ee.Code&unix.SO_EE_CODE_ZEROCOPY_COPIED != 0, nil
}

// complete marks the calls whose ids are in [lo, hi] (modulo 2^32).
func (s *zcSender) complete(lo, hi uint32, copied bool) {
	for i := range s.calls {
		c := &s.calls[i]
		if c.done || int32(c.id-lo) < 0 || int32(hi-c.id) < 0 {
			continue
		}
		c.done, c.copied = true, copied
		s.inflight -= c.n
		s.st.Completions++
		if copied {
			s.st.CopiedCompletions++
			s.st.CopiedBytes += int64(c.n)
		} else {
			s.st.ZeroCopyBytes += int64(c.n)
		}
	}
}

// keepBufs is the buffers of bufs the first w bytes of which were sent.
func keepBufs(bufs [][]byte, w int) [][]byte {
	var out [][]byte
	for _, b := range bufs {
		if w <= 0 {
			break
		}
		out = append(out, b)
		w -= len(b)
	}
	return out
}

// releaseDone drops the completed calls at the front, running releases.
func (s *zcSender) releaseDone() {
	i := 0
	for i < len(s.calls) && s.calls[i].done {
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

func (s *zcSender) Flush(ctx context.Context) error {
	for len(s.calls) > 0 {
		if s.failed != nil {
			return s.failed
		}
		if err := s.reap(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("netzc: waiting for %d zero-copy completions: %w", len(s.calls), err)
		}
	}
	return nil
}

func (s *zcSender) Close(ctx context.Context, abort bool) error {
	var err error
	if !abort {
		if err = s.Flush(ctx); err != nil {
			abort = true
		}
	}
	if abort {
		// Reset: the kernel drops what it has not sent, and with it its
		// references to our pages, before the buffers go back.
		_ = s.conn.SetLinger(0)
	}
	if cerr := s.conn.Close(); err == nil {
		err = cerr
	}
	for i := range s.calls {
		if r := s.calls[i].release; r != nil {
			s.calls[i].release = nil
			r()
		}
	}
	s.calls = s.calls[:0]
	return err
}
