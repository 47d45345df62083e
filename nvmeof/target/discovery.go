package target

import (
	"net"
	"strconv"

	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// discoveryAdmin runs an admin command on an enabled discovery controller:
// Identify Controller, the discovery log page, Keep Alive, the features a
// host sets on any controller, and AERs (held; no discovery log change is
// announced, OAES says so).
func (q *queue) discoveryAdmin(cmd *nvme.Command) error {
	switch cmd.Opcode {
	case nvme.AdminIdentify:
		if cmd.SGL.Length < nvme.IdentifySize || cmd.SGL.ID != nvme.SGLTransportData {
			return q.respond(cmd, nvme.StatusSGLLengthInvalid, 0)
		}
		if uint8(cmd.CDW10) != nvme.CNSController {
			return q.respond(cmd, nvme.StatusInvalidField, 0)
		}
		buf := make([]byte, nvme.IdentifySize)
		id := q.identifyController(nvme.DiscoveryNQN, nvme.CntrlTypeDiscovery)
		// A discovery controller has no I/O queues: the capsule sizes are
		// reserved, 0, as Linux's nvmet leaves them.
		id.IOCCSZ, id.IORCSZ = 0, 0
		id.Marshal(buf)
		return q.sendData(cmd, buf)
	case nvme.AdminGetLogPage:
		if nvme.GetLogPageOf(cmd).LID != nvme.LogDiscovery {
			return q.respond(cmd, nvme.StatusInvalidLogPage, 0)
		}
		return q.sendLog(cmd, q.t.discoveryLog(q.ctrl.hostNQN, q.conn.NetConn().LocalAddr()))
	case nvme.AdminKeepAlive, nvme.AdminSetFeatures, nvme.AdminGetFeatures, nvme.AdminAsyncEvent:
		return q.admin(cmd, nil)
	}
	return q.respond(cmd, nvme.StatusInvalidOpcode, 0)
}

// discoveryLog is the discovery log page for host: one entry per subsystem
// the host may connect to and port that serves it. A port listening on an
// unspecified address is given as local, the address the host reached the
// discovery controller at.
func (t *Target) discoveryLog(host string, local net.Addr) []byte {
	type ep struct {
		id         uint16
		addr, port string
		fam        uint8
	}
	t.mu.Lock()
	gen := t.genctr
	var eps []ep
	for _, p := range t.ports {
		if p.discoveryOnly {
			continue
		}
		a, ok := p.ln.Addr().(*net.TCPAddr)
		if !ok {
			continue
		}
		ip := a.IP
		if ip.IsUnspecified() {
			if l, ok := local.(*net.TCPAddr); ok {
				ip = l.IP
			}
		}
		fam := uint8(nvme.AdrFamIPv6)
		if ip.To4() != nil {
			fam, ip = nvme.AdrFamIPv4, ip.To4()
		}
		eps = append(eps, ep{id: p.id, addr: ip.String(), port: strconv.Itoa(a.Port), fam: fam})
	}
	t.mu.Unlock()
	var ents []nvme.DiscoveryEntry
	for _, s := range t.subs {
		if !s.hostAllowed(host) {
			continue
		}
		for _, e := range eps {
			ents = append(ents, nvme.DiscoveryEntry{
				TrType: nvme.TrTypeTCP, AdrFam: e.fam, SubType: nvme.SubTypeNVM, PortID: e.id,
				CntlID: nvme.CntlIDDynamic, ASQSZ: t.cfg.MQES + 1, TrSvcID: e.port, SubNQN: s.NQN, TrAddr: e.addr,
			})
		}
	}
	page := make([]byte, nvme.DiscoveryHeaderSize+len(ents)*nvme.DiscoveryEntrySize)
	h := nvme.DiscoveryHeader{GenCtr: gen, NumRec: uint64(len(ents))}
	h.Marshal(page)
	for i := range ents {
		ents[i].Marshal(page[nvme.DiscoveryHeaderSize+i*nvme.DiscoveryEntrySize:])
	}
	return page
}
