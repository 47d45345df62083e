//go:build linux

package uringrecv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/io/stream"
	"github.com/zflowdev/zflow/io/uring"
)

func init() {
	stream.RegisterUringWire(probe, func(conn *net.TCPConn, mem memory.Allocator, opts stream.WireOptions) (stream.Wire, string, error) {
		w, err := New(conn, mem, opts)
		if err != nil {
			return nil, "", err
		}
		return w, w.why, nil
	})
}

func probe() error {
	_, err := uring.RecvMultishotSupport()
	return err
}

// Buffer sizes: incremental rings start at minBuf and grow to
// bodyFactor × the largest body seen (a body crosses a buffer's end with
// probability about body/buffer), up to maxBuf; without incremental
// consumption every completion uses up a buffer, so they stay at flatBuf.
const (
	minBuf     = 1 << 20
	maxBuf     = 64 << 20
	flatBuf    = 256 << 10
	bodyFactor = 8
	ringSlots  = 16 // the buffer ring's entries
	incTarget  = 3  // buffers kept in the kernel's hands, incremental
	flatTarget = 16 // the same, one buffer per completion
	maxBuffers = 1 << 16
	closeWait  = 5 * time.Second
)

var errInterrupted = errors.New("uringrecv: receive interrupted")

// pbuf is one provided buffer: memory of the pool, and the Arrow buffer
// whose reference count says who still holds it. The kernel (while the
// buffer is in the ring) or the parser (after the kernel gave it back,
// until every byte was parsed) holds one reference; each body referenced
// in it holds one. When the count reaches zero Arrow calls Free, which
// hands the buffer back to the Wire (or, once the Wire is closed, to the
// pool).
type pbuf struct {
	w        *Wire
	bid      uint16
	data     []byte
	buf      *memory.Buffer
	fill     int  // bytes the kernel put in so far (incremental)
	inKernel bool // provided and not given back
}

func (p *pbuf) Allocate(int) []byte { panic("uringrecv: a provided buffer allocates nothing") }
func (p *pbuf) Reallocate(int, []byte) []byte {
	panic("uringrecv: a provided buffer allocates nothing")
}
func (p *pbuf) Free([]byte) { p.w.recycle(p) }

// seg is received bytes [off, end) of a buffer, in stream order; last says
// the kernel gave the buffer back after them (the parser's reference ends
// when they are consumed).
type seg struct {
	p        *pbuf
	off, end int
	last     bool
}

// Wire is the uring_multishot stream.Wire.
type Wire struct {
	rr      *uring.RecvRing
	remote  net.Addr
	mem     memory.Allocator
	inc     bool
	bufSize int
	fixed   bool // the caller fixed the buffer size
	target  int
	bufs    []*pbuf // by buffer id
	segs    []seg
	given   int // buffers in the kernel's hands
	started bool
	eof     bool
	err     error
	intr    atomic.Bool
	st      stream.WireStats
	why     string

	mu     sync.Mutex // guards free and closed against releases from other goroutines
	free   []*pbuf
	closed bool
}

// New makes a Wire on conn whose provided buffers come from mem. conn
// stays the caller's; the Wire uses its descriptor until Close.
func New(conn *net.TCPConn, mem memory.Allocator, opts stream.WireOptions) (*Wire, error) {
	inc, err := uring.RecvMultishotSupport()
	if err != nil {
		return nil, err
	}
	if opts.Incremental < 0 {
		inc = false
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("uringrecv: %w", err)
	}
	var rr *uring.RecvRing
	var rerr error
	if err := rc.Control(func(fd uintptr) { rr, rerr = uring.NewRecvRing(int(fd), ringSlots, inc) }); err != nil {
		return nil, fmt.Errorf("uringrecv: %w", err)
	}
	if rerr != nil {
		return nil, rerr
	}
	w := &Wire{rr: rr, remote: conn.RemoteAddr(), mem: mem, inc: inc, bufSize: opts.BufSize, fixed: opts.BufSize > 0, target: incTarget}
	if !inc {
		w.target = flatTarget
	}
	switch {
	case w.fixed:
	case inc:
		w.bufSize = minBuf
	default:
		w.bufSize = flatBuf
	}
	if inc {
		w.why = "io_uring multishot RECV into buffers of the pool in a provided buffer ring, filled incrementally (IOU_PBUF_RING_INC); a message body that lands in one buffer is referenced, one that crosses into the next is copied"
	} else {
		w.why = "io_uring multishot RECV into buffers of the pool in a provided buffer ring, one buffer per completion (this kernel has no IOU_PBUF_RING_INC); a message body within one completion is referenced, others are copied"
	}
	return w, nil
}

// Interrupt makes a blocked and every later Read or Body fail.
func (w *Wire) Interrupt() { w.intr.Store(true) }

// EOF says the peer ended the stream.
func (w *Wire) EOF() bool { return w.eof && len(w.segs) == 0 }

// Stats counts what the Wire did.
func (w *Wire) Stats() stream.WireStats { return w.st }

// InFlight is the receive requests the kernel still holds (tests).
func (w *Wire) InFlight() int { return w.rr.InFlight() }

// recycle takes back a buffer nobody references any more: kept for the
// ring, or given back to the pool once the Wire is closed. Any goroutine.
func (w *Wire) recycle(p *pbuf) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p.buf = nil
	if w.closed {
		w.mem.Free(p.data)
		p.data = nil
		return
	}
	w.free = append(w.free, p)
}

// provide keeps target buffers in the kernel's hands: recycled ones first,
// new ones from the pool after.
func (w *Wire) provide() error {
	for w.given < w.target {
		var p *pbuf
		w.mu.Lock()
		if n := len(w.free); n > 0 {
			p = w.free[n-1]
			w.free = w.free[:n-1]
		}
		w.mu.Unlock()
		switch {
		case p != nil && len(p.data) != w.bufSize:
			w.mem.Free(p.data) // the size grew: make it again
			p.data = w.mem.Allocate(w.bufSize)
			w.st.Buffers++
		case p == nil:
			if len(w.bufs) == maxBuffers {
				return fmt.Errorf("uringrecv: %d provided buffers are all held by batches not released yet", maxBuffers)
			}
			p = &pbuf{w: w, bid: uint16(len(w.bufs)), data: w.mem.Allocate(w.bufSize)}
			w.bufs = append(w.bufs, p)
			w.st.Buffers++
		}
		p.buf = memory.NewBufferWithAllocator(p.data, p)
		p.fill, p.inKernel = 0, true
		w.rr.Provide(p.bid, p.data)
		w.given++
	}
	return nil
}

// pump provides buffers, arms the receive when it is not, and handles the
// completions ready (waiting up to wait for one).
func (w *Wire) pump(wait time.Duration) error {
	if w.intr.Load() {
		return errInterrupted
	}
	if err := w.provide(); err != nil {
		return err
	}
	if !w.rr.Armed() && !w.eof && w.err == nil {
		if w.started {
			w.st.Rearms++
		}
		if err := w.rr.Arm(); err != nil {
			return fmt.Errorf("uringrecv: %w", err)
		}
		w.started = true
	}
	if err := w.rr.Wait(wait, w.event); err != nil {
		return fmt.Errorf("uringrecv: %w", err)
	}
	return nil
}

func (w *Wire) event(ev uring.RecvEvent) {
	if ev.HasBuf {
		p := w.bufs[ev.Buf]
		n := max(int(ev.Res), 0)
		off := 0
		if w.inc {
			off = p.fill
		}
		s := seg{p: p, off: off, end: off + n}
		p.fill = s.end
		if !ev.BufMore {
			s.last, p.inKernel = true, false
			w.given--
		}
		w.st.Bytes += int64(n)
		if k := len(w.segs) - 1; k >= 0 && w.segs[k].p == p && w.segs[k].end == s.off && !w.segs[k].last {
			w.segs[k].end, w.segs[k].last = s.end, s.last // more bytes in the same buffer
		} else {
			w.segs = append(w.segs, s)
		}
		if ev.Res > 0 {
			return
		}
	}
	switch {
	case ev.Res == 0:
		if !ev.HasBuf {
			w.eof = true
		}
	case ev.Res == -int32(syscall.ENOBUFS):
		// The ring ran dry: pump provides and arms again.
	case ev.Res < 0 && w.err == nil:
		w.err = &net.OpError{Op: "read", Net: "tcp", Addr: w.remote, Err: os.NewSyscallError("recv", syscall.Errno(-ev.Res))}
	}
}

// front drops consumed segments at the head and waits until bytes are
// there; io.EOF when the stream ended.
func (w *Wire) front() error {
	for {
		for len(w.segs) > 0 && w.segs[0].off == w.segs[0].end {
			w.pop()
		}
		if len(w.segs) > 0 {
			return nil
		}
		if w.err != nil {
			return w.err
		}
		if w.eof {
			return io.EOF
		}
		if err := w.pump(20 * time.Millisecond); err != nil {
			return err
		}
	}
}

// pop drops the head segment, ending the parser's reference to its buffer
// when the kernel gave it back after these bytes.
func (w *Wire) pop() {
	s := w.segs[0]
	if s.last {
		s.p.buf.Release()
	}
	n := copy(w.segs, w.segs[1:])
	w.segs[n] = seg{}
	w.segs = w.segs[:n]
}

// Read copies the next bytes into p.
func (w *Wire) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := w.front(); err != nil {
		return 0, err
	}
	s := &w.segs[0]
	n := copy(p, s.p.data[s.off:s.end])
	s.off += n
	return n, nil
}

// Body returns the next n bytes: a slice of the buffer they landed in,
// when they lie in one buffer at an 8-byte aligned address, else a copy
// into a buffer of mem.
func (w *Wire) Body(n int, mem memory.Allocator) (*memory.Buffer, error) {
	w.st.Bodies++
	w.st.BodyBytes += int64(n)
	if n == 0 {
		return memory.NewBufferBytes(nil), nil
	}
	if err := w.front(); err != nil {
		return nil, noEOF(err)
	}
	if !w.fixed && w.inc && n*bodyFactor > w.bufSize {
		w.bufSize = min(max(pow2(n*bodyFactor), w.bufSize), maxBuf)
	}
	s := w.segs[0]
	aligned := uintptr(unsafe.Pointer(&s.p.data[s.off]))%8 == 0
	// In incremental mode the bytes that follow go on in the same buffer
	// while it has room, so a body that fits is waited for there.
	fits := s.end-s.off >= n || (w.inc && !s.last && s.off+n <= len(s.p.data))
	if aligned && fits {
		for w.segs[0].end-w.segs[0].off < n {
			if w.err != nil {
				return nil, w.err
			}
			if w.eof {
				return nil, io.ErrUnexpectedEOF
			}
			if err := w.pump(20 * time.Millisecond); err != nil {
				return nil, err
			}
		}
		h := &w.segs[0]
		b := memory.SliceBuffer(h.p.buf, h.off, n)
		h.off += n
		w.st.RefBytes += int64(n)
		return b, nil
	}
	b := buffers.UnzeroedBuffer(mem, n) // the read overwrites it
	if _, err := io.ReadFull(w, b.Bytes()); err != nil {
		b.Release()
		return nil, noEOF(err)
	}
	if aligned {
		w.st.SplitBytes += int64(n)
	} else {
		w.st.MisalignedBytes += int64(n)
	}
	return b, nil
}

// Close ends the receive (a cancel, its last completion awaited), tears
// the ring down and gives back to the pool every buffer no batch holds;
// the ones batches hold go back when they are released.
func (w *Wire) Close() error {
	var err error
	if w.rr.Armed() {
		err = w.rr.Cancel()
	}
	deadline := time.Now().Add(closeWait)
	for w.rr.InFlight() > 0 && err == nil {
		if werr := w.rr.Wait(20*time.Millisecond, w.event); werr != nil {
			err = werr
		}
		if time.Now().After(deadline) {
			err = fmt.Errorf("uringrecv: the kernel did not end the receive in %v", closeWait)
		}
	}
	left := w.rr.InFlight()
	if cerr := w.rr.Close(left > 0); cerr != nil && err == nil {
		err = cerr
	}
	w.mu.Lock()
	w.closed = true
	free := w.free
	w.free = nil
	w.mu.Unlock()
	for _, p := range free {
		w.mem.Free(p.data)
		p.data = nil
	}
	for len(w.segs) > 0 {
		w.pop()
	}
	for _, p := range w.bufs {
		if p.inKernel && left == 0 {
			// The ring is gone with nothing in flight: the kernel writes
			// into none of them. (With a request left, they are leaked
			// rather than handed back under the kernel.)
			p.inKernel = false
			p.buf.Release()
		}
	}
	w.given = 0
	if err != nil {
		return fmt.Errorf("uringrecv: close: %w", err)
	}
	return nil
}

func pow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
