package target

import (
	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/pdu"
)

// io runs an I/O command (NVM command set) on an I/O queue.
func (q *queue) io(cmd *nvme.Command, data []byte) error {
	switch cmd.Opcode {
	case nvme.IORead, nvme.IOWrite, nvme.IOWriteZeroes:
	case nvme.IOFlush:
		return q.flush(cmd)
	default:
		return q.respond(cmd, nvme.StatusInvalidOpcode, 0)
	}
	ns := q.namespace(cmd.NSID)
	if ns == nil {
		return q.respond(cmd, nvme.StatusInvalidNamespace, 0)
	}
	shift := ns.BlockShift()
	slba, nlb := cmd.SLBA(), uint64(cmd.NLB())
	if blocks := uint64(ns.Size() >> shift); slba >= blocks || nlb > blocks-slba {
		return q.respond(cmd, nvme.StatusLBAOutOfRange, 0)
	}
	off, n := int64(slba)<<shift, nlb<<shift
	if cmd.Opcode == nvme.IOWriteZeroes {
		if err := writeZeroes(ns, off, int64(n)); err != nil {
			return q.respond(cmd, nvme.StatusMediaWriteFault, 0)
		}
		return q.respond(cmd, nvme.StatusSuccess, 0)
	}
	if n > maxTransfer {
		return q.respond(cmd, nvme.StatusInvalidField, 0)
	}
	if uint64(cmd.SGL.Length) != n {
		return q.respond(cmd, nvme.StatusSGLLengthInvalid, 0)
	}
	if cmd.Opcode == nvme.IORead {
		if cmd.SGL.ID != nvme.SGLTransportData {
			return q.respond(cmd, nvme.StatusInvalidField, 0)
		}
		buf := make([]byte, n)
		if _, err := ns.ReadAt(buf, off); err != nil {
			return q.respond(cmd, nvme.StatusMediaReadError, 0)
		}
		return q.sendData(cmd, buf)
	}
	if data != nil {
		return q.write(cmd, data)
	}
	if cmd.SGL.ID != nvme.SGLTransportData {
		return q.respond(cmd, nvme.StatusSGLLengthInvalid, 0)
	}
	// Ask for all of it in one R2T, as the Linux and SPDK targets do.
	if len(q.r2t) > 2*(int(q.sqsize)+1) {
		return q.respond(cmd, nvme.StatusCommandSequence, 0)
	}
	for q.r2t[q.nextTTAG] != nil {
		q.nextTTAG++
	}
	w := &pendingWrite{cmd: *cmd, buf: make([]byte, n), ttag: q.nextTTAG}
	q.nextTTAG++
	q.r2t[w.ttag] = w
	return q.conn.Write(&pdu.R2T{CCCID: cmd.CID, TTAG: w.ttag, R2TO: 0, R2TL: uint32(n)})
}

// write stores a write's data, all of it received.
func (q *queue) write(cmd *nvme.Command, data []byte) error {
	ns := q.namespace(cmd.NSID)
	if _, err := ns.WriteAt(data, int64(cmd.SLBA())<<ns.BlockShift()); err != nil {
		return q.respond(cmd, nvme.StatusMediaWriteFault, 0)
	}
	return q.respond(cmd, nvme.StatusSuccess, 0)
}

// flush makes earlier writes durable: one namespace, or all of them for
// NSID 0xFFFFFFFF.
func (q *queue) flush(cmd *nvme.Command) error {
	var nss []Namespace
	if cmd.NSID == 0xFFFFFFFF {
		nss = q.t.cfg.Namespaces
	} else if ns := q.namespace(cmd.NSID); ns != nil {
		nss = []Namespace{ns}
	} else {
		return q.respond(cmd, nvme.StatusInvalidNamespace, 0)
	}
	for _, ns := range nss {
		if err := ns.Flush(); err != nil {
			return q.respond(cmd, nvme.StatusMediaWriteFault, 0)
		}
	}
	return q.respond(cmd, nvme.StatusSuccess, 0)
}

func writeZeroes(ns Namespace, off, n int64) error {
	zero := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(zero)))
		if _, err := ns.WriteAt(zero[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}
