package initiator

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/pdu"
)

// Queue is one connection to the controller: the admin queue or one I/O
// queue. Any number of goroutines may Submit on it; up to its depth of
// commands are in flight together. One goroutine reads the controller's
// PDUs: C2H data goes straight into the buffer of the command it belongs
// to, R2Ts start a sender of that command's data, completions wake the
// submitter.
type Queue struct {
	qid       uint16
	conn      *pdu.Conn
	maxH2C    uint32
	inCapsule int // write data that may ride in the capsule

	slots chan struct{}

	mu     sync.Mutex
	reqs   map[uint16]*request
	free   []uint16
	failed error // set once the queue is dead; every later Submit gets it

	senders    sync.WaitGroup // goroutines sending H2CData after an R2T
	readerDone chan struct{}
	// onFail, when set, runs once when the connection fails (not when
	// the queue is closed on purpose).
	onFail func()

	// kick's state: a goroutine is flushing; more was queued meanwhile.
	kmu            sync.Mutex
	flushing, more bool
}

type request struct {
	cmd   nvme.Command
	buf   []byte
	write bool
	got   uint32 // C2H bytes received, or H2C bytes asked for so far
	bad   bool   // some C2H data came with a bad data digest
	cqe   nvme.Completion
	err   error
	done  chan struct{}
}

// dialQueue opens a connection and exchanges ICReq and ICResp.
func dialQueue(ctx context.Context, cfg *Config, addr string, qid uint16, depth int) (*Queue, error) {
	nc, err := cfg.dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("initiator: connect queue %d to %s: %w", qid, addr, err)
	}
	conn := pdu.NewConn(nc)
	if d, ok := ctx.Deadline(); ok {
		nc.SetDeadline(d)
	}
	var digest uint8
	if cfg.HeaderDigest {
		digest |= pdu.DigestHeader
	}
	if cfg.DataDigest {
		digest |= pdu.DigestData
	}
	fail := func(err error) (*Queue, error) {
		nc.Close()
		return nil, fmt.Errorf("initiator: queue %d on %s: %w", qid, addr, err)
	}
	if err := conn.Write(&pdu.ICReq{Digest: digest}); err != nil {
		return fail(err)
	}
	p, err := conn.ReadPDU()
	if err != nil {
		return fail(err)
	}
	resp, ok := p.(*pdu.ICResp)
	if !ok {
		return fail(fmt.Errorf("answer to ICReq is %s, not ICResp", p.PDUType()))
	}
	if resp.Digest != digest {
		return fail(fmt.Errorf("ICResp grants digests %#x, asked for %#x", resp.Digest, digest))
	}
	nc.SetDeadline(noDeadline)
	conn.Send = pdu.Options{HeaderDigest: cfg.HeaderDigest, DataDigest: cfg.DataDigest, PDA: resp.CPDA}
	conn.Recv = pdu.Options{HeaderDigest: cfg.HeaderDigest, DataDigest: cfg.DataDigest}
	// C2H data lands in the command's own buffer, bounded by its length.
	conn.Limits = pdu.Limits{MaxC2HData: 1<<32 - 1}
	q := &Queue{qid: qid, conn: conn, maxH2C: resp.MaxH2CData, inCapsule: adminInCapsule,
		slots: make(chan struct{}, depth), reqs: map[uint16]*request{}, readerDone: make(chan struct{})}
	for cid := depth - 1; cid >= 0; cid-- {
		q.free = append(q.free, uint16(cid))
	}
	go q.read()
	return q, nil
}

// Submit sends cmd and waits for its completion. buf is the data: read
// into for a command whose data goes to the host, sent from when write is
// true; nil for none. A write that fits the queue's in-capsule size rides
// in the capsule, a larger one goes after the controller's R2T. The
// command's CID and SGL are set here. A completion with an error status is
// returned as a *nvme.StatusError together with the completion.
func (q *Queue) Submit(cmd nvme.Command, buf []byte, write bool) (nvme.Completion, error) {
	q.slots <- struct{}{}
	defer func() { <-q.slots }()
	r := &request{cmd: cmd, buf: buf, write: write, done: make(chan struct{})}
	q.mu.Lock()
	if q.failed != nil {
		q.mu.Unlock()
		return nvme.Completion{}, q.failed
	}
	cid := q.free[len(q.free)-1]
	q.free = q.free[:len(q.free)-1]
	r.cmd.CID = cid
	q.reqs[cid] = r
	q.mu.Unlock()

	r.cmd.Flags |= nvme.FlagSGL
	capsule := &pdu.CapsuleCmd{SQE: r.cmd}
	capsule.SQE.SGL = nvme.SGL{ID: nvme.SGLTransportData, Length: uint32(len(buf))}
	if write && len(buf) > 0 && len(buf) <= q.inCapsule {
		capsule.SQE.SGL.ID = nvme.SGLDataBlockOffset
		capsule.Data = buf
	}
	q.conn.Queue(capsule)
	q.kick()
	<-r.done
	q.mu.Lock()
	if q.failed == nil {
		q.free = append(q.free, cid)
	}
	q.mu.Unlock()
	if r.err != nil {
		return r.cqe, r.err
	}
	if !r.cqe.Status.OK() {
		return r.cqe, &nvme.StatusError{Op: opName(&r.cmd, q.qid), Status: r.cqe.Status, DW0: r.cqe.DW0}
	}
	return r.cqe, nil
}

// read is the queue's reader goroutine.
func (q *Queue) read() {
	defer close(q.readerDone)
	for {
		err := q.readOne()
		if err != nil {
			var pe *pdu.Error
			if errors.As(err, &pe) {
				q.conn.Terminate(pdu.TypeH2CTermReq, err)
			}
			q.fail(err)
			return
		}
	}
}

func (q *Queue) lookup(t pdu.Type, cid uint16) (*request, error) {
	q.mu.Lock()
	r := q.reqs[cid]
	q.mu.Unlock()
	if r == nil {
		return nil, &pdu.Error{PDU: t, Field: "CID", Offset: pdu.OffCCCID, FES: pdu.FESInvalidHeaderField, FEI: pdu.OffCCCID,
			Msg: fmt.Sprintf("%d is not a command in flight", cid)}
	}
	return r, nil
}

func (q *Queue) readOne() error {
	h, p, err := q.conn.ReadHeader()
	if err != nil {
		return err
	}
	switch p := p.(type) {
	case *pdu.CapsuleResp:
		r, err := q.lookup(h.Type, p.CQE.CID)
		if err != nil {
			return err
		}
		if !r.write && p.CQE.Status.OK() && int(r.got) != len(r.buf) {
			return fmt.Errorf("initiator: command %d completed after %d of its %d bytes of data", p.CQE.CID, r.got, len(r.buf))
		}
		q.complete(r, r.damaged(p.CQE))
	case *pdu.Data:
		if p.Dir != pdu.TypeC2HData {
			return &pdu.Error{PDU: h.Type, Field: "type", FES: pdu.FESPDUSequence, Msg: "a host does not receive H2CData"}
		}
		r, err := q.lookup(h.Type, p.CCCID)
		if err != nil {
			return err
		}
		n := uint32(h.DataLen())
		if r.write || p.DataO != r.got || uint64(p.DataO)+uint64(n) > uint64(len(r.buf)) {
			return &pdu.Error{PDU: h.Type, Field: "DATAO", Offset: pdu.OffDATAO, FES: pdu.FESDataOutOfRange, FEI: pdu.OffDATAO,
				Msg: fmt.Sprintf("%d bytes at %d for command %d expecting offset %d of %d", n, p.DataO, p.CCCID, r.got, len(r.buf))}
		}
		if err := q.conn.ReadData(r.buf[p.DataO : p.DataO+n]); err != nil {
			if !errors.Is(err, pdu.ErrDataDigest) {
				return err
			}
			r.bad = true // the command fails when it completes; the queue lives on
		}
		r.got += n
		if p.Success {
			if int(r.got) != len(r.buf) {
				return &pdu.Error{PDU: h.Type, Field: "flags", Offset: pdu.OffFlags, FES: pdu.FESInvalidHeaderField, FEI: pdu.OffFlags,
					Msg: "SUCCESS before all the data arrived"}
			}
			q.complete(r, r.damaged(nvme.Completion{CID: p.CCCID, SQID: q.qid}))
		}
	case *pdu.R2T:
		r, err := q.lookup(h.Type, p.CCCID)
		if err != nil {
			return err
		}
		if !r.write || p.R2TO < r.got || uint64(p.R2TO)+uint64(p.R2TL) > uint64(len(r.buf)) {
			return &pdu.Error{PDU: h.Type, Field: "R2TO", Offset: pdu.OffDATAO, FES: pdu.FESDataOutOfRange, FEI: pdu.OffDATAO,
				Msg: fmt.Sprintf("%d bytes at %d for command %d of %d bytes", p.R2TL, p.R2TO, p.CCCID, len(r.buf))}
		}
		r.got = p.R2TO + p.R2TL
		// Sent by another goroutine, so this one keeps reading: the
		// controller may be writing to us while we write to it.
		q.senders.Add(1)
		go q.sendH2C(r.cmd.CID, p.TTAG, r.buf[p.R2TO:p.R2TO+p.R2TL], p.R2TO)
	case *pdu.TermReq:
		return &TermError{QID: q.qid, FES: p.FES, FEI: p.FEI}
	default:
		return &pdu.Error{PDU: h.Type, Field: "type", FES: pdu.FESPDUSequence, Msg: "a host does not receive " + h.Type.String()}
	}
	return nil
}

// sendH2C sends the data an R2T asked for, in PDUs of at most MAXH2CDATA
// bytes, LAST_PDU on the last.
func (q *Queue) sendH2C(cid, ttag uint16, data []byte, base uint32) {
	defer q.senders.Done()
	for off := 0; off < len(data); off += int(q.maxH2C) {
		end := min(off+int(q.maxH2C), len(data))
		q.conn.Queue(&pdu.Data{Dir: pdu.TypeH2CData, CCCID: cid, TTAG: ttag, DataO: base + uint32(off), Data: data[off:end], Last: end == len(data)})
	}
	q.kick()
}

// kick sends what is queued on the connection, unless another goroutine
// is sending already: then that one sends it too, as it looks again
// before it stops. Before its first send it yields once, so that the
// submitters the reader has just woken (one per completion it read) queue
// their commands first. Commands submitted together thus leave in one
// system call. A write error fails the queue.
func (q *Queue) kick() {
	q.kmu.Lock()
	if q.flushing {
		q.more = true
		q.kmu.Unlock()
		return
	}
	q.flushing = true
	q.kmu.Unlock()
	runtime.Gosched() // one yield costs less than a system call per command
	for {
		if err := q.conn.Flush(); err != nil {
			q.fail(err)
		}
		q.kmu.Lock()
		if !q.more {
			q.flushing = false
			q.kmu.Unlock()
			return
		}
		q.more = false
		q.kmu.Unlock()
	}
}

// damaged is the completion of r: a transient transport error when its
// data came with a bad digest, whatever the controller said.
func (r *request) damaged(cqe nvme.Completion) nvme.Completion {
	if r.bad && cqe.Status.OK() {
		cqe.Status = nvme.StatusTransientTransport
	}
	return cqe
}

func (q *Queue) complete(r *request, cqe nvme.Completion) {
	q.mu.Lock()
	if q.reqs[r.cmd.CID] != r { // the queue failed meanwhile and ended it
		q.mu.Unlock()
		return
	}
	delete(q.reqs, r.cmd.CID)
	q.mu.Unlock()
	r.cqe = cqe
	close(r.done)
}

// fail kills the queue: the connection closes and every command in flight
// returns err — as a *QueueError unless the queue was closed on purpose.
func (q *Queue) fail(err error) {
	q.mu.Lock()
	first := q.failed == nil
	if first {
		if !errors.Is(err, errClosed) {
			err = &QueueError{QID: q.qid, Err: err}
		}
		q.failed = err
	}
	reqs := q.reqs
	q.reqs = map[uint16]*request{}
	err = q.failed
	q.mu.Unlock()
	q.conn.Close()
	for _, r := range reqs {
		r.err = err
		close(r.done)
	}
	if first && q.onFail != nil && !errors.Is(err, errClosed) && !errors.Is(err, errReset) {
		q.onFail()
	}
}

var (
	errClosed = errors.New("initiator: queue closed")
	// errReset ends the queues of an association being replaced.
	errReset = errors.New("initiator: association reset to reconnect")
)

// ErrQueueFailed matches (errors.Is) the error of a command whose queue's
// connection failed before the command's completion arrived: the
// controller may or may not have run it.
var ErrQueueFailed = errors.New("initiator: queue failed")

// QueueError is what a command gets when its queue's connection failed
// before the command completed.
type QueueError struct {
	QID uint16
	Err error
}

func (e *QueueError) Error() string {
	return fmt.Sprintf("initiator: queue %d failed: %v", e.QID, e.Err)
}
func (e *QueueError) Unwrap() error        { return e.Err }
func (e *QueueError) Is(target error) bool { return target == ErrQueueFailed }

// TermError is a C2HTermReq the controller ended a queue with.
type TermError struct {
	QID uint16
	FES uint16
	FEI uint32
}

func (e *TermError) Error() string {
	return fmt.Sprintf("initiator: controller terminated queue %d: C2HTermReq FES %d FEI %d", e.QID, e.FES, e.FEI)
}

// close ends the queue with err and waits for its goroutines.
func (q *Queue) close(err error) {
	q.fail(err)
	<-q.readerDone
	q.senders.Wait()
}

// Err is what ended the queue, nil while it works.
func (q *Queue) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failed
}

func opName(c *nvme.Command, qid uint16) string {
	if c.Opcode == nvme.OpcodeFabrics {
		switch c.FCType() {
		case nvme.FabricsConnect:
			return "connect"
		case nvme.FabricsPropertyGet:
			return fmt.Sprintf("property get %#x", c.CDW11)
		case nvme.FabricsPropertySet:
			return fmt.Sprintf("property set %#x", c.CDW11)
		}
	}
	kind := "I/O"
	if qid == 0 {
		kind = "admin"
	}
	return fmt.Sprintf("%s opcode %#02x (queue %d, nsid %d)", kind, c.Opcode, qid, c.NSID)
}
