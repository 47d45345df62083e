//go:build linux

package rdma

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/io/stream"
)

// A batch travels as one span of the receiver's ring: a descriptor, the
// IPC metadata, then the body, which the sender WRITEs straight from the
// batch's buffers (one work request, a gather list of them) before it
// WRITEs the descriptor with an immediate (the descriptor's offset ÷ 8)
// that completes one of the receiver's posted receives. The receiver
// builds the arrays over the body where it landed; releasing the batch
// frees its span, and the freed bytes go back to the sender as credit.
//
// Descriptor (72 bytes): seq u64, span length u64, body offset u64 (in
// the region), body length u64, metadata length u32, 4 zero bytes, the
// 26-byte trace carrier, 6 zero bytes. The metadata follows, then zero
// padding to a multiple of 64, then the body.
const (
	descSize  = 72
	spanAlign = 64
	minWindow = 1 << 20
	maxWindow = 32 << 30 // offset ÷ 8 fits the 32-bit immediate
	maxRecvs  = 4096
	maxMeta   = 16 << 20
	stageSize = 8 << 20
	// registerOnTheFly is the size from which a buffer outside registered
	// memory is registered for its batch rather than copied.
	registerOnTheFly = 256 << 10
)

// SendOptions configures a Sender.
type SendOptions struct {
	// Alloc is the memory of the batches sent and of the buffers the IPC
	// encoder makes; when it is an arena (buffers.Extenter) its extents
	// are registered, and buffers in them are written without a copy.
	Alloc memory.Allocator
	// NoMap never maps the receiver's region, even on one host (the
	// requests and bytes go over the queue pair's connection).
	NoMap bool
	// Device is the verbs device to use when the receiver writes over
	// real RDMA ("" for the first one).
	Device string
}

// SendStats are a Sender's counters.
type SendStats struct {
	Batches, Rows, Bytes int64
	Placed               int64 // bytes copied into the receiver's mapping (emulated DMA, same host)
	Wire                 int64 // bytes sent over the queue pair's connection (emulated DMA, another host)
	Staged               int64 // bytes of small buffers outside registered memory, copied into a registered one first
	Registered           int64 // bytes of large buffers outside registered memory, registered for their batch alone
	PeakInFlight         int64 // the most batches written and not yet completed at once
	InFlightSum          int64 // batches in flight when each batch was written, summed (÷ Batches: the mean depth)
}

// Sender sends record batches to a Receiver by one-sided WRITEs.
type Sender struct {
	ctl           *net.TCPConn
	br            *bufio.Reader
	pd            *PD
	cq            *CQ
	qp            *QP
	rkey          uint32
	window        uint64
	mapped        bool
	verbs         bool // real RDMA on a verbs device
	reason        string
	enc           *stream.BatchEncoder
	ext           buffers.Extenter
	mrs           []*MR // registered extents, by address
	zero          *MR   // 64 zero bytes: the IPC body's padding
	stage         *stageRing
	tail          uint64 // ring position of the next span
	seq           uint64
	stats         SendStats
	schema        *arrow.Schema
	closing       sync.Once
	readerStarted bool // readPeer runs (setup got that far)

	mu       sync.Mutex
	granted  uint64 // ring position the sender may write up to
	recvs    uint64 // receives the receiver posted so far
	peerErr  error
	acked    bool
	inflight map[uint64]inflight
	wrs      int // send-queue entries of the batches in flight
	wake     chan struct{}
	remote   error         // what the control connection said went wrong (the receiver's error, or its end)
	peerDone chan struct{} // closed when readPeer returns
	done     chan struct{} // both goroutines' end
	wg       sync.WaitGroup
}

// inflight is a batch whose descriptor has not completed: what releases
// it, and the send-queue entries it holds.
type inflight struct {
	release func()
	wrs     int
}

// Dial connects to a Receiver's control address and sets the stream up:
// hello and schema, the receiver's region and queue pair, the mapping of
// the region where both run on one host.
func Dial(ctx context.Context, addr string, timeout time.Duration, schema *arrow.Schema, opts SendOptions) (*Sender, error) {
	conn, err := stream.Dial(ctx, addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("rdma: %w", err)
	}
	s := &Sender{ctl: conn, br: bufio.NewReader(conn), schema: schema, inflight: map[uint64]inflight{},
		wake: make(chan struct{}, 1), done: make(chan struct{}), peerDone: make(chan struct{})}
	if err := s.setup(ctx, opts); err != nil {
		// The receiver waits for this side: tell it why not.
		s.ctl.SetWriteDeadline(time.Now().Add(time.Second))
		msg := "the sender could not set up: " + err.Error()
		s.ctl.Write(putCtl(ctlError, []byte(msg[:min(len(msg), maxCtlError)])))
		s.teardown()
		return nil, fmt.Errorf("rdma: %s: %w", addr, err)
	}
	return s, nil
}

func (s *Sender) setup(ctx context.Context, opts SendOptions) error {
	stop := context.AfterFunc(ctx, func() { s.ctl.SetDeadline(time.Now()) })
	defer stop()
	sm, err := stream.SchemaBytes(s.schema)
	if err != nil {
		return err
	}
	if _, err := s.ctl.Write(append(putCtl(ctlHello, helloPayload()), putCtl(ctlSchema, sm)...)); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	t, p, err := readCtl(s.br)
	if err != nil {
		return fmt.Errorf("read the receiver's hello: %w", err)
	}
	if t == ctlError {
		return fmt.Errorf("the receiver refused: %s", p)
	}
	if t != ctlHello {
		return fmt.Errorf("the receiver sent a %s frame first, want hello", t)
	}
	if err := checkHello(p); err != nil {
		return err
	}
	if t, p, err = readCtl(s.br); err != nil {
		return fmt.Errorf("read the receiver's setup: %w", err)
	}
	if t == ctlError {
		return fmt.Errorf("the receiver refused: %s", p)
	}
	if t != ctlSetup {
		return fmt.Errorf("the receiver sent a %s frame, want setup", t)
	}
	su, err := parseSetup(p)
	if err != nil {
		return err
	}
	s.rkey, s.window = su.rkey, su.window
	mode := []byte{0}
	if su.qpPort == 0 {
		// The receiver registered its region with a verbs device: this
		// side needs one too, and the QPs connect through the frames.
		if err := s.connectVerbs(su, opts); err != nil {
			return err
		}
		mode[0] = 2
	} else {
		host, _, _ := net.SplitHostPort(s.ctl.RemoteAddr().String())
		var d net.Dialer
		qc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(su.qpPort))))
		if err != nil {
			return fmt.Errorf("connect the queue pair: %w", err)
		}
		s.pd, s.cq = NewPD(), NewCQ()
		s.qp = NewQP(qc, s.pd, s.cq)
		switch {
		case opts.NoMap:
			s.reason = "emulated over the queue pair's TCP connection (mapping the receiver's region was turned off)"
		default:
			if err := s.qp.MapRemote(su.rkey, su.handle); err != nil {
				s.reason = "emulated over the queue pair's TCP connection: " + err.Error()
			} else {
				s.mapped = true
				s.reason = "emulated: the receiver's region mapped here (same host), WRITEs placed by a memory copy"
				mode[0] = 1
			}
		}
	}
	if _, err := s.ctl.Write(putCtl(ctlMode, append(mode, s.reason...))); err != nil {
		return fmt.Errorf("send the mode: %w", err)
	}
	if s.stage, err = newStageRing(s.pd); err != nil {
		return err
	}
	zm, err := mapAnon(spanAlign)
	if err != nil {
		return err
	}
	if s.zero, err = s.pd.Register(zm, 0); err != nil {
		unix.Munmap(zm)
		return err
	}
	s.zero.onDereg = func() { unix.Munmap(zm) }
	if ex, ok := opts.Alloc.(buffers.Extenter); ok {
		s.ext = ex
	}
	s.enc = stream.NewBatchEncoder(s.schema, opts.Alloc)
	s.wg.Add(2)
	s.readerStarted = true
	go s.readPeer()
	go s.complete()
	return nil
}

// connectVerbs opens this side's verbs device, makes its QP and connects
// it to the receiver's, whose number, PSN and GID follow the setup.
func (s *Sender) connectVerbs(su setup, opts SendOptions) error {
	p, err := expectCtl(s.br, ctlVerbs, "receiver")
	if err != nil {
		return err
	}
	peer := parseVerbs(p)
	if s.pd, err = NewVerbsPD(opts.Device); err != nil {
		return fmt.Errorf("the receiver writes over real RDMA, this side cannot: %w", err)
	}
	s.cq = NewCQ()
	if s.qp, err = NewVerbsQP(s.pd, s.cq); err != nil {
		return err
	}
	if _, err := s.ctl.Write(putCtl(ctlVerbs, verbsPayload(s.qp.Info()))); err != nil {
		return fmt.Errorf("send the verbs frame: %w", err)
	}
	if err := s.qp.ConnectVerbs(peer); err != nil {
		return err
	}
	s.qp.SetRemoteBase(su.rkey, su.base)
	s.verbs = true
	s.reason = "RDMA WRITEs on verbs device " + s.pd.DeviceName()
	return nil
}

// Mapped says whether the receiver's region is mapped here, and why (or
// why not).
func (s *Sender) Mapped() (bool, string) { return s.mapped, s.reason }

func (s *Sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// readPeer takes the receiver's control frames.
func (s *Sender) readPeer() {
	defer s.wg.Done()
	defer close(s.peerDone)
	for {
		t, p, err := readCtl(s.br)
		s.mu.Lock()
		switch {
		case err != nil:
			if !s.acked {
				s.remote = fmt.Errorf("the receiver's control connection ended: %w", noEOF(err))
				if s.peerErr == nil {
					s.peerErr = s.remote
				}
			}
		case t == ctlCredit:
			g, r := unpair(p)
			s.granted, s.recvs = max(s.granted, g), max(s.recvs, r)
		case t == ctlEndAck:
			b, r := unpair(p)
			if b != uint64(s.stats.Batches) || r != uint64(s.stats.Rows) {
				s.peerErr = fmt.Errorf("the receiver acknowledged %d batches and %d rows, %d and %d were sent", b, r, s.stats.Batches, s.stats.Rows)
			} else {
				s.acked = true
			}
		case t == ctlError:
			s.remote = fmt.Errorf("the receiver failed: %s", p)
			s.peerErr = s.remote
		default:
			s.peerErr = fmt.Errorf("the receiver sent a %s frame", t)
		}
		stop := err != nil || s.peerErr != nil || s.acked
		s.mu.Unlock()
		s.signal()
		if stop {
			return
		}
	}
}

// complete drains the completion queue: a batch's buffers are released
// once the WRITE of its descriptor completed (the peer has every byte).
func (s *Sender) complete() {
	defer s.wg.Done()
	cs := make([]Completion, 64)
	for {
		select {
		case <-s.done:
			return
		case <-s.cq.Ready():
		}
		for n := s.cq.TryPoll(cs); n > 0; n = s.cq.TryPoll(cs) {
			for _, c := range cs[:n] {
				s.mu.Lock()
				f := s.inflight[c.WRID]
				delete(s.inflight, c.WRID)
				s.wrs -= f.wrs
				rel := f.release
				if c.Status != Success && s.peerErr == nil {
					s.peerErr = fmt.Errorf("batch %d: %s: %w", c.WRID, c.Status, c.Err)
				}
				s.mu.Unlock()
				if rel != nil {
					rel()
				}
			}
			s.signal()
		}
	}
}

// wait blocks until ok (called with s.mu held) holds, the peer failed or
// ctx ended; s.mu is held on return.
func (s *Sender) wait(ctx context.Context, what string, ok func() bool) error {
	for !ok() {
		if s.peerErr != nil {
			return s.peerErr
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-ctx.Done():
			s.mu.Lock()
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
		s.mu.Lock()
	}
	return s.peerErr
}

// Write sends rec; its buffers are held until the receiver has them.
func (s *Sender) Write(ctx context.Context, rec arrow.RecordBatch, carrier [stream.CarrierSize]byte) error {
	if err := s.write(ctx, rec, carrier); err != nil {
		return s.explain(err)
	}
	return nil
}

// explain returns the reason the control connection gives for a failure
// the queue pair saw first (the receiver's error, or the end of its
// connection), waiting a moment for it: it says more than a broken pipe.
func (s *Sender) explain(err error) error {
	if !s.readerStarted || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	deadline := time.NewTimer(500 * time.Millisecond)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		r := s.remote
		s.mu.Unlock()
		if r != nil {
			return r
		}
		select {
		case <-s.peerDone:
			s.mu.Lock()
			r = s.remote
			s.mu.Unlock()
			if r != nil {
				return r
			}
			return err
		case <-deadline.C:
			return err
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (s *Sender) write(ctx context.Context, rec arrow.RecordBatch, carrier [stream.CarrierSize]byte) error {
	enc, release, err := s.enc.Encode(rec)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			release()
		}
	}()
	if len(enc.Meta) > maxMeta {
		return fmt.Errorf("a batch's metadata of %d bytes (at most %d)", len(enc.Meta), maxMeta)
	}
	var bodyLen uint64
	for _, b := range enc.Body {
		bodyLen += uint64(len(b))
	}
	head := align(descSize+uint64(len(enc.Meta)), spanAlign)
	span := align(head+bodyLen, spanAlign)
	// At most half the ring: a span that does not fit before the ring's
	// end starts again at 0, and only a span no larger than where it
	// would have started is sure to find room there once everything
	// before it is freed.
	if span > s.window/2 {
		return fmt.Errorf("a batch of %d bytes is more than half the receiver's region of %d (raise window: on rdma_in, or send smaller batches)", span, s.window)
	}
	pos := s.tail % s.window
	skip := uint64(0)
	if pos+span > s.window {
		skip, pos = s.window-pos, 0
	}
	s.mu.Lock()
	err = s.wait(ctx, "the receiver's credit", func() bool {
		return s.tail+skip+span <= s.granted && uint64(s.seq) < s.recvs
	})
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.seq++
	seq := s.seq
	// The body: each buffer where it is when it lies in registered memory.
	sgl := make([]SGE, 0, len(enc.Body))
	var staged [][]byte
	var onTheFly []*MR
	for _, b := range enc.Body {
		if len(b) == 0 {
			continue
		}
		if mr := s.lookup(b); mr != nil {
			sgl = append(sgl, SGE{Buf: b, LKey: mr.LKey})
		} else if len(b) <= spanAlign && allZero(b) {
			sgl = append(sgl, SGE{Buf: s.zero.mem[:len(b)], LKey: s.zero.LKey})
		} else if len(b) >= registerOnTheFly {
			// A large buffer outside the arena's extents (an allocation
			// with its own mapping): registered for this batch alone, which
			// costs less than copying it, and deregistered when the batch
			// completes (its memory may be unmapped after).
			mr, err := s.pd.Register(b, 0)
			if err != nil {
				for _, m := range onTheFly {
					m.Deregister()
				}
				return err
			}
			onTheFly = append(onTheFly, mr)
			sgl = append(sgl, SGE{Buf: b, LKey: mr.LKey})
			s.stats.Registered += int64(len(b))
		} else {
			staged = append(staged, b)
			sgl = append(sgl, SGE{}) // filled below
		}
	}
	var need uint64 = head
	for _, b := range staged {
		need += align(uint64(len(b)), 8)
	}
	st, err := s.stage.alloc(ctx, need, seq, s)
	if err != nil {
		for _, m := range onTheFly {
			m.Deregister()
		}
		return err
	}
	descBuf := st.buf[:head]
	clear(descBuf)
	le := binary.LittleEndian
	le.PutUint64(descBuf[0:], seq)
	le.PutUint64(descBuf[8:], span)
	le.PutUint64(descBuf[16:], pos+head)
	le.PutUint64(descBuf[24:], bodyLen)
	le.PutUint32(descBuf[32:], uint32(len(enc.Meta)))
	copy(descBuf[40:40+stream.CarrierSize], carrier[:])
	copy(descBuf[descSize:], enc.Meta)
	rest := st.buf[head:]
	for i, j := 0, 0; i < len(sgl); i++ {
		if sgl[i].Buf != nil {
			continue
		}
		b := staged[j]
		j++
		copy(rest, b)
		sgl[i] = SGE{Buf: rest[:len(b)], LKey: st.lkey}
		rest = rest[align(uint64(len(b)), 8):]
		s.stats.Staged += int64(len(b))
	}
	slots := s.qp.WRs(1) + s.qp.WRs(len(sgl))
	if len(sgl) == 0 {
		slots = s.qp.WRs(1)
	}
	free := func() {
		for _, m := range onTheFly {
			m.Deregister()
		}
		st.free()
	}
	s.mu.Lock()
	if c := s.qp.SendCap(); c > 0 {
		err = s.wait(ctx, "room in the send queue", func() bool { return s.wrs+slots <= c })
	}
	if err != nil {
		s.mu.Unlock()
		free()
		return err
	}
	s.inflight[seq] = inflight{wrs: slots, release: func() { free(); release() }}
	s.wrs += slots
	s.stats.PeakInFlight = max(s.stats.PeakInFlight, int64(len(s.inflight)))
	s.stats.InFlightSum += int64(len(s.inflight))
	s.stats.Batches++
	s.stats.Rows += rec.NumRows()
	s.stats.Bytes += int64(bodyLen)
	s.mu.Unlock()
	ok = true
	desc := WR{ID: seq, Op: OpWriteImm, SGL: []SGE{{Buf: descBuf, LKey: st.lkey}},
		Remote: Remote{RKey: s.rkey, Offset: pos}, Imm: uint32(pos >> 3), Signaled: true}
	if len(sgl) > 0 {
		err = s.qp.PostList(WR{ID: seq, Op: OpWrite, SGL: sgl, Remote: Remote{RKey: s.rkey, Offset: pos + head}}, desc)
	} else {
		err = s.qp.PostList(desc)
	}
	if err != nil {
		return err
	}
	s.tail += skip + span
	return nil
}

// lookup finds the registered region holding b, registering the arena's
// extents mapped since the last look.
func (s *Sender) lookup(b []byte) *MR {
	if mr := s.find(b); mr != nil || s.ext == nil {
		return mr
	}
	for _, e := range s.ext.Extents() {
		if s.find(e) != nil {
			continue
		}
		mr, err := s.pd.Register(e, 0)
		if err != nil {
			return nil
		}
		i, _ := slices.BinarySearchFunc(s.mrs, addr(e), func(m *MR, a uintptr) int { return cmpAddr(addr(m.mem), a) })
		s.mrs = slices.Insert(s.mrs, i, mr)
	}
	return s.find(b)
}

func (s *Sender) find(b []byte) *MR {
	a := addr(b)
	i, found := slices.BinarySearchFunc(s.mrs, a, func(m *MR, a uintptr) int { return cmpAddr(addr(m.mem), a) })
	if !found {
		i--
	}
	if i >= 0 && i < len(s.mrs) && within(s.mrs[i].mem, b) {
		return s.mrs[i]
	}
	return nil
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func cmpAddr(a, b uintptr) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func align(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Close waits until the receiver has every batch, sends the end and
// waits for the receiver to check and acknowledge it.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	err := s.wait(ctx, "the last batches' completions", func() bool { return len(s.inflight) == 0 })
	s.mu.Unlock()
	if err == nil {
		if _, werr := s.ctl.Write(putCtl(ctlEnd, pair(uint64(s.stats.Batches), uint64(s.stats.Rows)))); werr != nil {
			err = fmt.Errorf("send the end: %w", werr)
		} else {
			s.mu.Lock()
			err = s.wait(ctx, "the receiver's acknowledgement of the end", func() bool { return s.acked })
			s.mu.Unlock()
		}
	}
	if err != nil {
		err = s.explain(err)
	}
	s.teardown()
	return err
}

// Abort ends the stream: cause, if not nil, is sent to the receiver.
func (s *Sender) Abort(cause error) {
	if cause != nil {
		s.ctl.SetWriteDeadline(time.Now().Add(time.Second))
		s.ctl.Write(putCtl(ctlError, []byte(cause.Error())[:min(len(cause.Error()), maxCtlError)]))
	}
	s.teardown()
}

// teardown closes the queue pair (outstanding requests flush, releasing
// their batches), the control connection and the protection domain.
func (s *Sender) teardown() {
	s.closing.Do(func() {
		if s.qp != nil {
			s.qp.Close()
		}
		s.ctl.Close()
		close(s.done)
		s.wg.Wait()
		// Whatever the completion goroutine did not see is released here.
		if s.cq != nil {
			cs := make([]Completion, 64)
			for n := s.cq.TryPoll(cs); n > 0; n = s.cq.TryPoll(cs) {
				for _, c := range cs[:n] {
					if f, ok := s.inflight[c.WRID]; ok {
						delete(s.inflight, c.WRID)
						f.release()
					}
				}
			}
		}
		for seq, f := range s.inflight {
			delete(s.inflight, seq)
			f.release()
		}
		if s.enc != nil {
			s.enc.Close()
		}
		if s.pd != nil {
			s.pd.Close()
		}
		if s.stage != nil {
			s.stage.close()
		}
		if s.qp != nil {
			placed, _ := s.qp.Stats()
			s.stats.Placed = placed
			if !s.mapped && !s.verbs {
				s.stats.Wire = s.stats.Bytes
			}
		}
	})
}

// Stats returns the counters (final after Close or Abort).
func (s *Sender) Stats() SendStats { return s.stats }

// Registered is the number of regions still registered (0 after Close).
func (s *Sender) Registered() int {
	if s.pd == nil {
		return 0
	}
	return s.pd.Registered()
}

var errStageClosed = errors.New("rdma: the staging area is closed")

// stageRing is registered memory for what a batch sends that is not in
// registered memory already: its descriptor and metadata, and buffers
// outside the arena. Spans are taken in order and freed in order (the
// completions come in order); one larger than half the ring gets its own
// registration.
type stageRing struct {
	pd         *PD
	mr         *MR
	mem        []byte
	mu         sync.Mutex
	head, tail uint64 // taken up to head, freed up to tail
	ends       map[uint64]uint64
	wake       chan struct{}
	closed     bool
}

type staged struct {
	buf  []byte
	lkey uint32
	free func()
}

func mapAnon(n int) ([]byte, error) {
	m, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("rdma: map %d bytes: %w", n, err)
	}
	return m, nil
}

func newStageRing(pd *PD) (*stageRing, error) {
	mem, err := mapAnon(stageSize)
	if err != nil {
		return nil, err
	}
	mr, err := pd.Register(mem, LocalWrite)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return &stageRing{pd: pd, mr: mr, mem: mem, ends: map[uint64]uint64{}, wake: make(chan struct{}, 1)}, nil
}

// alloc takes n bytes for batch seq, waiting for earlier batches'
// completions when the ring is full.
func (r *stageRing) alloc(ctx context.Context, n, seq uint64, s *Sender) (staged, error) {
	n = align(n, spanAlign)
	if n > stageSize/2 {
		mem, err := mapAnon(int(n))
		if err != nil {
			return staged{}, err
		}
		mr, err := r.pd.Register(mem, LocalWrite)
		if err != nil {
			unix.Munmap(mem)
			return staged{}, err
		}
		return staged{buf: mem, lkey: mr.LKey, free: func() { mr.Deregister(); unix.Munmap(mem) }}, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.closed {
			return staged{}, errStageClosed
		}
		pos := r.head % stageSize
		skip := uint64(0)
		if pos+n > stageSize {
			skip, pos = stageSize-pos, 0
		}
		if r.head+skip+n-r.tail <= stageSize {
			start := r.head + skip
			r.head = start + n
			end := r.head
			return staged{buf: r.mem[pos : pos+n], lkey: r.mr.LKey, free: func() { r.free(end) }}, nil
		}
		r.mu.Unlock()
		s.mu.Lock()
		perr := s.peerErr
		s.mu.Unlock()
		if perr != nil {
			r.mu.Lock()
			return staged{}, perr
		}
		select {
		case <-r.wake:
		case <-ctx.Done():
			r.mu.Lock()
			return staged{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		r.mu.Lock()
	}
}

// free frees the ring up to end (spans are freed in order).
func (r *stageRing) free(end uint64) {
	r.mu.Lock()
	r.tail = max(r.tail, end)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *stageRing) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.mr.Deregister()
	unix.Munmap(r.mem)
}
