package target

import (
	"encoding/binary"
	"hash/fnv"

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
	cfg := &q.t.cfg
	buf := make([]byte, nvme.IdentifySize)
	nn := uint32(len(cfg.Namespaces))
	switch cns := uint8(cmd.CDW10); cns {
	case nvme.CNSController:
		id := nvme.IdentifyController{
			VID: 0x1D1D, SSVID: 0x1D1D, SN: q.t.serial(), MN: "zflow NVMe/TCP target", FR: "0.1",
			RAB: 6, MDTS: mdts, CntlID: q.ctrl.id, Ver: nvme.VS14, CntrlType: nvme.CntrlTypeIO,
			ACL: 3, AERL: aerl, LPA: 0x04, KAS: kas, SQES: 0x66, CQES: 0x44, MaxCmd: cfg.MQES + 1,
			NN: nn, ONCS: 1 << 3, VWC: 1, SGLS: 0x00100001, SubNQN: cfg.SubNQN,
			IOCCSZ: (nvme.CommandSize + cfg.InCapsule) / 16, IORCSZ: 1, ICDOFF: 0, MSDBD: 1,
		}
		id.Marshal(buf)
	case nvme.CNSNamespace:
		ns := q.namespace(cmd.NSID)
		if ns == nil {
			return q.respond(cmd, nvme.StatusInvalidNamespace, 0)
		}
		blocks := uint64(ns.Size() >> ns.BlockShift())
		id := nvme.IdentifyNamespace{NSZE: blocks, NCAP: blocks, NUSE: blocks, LBADS: uint8(ns.BlockShift()), NGUID: q.t.nguid(cmd.NSID)}
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
		g := q.t.nguid(cmd.NSID)
		buf[0], buf[1] = nvme.NSDescTypeNGUID, 16
		copy(buf[4:], g[:])
		buf[20], buf[21] = nvme.NSDescTypeCSI, 1 // CSI 0: the NVM command set
	default:
		return q.respond(cmd, nvme.StatusInvalidField, 0)
	}
	return q.sendData(cmd, buf)
}

// namespace is the namespace of nsid, nil when there is none.
func (q *queue) namespace(nsid uint32) Namespace {
	if nsid == 0 || uint64(nsid) > uint64(len(q.t.cfg.Namespaces)) {
		return nil
	}
	return q.t.cfg.Namespaces[nsid-1]
}

// serial is the subsystem's serial number: the same for every controller
// of the subsystem, derived from its NQN.
func (t *Target) serial() string {
	h := fnv.New64a()
	h.Write([]byte(t.cfg.SubNQN))
	const digits = "0123456789ABCDEF"
	v := h.Sum64()
	b := make([]byte, 16)
	for i := range b {
		b[i] = digits[v>>(60-4*i)&0xF]
	}
	return string(b)
}

// nguid is a namespace's globally unique id, stable across restarts: a
// hash of the subsystem NQN and the NSID.
func (t *Target) nguid(nsid uint32) [16]byte {
	var g [16]byte
	h := fnv.New128a()
	h.Write([]byte(t.cfg.SubNQN))
	binary.Write(h, binary.LittleEndian, nsid)
	copy(g[:], h.Sum(nil))
	return g
}

// getLog serves any dword-aligned window of the error (0x01), SMART (0x02)
// and command effects (0x05) logs, all zeros here; bytes past a log's end
// are zeros too.
func (q *queue) getLog(cmd *nvme.Command) error {
	lid := uint8(cmd.CDW10)
	numd := (uint64(cmd.CDW11&0xFFFF)<<16 | uint64(cmd.CDW10>>16)) + 1
	off := uint64(cmd.CDW13)<<32 | uint64(cmd.CDW12)
	n := numd * 4
	if off%4 != 0 || n > maxTransfer {
		return q.respond(cmd, nvme.StatusInvalidField, 0)
	}
	if uint64(cmd.SGL.Length) != n || cmd.SGL.ID != nvme.SGLTransportData {
		return q.respond(cmd, nvme.StatusSGLLengthInvalid, 0)
	}
	switch lid {
	case 0x01, 0x02, 0x05:
	default:
		return q.respond(cmd, nvme.StatusInvalidLogPage, 0)
	}
	return q.sendData(cmd, make([]byte, n))
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
