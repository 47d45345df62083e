package nvme

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestStatusLayout(t *testing.T) {
	cases := []struct {
		s        Status
		sct, sc  uint8
		dnr      bool
		contains string
	}{
		{StatusInvalidOpcode, SCTGeneric, 0x01, true, "invalid opcode"},
		{StatusInvalidNamespace, SCTGeneric, 0x0B, true, "invalid namespace"},
		{StatusLBAOutOfRange, SCTGeneric, 0x80, true, "LBA out of range"},
		{StatusNamespaceNotReady, SCTGeneric, 0x82, false, "not ready"},
		{StatusConnectInvalidParm, SCTCommand, 0x82, true, "invalid parameters"},
		{StatusAERLimitExceeded, SCTCommand, 0x05, true, "limit"},
		{StatusMediaReadError, SCTMedia, 0x81, true, "read error"},
	}
	for _, c := range cases {
		if c.s.SCT() != c.sct || c.s.SC() != c.sc || c.s.DNR() != c.dnr || c.s.OK() {
			t.Errorf("%#04x: SCT %d SC %#x DNR %v", uint16(c.s), c.s.SCT(), c.s.SC(), c.s.DNR())
		}
		if MakeStatus(c.sct, c.sc, c.dnr) != c.s {
			t.Errorf("MakeStatus(%d, %#x, %v) = %#04x, want %#04x", c.sct, c.sc, c.dnr, MakeStatus(c.sct, c.sc, c.dnr), c.s)
		}
		if !strings.Contains(c.s.String(), c.contains) {
			t.Errorf("%#04x prints %q", uint16(c.s), c.s)
		}
	}
	if !StatusSuccess.OK() || !Status(1).OK() {
		t.Error("success (any phase) is not OK")
	}
}

func TestCommandRoundTrip(t *testing.T) {
	c := Command{Opcode: IOWrite, Flags: FlagSGL, CID: 0xABCD, NSID: 1, CDW2: 2, CDW3: 3, MPTR: 4,
		SGL: SGL{Addr: 5, Length: 6, ID: SGLTransportData}, CDW10: 10, CDW11: 11, CDW12: 12, CDW13: 13, CDW14: 14, CDW15: 15}
	b := make([]byte, CommandSize)
	c.Marshal(b)
	if b[0] != 1 || b[1] != 0x40 || b[2] != 0xCD || b[3] != 0xAB || b[24] != 5 || b[32] != 6 || b[39] != 0x5A || b[40] != 10 || b[60] != 15 {
		t.Errorf("SQE bytes % x", b)
	}
	var d Command
	if err := d.Unmarshal(b); err != nil || d != c {
		t.Errorf("round trip %+v, %v", d, err)
	}
	if err := d.Unmarshal(b[:63]); err == nil {
		t.Error("63-byte SQE accepted")
	}
	c.SetLBA(0x1_0000_0002, 8)
	if c.SLBA() != 0x1_0000_0002 || c.NLB() != 8 || c.CDW12&0xFFFF != 7 {
		t.Errorf("LBA fields %#x %d %#x", c.SLBA(), c.NLB(), c.CDW12)
	}
}

func TestConnectData(t *testing.T) {
	d := ConnectData{HostID: [16]byte{1, 2}, CntlID: 0xFFFF, SubNQN: "nqn.2024-01.dev.zflow:a", HostNQN: "nqn.2014-08.org.nvmexpress:uuid:x"}
	b := make([]byte, ConnectDataSize)
	if err := d.Marshal(b); err != nil {
		t.Fatal(err)
	}
	var e ConnectData
	if err := e.Unmarshal(b); err != nil || !reflect.DeepEqual(d, e) {
		t.Fatalf("round trip %+v, %v", e, err)
	}
	long := ConnectData{SubNQN: strings.Repeat("n", MaxNQNLength+1), HostNQN: "h"}
	if err := long.Marshal(b); err == nil {
		t.Error("a 224-byte NQN was marshalled")
	}
	for _, c := range []struct {
		name   string
		b      []byte
		offset int
	}{
		{"short", b[:100], 100},
		{"subsystem NQN not terminated", func() []byte { c := bytes.Clone(b); copy(c[256:512], bytes.Repeat([]byte{'a'}, 256)); return c }(), 256},
		{"host NQN empty", func() []byte { c := bytes.Clone(b); clear(c[512:768]); return c }(), 512},
	} {
		var cde *ConnectDataError
		if err := e.Unmarshal(c.b); !errors.As(err, &cde) || cde.Offset != c.offset {
			t.Errorf("%s: %v, want an error at offset %d", c.name, err, c.offset)
		}
	}
	if got := ConnectInvalidParam(16, true); got != 0x00010010 {
		t.Errorf("invalid parameter DW0 %#x, want 0x00010010", got)
	}
}

func TestConnectFields(t *testing.T) {
	want := Connect{RecFmt: 0, QID: 3, SQSize: 127, CAttr: ConnectCAttrDisableSQFlow, KATO: 5000}
	c := NewConnect(7, want)
	b := make([]byte, CommandSize)
	c.Marshal(b)
	if b[ConnectOffQID] != 3 || b[ConnectOffSQSize] != 127 || b[ConnectOffCAttr] != 4 || b[ConnectOffKATO] != 0x88 || b[4] != FabricsConnect {
		t.Errorf("connect SQE % x", b)
	}
	if got := ConnectOf(&c); got != want {
		t.Errorf("ConnectOf = %+v, want %+v", got, want)
	}
	p := NewPropertySet(1, PropCC, false, 0x00460001)
	pp, err := PropertyOf(&p)
	if err != nil || pp.Offset != PropCC || pp.Size8 || pp.Value != 0x00460001 {
		t.Errorf("property set %+v %v", pp, err)
	}
	p.CDW10 = 2
	if _, err := PropertyOf(&p); err == nil || !strings.Contains(err.Error(), "offset 40") {
		t.Errorf("size attribute 2: %v", err)
	}
	if CAP(127, 0x1E) != 0x000000201E01007F {
		t.Errorf("CAP = %#x, want 0x000000201E01007F", CAP(127, 0x1E))
	}
	if CCValue(true, 0) != 0x00460001 || CCValue(true, CCShnNormal) != 0x00464001 {
		t.Errorf("CC values %#x %#x", CCValue(true, 0), CCValue(true, CCShnNormal))
	}
}

func TestIdentifyRoundTrip(t *testing.T) {
	c := IdentifyController{VID: 1, SN: "sn", MN: "zflow", FR: "0.1", RAB: 6, MDTS: 5, CntlID: 3, Ver: VS14,
		CntrlType: CntrlTypeIO, ACL: 3, AERL: 3, LPA: 4, KAS: 10, SQES: 0x66, CQES: 0x44, MaxCmd: 128, NN: 2,
		VWC: 1, SGLS: 0x00100001, SubNQN: "nqn.x", IOCCSZ: 516, IORCSZ: 1, MSDBD: 1}
	b := make([]byte, IdentifySize)
	c.Marshal(b)
	if string(b[4:24]) != "sn                  " || b[512] != 0x66 || b[1792] != 0x04 || b[1793] != 0x02 {
		t.Errorf("identify controller bytes misplaced")
	}
	var d IdentifyController
	if err := d.Unmarshal(b); err != nil || d != c {
		t.Errorf("round trip %+v %v", d, err)
	}
	n := IdentifyNamespace{NSZE: 100, NCAP: 100, NUSE: 100, LBADS: 12, NGUID: [16]byte{9}}
	n.Marshal(b)
	if b[128+2] != 12 {
		t.Errorf("LBADS of format 0 at byte 130 = %d", b[130])
	}
	var m IdentifyNamespace
	if err := m.Unmarshal(b); err != nil || m != n {
		t.Errorf("round trip %+v %v", m, err)
	}
}

func TestNSDescriptors(t *testing.T) {
	b := make([]byte, 64)
	b[0], b[1] = NSDescTypeUUID, 16
	b[4] = 0xAA
	ds, err := NSDescriptors(b)
	if err != nil || len(ds) != 1 || ds[0].Type != NSDescTypeUUID || ds[0].Value[0] != 0xAA {
		t.Fatalf("%+v %v", ds, err)
	}
	b[20], b[21] = NSDescTypeNGUID, 200
	if _, err := NSDescriptors(b); err == nil || !strings.Contains(err.Error(), "offset 20") {
		t.Errorf("overlong descriptor: %v", err)
	}
	if got := ActiveNSList([]byte{1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0}); !reflect.DeepEqual(got, []uint32{1, 5}) {
		t.Errorf("active list %v", got)
	}
}

// FuzzConnectData: the Connect data and namespace descriptor parsers never
// panic on hostile bytes, and what decodes re-encodes to the same fields.
func FuzzConnectData(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var d ConnectData
		if err := d.Unmarshal(b); err == nil {
			out := make([]byte, ConnectDataSize)
			if err := d.Marshal(out); err != nil {
				t.Fatalf("decoded %+v does not encode: %v", d, err)
			}
			var e ConnectData
			if err := e.Unmarshal(out); err != nil || e != d {
				t.Fatalf("round trip %+v became %+v (%v)", d, e, err)
			}
		}
		_, _ = NSDescriptors(b)
		_ = ActiveNSList(b)
	})
}
