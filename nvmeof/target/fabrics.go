package target

import (
	"errors"

	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// fabrics runs Connect, Property Get and Property Set.
func (q *queue) fabrics(cmd *nvme.Command, data []byte) error {
	switch cmd.FCType() {
	case nvme.FabricsConnect:
		return q.connect(cmd, data)
	case nvme.FabricsPropertyGet, nvme.FabricsPropertySet:
		if !q.connected {
			return q.respond(cmd, nvme.StatusCommandSequence, 0)
		}
		if q.qid != 0 {
			return q.respond(cmd, nvme.StatusInvalidField, 0)
		}
		return q.property(cmd)
	}
	return q.respond(cmd, nvme.StatusInvalidOpcode, 0)
}

// connect runs a Fabrics Connect with the checks of docs/nvme-tcp.md 5.1,
// in the order SPDK makes them.
func (q *queue) connect(cmd *nvme.Command, data []byte) error {
	invalid := func(off int, inData bool) error {
		return q.respond(cmd, nvme.StatusConnectInvalidParm, nvme.ConnectInvalidParam(off, inData))
	}
	if q.connected {
		return q.respond(cmd, nvme.StatusCommandSequence, 0)
	}
	f := nvme.ConnectOf(cmd)
	if f.RecFmt != 0 {
		return q.respond(cmd, nvme.StatusConnectIncompatFmt, 0)
	}
	if len(data) != nvme.ConnectDataSize {
		return q.respond(cmd, nvme.StatusSGLLengthInvalid, 0)
	}
	var d nvme.ConnectData
	if err := d.Unmarshal(data); err != nil {
		var cde *nvme.ConnectDataError
		if errors.As(err, &cde) {
			return invalid(cde.Offset, true)
		}
		return invalid(0, true)
	}
	// The discovery subsystem takes any host, on the admin queue only.
	var sub *Subsystem
	if d.SubNQN != nvme.DiscoveryNQN {
		if sub = q.t.subsystem(d.SubNQN); sub == nil || q.port.discoveryOnly {
			return invalid(nvme.ConnectDataOffSubNQN, true)
		}
		if !sub.hostAllowed(d.HostNQN) {
			return q.respond(cmd, nvme.StatusConnectInvalidHost, 0)
		}
	} else if f.QID != 0 {
		return invalid(nvme.ConnectOffQID, false)
	}
	if f.SQSize == 0 || f.SQSize > q.t.cfg.MQES {
		return invalid(nvme.ConnectOffSQSize, false)
	}
	var c *controller
	if f.QID == 0 {
		if d.CntlID != nvme.CntlIDDynamic {
			return invalid(nvme.ConnectDataOffCntlID, true)
		}
		c = q.t.newController(sub, d.HostNQN, d.HostID, f.KATO)
	} else {
		c = q.t.controller(d.CntlID)
		if c == nil || c.sub != sub || c.hostNQN != d.HostNQN || c.hostID != d.HostID {
			return invalid(nvme.ConnectDataOffCntlID, true)
		}
		if !c.enabled() {
			return invalid(nvme.ConnectOffQID, false)
		}
	}
	c.mu.Lock()
	switch {
	case f.QID > c.nq+1:
		c.mu.Unlock()
		return q.respond(cmd, nvme.StatusInvalidQueueID, 0)
	case c.queues[f.QID] != nil:
		c.mu.Unlock()
		return q.respond(cmd, nvme.StatusCommandSequence, 0)
	}
	c.queues[f.QID] = q
	c.mu.Unlock()
	q.ctrl, q.qid, q.sqsize, q.connected = c, f.QID, f.SQSize, true
	q.sqhd %= f.SQSize + 1
	if f.QID == 0 {
		c.keepAlive()
	}
	sqhd := q.sqhd
	if f.CAttr&nvme.ConnectCAttrDisableSQFlow != 0 {
		sqhd = 0xFFFF
	}
	return q.respond2(cmd, nvme.StatusSuccess, uint32(c.id), 0, sqhd)
}

// property runs Property Get and Set on the admin queue. CAP is read only
// as 8 bytes: a 4-byte Get of CAP (or of any offset but VS, CC, CSTS) is
// "invalid field", which the Linux host never sends.
func (q *queue) property(cmd *nvme.Command) error {
	p, err := nvme.PropertyOf(cmd)
	if err != nil {
		return q.respond(cmd, nvme.StatusInvalidField, 0)
	}
	c := q.ctrl
	if cmd.FCType() == nvme.FabricsPropertySet {
		if p.Offset != nvme.PropCC || p.Size8 {
			return q.respond(cmd, nvme.StatusInvalidField, 0)
		}
		c.setCC(uint32(p.Value))
		return q.respond(cmd, nvme.StatusSuccess, 0)
	}
	cc, csts := c.properties()
	var v uint64
	switch {
	case p.Offset == nvme.PropCAP && p.Size8:
		v = nvme.CAP(q.t.cfg.MQES, capTimeout)
	case p.Offset == nvme.PropVS && !p.Size8:
		v = nvme.VS14
	case p.Offset == nvme.PropCC && !p.Size8:
		v = uint64(cc)
	case p.Offset == nvme.PropCSTS && !p.Size8:
		v = uint64(csts)
	default:
		return q.respond(cmd, nvme.StatusInvalidField, 0)
	}
	return q.respond2(cmd, nvme.StatusSuccess, uint32(v), uint32(v>>32), q.sqhd)
}
