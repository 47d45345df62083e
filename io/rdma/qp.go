//go:build linux

package rdma

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// The emulated provider's queue pair: a reliable connection to one peer
// over a TCP connection (the "fabric"). A request travels as a 40-byte
// header; a WRITE's bytes follow it, or — when the requester has mapped
// the peer's region (same host, MapRemote) — were placed in the shared
// mapping before the header left, so only the header crosses. The
// responder checks every request against its PD (rkey, access, bounds)
// before it places or serves a byte; a refused request comes back as a
// NAK and puts both ends in the error state, as an RC queue pair does.
// Responses (ACK, READ response, NAK) are in request order.

const wireHeader = 40

type wireKind uint8

const (
	reqWrite    wireKind = 1
	reqWriteImm wireKind = 2
	reqRead     wireKind = 3
	respAck     wireKind = 4
	respRead    wireKind = 5
	respNak     wireKind = 6
)

const flagPlaced = 1 // the bytes are in the shared mapping already (WRITE) or to be taken from it (READ)

const maxNakMessage = 4096

// wireMsg is a header on the QP connection:
//
//	0 kind, 1 flags, 2 status, 3 zero, 4–7 imm, 8–15 psn,
//	16–19 rkey, 20–23 zero, 24–31 offset, 32–39 length
type wireMsg struct {
	kind   wireKind
	flags  uint8
	status Status
	imm    uint32
	psn    uint64
	rkey   uint32
	off    uint64
	length uint64
}

func (m *wireMsg) put(b []byte) {
	clear(b[:wireHeader])
	b[0], b[1], b[2] = byte(m.kind), m.flags, byte(m.status)
	le := binary.LittleEndian
	le.PutUint32(b[4:], m.imm)
	le.PutUint64(b[8:], m.psn)
	le.PutUint32(b[16:], m.rkey)
	le.PutUint64(b[24:], m.off)
	le.PutUint64(b[32:], m.length)
}

// parseWire decodes a header; it never panics and names a bad field.
func parseWire(b []byte) (wireMsg, error) {
	var m wireMsg
	if len(b) < wireHeader {
		return m, fmt.Errorf("rdma: a QP header of %d bytes, want %d", len(b), wireHeader)
	}
	le := binary.LittleEndian
	m = wireMsg{kind: wireKind(b[0]), flags: b[1], status: Status(b[2]), imm: le.Uint32(b[4:]),
		psn: le.Uint64(b[8:]), rkey: le.Uint32(b[16:]), off: le.Uint64(b[24:]), length: le.Uint64(b[32:])}
	if m.kind < reqWrite || m.kind > respNak {
		return m, fmt.Errorf("rdma: QP header: unknown kind %d at byte 0", b[0])
	}
	if m.flags&^flagPlaced != 0 {
		return m, fmt.Errorf("rdma: QP header: unknown flags %#x at byte 1", m.flags)
	}
	if b[3] != 0 || le.Uint32(b[20:]) != 0 {
		return m, fmt.Errorf("rdma: QP header: reserved bytes 3 or 20–23 not zero")
	}
	if m.kind == respNak && (m.length > maxNakMessage || m.status == Success || m.status > TransportErr) {
		return m, fmt.Errorf("rdma: QP header: a NAK with status %d and a %d-byte reason", b[2], m.length)
	}
	return m, nil
}

// WR is a work request.
type WR struct {
	ID       uint64
	Op       Op // OpWrite, OpWriteImm or OpRead
	SGL      []SGE
	Remote   Remote
	Imm      uint32 // OpWriteImm
	Signaled bool   // a completion on success too (failures always complete)
}

type pendingWR struct {
	psn      uint64
	id       uint64
	op       Op
	signaled bool
	dst      []SGE // OpRead: where the bytes go
	placed   []byte
	n        int
}

// QP is a reliable-connected queue pair of the emulated provider.
type QP struct {
	v    *verbsQP // the device's QP, for real verbs; nil for the emulation
	pd   *PD
	cq   *CQ
	conn net.Conn
	br   *bufio.Reader

	wmu  sync.Mutex  // one writer of the connection at a time
	hdrs []byte      // the headers of one PostList (under wmu)
	bufs net.Buffers // its write list, kept for the next (under wmu)

	mu       sync.Mutex
	psn      uint64
	pending  []pendingWR
	recvs    []uint64
	peerMaps map[uint32][]byte // rkey → the peer's region mapped here
	err      error

	resp      chan response // responses for the responder's writer, in order
	stop      chan struct{}
	closeOnce sync.Once
	done      sync.WaitGroup
	placed    int64 // bytes placed by memory copy into a peer's mapping (requester)
	received  int64 // bytes this responder read off the connection into its regions
}

// NewQP makes a queue pair over conn, whose other end is the peer's QP;
// its requests reach regions of pd and its completions go to cq. The QP
// owns conn from here on.
func NewQP(conn net.Conn, pd *PD, cq *CQ) *QP {
	qp := &QP{pd: pd, cq: cq, conn: conn, br: bufio.NewReaderSize(conn, 64<<10),
		peerMaps: map[uint32][]byte{}, resp: make(chan response, 1024), stop: make(chan struct{})}
	qp.done.Add(2)
	go qp.reader()
	go qp.responder()
	return qp
}

// MapRemote maps the peer's shared region named by rkey (its Handle came
// over the control channel), so WRITEs and READs on it are placed by a
// memory copy here rather than sent over the connection. It returns why
// not where it cannot (another host, a process out of reach).
func (qp *QP) MapRemote(rkey uint32, h Handle) error {
	mem, err := mapPeer(h)
	if err != nil {
		return err
	}
	qp.mu.Lock()
	if qp.err != nil {
		qp.mu.Unlock()
		unmapPeer(mem)
		return qp.err
	}
	if old := qp.peerMaps[rkey]; old != nil {
		unmapPeer(old)
	}
	qp.peerMaps[rkey] = mem
	qp.mu.Unlock()
	return nil
}

// Err is the reason the QP is in the error state, or nil.
func (qp *QP) Err() error {
	qp.mu.Lock()
	defer qp.mu.Unlock()
	return qp.err
}

// Stats: bytes this requester placed in a peer's mapping by a memory copy
// (the emulated DMA), and bytes this responder took off the connection
// into its regions.
func (qp *QP) Stats() (placed, received int64) {
	qp.mu.Lock()
	defer qp.mu.Unlock()
	return qp.placed, qp.received
}

// SendCap is how many work requests the QP's send queue holds (0: no
// limit), and WRs how many a request with n gather entries takes there.
func (qp *QP) SendCap() int {
	if qp.v == nil {
		return 0
	}
	return qp.sendCapVerbs()
}

// WRs is how many send-queue entries a request with n gather entries takes.
func (qp *QP) WRs(n int) int {
	if qp.v == nil {
		return 1
	}
	return qp.wrsVerbs(n)
}

// PostRecv posts a receive: a peer's WRITE_WITH_IMM consumes one and
// completes it with the immediate.
func (qp *QP) PostRecv(id uint64) error {
	if qp.v != nil {
		return qp.postRecvVerbs(id)
	}
	qp.mu.Lock()
	defer qp.mu.Unlock()
	if qp.err != nil {
		return fmt.Errorf("%w: %w", ErrQPState, qp.err)
	}
	qp.recvs = append(qp.recvs, id)
	return nil
}

// Post posts a work request. Like ibv_post_send it fails at once only for
// a request it cannot take (a QP in the error state, a bad op); a
// protection error shows as a completion and puts the QP in error.
func (qp *QP) Post(wr WR) error { return qp.PostList(wr) }

// PostList posts several work requests in order, as ibv_post_send does a
// linked list of them: the emulation sends their headers (and bytes) in
// one write.
func (qp *QP) PostList(wrs ...WR) error {
	for _, wr := range wrs {
		switch wr.Op {
		case OpWrite, OpWriteImm, OpRead:
		default:
			return fmt.Errorf("rdma: post: %s is not a send-queue operation", wr.Op)
		}
	}
	if qp.v != nil {
		return qp.postVerbs(wrs...)
	}
	for _, wr := range wrs {
		want := Access(0)
		if wr.Op == OpRead {
			want = LocalWrite
		}
		for _, s := range wr.SGL {
			if err := qp.pd.local(s.LKey, s.Buf, want); err != nil {
				qp.fail(err, &Completion{WRID: wr.ID, Op: wr.Op, Status: LocalProtErr, Err: err})
				return nil
			}
		}
	}
	qp.wmu.Lock()
	defer qp.wmu.Unlock()
	if cap(qp.hdrs) < wireHeader*len(wrs) {
		qp.hdrs = make([]byte, wireHeader*len(wrs))
	}
	bufs := qp.bufs[:0]
	for k, wr := range wrs {
		hdr := qp.hdrs[k*wireHeader : (k+1)*wireHeader]
		var n uint64
		for _, s := range wr.SGL {
			n += uint64(len(s.Buf))
		}
		qp.mu.Lock()
		if qp.err != nil {
			err := qp.err
			qp.mu.Unlock()
			return fmt.Errorf("%w: %w", ErrQPState, err)
		}
		qp.psn++
		m := wireMsg{psn: qp.psn, rkey: wr.Remote.RKey, off: wr.Remote.Offset, length: n, imm: wr.Imm}
		peer := qp.peerMaps[wr.Remote.RKey]
		p := pendingWR{psn: m.psn, id: wr.ID, op: wr.Op, signaled: wr.Signaled, n: int(n)}
		switch wr.Op {
		case OpWrite:
			m.kind = reqWrite
		case OpWriteImm:
			m.kind = reqWriteImm
		case OpRead:
			m.kind = reqRead
			p.dst = wr.SGL
		}
		if peer != nil {
			m.flags = flagPlaced
			p.placed = peer
		}
		qp.pending = append(qp.pending, p)
		qp.mu.Unlock()
		bufs = append(bufs, hdr)
		if peer != nil && wr.Op != OpRead && m.off <= uint64(len(peer)) && n <= uint64(len(peer))-m.off {
			// The emulated DMA: the bytes land in the peer's region
			// before the request that tells it so leaves. Out of bounds,
			// nothing is copied and the responder refuses the request.
			at := peer[m.off:]
			for _, s := range wr.SGL {
				at = at[copy(at, s.Buf):]
			}
			qp.mu.Lock()
			qp.placed += int64(n)
			qp.mu.Unlock()
		} else if peer == nil && wr.Op != OpRead {
			for _, s := range wr.SGL {
				bufs = append(bufs, s.Buf)
			}
		}
		m.put(hdr)
	}
	qp.bufs = bufs[:0]
	if _, err := bufs.WriteTo(qp.conn); err != nil {
		qp.fail(fmt.Errorf("rdma: send %d requests to the peer: %w", len(wrs), err), nil)
	}
	clear(qp.bufs[:cap(qp.bufs)])
	return nil
}

// reader takes what the peer sends: its requests (this QP as responder)
// and its responses to ours.
func (qp *QP) reader() {
	defer qp.done.Done()
	var hb [wireHeader]byte
	for {
		if _, err := io.ReadFull(qp.br, hb[:]); err != nil {
			qp.lost(err)
			return
		}
		m, err := parseWire(hb[:])
		if err != nil {
			qp.fail(err, nil)
			qp.drain()
			return
		}
		var ferr error
		switch m.kind {
		case reqWrite, reqWriteImm:
			ferr = qp.serveWrite(m)
		case reqRead:
			ferr = qp.serveRead(m)
		case respAck:
			if ferr = qp.badPSN(m); ferr == nil {
				qp.complete(m.psn)
			}
		case respRead:
			ferr = qp.readResponse(m)
		case respNak:
			ferr = qp.nak(m)
		}
		if ferr != nil {
			qp.drain()
			return
		}
	}
}

// lost handles the end of the connection.
func (qp *QP) lost(err error) {
	qp.mu.Lock()
	n := len(qp.pending)
	qp.mu.Unlock()
	switch {
	case errors.Is(err, io.EOF) && n == 0:
		err = errors.New("rdma: the peer closed the connection")
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("rdma: the peer closed the connection with %d requests of ours outstanding", n)
	default:
		err = fmt.Errorf("rdma: the connection to the peer failed: %w", err)
	}
	qp.fail(err, nil)
}

// drain reads and drops what the peer still sends after this QP failed,
// so that a NAK queued for it is not cut off by a reset.
func (qp *QP) drain() { io.Copy(io.Discard, qp.br) }

func (qp *QP) serveWrite(m wireMsg) error {
	placed := m.flags&flagPlaced != 0
	dst, release, err := qp.pd.remote(m.rkey, m.off, m.length, RemoteWrite)
	if err != nil {
		if !placed {
			io.CopyN(io.Discard, qp.br, int64(m.length))
		}
		return qp.refuse(m, RemAccessErr, fmt.Errorf("rdma: the peer's %d-byte WRITE refused: %w", m.length, err))
	}
	if !placed {
		_, err = io.ReadFull(qp.br, dst)
	}
	release()
	if err != nil {
		qp.lost(err)
		return err
	}
	if !placed {
		qp.mu.Lock()
		qp.received += int64(m.length)
		qp.mu.Unlock()
	}
	if m.kind == reqWriteImm {
		qp.mu.Lock()
		if len(qp.recvs) == 0 {
			qp.mu.Unlock()
			return qp.refuse(m, RemInvReqErr, fmt.Errorf("rdma: the peer's WRITE_WITH_IMM found no receive posted"))
		}
		id := qp.recvs[0]
		qp.recvs = qp.recvs[1:]
		qp.mu.Unlock()
		qp.cq.push(Completion{WRID: id, Op: OpRecv, Imm: m.imm, Bytes: int(m.length)})
	}
	qp.respond(response{m: wireMsg{kind: respAck, psn: m.psn}})
	return nil
}

func (qp *QP) serveRead(m wireMsg) error {
	_, release, err := qp.pd.remote(m.rkey, m.off, m.length, RemoteRead)
	if err != nil {
		return qp.refuse(m, RemAccessErr, fmt.Errorf("rdma: the peer's %d-byte READ refused: %w", m.length, err))
	}
	release() // the responder takes the region again to send
	qp.respond(response{m: wireMsg{kind: respRead, flags: m.flags, psn: m.psn, rkey: m.rkey, off: m.off, length: m.length}})
	return nil
}

// refuse NAKs a request and puts this QP in the error state.
func (qp *QP) refuse(m wireMsg, st Status, err error) error {
	qp.respond(response{m: wireMsg{kind: respNak, status: st, psn: m.psn}, text: err.Error()})
	qp.fail(err, nil)
	return err
}

// response is what the responder goroutine sends: a header, and a NAK's
// reason or a READ's bytes (taken from the region when it is sent).
type response struct {
	m    wireMsg
	text string
}

func (qp *QP) respond(r response) {
	select {
	case qp.resp <- r:
	case <-qp.stop:
	}
}

// responder sends the responses in order, a run of ACKs as the last one
// (an ACK covers every request before it), as few writes as it can.
func (qp *QP) responder() {
	defer qp.done.Done()
	var batch []response
	for {
		batch = batch[:0]
		select {
		case r := <-qp.resp:
			batch = append(batch, r)
		case <-qp.stop:
			return
		}
	more:
		for len(batch) < 256 {
			select {
			case r := <-qp.resp:
				if r.m.kind == respAck && batch[len(batch)-1].m.kind == respAck {
					batch[len(batch)-1] = r
				} else {
					batch = append(batch, r)
				}
			default:
				break more
			}
		}
		if !qp.sendResponses(batch) {
			return
		}
	}
}

// sendResponses writes a batch of responses; false once the connection
// is done for (a NAK sent, or a failed write).
func (qp *QP) sendResponses(batch []response) bool {
	hdrs := make([]byte, wireHeader*len(batch))
	bufs := make(net.Buffers, 0, 2*len(batch))
	var holds []func()
	defer func() {
		for _, h := range holds {
			h()
		}
	}()
	naked := false
	for i, r := range batch {
		h := hdrs[i*wireHeader : (i+1)*wireHeader]
		switch r.m.kind {
		case respNak:
			r.text = r.text[:min(len(r.text), maxNakMessage)]
			r.m.length = uint64(len(r.text))
			r.m.put(h)
			bufs = append(bufs, h, []byte(r.text))
			naked = true
		case respRead:
			if r.m.flags&flagPlaced != 0 {
				r.m.put(h)
				bufs = append(bufs, h)
				continue
			}
			src, release, err := qp.pd.remote(r.m.rkey, r.m.off, r.m.length, RemoteRead)
			if err != nil {
				nak := wireMsg{kind: respNak, status: RemAccessErr, psn: r.m.psn}
				text := fmt.Sprintf("rdma: the peer's %d-byte READ refused: %v", r.m.length, err)
				text = text[:min(len(text), maxNakMessage)]
				nak.length = uint64(len(text))
				nak.put(h)
				bufs = append(bufs, h, []byte(text))
				qp.fail(errors.New(text), nil)
				naked = true
				break
			}
			holds = append(holds, release)
			r.m.put(h)
			bufs = append(bufs, h, src)
		default:
			r.m.put(h)
			bufs = append(bufs, h)
		}
		if naked {
			break
		}
	}
	qp.wmu.Lock()
	_, err := bufs.WriteTo(qp.conn)
	qp.wmu.Unlock()
	if err != nil {
		qp.fail(fmt.Errorf("rdma: answer the peer: %w", err), nil)
		return false
	}
	if naked {
		// Nothing follows a NAK: the peer reads it, then the end.
		if cw, ok := qp.conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		return false
	}
	return true
}

// complete retires the requests up to psn, which the peer acknowledged.
func (qp *QP) complete(psn uint64) {
	qp.mu.Lock()
	i := 0
	for i < len(qp.pending) && qp.pending[i].psn <= psn {
		i++
	}
	done := qp.pending[:i]
	var cs []Completion
	for _, p := range done {
		if p.signaled {
			cs = append(cs, Completion{WRID: p.id, Op: p.op, Bytes: p.n})
		}
	}
	qp.pending = qp.pending[i:]
	qp.mu.Unlock()
	qp.cq.push(cs...)
}

// badPSN says whether a response names a request never sent.
func (qp *QP) badPSN(m wireMsg) error {
	qp.mu.Lock()
	last := qp.psn
	qp.mu.Unlock()
	if m.psn == 0 || m.psn > last {
		err := fmt.Errorf("rdma: the peer answered request %d, only %d were sent", m.psn, last)
		qp.fail(err, nil)
		return err
	}
	return nil
}

func (qp *QP) readResponse(m wireMsg) error {
	if err := qp.badPSN(m); err != nil {
		return err
	}
	qp.complete(m.psn - 1)
	qp.mu.Lock()
	if len(qp.pending) == 0 || qp.pending[0].psn != m.psn || qp.pending[0].op != OpRead || uint64(qp.pending[0].n) != m.length {
		qp.mu.Unlock()
		err := fmt.Errorf("rdma: the peer answered request %d with %d bytes of a READ it was not", m.psn, m.length)
		qp.fail(err, nil)
		return err
	}
	p := qp.pending[0]
	qp.pending = qp.pending[1:]
	qp.mu.Unlock()
	if m.flags&flagPlaced != 0 {
		if p.placed == nil || m.off > uint64(len(p.placed)) || m.length > uint64(len(p.placed))-m.off {
			err := fmt.Errorf("rdma: a READ of %d bytes at %d answered from a mapping of %d", m.length, m.off, len(p.placed))
			qp.fail(err, nil)
			return err
		}
		src := p.placed[m.off : m.off+m.length]
		for _, s := range p.dst {
			src = src[copy(s.Buf, src):]
		}
	} else {
		for _, s := range p.dst {
			if _, err := io.ReadFull(qp.br, s.Buf); err != nil {
				qp.lost(err)
				return err
			}
		}
	}
	if p.signaled {
		qp.cq.push(Completion{WRID: p.id, Op: OpRead, Bytes: p.n})
	}
	return nil
}

// nak takes the peer's refusal of one of our requests: those before it
// are done, it fails with the peer's reason, the rest are flushed.
func (qp *QP) nak(m wireMsg) error {
	text := make([]byte, m.length)
	if _, err := io.ReadFull(qp.br, text); err != nil {
		qp.lost(err)
		return err
	}
	if err := qp.badPSN(m); err != nil {
		return err
	}
	qp.complete(m.psn - 1)
	err := fmt.Errorf("rdma: the peer refused request %d: %s", m.psn, text)
	var c *Completion
	qp.mu.Lock()
	if len(qp.pending) > 0 && qp.pending[0].psn == m.psn {
		p := qp.pending[0]
		qp.pending = qp.pending[1:]
		c = &Completion{WRID: p.id, Op: p.op, Status: m.status, Err: err}
	}
	qp.mu.Unlock()
	qp.fail(err, c)
	return err
}

// fail puts the QP in the error state (the first reason stays): c, if
// any, completes with its own status, every outstanding request and
// posted receive is flushed with err.
func (qp *QP) fail(err error, c *Completion) {
	qp.mu.Lock()
	var cs []Completion
	if c != nil {
		cs = append(cs, *c)
	}
	if qp.err == nil {
		qp.err = err
		for _, p := range qp.pending {
			cs = append(cs, Completion{WRID: p.id, Op: p.op, Status: WRFlushErr, Err: err})
		}
		for _, id := range qp.recvs {
			cs = append(cs, Completion{WRID: id, Op: OpRecv, Status: WRFlushErr, Err: err})
		}
		qp.pending, qp.recvs = nil, nil
	}
	qp.mu.Unlock()
	qp.cq.push(cs...)
}

// Close puts the QP in the error state if it is not (outstanding requests
// are flushed), closes the connection, waits for its goroutines and
// unmaps the peer's regions.
func (qp *QP) Close() error {
	first := false
	qp.closeOnce.Do(func() { first = true })
	if !first {
		return nil
	}
	if qp.v != nil {
		qp.closeVerbs()
		return nil
	}
	qp.fail(errors.New("rdma: the queue pair was closed"), nil)
	close(qp.stop)
	err := qp.conn.Close()
	qp.done.Wait()
	qp.wmu.Lock()
	qp.mu.Lock()
	for k, mem := range qp.peerMaps {
		unmapPeer(mem)
		delete(qp.peerMaps, k)
	}
	qp.mu.Unlock()
	qp.wmu.Unlock()
	return err
}
