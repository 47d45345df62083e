package pdu

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// unhex turns "04 00 48 ..." into bytes.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Checklist 6: CRC32C known answers.
func TestChecklist06CRC32CKnownAnswers(t *testing.T) {
	if got := CRC32C([]byte("123456789")); got != 0xE3069283 {
		t.Errorf("CRC32C(123456789) = %#x, want 0xE3069283", got)
	}
	got := AppendDataDigest(nil, make([]byte, 32))
	if !bytes.Equal(got, []byte{0xAA, 0x36, 0x91, 0x8A}) {
		t.Errorf("digest of 32 zero bytes on the wire = % x, want aa 36 91 8a", got)
	}
}

// Checklist 1: ICReq and ICResp are exactly 128 bytes, hlen = plen = 128,
// pdo 0, flags 0, PFV 0, reserved bytes zero — whatever digests the
// connection uses.
func TestChecklist01ICSize(t *testing.T) {
	for _, o := range []Options{{}, {HeaderDigest: true, DataDigest: true, PDA: 3}} {
		req := Encode(nil, &ICReq{HPDA: 0, Digest: DigestHeader | DigestData, MaxR2T: 0}, o)
		want := make([]byte, 128)
		copy(want, unhex(t, "00 00 80 00 80 00 00 00  00 00 00 03 00 00 00 00"))
		if !bytes.Equal(req, want) {
			t.Errorf("ICReq (options %+v) =\n% x\nwant\n% x", o, req, want)
		}
		resp := Encode(nil, &ICResp{CPDA: 0, Digest: DigestHeader, MaxH2CData: 0x400000}, o)
		copy(want, unhex(t, "01 00 80 00 80 00 00 00  00 00 00 01 00 00 40 00"))
		if !bytes.Equal(resp, want) {
			t.Errorf("ICResp (options %+v) =\n% x\nwant\n% x", o, resp, want)
		}
	}
}

// Checklist 10: a Connect capsule without digests begins
// 04 00 48 48 48 04 00 00 (hlen 72, pdo 72, plen 1096), as Linux sends it.
func TestChecklist10ConnectCapsuleBytes(t *testing.T) {
	data := make([]byte, nvme.ConnectDataSize)
	d := nvme.ConnectData{CntlID: nvme.CntlIDDynamic, SubNQN: "nqn.2024-01.dev.zflow:test", HostNQN: "nqn.2014-08.org.nvmexpress:uuid:1"}
	if err := d.Marshal(data); err != nil {
		t.Fatal(err)
	}
	cmd := &CapsuleCmd{SQE: nvme.NewConnect(0x1234, nvme.Connect{QID: 0, SQSize: 31, KATO: 5000}), Data: data}
	b := Encode(nil, cmd, Options{})
	wantHead := unhex(t, "04 00 48 48 48 04 00 00")
	if !bytes.Equal(b[:8], wantHead) {
		t.Fatalf("common header % x, want % x", b[:8], wantHead)
	}
	// The SQE: opcode 7F, flags 40, CID 1234, FCTYPE 01, SGL 01 of 1024 bytes
	// at address 0, RECFMT 0, QID 0, SQSIZE 31, CATTR 0, KATO 5000.
	wantSQE := unhex(t, `
		7f 40 34 12 01 00 00 00  00 00 00 00 00 00 00 00
		00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
		00 04 00 00 00 00 00 01  00 00 00 00 1f 00 00 00
		88 13 00 00 00 00 00 00  00 00 00 00 00 00 00 00`)
	if !bytes.Equal(b[8:72], wantSQE) {
		t.Errorf("SQE\n% x\nwant\n% x", b[8:72], wantSQE)
	}
	if len(b) != 1096 || !bytes.Equal(b[72:], data) {
		t.Errorf("capsule is %d bytes, want 1096 with the data at 72", len(b))
	}
	// The data: controller id FFFF at 16, NQNs at 256 and 512.
	if !bytes.Equal(b[72+16:72+18], []byte{0xff, 0xff}) || string(b[72+256:72+256+26]) != "nqn.2024-01.dev.zflow:test" || b[72+256+26] != 0 {
		t.Errorf("connect data misplaced: % x", b[72:72+32])
	}
	// With a header digest the data moves to 76 and DDGSTF adds 4 bytes.
	b = Encode(nil, cmd, Options{HeaderDigest: true, DataDigest: true})
	if !bytes.Equal(b[:8], unhex(t, "04 03 48 4c 50 04 00 00")) {
		t.Errorf("with digests: common header % x, want 04 03 48 4c 50 04 00 00", b[:8])
	}
	if got := binary.LittleEndian.Uint32(b[72:]); got != CRC32C(b[:72]) {
		t.Errorf("header digest %#x, want CRC32C of the 72-byte header", got)
	}
	if got := binary.LittleEndian.Uint32(b[len(b)-4:]); got != CRC32C(data) {
		t.Errorf("data digest %#x, want CRC32C of the data", got)
	}
}

// Hand-built vectors for the PDUs without an SQE: what the spec's layouts
// say each byte is.
func TestVectors(t *testing.T) {
	cases := []struct {
		name string
		p    PDU
		o    Options
		want string
	}{
		{"CapsuleResp", &CapsuleResp{CQE: nvme.Completion{DW0: 0x00010001, SQHD: 1, SQID: 0, CID: 0xBEEF, Status: nvme.StatusInvalidField}}, Options{},
			"05 00 18 00 18 00 00 00  01 00 01 00 00 00 00 00  01 00 00 00 ef be 04 80"},
		{"R2T", &R2T{CCCID: 7, TTAG: 0x0102, R2TO: 0, R2TL: 8192}, Options{},
			"09 00 18 00 18 00 00 00  07 00 02 01 00 00 00 00  00 20 00 00 00 00 00 00"},
		{"C2HData last", &Data{Dir: TypeC2HData, Last: true, CCCID: 3, DataO: 4096, Data: []byte{1, 2, 3, 4}}, Options{},
			"07 04 18 18 1c 00 00 00  03 00 00 00 00 10 00 00  04 00 00 00 00 00 00 00  01 02 03 04"},
		{"H2CData padded to PDA 7 (32 bytes)", &Data{Dir: TypeH2CData, CCCID: 3, TTAG: 9, Data: []byte{0xAA, 0xBB, 0xCC, 0xDD}}, Options{PDA: 7},
			"06 00 18 20 24 00 00 00  03 00 09 00 00 00 00 00  04 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  aa bb cc dd"},
		{"C2HTermReq", &TermReq{Dir: TypeC2HTermReq, FES: FESInvalidHeaderField, FEI: 2, Data: []byte{0x04, 0x00, 0x18}}, Options{HeaderDigest: true},
			"03 00 18 00 1b 00 00 00  01 00 02 00 00 00 00 00  00 00 00 00 00 00 00 00  04 00 18"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := unhex(t, c.want)
			got := Encode(nil, c.p, c.o)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded\n% x\nwant\n% x", got, want)
			}
			p, n, err := Decode(want, c.o)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(want) {
				t.Errorf("decode took %d bytes, want %d", n, len(want))
			}
			if !reflect.DeepEqual(p, c.p) {
				t.Errorf("decoded %+v, want %+v", p, c.p)
			}
		})
	}
}

// Checklist 7 and 8 at the codec: with digests on, every PDU of a type that
// carries one has the flag and a correct digest.
func TestChecklist07and08Digests(t *testing.T) {
	o := Options{HeaderDigest: true, DataDigest: true}
	data := bytes.Repeat([]byte{0x5A}, 100)
	for _, p := range []PDU{
		&CapsuleCmd{SQE: nvme.Command{Opcode: nvme.IOWrite, CID: 1, SGL: nvme.SGL{ID: nvme.SGLDataBlockOffset, Length: 100}}, Data: data},
		&CapsuleCmd{SQE: nvme.Command{Opcode: nvme.IORead, CID: 1}},
		&CapsuleResp{CQE: nvme.Completion{CID: 1}},
		&R2T{CCCID: 1, R2TL: 4096},
		&Data{Dir: TypeH2CData, CCCID: 1, Data: data},
		&Data{Dir: TypeC2HData, CCCID: 1, Last: true, Data: data},
	} {
		b := Encode(nil, p, o)
		h := unmarshalHeader(b)
		if h.Flags&FlagHDGST == 0 {
			t.Errorf("%s: no HDGSTF", h.Type)
		}
		if got := binary.LittleEndian.Uint32(b[h.HLen:]); got != CRC32C(b[:h.HLen]) {
			t.Errorf("%s: header digest %#x, want %#x", h.Type, got, CRC32C(b[:h.HLen]))
		}
		if len(p.payload()) > 0 {
			if h.Flags&FlagDDGST == 0 {
				t.Errorf("%s: no DDGSTF on a PDU with data", h.Type)
			}
			if got := binary.LittleEndian.Uint32(b[len(b)-4:]); got != CRC32C(data) {
				t.Errorf("%s: data digest %#x, want %#x", h.Type, got, CRC32C(data))
			}
			if int(h.PDO) != int(h.HLen)+4 {
				t.Errorf("%s: pdo %d, want hlen + 4", h.Type, h.PDO)
			}
		}
		if _, _, err := Decode(b, o); err != nil {
			t.Errorf("%s: %v", h.Type, err)
		}
	}
}

// A bad PDU is an *Error with the field's offset and the FES a TermReq
// answers it with (checklist 4 and 9 at the codec).
func TestDecodeErrors(t *testing.T) {
	o := Options{}
	od := Options{HeaderDigest: true, DataDigest: true}
	good := func(p PDU, o Options) []byte { return Encode(nil, p, o) }
	patch := func(b []byte, off int, v ...byte) []byte {
		c := bytes.Clone(b)
		copy(c[off:], v)
		return c
	}
	resp := good(&CapsuleResp{CQE: nvme.Completion{CID: 1}}, o)
	c2h := good(&Data{Dir: TypeC2HData, CCCID: 1, Last: true, Data: []byte{1, 2, 3, 4}}, od)
	cases := []struct {
		name   string
		b      []byte
		o      Options
		field  string
		offset int
		fes    uint16
	}{
		{"short common header", resp[:5], o, "common header", 5, 0},
		{"unknown type 0x08", patch(resp, 0, 0x08), o, "type", 0, FESInvalidHeaderField},
		{"unknown type 0xff", patch(resp, 0, 0xff), o, "type", 0, FESInvalidHeaderField},
		{"hlen not the type's", patch(resp, 2, 72), o, "hlen", 2, FESInvalidHeaderField},
		{"plen below hlen", patch(resp, 4, 16, 0, 0, 0), o, "plen", 4, FESInvalidHeaderField},
		{"plen too long for a resp", patch(resp, 4, 28, 0, 0, 0), o, "plen", 4, FESInvalidHeaderField},
		{"LAST on a resp", patch(resp, 1, FlagLast), o, "flags", 1, FESInvalidHeaderField},
		{"HDGSTF not negotiated", patch(resp, 1, FlagHDGST), o, "flags", 1, FESInvalidHeaderField},
		{"HDGSTF missing", resp, Options{HeaderDigest: true}, "flags", 1, FESInvalidHeaderField},
		{"pdo on a resp", patch(resp, 3, 24), o, "pdo", 3, FESInvalidHeaderField},
		{"truncated PDU", resp[:20], o, "plen", 4, 0},
		{"ICReq plen 132", patch(good(&ICReq{}, o), 4, 132), o, "plen", 4, FESInvalidHeaderField},
		{"ICReq PFV 1", patch(good(&ICReq{}, o), 8, 1), o, "PFV", 8, FESUnsupportedParameter},
		{"ICReq HPDA 32", patch(good(&ICReq{}, o), 10, 32), o, "PDA", 10, FESUnsupportedParameter},
		{"ICResp MAXH2CDATA 1024", good(&ICResp{MaxH2CData: 1024}, o), o, "MAXH2CDATA", 12, FESUnsupportedParameter},
		{"TermReq plen 153", patch(good(&TermReq{Dir: TypeH2CTermReq}, o), 4, 153), o, "plen", 4, FESInvalidHeaderField},
		{"header digest corrupt", patch(c2h, 24, 0), od, "header digest", 24, FESHeaderDigest},
		{"data digest corrupt", patch(c2h, len(c2h)-1, 0), od, "data digest", len(c2h) - 4, 0},
		{"pdo not the receiver's", c2h, Options{HeaderDigest: true, DataDigest: true, PDA: 7}, "pdo", 3, FESInvalidHeaderField},
		{"DATAL disagrees with plen", patch(good(&Data{Dir: TypeC2HData, Data: []byte{1, 2, 3, 4}}, o), 16, 5), o, "DATAL", 16, FESInvalidHeaderField},
		{"SUCCESS without LAST", patch(good(&Data{Dir: TypeC2HData, Data: []byte{1}}, o), 1, FlagSuccess), o, "flags", 1, FESInvalidHeaderField},
		{"R2TL 0", good(&R2T{CCCID: 1}, o), o, "R2TL", 16, FESInvalidHeaderField},
		{"H2CData without data", good(&Data{Dir: TypeH2CData}, o), o, "pdo", 3, FESInvalidHeaderField},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Decode(c.b, c.o)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a *pdu.Error", err)
			}
			if pe.Field != c.field || pe.Offset != c.offset || pe.FES != c.fes {
				t.Errorf("got field %q offset %d FES %d (%v), want %q %d %d", pe.Field, pe.Offset, pe.FES, err, c.field, c.offset, c.fes)
			}
			if !strings.HasPrefix(err.Error(), "pdu: ") {
				t.Errorf("error %q does not start with the package", err)
			}
		})
	}
}

// Every PDU type survives an encode/decode round trip under every option
// combination, and Decode takes exactly plen bytes of a longer stream.
func TestRoundTrip(t *testing.T) {
	data := []byte("some data that is not a multiple of four!")
	pdus := []PDU{
		&ICReq{HPDA: 2, Digest: DigestData, MaxR2T: 3},
		&ICResp{CPDA: 1, Digest: DigestHeader, MaxH2CData: 131072},
		&TermReq{Dir: TypeH2CTermReq, FES: 2, FEI: 0, Data: bytes.Repeat([]byte{1}, 128)},
		&TermReq{Dir: TypeC2HTermReq, FES: 5, FEI: 4},
		&CapsuleCmd{SQE: nvme.Command{Opcode: 1, Flags: nvme.FlagSGL, CID: 9, NSID: 1, CDW10: 5, CDW12: 7, CDW15: 0xFFFFFFFF,
			SGL: nvme.SGL{ID: nvme.SGLDataBlockOffset, Length: uint32(len(data))}}, Data: data},
		&CapsuleCmd{SQE: nvme.Command{Opcode: 2, CID: 10, SGL: nvme.SGL{ID: nvme.SGLTransportData, Length: 4096}}},
		&CapsuleResp{CQE: nvme.Completion{DW0: 1, DW1: 2, SQHD: 3, SQID: 4, CID: 5, Status: nvme.StatusLBAOutOfRange}},
		&Data{Dir: TypeH2CData, Last: true, CCCID: 1, TTAG: 2, DataO: 3, Data: data},
		&Data{Dir: TypeC2HData, Last: true, Success: true, CCCID: 1, DataO: 3, Data: data},
		&R2T{CCCID: 1, TTAG: 2, R2TO: 3, R2TL: 4},
	}
	for _, o := range []Options{{}, {HeaderDigest: true}, {DataDigest: true}, {HeaderDigest: true, DataDigest: true, PDA: 31}} {
		for _, p := range pdus {
			b := Encode(nil, p, o)
			stream := append(bytes.Clone(b), 0xEE, 0xEE)
			got, n, err := Decode(stream, o)
			if err != nil {
				t.Fatalf("%s with %+v: %v", p.PDUType(), o, err)
			}
			if n != len(b) {
				t.Errorf("%s with %+v: took %d bytes, want %d", p.PDUType(), o, n, len(b))
			}
			if !reflect.DeepEqual(got, p) {
				t.Errorf("%s with %+v: got %+v, want %+v", p.PDUType(), o, got, p)
			}
		}
	}
}
