//go:build linux

package rdma

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/io/stream"
)

// RecvOptions configures a Receiver.
type RecvOptions struct {
	Window int              // the receive region's size: the bytes of batches in flight or held downstream
	Recvs  int              // receives posted: batches in flight
	Alloc  memory.Allocator // what arrow-go allocates while decoding (little: the arrays' structs)
	Device string           // a verbs device for real RDMA ("first" for the first one); "" for the emulation
}

// RecvStats are a Receiver's counters.
type RecvStats struct {
	Batches, Rows, Bytes int64
	Received             int64 // bytes read off the queue pair's connection into the region (not mapped by the sender)
}

type span struct {
	start, end uint64
	released   bool
}

// Receiver receives record batches a Sender WRITEs into its region.
type Receiver struct {
	ctl     *net.TCPConn
	br      *bufio.Reader
	pd      *PD
	cq      *CQ
	qp      *QP
	region  *MR
	window  uint64
	mapped  bool
	verbs   bool
	reason  string
	rdr     *ipc.Reader
	msgs    *stream.Messages
	ctx     context.Context          // Next's, for the message reader
	carrier [stream.CarrierSize]byte // the last batch's trace carrier
	stats   RecvStats
	wmu     sync.Mutex // control writes

	mu       sync.Mutex
	spans    []span
	expect   uint64       // ring position of the next span
	freed    uint64       // spans freed up to here
	posted   uint64       // receives posted so far
	recvs    uint64       // receives posted at a time
	batches  atomic.Int64 // stats.Batches, for the control goroutine's messages
	ended    bool
	endB     uint64
	endR     uint64
	peerErr  error
	live     int  // batches whose body is not released
	finished bool // the stream is over (ended, failed or closed)
	closed   bool // Close tore the QP down: the region may go with the last batch
	credit   chan struct{}
	ctlWake  chan struct{}
	onFree   func()
	freed2   bool // free ran
	wg       sync.WaitGroup
	once     sync.Once
}

// Accept waits up to timeout for a Sender on ln.
func Accept(ctx context.Context, ln *net.TCPListener, timeout time.Duration) (*net.TCPConn, error) {
	c, err := stream.Accept(ctx, ln, timeout)
	if err != nil {
		return nil, fmt.Errorf("rdma: %w", err)
	}
	return c, nil
}

// NewReceiver sets the stream up on an accepted control connection: the
// schema, the receive region (a shared memfd mapping, registered for
// remote writes), the queue pair, the first credit.
func NewReceiver(ctx context.Context, conn *net.TCPConn, opts RecvOptions) (*Receiver, error) {
	if opts.Window == 0 {
		opts.Window = DefaultWindow
	}
	if opts.Recvs == 0 {
		opts.Recvs = DefaultRecvs
	}
	if opts.Alloc == nil {
		opts.Alloc = memory.DefaultAllocator
	}
	r := &Receiver{ctl: conn, br: bufio.NewReader(conn), window: uint64(opts.Window),
		credit: make(chan struct{}, 1), ctlWake: make(chan struct{}, 1)}
	if err := r.setup(ctx, opts); err != nil {
		r.Fail(err)
		return nil, fmt.Errorf("rdma: %w", err)
	}
	return r, nil
}

func (r *Receiver) setup(ctx context.Context, opts RecvOptions) error {
	if r.window < minWindow || r.window > maxWindow || opts.Recvs < 1 || opts.Recvs > maxRecvs {
		return fmt.Errorf("a window of %d bytes and %d receives (want %d to %d bytes, 1 to %d receives)", r.window, opts.Recvs, minWindow, uint64(maxWindow), maxRecvs)
	}
	stop := context.AfterFunc(ctx, func() { r.ctl.SetDeadline(time.Now()) })
	defer stop()
	r.ctl.SetDeadline(time.Now().Add(30 * time.Second))
	defer r.ctl.SetDeadline(time.Time{})
	t, p, err := readCtl(r.br)
	if err != nil {
		return fmt.Errorf("read the sender's hello: %w", noEOF(err))
	}
	if t != ctlHello {
		return fmt.Errorf("the sender sent a %s frame first, want hello", t)
	}
	if err := checkHello(p); err != nil {
		return err
	}
	if t, p, err = readCtl(r.br); err != nil {
		return fmt.Errorf("read the sender's schema: %w", noEOF(err))
	}
	if t != ctlSchema {
		return fmt.Errorf("the sender sent a %s frame, want schema", t)
	}
	schemaMsg := p
	if _, err := stream.CheckSchemaMessage(schemaMsg); err != nil {
		return err
	}
	if _, err := r.ctl.Write(putCtl(ctlHello, helloPayload())); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	if opts.Device != "" {
		if err := r.setupVerbs(opts); err != nil {
			return err
		}
	} else if err := r.setupEmulated(ctx, opts); err != nil {
		return err
	}
	for i := range opts.Recvs {
		if err := r.qp.PostRecv(uint64(i)); err != nil {
			return err
		}
	}
	r.posted, r.recvs = uint64(opts.Recvs), uint64(opts.Recvs)
	if _, err := r.ctl.Write(putCtl(ctlCredit, pair(r.window, r.posted))); err != nil {
		return fmt.Errorf("send credit: %w", err)
	}
	r.ctx = ctx
	r.msgs = &stream.Messages{Schema: schemaMsg, Next: func() (*ipc.Message, error) { return r.next(r.ctx) }}
	r.wg.Add(2)
	go r.readPeer()
	go r.sendCredit()
	if r.rdr, err = ipc.NewReaderFromMessageReader(r.msgs, ipc.WithAllocator(opts.Alloc)); err != nil {
		return err
	}
	return nil
}

// setupEmulated registers the region in an emulated PD, offers it with a
// queue pair port and accepts the sender's queue pair.
func (r *Receiver) setupEmulated(ctx context.Context, opts RecvOptions) error {
	var err error
	r.pd, r.cq = NewPD(), NewCQ()
	if r.region, err = r.pd.AllocShared(int(r.window), RemoteWrite); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(r.ctl.LocalAddr().String())
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return fmt.Errorf("listen for the queue pair: %w", err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	pn, _ := strconv.Atoi(port)
	h, _ := r.region.handle()
	su := setup{rkey: r.region.RKey, window: r.window, qpPort: uint16(pn), recvs: uint32(opts.Recvs), handle: h}
	if _, err := r.ctl.Write(putCtl(ctlSetup, su.payload())); err != nil {
		return fmt.Errorf("send the setup: %w", err)
	}
	qc, err := stream.Accept(ctx, l.(*net.TCPListener), 10*time.Second)
	if err != nil {
		return fmt.Errorf("the sender's queue pair: %w", err)
	}
	r.qp = NewQP(qc, r.pd, r.cq)
	p, err := expectCtl(r.br, ctlMode, "sender")
	if err != nil {
		return err
	}
	if p[0] > 1 {
		return fmt.Errorf("the sender answered the emulation with mode %d", p[0])
	}
	r.mapped, r.reason = p[0] == 1, string(p[1:])
	return nil
}

// setupVerbs registers the region with a verbs device, offers it with
// its address and connects the QPs through verbs frames.
func (r *Receiver) setupVerbs(opts RecvOptions) error {
	dev := opts.Device
	if dev == "first" {
		dev = ""
	}
	var err error
	if r.pd, err = NewVerbsPD(dev); err != nil {
		return err
	}
	r.cq = NewCQ()
	if r.region, err = r.pd.AllocShared(int(r.window), RemoteWrite); err != nil {
		return err
	}
	if r.qp, err = NewVerbsQP(r.pd, r.cq); err != nil {
		return err
	}
	su := setup{rkey: r.region.RKey, window: r.window, recvs: uint32(opts.Recvs), base: uint64(addr(r.region.mem))}
	if _, err := r.ctl.Write(append(putCtl(ctlSetup, su.payload()), putCtl(ctlVerbs, verbsPayload(r.qp.Info()))...)); err != nil {
		return fmt.Errorf("send the setup: %w", err)
	}
	p, err := expectCtl(r.br, ctlVerbs, "sender")
	if err != nil {
		return err
	}
	if err := r.qp.ConnectVerbs(parseVerbs(p)); err != nil {
		return err
	}
	p, err = expectCtl(r.br, ctlMode, "sender")
	if err != nil {
		return err
	}
	if p[0] != 2 {
		return fmt.Errorf("the sender answered real RDMA with mode %d", p[0])
	}
	r.verbs, r.reason = true, string(p[1:])
	return nil
}

// Schema is the stream's schema.
func (r *Receiver) Schema() *arrow.Schema { return r.rdr.Schema() }

// Mapped says whether the sender mapped the region (one host: WRITEs are
// placed without a byte crossing a socket), and the sender's reason.
func (r *Receiver) Mapped() (bool, string) { return r.mapped, r.reason }

// Contains reports whether b lies in the receive region (by reference).
func (r *Receiver) Contains(b []byte) bool { return within(r.region.mem, b) }

func (r *Receiver) readPeer() {
	defer r.wg.Done()
	for {
		t, p, err := readCtl(r.br)
		r.mu.Lock()
		switch {
		case err != nil:
			if r.peerErr == nil && !r.finished && !(r.ended && errors.Is(err, io.EOF)) {
				r.peerErr = fmt.Errorf("the sender's control connection ended after batch %d of a stream that did not end: %w", r.batches.Load(), noEOF(err))
			}
		case t == ctlEnd:
			r.ended = true
			r.endB, r.endR = unpair(p)
		case t == ctlError:
			r.peerErr = fmt.Errorf("the sender failed after batch %d: %s", r.batches.Load(), p)
		default:
			r.peerErr = fmt.Errorf("the sender sent a %s frame mid-stream", t)
		}
		stop := err != nil || r.peerErr != nil
		r.mu.Unlock()
		select {
		case r.ctlWake <- struct{}{}:
		default:
		}
		if stop {
			return
		}
	}
}

// sendCredit tells the sender how far it may write, each time spans were
// freed (one frame for several frees).
func (r *Receiver) sendCredit() {
	defer r.wg.Done()
	lastG, lastP := r.window, r.recvs // the first credit, sent by setup
	for range r.credit {
		r.mu.Lock()
		g, posted, done, idle, expect := r.freed+r.window, r.posted, r.finished, len(r.spans) == 0, r.expect
		r.mu.Unlock()
		if done {
			return
		}
		// One frame for a quarter of the region or of the receives, or
		// when the sender is short of either (what it was last told,
		// less what it has used), or when nothing is held any more:
		// fewer frames, and the sender never waits on credit the
		// receiver sits on, whatever the pipeline keeps.
		taken := posted - r.recvs
		changed := g != lastG || posted != lastP
		short := lastG-expect < r.window/4 || lastP-taken < r.recvs/4
		if !changed || !idle && !short && g-lastG < r.window/4 && posted-lastP < r.recvs/4 {
			continue
		}
		lastG, lastP = g, posted
		r.wmu.Lock()
		_, err := r.ctl.Write(putCtl(ctlCredit, pair(g, posted)))
		r.wmu.Unlock()
		if err != nil {
			return
		}
	}
}

func (r *Receiver) poke() {
	select {
	case r.credit <- struct{}{}:
	default:
	}
}

// Next returns the next batch (arrays over the region; the caller
// releases it), its trace carrier, or io.EOF at the checked end.
func (r *Receiver) Next(ctx context.Context) (arrow.RecordBatch, [stream.CarrierSize]byte, error) {
	r.ctx = ctx
	if !r.rdr.Next() {
		err := r.msgs.Err
		if err == nil {
			err = r.rdr.Err()
		}
		if err == nil {
			err = io.EOF
		}
		return nil, [stream.CarrierSize]byte{}, err
	}
	rec := r.rdr.RecordBatch()
	rec.Retain()
	r.stats.Rows += rec.NumRows()
	return rec, r.carrier, nil
}

// next waits for the next descriptor and returns its message.
func (r *Receiver) next(ctx context.Context) (*ipc.Message, error) {
	cs := make([]Completion, 1)
	for {
		if r.cq.TryPoll(cs) == 1 {
			return r.take(cs[0])
		}
		r.mu.Lock()
		perr, ended, endB, endR := r.peerErr, r.ended, r.endB, r.endR
		r.mu.Unlock()
		if perr != nil {
			return nil, perr
		}
		if ended && uint64(r.stats.Batches) == endB {
			if uint64(r.stats.Rows) != endR {
				return nil, fmt.Errorf("the sender ended after %d rows, %d arrived", endR, r.stats.Rows)
			}
			r.wmu.Lock()
			_, err := r.ctl.Write(putCtl(ctlEndAck, pair(endB, endR)))
			r.wmu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("acknowledge the end: %w", err)
			}
			return nil, io.EOF
		}
		if ended && uint64(r.stats.Batches) > endB {
			return nil, fmt.Errorf("the sender ended after %d batches, %d arrived", endB, r.stats.Batches)
		}
		select {
		case <-r.cq.Ready():
		case <-r.ctlWake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// why returns the reason the control connection gives for a failure the
// queue pair saw (the sender's error, or the end of its connection),
// which says more than the QP's, waiting a moment for it to arrive.
func (r *Receiver) why(err error) error {
	deadline := time.NewTimer(200 * time.Millisecond)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		perr := r.peerErr
		r.mu.Unlock()
		if perr != nil {
			return perr
		}
		select {
		case <-r.ctlWake:
		case <-deadline.C:
			return err
		}
	}
}

// take checks a completed receive's descriptor and makes its message.
func (r *Receiver) take(c Completion) (*ipc.Message, error) {
	if c.Status != Success {
		return nil, r.why(fmt.Errorf("after batch %d: %s: %w", r.stats.Batches, c.Status, c.Err))
	}
	// A QP in the error state refuses the repost; this batch arrived
	// whole all the same, and the next wait reports the QP's error.
	r.qp.PostRecv(c.WRID)
	n := uint64(r.stats.Batches) + 1
	off := uint64(c.Imm) << 3
	bad := func(format string, a ...any) error {
		return fmt.Errorf("batch %d: descriptor at %d: %s", n, off, fmt.Sprintf(format, a...))
	}
	mem := r.region.mem
	wlen := uint64(c.Bytes)
	if wlen == 0 && r.verbs && off < r.window {
		wlen = r.window - off // a device that does not report the WRITE's length: the region bounds it
	}
	if off > r.window-descSize || wlen < descSize || wlen > r.window-off {
		return nil, bad("a %d-byte descriptor outside the %d-byte region", wlen, r.window)
	}
	d := mem[off : off+wlen]
	le := binary.LittleEndian
	seq, spanLen, bodyOff, bodyLen, metaLen := le.Uint64(d), le.Uint64(d[8:]), le.Uint64(d[16:]), le.Uint64(d[24:]), uint64(le.Uint32(d[32:]))
	head := align(descSize+metaLen, spanAlign)
	switch {
	case seq != n:
		return nil, bad("sequence number %d, want %d", seq, n)
	case le.Uint32(d[36:]) != 0 || !allZero(d[66:72]):
		return nil, bad("reserved bytes not zero")
	case descSize+metaLen > wlen:
		return nil, bad("%d bytes of metadata in a %d-byte WRITE", metaLen, wlen)
	case spanLen > r.window-off || spanLen < head || spanLen%spanAlign != 0:
		return nil, bad("a span of %d bytes", spanLen)
	case bodyOff != off+head || bodyLen > spanLen-head:
		return nil, bad("a body of %d bytes at %d in a span of %d at %d", bodyLen, bodyOff, spanLen, off)
	}
	r.mu.Lock()
	p := r.expect % r.window
	start := r.expect
	if off != p {
		if off != 0 || p+spanLen <= r.window {
			r.mu.Unlock()
			return nil, bad("the next span is due at %d", p)
		}
		start += r.window - p
	}
	if start+spanLen > r.freed+r.window {
		r.mu.Unlock()
		return nil, bad("written past the credit given (%d)", r.freed+r.window)
	}
	r.spans = append(r.spans, span{start: start, end: start + spanLen})
	r.expect = start + spanLen
	r.posted++
	r.live++
	if !r.finished {
		r.poke() // a receive reposted: the sender may be short of them
	}
	r.mu.Unlock()
	copy(r.carrier[:], d[40:40+stream.CarrierSize])
	meta := bytes.Clone(d[descSize : descSize+metaLen])
	body := memory.NewBufferWithAllocator(mem[bodyOff:bodyOff+bodyLen], &spanFree{r: r, start: start})
	msg, err := stream.CheckBatchMeta(meta, body)
	body.Release() // the message holds it
	if err != nil {
		return nil, fmt.Errorf("batch %d: %w", n, err)
	}
	r.stats.Batches++
	r.batches.Store(r.stats.Batches)
	r.stats.Bytes += int64(bodyLen)
	return msg, nil
}

// release frees the span that starts at start; the region's bytes freed
// in order go back to the sender as credit.
func (r *Receiver) release(start uint64) {
	r.mu.Lock()
	for i := range r.spans {
		if r.spans[i].start == start {
			r.spans[i].released = true
			break
		}
	}
	moved := false
	for len(r.spans) > 0 && r.spans[0].released {
		r.freed = r.spans[0].end
		r.spans = r.spans[1:]
		moved = true
	}
	r.live--
	last := r.closed && r.live == 0
	if moved && !r.finished {
		r.poke() // under mu: Close closes the channel under it
	}
	r.mu.Unlock()
	if last {
		r.free()
	}
}

// spanFree is the "allocator" of one batch's body: arrow-go frees it when
// the last array over it is released.
type spanFree struct {
	once  sync.Once
	r     *Receiver
	start uint64
}

func (a *spanFree) Allocate(int) []byte           { panic("rdma: a batch body does not allocate") }
func (a *spanFree) Reallocate(int, []byte) []byte { panic("rdma: a batch body does not allocate") }
func (a *spanFree) Free([]byte)                   { a.once.Do(func() { a.r.release(a.start) }) }

// Fail ends the stream with cause, which the sender gets.
func (r *Receiver) Fail(cause error) {
	if cause != nil {
		r.wmu.Lock()
		r.ctl.SetWriteDeadline(time.Now().Add(time.Second))
		msg := cause.Error()
		r.ctl.Write(putCtl(ctlError, []byte(msg[:min(len(msg), maxCtlError)])))
		r.wmu.Unlock()
	}
	r.Close()
}

// Close ends the stream; the region stays mapped until the last batch
// over it is released, then it is deregistered.
func (r *Receiver) Close() error {
	r.once.Do(func() {
		r.mu.Lock()
		r.finished = true
		r.mu.Unlock()
		// The QP (and its device objects) go before the region and the
		// PD can: a batch released meanwhile only counts down.
		if r.qp != nil {
			r.qp.Close()
			_, r.stats.Received = r.qp.Stats()
		}
		r.ctl.Close()
		r.mu.Lock()
		close(r.credit)
		r.mu.Unlock()
		r.wg.Wait()
		if r.rdr != nil {
			r.rdr.Release()
		}
		r.mu.Lock()
		r.closed = true
		last := r.live == 0
		r.mu.Unlock()
		if last {
			r.free()
		}
	})
	return nil
}

func (r *Receiver) free() {
	if r.pd != nil {
		r.pd.Close()
	}
	r.mu.Lock()
	f := r.onFree
	r.onFree, r.freed2 = nil, true
	r.mu.Unlock()
	if f != nil {
		f()
	}
}

// OnFree runs f once the region is deregistered (the stream is over and
// every batch over it released), or now if it already is: where the
// caller gives back the memory it accounted for the region.
func (r *Receiver) OnFree(f func()) {
	r.mu.Lock()
	if !r.freed2 {
		r.onFree = f
		f = nil
	}
	r.mu.Unlock()
	if f != nil {
		f()
	}
}

// Window is the receive region's size.
func (r *Receiver) Window() int64 { return int64(r.window) }

// Registered is the number of regions still registered: 0 once the
// stream is closed and every batch released.
func (r *Receiver) Registered() int {
	if r.pd == nil {
		return 0
	}
	return r.pd.Registered()
}

// Stats returns the counters.
func (r *Receiver) Stats() RecvStats { return r.stats }
