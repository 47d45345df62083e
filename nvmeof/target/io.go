package target

import (
	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// io runs an I/O command (NVM command set) on an I/O queue.
func (q *queue) io(cmd *nvme.Command, data []byte) error {
	switch cmd.Opcode {
	case nvme.IORead, nvme.IOWrite, nvme.IOWriteZeroes:
	case nvme.IOFlush:
		return q.flush(cmd)
	case nvme.IODatasetMgmt:
		return q.datasetMgmt(cmd, data)
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
		buf := q.bufs.get(int(n))
		if _, err := ns.ReadAt(buf, off); err != nil {
			q.bufs.put(buf)
			return q.respond(cmd, nvme.StatusMediaReadError, 0)
		}
		q.bufs.hold(buf) // queued for sending: reused after the flush
		return q.sendData(cmd, buf)
	}
	return q.receive(cmd, data, int(n))
}

// receive runs a command that sends n bytes to the controller: at once
// when its data came in the capsule, else after R2Ts ask for it.
func (q *queue) receive(cmd *nvme.Command, data []byte, n int) error {
	if data != nil {
		return q.execWrite(cmd, data)
	}
	if cmd.SGL.ID != nvme.SGLTransportData {
		return q.respond(cmd, nvme.StatusSGLLengthInvalid, 0)
	}
	if len(q.r2t) > 2*(int(q.sqsize)+1) {
		return q.respond(cmd, nvme.StatusCommandSequence, 0)
	}
	for q.r2t[q.nextTTAG] != nil {
		q.nextTTAG++
	}
	w := &pendingWrite{cmd: *cmd, buf: q.bufs.get(n), ttag: q.nextTTAG}
	q.nextTTAG++
	q.r2t[w.ttag] = w
	return q.askData(w)
}

// execWrite runs a command whose data has all arrived: a Write or a
// Dataset Management.
func (q *queue) execWrite(cmd *nvme.Command, data []byte) error {
	ns := q.namespace(cmd.NSID)
	if cmd.Opcode == nvme.IODatasetMgmt {
		return q.deallocate(cmd, ns, data)
	}
	if _, err := ns.WriteAt(data, int64(cmd.SLBA())<<ns.BlockShift()); err != nil {
		return q.respond(cmd, nvme.StatusMediaWriteFault, 0)
	}
	return q.respond(cmd, nvme.StatusSuccess, 0)
}

// flush makes earlier writes durable: one namespace, or for NSID
// 0xFFFFFFFF every namespace of the controller's own subsystem (not the
// target's first one, nor another subsystem's).
func (q *queue) flush(cmd *nvme.Command) error {
	var nss []Namespace
	if cmd.NSID == 0xFFFFFFFF {
		nss = q.ctrl.sub.Namespaces
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

// datasetMgmt checks a Dataset Management command and takes its ranges
// (16 bytes each, NR+1 of them) in the capsule or after an R2T.
func (q *queue) datasetMgmt(cmd *nvme.Command, data []byte) error {
	if q.namespace(cmd.NSID) == nil {
		return q.respond(cmd, nvme.StatusInvalidNamespace, 0)
	}
	n := (int(cmd.CDW10&0xFF) + 1) * nvme.DSMRangeSize
	if int(cmd.SGL.Length) != n {
		return q.respond(cmd, nvme.StatusSGLLengthInvalid, 0)
	}
	return q.receive(cmd, data, n)
}

// deallocate runs a Dataset Management whose ranges are in data. Only the
// deallocate attribute (CDW11 AD) does anything; the hints are ignored, as
// the specification allows. Deallocated blocks read as zeros (DLFEAT 1).
// Every range is checked before any is deallocated.
func (q *queue) deallocate(cmd *nvme.Command, ns Namespace, data []byte) error {
	if cmd.CDW11&nvme.DSMDeallocate == 0 {
		return q.respond(cmd, nvme.StatusSuccess, 0)
	}
	rs := nvme.DSMRanges(data)
	shift := ns.BlockShift()
	blocks := uint64(ns.Size() >> shift)
	for _, r := range rs {
		if r.SLBA >= blocks || uint64(r.NLB) > blocks-r.SLBA {
			return q.respond(cmd, nvme.StatusLBAOutOfRange, 0)
		}
	}
	for _, r := range rs {
		if r.NLB == 0 {
			continue
		}
		if err := deallocate(ns, int64(r.SLBA)<<shift, int64(r.NLB)<<shift); err != nil {
			return q.respond(cmd, nvme.StatusMediaWriteFault, 0)
		}
	}
	return q.respond(cmd, nvme.StatusSuccess, 0)
}

// deallocate frees n bytes at off of ns: through the namespace's
// Deallocate when it has one, else by writing zeros.
func deallocate(ns Namespace, off, n int64) error {
	if d, ok := ns.(Deallocator); ok {
		return d.Deallocate(off, n)
	}
	return writeZeroes(ns, off, n)
}
