package target

import (
	"errors"
	"fmt"
	"net"

	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/pdu"
)

// queue is one TCP connection: the admin queue (QID 0) or one I/O queue
// of a controller, after its Connect. One goroutine reads PDUs and runs
// the commands in order; completions and data go out through conn.Write.
type queue struct {
	t    *Target
	port *port
	conn *pdu.Conn

	ctrl      *controller // nil until Connect succeeds
	qid       uint16
	sqsize    uint16 // 0's based
	sqhd      uint16
	connected bool

	// writes waiting for their data after an R2T, by TTAG.
	r2t      map[uint16]*pendingWrite
	nextTTAG uint16

	bufs bufPool
}

type pendingWrite struct {
	cmd  nvme.Command
	buf  []byte
	got  uint32
	end  uint32 // where the data the last R2T asked for ends
	ttag uint16
	bad  bool // some of the data came with a bad data digest
}

func newQueue(t *Target, p *port, nc net.Conn) *queue {
	return &queue{t: t, port: p, conn: pdu.NewConn(nc), r2t: map[uint16]*pendingWrite{}}
}

// namespace is the namespace nsid of the queue's subsystem, nil when
// there is none (or the controller is a discovery controller).
func (q *queue) namespace(nsid uint32) Namespace {
	if q.ctrl == nil || q.ctrl.sub == nil {
		return nil
	}
	return q.ctrl.sub.namespace(nsid)
}

// errSequence is a PDU that arrives when the protocol does not allow it.
func errSequence(t pdu.Type, why string) *pdu.Error {
	return &pdu.Error{PDU: t, Field: "type", Offset: 0, FES: pdu.FESPDUSequence, Msg: why}
}

// serve runs the connection until it ends: the peer closes, a fatal PDU
// error (answered with a C2HTermReq), or the target closes it.
func (q *queue) serve() {
	defer q.detach()
	if err := q.handshake(); err != nil {
		q.conn.Terminate(pdu.TypeC2HTermReq, err)
		return
	}
	for {
		h, p, err := q.conn.ReadHeader()
		if err != nil {
			q.conn.Terminate(pdu.TypeC2HTermReq, err)
			return
		}
		switch p := p.(type) {
		case *pdu.CapsuleCmd:
			err = q.capsule(h, p)
		case *pdu.Data:
			if p.Dir != pdu.TypeH2CData {
				err = errSequence(h.Type, "a controller does not receive C2HData")
				break
			}
			err = q.h2cData(h, p)
		case *pdu.TermReq:
			if p.Dir == pdu.TypeH2CTermReq {
				q.conn.Close() // the host ends the connection; never answered
				return
			}
			err = errSequence(h.Type, "a controller does not receive C2HTermReq")
		case *pdu.ICReq:
			err = errSequence(h.Type, "second ICReq on the connection")
		default:
			err = errSequence(h.Type, "a controller does not receive "+h.Type.String())
		}
		if err == nil {
			err = q.flushIfIdle()
		}
		if err != nil {
			q.conn.Terminate(pdu.TypeC2HTermReq, err)
			return
		}
	}
}

// flushAt is how much queued read data makes the queue send at once,
// whole PDUs buffered or not.
const flushAt = 256 << 10

// flushIfIdle sends the PDUs the commands run so far queued (completions,
// C2HData, R2Ts) unless the next PDU has already arrived whole and not
// much data waits: the answers to commands that came together then go out
// together, in one system call. Buffers of the data sent are reused.
func (q *queue) flushIfIdle() error {
	if q.conn.WholePDUBuffered() && q.conn.QueuedData() < flushAt {
		return nil
	}
	err := q.conn.Flush()
	q.bufs.release()
	return err
}

// handshake reads the ICReq that must open the connection and answers it.
func (q *queue) handshake() error {
	_, p, err := q.conn.ReadHeader()
	if err != nil {
		return err
	}
	req, ok := p.(*pdu.ICReq)
	if !ok {
		return errSequence(p.PDUType(), "first PDU is "+p.PDUType().String()+", not ICReq")
	}
	resp := &pdu.ICResp{CPDA: 0, Digest: req.Digest, MaxH2CData: q.t.cfg.MaxH2CData}
	if err := q.conn.Write(resp); err != nil {
		return err
	}
	hd, dd := req.Digest&pdu.DigestHeader != 0, req.Digest&pdu.DigestData != 0
	q.conn.Recv = pdu.Options{HeaderDigest: hd, DataDigest: dd, PDA: resp.CPDA}
	q.conn.Send = pdu.Options{HeaderDigest: hd, DataDigest: dd, PDA: req.HPDA}
	q.conn.Limits = pdu.Limits{MaxInCapsule: max(adminInCapsule, q.t.cfg.InCapsule), MaxH2CData: q.t.cfg.MaxH2CData}
	return nil
}

// detach removes the queue from its controller; the admin queue's end ends
// the controller.
func (q *queue) detach() {
	q.conn.Close()
	c := q.ctrl
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.queues[q.qid] == q {
		delete(c.queues, q.qid)
	}
	var rest []*queue
	if q.qid == 0 {
		for _, o := range c.queues {
			rest = append(rest, o)
		}
	}
	c.mu.Unlock()
	if q.qid == 0 {
		q.t.dropController(c)
		for _, o := range rest {
			o.conn.Close()
		}
	}
}

// capsule takes a command: its in-capsule data is checked and read, then
// it runs. Errors returned are fatal to the connection.
func (q *queue) capsule(h pdu.Header, p *pdu.CapsuleCmd) error {
	cmd := &p.SQE
	var data []byte
	if n := h.DataLen(); n > 0 {
		sgl := cmd.SGL
		switch {
		case sgl.ID != nvme.SGLDataBlockOffset:
			return &pdu.Error{PDU: h.Type, Field: "SGL identifier", Offset: 8 + 39, FES: pdu.FESInvalidHeaderField, FEI: 8 + 39,
				Msg: fmt.Sprintf("%#02x on a capsule carrying %d bytes of data, want 0x01", sgl.ID, n)}
		case sgl.Addr != 0:
			return &pdu.Error{PDU: h.Type, Field: "SGL address", Offset: 8 + 24, FES: pdu.FESInvalidHeaderField, FEI: 8 + 24,
				Msg: fmt.Sprintf("in-capsule offset %d, want 0", sgl.Addr)}
		case int64(sgl.Length) != int64(n):
			return &pdu.Error{PDU: h.Type, Field: "SGL length", Offset: 8 + 32, FES: pdu.FESInvalidHeaderField, FEI: 8 + 32,
				Msg: fmt.Sprintf("%d, but the capsule carries %d bytes", sgl.Length, n)}
		case q.qid != 0 && cmd.Opcode != nvme.OpcodeFabrics && uint32(n) > q.t.cfg.InCapsule:
			return &pdu.Error{PDU: h.Type, Field: "plen", Offset: pdu.OffPLen, FES: pdu.FESDataLimitExceeded, FEI: pdu.OffPLen,
				Msg: fmt.Sprintf("%d bytes in the capsule of an I/O command, at most %d", n, q.t.cfg.InCapsule)}
		}
		data = q.bufs.get(n)
		defer q.bufs.put(data)
		if err := q.conn.ReadData(data); err != nil {
			if !errors.Is(err, pdu.ErrDataDigest) {
				return err
			}
			q.advanceSQHD()
			return q.respond(cmd, nvme.StatusTransientTransport, 0)
		}
	}
	q.advanceSQHD()
	return q.run(cmd, data)
}

// advanceSQHD consumes a submission queue entry.
func (q *queue) advanceSQHD() {
	q.sqhd++
	if q.sqsize != 0 {
		q.sqhd %= q.sqsize + 1
	}
}

// respond sends a completion for cmd.
func (q *queue) respond(cmd *nvme.Command, st nvme.Status, dw0 uint32) error {
	return q.respond2(cmd, st, dw0, 0, q.sqhd)
}

func (q *queue) respond2(cmd *nvme.Command, st nvme.Status, dw0, dw1 uint32, sqhd uint16) error {
	q.conn.Queue(&pdu.CapsuleResp{CQE: nvme.Completion{DW0: dw0, DW1: dw1, SQHD: sqhd, SQID: q.qid, CID: cmd.CID, Status: st}})
	return nil
}

// run dispatches a command.
func (q *queue) run(cmd *nvme.Command, data []byte) error {
	if cmd.Opcode == nvme.OpcodeFabrics {
		return q.fabrics(cmd, data)
	}
	if !q.connected {
		return q.respond(cmd, nvme.StatusCommandSequence, 0)
	}
	if !q.ctrl.enabled() {
		return q.respond(cmd, nvme.StatusCommandSequence, 0)
	}
	if q.qid == 0 {
		if q.ctrl.sub == nil {
			return q.discoveryAdmin(cmd)
		}
		return q.admin(cmd, data)
	}
	return q.io(cmd, data)
}

// sendData queues buf as C2HData PDUs of at most C2HChunk bytes, offsets
// following each other from 0, LAST_PDU on the last, then the completion.
func (q *queue) sendData(cmd *nvme.Command, buf []byte) error {
	if uint64(len(buf)) > uint64(cmd.SGL.Length) {
		buf = buf[:cmd.SGL.Length]
	}
	for off := 0; off < len(buf); off += q.t.cfg.C2HChunk {
		end := min(off+q.t.cfg.C2HChunk, len(buf))
		q.conn.Queue(&pdu.Data{Dir: pdu.TypeC2HData, CCCID: cmd.CID, DataO: uint32(off), Data: buf[off:end], Last: end == len(buf)})
	}
	return q.respond(cmd, nvme.StatusSuccess, 0)
}

// h2cData takes data the host sends after an R2T (checks as SPDK makes
// them: a TTAG we issued, the same CCCID, the next offset, within the
// command).
func (q *queue) h2cData(h pdu.Header, p *pdu.Data) error {
	w := q.r2t[p.TTAG]
	if w == nil {
		return &pdu.Error{PDU: pdu.TypeH2CData, Field: "TTAG", Offset: pdu.OffTTAG, FES: pdu.FESInvalidHeaderField, FEI: pdu.OffTTAG,
			Msg: fmt.Sprintf("%d is not an R2T outstanding", p.TTAG)}
	}
	if p.CCCID != w.cmd.CID {
		return &pdu.Error{PDU: pdu.TypeH2CData, Field: "CCCID", Offset: pdu.OffCCCID, FES: pdu.FESInvalidHeaderField, FEI: pdu.OffCCCID,
			Msg: fmt.Sprintf("%d, but TTAG %d belongs to command %d", p.CCCID, p.TTAG, w.cmd.CID)}
	}
	n := uint32(h.DataLen())
	if p.DataO != w.got {
		return &pdu.Error{PDU: pdu.TypeH2CData, Field: "DATAO", Offset: pdu.OffDATAO, FES: pdu.FESDataOutOfRange, FEI: pdu.OffDATAO,
			Msg: fmt.Sprintf("%d, want %d", p.DataO, w.got)}
	}
	if uint64(p.DataO)+uint64(n) > uint64(w.end) {
		return &pdu.Error{PDU: pdu.TypeH2CData, Field: "DATAL", Offset: pdu.OffDATAL, FES: pdu.FESDataOutOfRange, FEI: pdu.OffDATAL,
			Msg: fmt.Sprintf("%d bytes at %d reach past the %d the R2Ts asked for of the command's %d", n, p.DataO, w.end, len(w.buf))}
	}
	if err := q.conn.ReadData(w.buf[p.DataO : p.DataO+n]); err != nil {
		if !errors.Is(err, pdu.ErrDataDigest) {
			return err
		}
		w.bad = true // the rest still comes; the command fails at the end
	}
	w.got += n
	if w.got < w.end {
		return nil
	}
	if int(w.got) < len(w.buf) {
		return q.askData(w)
	}
	delete(q.r2t, w.ttag)
	defer q.bufs.put(w.buf)
	if w.bad {
		return q.respond(&w.cmd, nvme.StatusTransientTransport, 0)
	}
	return q.execWrite(&w.cmd, w.buf)
}

// askData sends the R2T for the next part of a write's data: all the rest,
// or R2TChunk bytes of it.
func (q *queue) askData(w *pendingWrite) error {
	n := uint32(len(w.buf)) - w.got
	if c := q.t.cfg.R2TChunk; c != 0 {
		n = min(n, c)
	}
	w.end = w.got + n
	q.conn.Queue(&pdu.R2T{CCCID: w.cmd.CID, TTAG: w.ttag, R2TO: w.got, R2TL: n})
	return nil
}
