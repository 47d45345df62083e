package target_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/zflowdev/zflow/nvmeof/initiator"
	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/pdu"
	"github.com/zflowdev/zflow/nvmeof/target"
)

// Tests named after the conformance checklist of docs/nvme-tcp.md (11),
// against our target through a host that writes PDUs by hand.

func TestChecklist02ICResp(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{})
	for _, dg := range []uint8{0, pdu.DigestHeader, pdu.DigestData, pdu.DigestHeader | pdu.DigestData} {
		_, resp := icRaw(t, addr, dg)
		if resp.CPDA != 0 || resp.MaxH2CData < 4096 || resp.MaxH2CData%4 != 0 || resp.Digest != dg || resp.PFV != 0 {
			t.Errorf("asked digests %#x: ICResp %+v", dg, resp)
		}
	}
}

func TestChecklist03Sequence(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{})
	// A first PDU that is not an ICReq.
	r := dialRaw(t, addr)
	r.send(&pdu.CapsuleCmd{SQE: nvme.NewIdentify(1, 1, 0)})
	if tr := r.term(); tr.FES != pdu.FESPDUSequence {
		t.Errorf("capsule before ICReq: FES %d, want 2", tr.FES)
	}
	// A second ICReq.
	r, _ = icRaw(t, addr, 0)
	r.send(&pdu.ICReq{})
	if tr := r.term(); tr.FES != pdu.FESPDUSequence {
		t.Errorf("second ICReq: FES %d, want 2", tr.FES)
	}
	// An unknown type.
	r, _ = icRaw(t, addr, 0)
	r.sendBytes([]byte{0x08, 0, 24, 0, 24, 0, 0, 0})
	if tr := r.term(); tr.FES != pdu.FESInvalidHeaderField || tr.FEI != 0 {
		t.Errorf("type 8: FES %d FEI %d, want 1 and 0", tr.FES, tr.FEI)
	}
}

// Checklist 4 and 5: hlen and plen errors, and what the TermReq holds.
func TestChecklist04and05HeaderFields(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{})
	for _, c := range []struct {
		name string
		hdr  []byte
		fei  uint32
	}{
		{"hlen 24 on a CapsuleCmd", []byte{0x04, 0, 24, 0, 72, 0, 0, 0}, 2},
		{"plen 16 below hlen 72", []byte{0x04, 0, 72, 0, 16, 0, 0, 0}, 4},
	} {
		r, _ := icRaw(t, addr, 0)
		r.sendBytes(c.hdr)
		tr := r.term()
		if tr.FES != pdu.FESInvalidHeaderField || tr.FEI != c.fei {
			t.Errorf("%s: FES %d FEI %d, want 1 and %d", c.name, tr.FES, tr.FEI, c.fei)
		}
		if !bytes.Equal(tr.Data, c.hdr) {
			t.Errorf("%s: TermReq carries % x, want the offending header % x", c.name, tr.Data, c.hdr)
		}
		if n := pdu.TermReqHLen + len(tr.Data); n < 24 || n > 152 {
			t.Errorf("%s: TermReq plen %d", c.name, n)
		}
	}
}

// Checklist 9: a corrupt header digest gets FES 3; a corrupt data digest
// closes the connection.
func TestChecklist09CorruptDigest(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{})
	o := pdu.Options{HeaderDigest: true, DataDigest: true}
	capsule := &pdu.CapsuleCmd{SQE: nvme.NewConnect(1, nvme.Connect{SQSize: 31}), Data: connectData(t, nvme.CntlIDDynamic, subNQN, hostNQN)}
	b := pdu.Encode(nil, capsule, o)
	r, _ := icRaw(t, addr, pdu.DigestHeader|pdu.DigestData)
	bad := bytes.Clone(b)
	bad[72] ^= 0xFF
	r.sendBytes(bad)
	if tr := r.term(); tr.FES != pdu.FESHeaderDigest {
		t.Errorf("header digest: FES %d, want 3", tr.FES)
	}
	// A bad data digest fails the command, not the connection (the
	// transport specification; TestDataDigestFailsTheCommand has more).
	r, _ = icRaw(t, addr, pdu.DigestHeader|pdu.DigestData)
	bad = bytes.Clone(b)
	bad[len(bad)-1] ^= 0xFF
	r.sendBytes(bad)
	if resp, ok := r.next().(*pdu.CapsuleResp); !ok || resp.CQE.Status != nvme.StatusTransientTransport {
		t.Errorf("corrupt data digest: %+v, want a transient transport error", resp)
	}
	r.sendBytes(b)
	if resp, ok := r.next().(*pdu.CapsuleResp); !ok || !resp.CQE.Status.OK() {
		t.Errorf("Connect after the digest error: %+v", resp)
	}
}

func TestChecklist11to13ConnectErrors(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{AllowHosts: []string{hostNQN}})
	good := connectData(t, nvme.CntlIDDynamic, subNQN, hostNQN)
	cases := []struct {
		name string
		f    nvme.Connect
		data []byte
		st   nvme.Status
		dw0  uint32
	}{
		{"RECFMT 1", nvme.Connect{RecFmt: 1, SQSize: 31}, good, nvme.StatusConnectIncompatFmt, 0},
		{"admin connect to controller 1", nvme.Connect{SQSize: 31}, connectData(t, 1, subNQN, hostNQN), nvme.StatusConnectInvalidParm, 0x00010010},
		{"SQSIZE 0", nvme.Connect{SQSize: 0}, good, nvme.StatusConnectInvalidParm, 44},
		{"unknown subsystem", nvme.Connect{SQSize: 31}, connectData(t, nvme.CntlIDDynamic, "nqn.2024-01.dev.zflow:nope", hostNQN), nvme.StatusConnectInvalidParm, 0x00010100},
		{"host not allowed", nvme.Connect{SQSize: 31}, connectData(t, nvme.CntlIDDynamic, subNQN, "nqn.2014-08.org.nvmexpress:uuid:other"), nvme.StatusConnectInvalidHost, 0},
		{"I/O connect to an unknown controller", nvme.Connect{QID: 1, SQSize: 31}, connectData(t, 77, subNQN, hostNQN), nvme.StatusConnectInvalidParm, 0x00010010},
	}
	for _, c := range cases {
		r, _ := icRaw(t, addr, 0)
		cqe, _ := r.cmd(nvme.NewConnect(0, c.f), c.data)
		if cqe.Status != c.st || cqe.DW0 != c.dw0 {
			t.Errorf("%s: %s DW0 %#x, want %s DW0 %#x", c.name, cqe.Status, cqe.DW0, c.st, c.dw0)
		}
	}
}

// Checklist 14, 15, 19, 34: the controller id, I/O Connect before CC.EN,
// commands before enabling, CID/SQID/SQHD echoes.
func TestChecklist14to19Controller(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{})
	r, _ := icRaw(t, addr, 0)
	cqe, _ := r.cmd(nvme.NewConnect(0, nvme.Connect{SQSize: 31}), connectData(t, nvme.CntlIDDynamic, subNQN, hostNQN))
	if !cqe.Status.OK() || cqe.DW0 == 0 || cqe.SQID != 0 || cqe.SQHD != 1 {
		t.Fatalf("admin connect: %+v", cqe)
	}
	id := uint16(cqe.DW0)
	// 19: an admin command before CC.EN = 1.
	if cqe, _ := r.cmd(nvme.NewIdentify(0, nvme.CNSController, 0), nil); cqe.Status != nvme.StatusCommandSequence {
		t.Errorf("identify before CC.EN: %s", cqe.Status)
	}
	// 15: an I/O Connect before CC.EN = 1.
	io, _ := icRaw(t, addr, 0)
	if cqe, _ := io.cmd(nvme.NewConnect(0, nvme.Connect{QID: 1, SQSize: 31}), connectData(t, id, subNQN, hostNQN)); cqe.Status != nvme.StatusConnectInvalidParm || cqe.DW0 != 42 {
		t.Errorf("I/O connect before CC.EN: %s DW0 %#x", cqe.Status, cqe.DW0)
	}
	// 16: CAP.
	cqe, _ = r.cmd(nvme.NewPropertyGet(0, nvme.PropCAP, true), nil)
	capv := uint64(cqe.DW1)<<32 | uint64(cqe.DW0)
	if !cqe.Status.OK() || capv>>16&1 != 1 || nvme.CAPMQES(capv) < 31 || capv>>32&0xF != 0 {
		t.Errorf("CAP %#x (%s)", capv, cqe.Status)
	}
	if cqe, _ := r.cmd(nvme.NewPropertyGet(0, nvme.PropCAP, false), nil); cqe.Status != nvme.StatusInvalidField {
		t.Errorf("4-byte Get of CAP: %s, want invalid field (our documented choice)", cqe.Status)
	}
	// 17: a wrong IOSQES sets CSTS.CFS; then a right CC sets RDY.
	r.cmd(nvme.NewPropertySet(0, nvme.PropCC, false, uint64(nvme.CCValue(true, 0)&^(0xF<<16)|5<<16)), nil)
	if cqe, _ := r.cmd(nvme.NewPropertyGet(0, nvme.PropCSTS, false), nil); cqe.DW0&nvme.CSTSFatal == 0 || cqe.DW0&nvme.CSTSReady != 0 {
		t.Errorf("CSTS after IOSQES 5: %#x, want CFS and not RDY", cqe.DW0)
	}
	r.cmd(nvme.NewPropertySet(0, nvme.PropCC, false, 0), nil)
	r.cmd(nvme.NewPropertySet(0, nvme.PropCC, false, uint64(nvme.CCValue(true, 0))), nil)
	if cqe, _ := r.cmd(nvme.NewPropertyGet(0, nvme.PropCSTS, false), nil); cqe.DW0 != nvme.CSTSReady {
		t.Errorf("CSTS after CC.EN: %#x, want RDY", cqe.DW0)
	}
	// 14: Identify Controller reports Connect's id (20 checks its fields).
	cqe, data := r.cmd(nvme.NewIdentify(0, nvme.CNSController, 0), nil)
	var ic nvme.IdentifyController
	if err := ic.Unmarshal(data); err != nil || !cqe.Status.OK() {
		t.Fatal(err, cqe.Status)
	}
	if ic.CntlID != id {
		t.Errorf("Identify CNTLID %d, Connect said %d", ic.CntlID, id)
	}
	// 20
	if ic.KAS == 0 || ic.SGLS&3 == 0 || ic.IOCCSZ < 4 || ic.IORCSZ < 1 || ic.ICDOFF != 0 || ic.MaxCmd == 0 || ic.SQES != 0x66 || ic.CQES != 0x44 {
		t.Errorf("Identify Controller %+v", ic)
	}
	// 34: SQHD advances modulo SQSIZE + 1 = 32 and CID/SQID are echoed.
	for i := range 40 {
		cqe, _ := r.cmd(nvme.Command{Opcode: nvme.AdminKeepAlive}, nil)
		if !cqe.Status.OK() || cqe.SQID != 0 || cqe.CID != r.cid {
			t.Fatalf("keep alive %d: %+v", i, cqe)
		}
		if i == 39 && cqe.SQHD != uint16((r.cid)%32) {
			t.Errorf("SQHD %d after %d commands, want %d", cqe.SQHD, r.cid, r.cid%32)
		}
	}
	// 18: shutdown.
	r.cmd(nvme.NewPropertySet(0, nvme.PropCC, false, uint64(nvme.CCValue(true, nvme.CCShnNormal))), nil)
	if cqe, _ := r.cmd(nvme.NewPropertyGet(0, nvme.PropCSTS, false), nil); cqe.DW0>>2&3 != 2 {
		t.Errorf("CSTS after CC.SHN = 01: %#x, want SHST 10", cqe.DW0)
	}
}

// Checklist 21, 22, 23 and 24.
func TestChecklist21to24IdentifyAndQueues(t *testing.T) {
	ns1, _ := target.NewRAM(1<<20, 12)
	ns2, _ := target.NewRAM(1<<20, 9)
	ns3, _ := target.NewRAM(1<<20, 12)
	addr, _ := serve(t, 0, target.Config{Namespaces: []target.Namespace{ns1, ns2, ns3}})
	r, _ := icRaw(t, addr, 0)
	id := r.adminUp(0)
	_, list := r.cmd(nvme.NewIdentify(0, nvme.CNSActiveNSList, 1), nil)
	if got := nvme.ActiveNSList(list); len(got) != 2 || got[0] != 2 || got[1] != 3 || len(list) != 4096 {
		t.Errorf("active list above 1: %v", got)
	}
	_, d := r.cmd(nvme.NewIdentify(0, nvme.CNSNSDescriptors, 2), nil)
	ds, err := nvme.NSDescriptors(d)
	if err != nil || len(ds) == 0 || (ds[0].Type != nvme.NSDescTypeNGUID && ds[0].Type != nvme.NSDescTypeUUID) {
		t.Errorf("descriptors %+v %v", ds, err)
	}
	_, d = r.cmd(nvme.NewIdentify(0, nvme.CNSNamespace, 2), nil)
	var in nvme.IdentifyNamespace
	in.Unmarshal(d)
	if in.NSZE != 2048 || in.NCAP != in.NSZE || in.NUSE == 0 || in.NUSE > in.NCAP || in.LBADS != 9 {
		t.Errorf("namespace 2: %+v", in)
	}
	if cqe, _ := r.cmd(nvme.NewIdentify(0, nvme.CNSNamespace, 4), nil); cqe.Status != nvme.StatusInvalidNamespace {
		t.Errorf("namespace 4: %s", cqe.Status)
	}
	// 24: ask for 3 queues (0's based 2): granted no more; QID 4 refused.
	cqe, _ := r.cmd(nvme.Command{Opcode: nvme.AdminSetFeatures, CDW10: 0x07, CDW11: 2 | 2<<16}, nil)
	if !cqe.Status.OK() || uint16(cqe.DW0) > 2 || uint16(cqe.DW0>>16) > 2 {
		t.Errorf("number of queues: %+v", cqe)
	}
	io, _ := icRaw(t, addr, 0)
	if cqe, _ := io.cmd(nvme.NewConnect(0, nvme.Connect{QID: 4, SQSize: 31}), connectData(t, id, subNQN, hostNQN)); cqe.Status != nvme.StatusInvalidQueueID {
		t.Errorf("QID 4 of 3: %s", cqe.Status)
	}
	io, _ = icRaw(t, addr, 0)
	if cqe, _ := io.cmd(nvme.NewConnect(0, nvme.Connect{QID: 3, SQSize: 31}), connectData(t, id, subNQN, hostNQN)); !cqe.Status.OK() {
		t.Errorf("QID 3 of 3: %s", cqe.Status)
	}
}

// Checklist 29 and 30: the R2T flow, a wrong DATAO, in-capsule mismatches.
func TestChecklist29and30Writes(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{})
	ioUp := func() *raw { return ioRaw(t, addr, 0) }
	write := nvme.Command{Opcode: nvme.IOWrite, Flags: nvme.FlagSGL, CID: 100, NSID: 1, SGL: nvme.SGL{ID: nvme.SGLTransportData, Length: 16384}}
	write.SetLBA(0, 4)
	q := ioUp()
	q.send(&pdu.CapsuleCmd{SQE: write})
	r2t, ok := q.next().(*pdu.R2T)
	if !ok || r2t.CCCID != 100 || r2t.R2TO != 0 || r2t.R2TL != 16384 {
		t.Fatalf("R2T %+v", r2t)
	}
	data := bytes.Repeat([]byte{0xA5}, 16384)
	q.send(&pdu.Data{Dir: pdu.TypeH2CData, CCCID: 100, TTAG: r2t.TTAG, Data: data[:8192]})
	q.send(&pdu.Data{Dir: pdu.TypeH2CData, CCCID: 100, TTAG: r2t.TTAG, DataO: 8192, Data: data[8192:], Last: true})
	if resp, ok := q.next().(*pdu.CapsuleResp); !ok || !resp.CQE.Status.OK() || resp.CQE.CID != 100 || resp.CQE.SQID != 1 {
		t.Fatalf("write completion %+v", resp)
	}
	read := nvme.Command{Opcode: nvme.IORead, NSID: 1, SGL: nvme.SGL{ID: nvme.SGLTransportData, Length: 16384}}
	read.SetLBA(0, 4)
	if cqe, got := q.cmd(read, nil); !cqe.Status.OK() || !bytes.Equal(got, data) {
		t.Fatalf("read back: %s", cqe.Status)
	}
	// A wrong DATAO.
	q.send(&pdu.CapsuleCmd{SQE: write})
	r2t = q.next().(*pdu.R2T)
	q.send(&pdu.Data{Dir: pdu.TypeH2CData, CCCID: 100, TTAG: r2t.TTAG, DataO: 4096, Data: data[:4096]})
	if tr := q.term(); tr.FES != pdu.FESDataOutOfRange || tr.FEI != pdu.OffDATAO {
		t.Errorf("wrong DATAO: FES %d FEI %d", tr.FES, tr.FEI)
	}
	// More data than the R2T asked for.
	q = ioUp()
	q.send(&pdu.CapsuleCmd{SQE: write})
	r2t = q.next().(*pdu.R2T)
	q.send(&pdu.Data{Dir: pdu.TypeH2CData, CCCID: 100, TTAG: r2t.TTAG, Data: data[:8192]})
	q.send(&pdu.Data{Dir: pdu.TypeH2CData, CCCID: 100, TTAG: r2t.TTAG, DataO: 8192, Data: append(bytes.Clone(data[8192:]), data[:4096]...), Last: true})
	if tr := q.term(); tr.FES != pdu.FESDataOutOfRange {
		t.Errorf("data past the R2T: FES %d", tr.FES)
	}
	// In-capsule: an SGL length that differs from the data, and an offset.
	for _, c := range []struct {
		name string
		sgl  nvme.SGL
		fei  uint32
	}{
		{"SGL length 8192 for 4096 bytes", nvme.SGL{ID: nvme.SGLDataBlockOffset, Length: 8192}, 40},
		{"SGL address 16", nvme.SGL{ID: nvme.SGLDataBlockOffset, Length: 4096, Addr: 16}, 32},
		{"SGL 0x5A with data", nvme.SGL{ID: nvme.SGLTransportData, Length: 4096}, 47},
	} {
		q = ioUp()
		w := write
		w.SetLBA(0, 1)
		w.SGL = c.sgl
		q.send(&pdu.CapsuleCmd{SQE: w, Data: data[:4096]})
		if tr := q.term(); tr.FES != pdu.FESInvalidHeaderField || tr.FEI != c.fei {
			t.Errorf("%s: FES %d FEI %d, want 1 and %d", c.name, tr.FES, tr.FEI, c.fei)
		}
	}
	// An in-capsule write as the Linux host sends it: pdo 72, SGL 0x01.
	q = ioUp()
	w := write
	w.SetLBA(8, 1)
	b := pdu.Encode(nil, &pdu.CapsuleCmd{SQE: func() nvme.Command { w.SGL = nvme.SGL{ID: nvme.SGLDataBlockOffset, Length: 4096}; return w }(), Data: data[:4096]}, pdu.Options{})
	if b[3] != 72 || binary.LittleEndian.Uint32(b[4:]) != 72+4096 {
		t.Fatalf("in-capsule pdo %d plen %d", b[3], binary.LittleEndian.Uint32(b[4:]))
	}
	q.sendBytes(b)
	if resp, ok := q.next().(*pdu.CapsuleResp); !ok || !resp.CQE.Status.OK() {
		t.Fatalf("in-capsule write: %+v", resp)
	}
}

// Checklist 32: with no Keep Alive for longer than KATO (rounded up to
// KAS, 1 s) the target closes every connection of the controller.
func TestChecklist32KeepAliveTimeout(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{})
	r, _ := icRaw(t, addr, 0)
	r.adminUp(500)
	if cqe, _ := r.cmd(nvme.Command{Opcode: nvme.AdminKeepAlive}, nil); !cqe.Status.OK() {
		t.Fatalf("keep alive: %s", cqe.Status)
	}
	r.nc.SetDeadline(time.Now().Add(20 * time.Second))
	if p, err := r.c.ReadPDU(); err == nil {
		t.Fatalf("got %+v, want the connection closed after KATO", p)
	}
	// Our initiator keeps a controller alive past its KATO.
	ctrl := connect(t, addr, initiator.Config{KATO: 400 * time.Millisecond})
	time.Sleep(1500 * time.Millisecond)
	ns, err := ctrl.Namespace(1)
	if err != nil {
		t.Fatalf("after 1.5 s with KATO 400 ms and keep-alives: %v", err)
	}
	if err := ctrl.Read(0, ns, 0, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
}

// Checklist 33: AERs are held; the (AERL + 2)-th gets SCT 1 SC 0x05.
func TestChecklist33AERLimit(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{})
	r, _ := icRaw(t, addr, 0)
	r.adminUp(0)
	_, data := r.cmd(nvme.NewIdentify(0, nvme.CNSController, 0), nil)
	var ic nvme.IdentifyController
	ic.Unmarshal(data)
	for i := range int(ic.AERL) + 1 {
		r.send(&pdu.CapsuleCmd{SQE: nvme.Command{Opcode: nvme.AdminAsyncEvent, Flags: nvme.FlagSGL, CID: uint16(200 + i)}})
	}
	cqe, _ := r.cmd(nvme.Command{Opcode: nvme.AdminAsyncEvent}, nil)
	if cqe.Status != nvme.StatusAERLimitExceeded {
		t.Errorf("AER %d: %s, want the limit exceeded (the earlier ones are held)", ic.AERL+2, cqe.Status)
	}
}
