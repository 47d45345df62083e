package target

import (
	"encoding/binary"

	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// Feature identifiers the target answers.
const (
	featNumQueues = 0x07
	featAsyncCfg  = 0x0B
	featKATO      = 0x0F
)

// admin runs an admin command on an enabled controller.
func (q *queue) admin(cmd *nvme.Command, data []byte) error {
	c := q.ctrl
	switch cmd.Opcode {
	case nvme.AdminIdentify:
		return q.identify(cmd)
	case nvme.AdminGetLogPage:
		return q.getLog(cmd)
	case nvme.AdminSetFeatures:
		return q.setFeatures(cmd)
	case nvme.AdminGetFeatures:
		return q.getFeatures(cmd)
	case nvme.AdminKeepAlive:
		c.keepAlive()
		return q.respond(cmd, nvme.StatusSuccess, 0)
	case nvme.AdminAsyncEvent:
		// Held until an event happens; this target raises none yet, so
		// the request stays outstanding until the controller goes away.
		c.mu.Lock()
		full := c.aers > aerl
		if !full {
			c.aers++
		}
		c.mu.Unlock()
		if full {
			return q.respond(cmd, nvme.StatusAERLimitExceeded, 0)
		}
		return nil
	case nvme.AdminAbort:
		return q.respond(cmd, nvme.StatusSuccess, 1) // DW0 bit 0: not aborted
	}
	return q.respond(cmd, nvme.StatusInvalidOpcode, 0)
}

// identify answers CNS 0 (namespace), 1 (controller), 2 (active namespace
// list) and 3 (namespace identification descriptors).
func (q *queue) identify(cmd *nvme.Command) error {
	if cmd.SGL.Length < nvme.IdentifySize || cmd.SGL.ID != nvme.SGLTransportData {
		return q.respond(cmd, nvme.StatusSGLLengthInvalid, 0)
	}
	sub := q.ctrl.sub
	buf := make([]byte, nvme.IdentifySize)
	nn := uint32(len(sub.Namespaces))
	switch cns := uint8(cmd.CDW10); cns {
	case nvme.CNSController:
		id := q.identifyController(sub.NQN, nvme.CntrlTypeIO)
		id.NN = nn
		id.ONCS = nvme.ONCSDatasetMgmt | nvme.ONCSWriteZeroes
		id.VWC = 1
		id.Marshal(buf)
	case nvme.CNSNamespace:
		ns := q.namespace(cmd.NSID)
		if ns == nil {
			return q.respond(cmd, nvme.StatusInvalidNamespace, 0)
		}
		blocks := uint64(ns.Size() >> ns.BlockShift())
		id := nvme.IdentifyNamespace{NSZE: blocks, NCAP: blocks, NUSE: blocks, LBADS: uint8(ns.BlockShift()),
			NGUID: sub.nguid(cmd.NSID), DLFEAT: 1}
		id.Marshal(buf)
	case nvme.CNSActiveNSList:
		if cmd.NSID >= 0xFFFFFFFE {
			return q.respond(cmd, nvme.StatusInvalidNamespace, 0)
		}
		off := 0
		for id := cmd.NSID + 1; id <= nn && off < nvme.IdentifySize; id++ {
			binary.LittleEndian.PutUint32(buf[off:], id)
			off += 4
		}
	case nvme.CNSNSDescriptors:
		if q.namespace(cmd.NSID) == nil {
			return q.respond(cmd, nvme.StatusInvalidNamespace, 0)
		}
		g := sub.nguid(cmd.NSID)
		buf[0], buf[1] = nvme.NSDescTypeNGUID, 16
		copy(buf[4:], g[:])
		buf[20], buf[21] = nvme.NSDescTypeCSI, 1 // CSI 0: the NVM command set
	default:
		return q.respond(cmd, nvme.StatusInvalidField, 0)
	}
	return q.sendData(cmd, buf)
}

// identifyController is what every controller of the target says of
// itself, for a subsystem nqn and a controller type.
func (q *queue) identifyController(nqn string, typ uint8) nvme.IdentifyController {
	cfg := &q.t.cfg
	return nvme.IdentifyController{
		VID: 0x1D1D, SSVID: 0x1D1D, SN: serial(nqn), MN: "zflow NVMe/TCP target", FR: "0.1",
		RAB: 6, MDTS: mdts, CntlID: q.ctrl.id, Ver: nvme.VS14, CntrlType: typ,
		ACL: 3, AERL: aerl, LPA: 0x04, KAS: kas, SQES: 0x66, CQES: 0x44, MaxCmd: cfg.MQES + 1,
		SGLS: 0x00100001, SubNQN: nqn,
		IOCCSZ: (nvme.CommandSize + cfg.InCapsule) / 16, IORCSZ: 1, ICDOFF: 0, MSDBD: 1,
	}
}

// getLog serves any dword-aligned window of the error (0x01), SMART (0x02)
// and command effects (0x05) logs, all zeros here.
func (q *queue) getLog(cmd *nvme.Command) error {
	switch nvme.GetLogPageOf(cmd).LID {
	case nvme.LogError, nvme.LogSMART, nvme.LogCommandEffect:
		return q.sendLog(cmd, nil)
	}
	return q.respond(cmd, nvme.StatusInvalidLogPage, 0)
}

// sendLog answers a Get Log Page with the window it asks for of page; bytes
// past the page's end are zeros.
func (q *queue) sendLog(cmd *nvme.Command, page []byte) error {
	g := nvme.GetLogPageOf(cmd)
	if g.Offset%4 != 0 || g.Len > maxTransfer {
		return q.respond(cmd, nvme.StatusInvalidField, 0)
	}
	if uint64(cmd.SGL.Length) != g.Len || cmd.SGL.ID != nvme.SGLTransportData {
		return q.respond(cmd, nvme.StatusSGLLengthInvalid, 0)
	}
	buf := make([]byte, g.Len)
	if g.Offset < uint64(len(page)) {
		copy(buf, page[g.Offset:])
	}
	return q.sendData(cmd, buf)
}

func (q *queue) setFeatures(cmd *nvme.Command) error {
	c := q.ctrl
	switch uint8(cmd.CDW10) {
	case featNumQueues:
		nsq, ncq := uint16(cmd.CDW11), uint16(cmd.CDW11>>16)
		if nsq == 0xFFFF || ncq == 0xFFFF {
			return q.respond(cmd, nvme.StatusInvalidField, 0)
		}
		most := q.t.cfg.MaxIOQueues - 1
		nsq, ncq = min(nsq, most), min(ncq, most)
		c.mu.Lock()
		c.nq = min(nsq, ncq)
		c.mu.Unlock()
		return q.respond(cmd, nvme.StatusSuccess, uint32(nsq)|uint32(ncq)<<16)
	case featKATO:
		c.mu.Lock()
		c.kato = cmd.CDW11
		c.mu.Unlock()
		c.keepAlive()
		return q.respond(cmd, nvme.StatusSuccess, 0)
	case featAsyncCfg:
		return q.respond(cmd, nvme.StatusSuccess, 0)
	}
	return q.respond(cmd, nvme.StatusInvalidField, 0)
}

func (q *queue) getFeatures(cmd *nvme.Command) error {
	c := q.ctrl
	c.mu.Lock()
	nq, kato := c.nq, c.kato
	c.mu.Unlock()
	switch uint8(cmd.CDW10) {
	case featNumQueues:
		return q.respond(cmd, nvme.StatusSuccess, uint32(nq)|uint32(nq)<<16)
	case featKATO:
		return q.respond(cmd, nvme.StatusSuccess, kato)
	case featAsyncCfg:
		return q.respond(cmd, nvme.StatusSuccess, 0)
	}
	return q.respond(cmd, nvme.StatusInvalidField, 0)
}
