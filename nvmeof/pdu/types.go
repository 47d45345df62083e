package pdu

import (
	"encoding/binary"

	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// PDU is one of the typed PDUs below. Payload-carrying PDUs reference their
// data; they never own a copy unless the caller made one.
type PDU interface {
	// PDUType is the type written in the common header.
	PDUType() Type
	// payload is the data placed at pdo (or at hlen for a TermReq).
	payload() []byte
	// typeFlags are the type-specific flag bits (LAST_PDU, SUCCESS).
	typeFlags() uint8
	// marshalBody writes bytes [8, hlen) of the header into b.
	marshalBody(b []byte)
}

// ICReq opens every connection (host to controller).
type ICReq struct {
	PFV    uint16
	HPDA   uint8 // alignment the host wants for C2H data, 0's based dwords
	Digest uint8 // DigestHeader | DigestData asked for
	MaxR2T uint32
}

// ICResp answers it (controller to host).
type ICResp struct {
	PFV        uint16
	CPDA       uint8 // alignment the controller wants for H2C data
	Digest     uint8 // digests granted
	MaxH2CData uint32
}

// TermReq ends a connection: Dir is TypeH2CTermReq or TypeC2HTermReq, Data
// the offending header (at most MaxTermReqData bytes are sent).
type TermReq struct {
	Dir  Type
	FES  uint16
	FEI  uint32
	Data []byte
}

// CapsuleCmd carries a command and, for a write that fits, its data.
type CapsuleCmd struct {
	SQE  nvme.Command
	Data []byte
}

// CapsuleResp carries a completion.
type CapsuleResp struct {
	CQE nvme.Completion
}

// Data is an H2CData (Dir TypeH2CData) or C2HData (TypeC2HData) PDU; its
// DATAL is len(Data).
type Data struct {
	Dir     Type
	Last    bool
	Success bool // C2HData only, and only with Last
	CCCID   uint16
	TTAG    uint16 // H2CData: copied from the R2T
	DataO   uint32
	Data    []byte
}

// R2T asks the host for R2TL bytes of a write from offset R2TO.
type R2T struct {
	CCCID uint16
	TTAG  uint16
	R2TO  uint32
	R2TL  uint32
}

func (*ICReq) PDUType() Type       { return TypeICReq }
func (*ICResp) PDUType() Type      { return TypeICResp }
func (p *TermReq) PDUType() Type   { return p.Dir }
func (*CapsuleCmd) PDUType() Type  { return TypeCapsuleCmd }
func (*CapsuleResp) PDUType() Type { return TypeCapsuleResp }
func (p *Data) PDUType() Type      { return p.Dir }
func (*R2T) PDUType() Type         { return TypeR2T }

func (*ICReq) payload() []byte       { return nil }
func (*ICResp) payload() []byte      { return nil }
func (*CapsuleResp) payload() []byte { return nil }
func (*R2T) payload() []byte         { return nil }
func (p *CapsuleCmd) payload() []byte {
	return p.Data
}
func (p *Data) payload() []byte { return p.Data }
func (p *TermReq) payload() []byte {
	if len(p.Data) > MaxTermReqData {
		return p.Data[:MaxTermReqData]
	}
	return p.Data
}

func (*ICReq) typeFlags() uint8       { return 0 }
func (*ICResp) typeFlags() uint8      { return 0 }
func (*TermReq) typeFlags() uint8     { return 0 }
func (*CapsuleCmd) typeFlags() uint8  { return 0 }
func (*CapsuleResp) typeFlags() uint8 { return 0 }
func (*R2T) typeFlags() uint8         { return 0 }
func (p *Data) typeFlags() uint8 {
	var f uint8
	if p.Last {
		f |= FlagLast
	}
	if p.Success {
		f |= FlagSuccess
	}
	return f
}

func (p *ICReq) marshalBody(b []byte) {
	binary.LittleEndian.PutUint16(b[8:], p.PFV)
	b[10], b[11] = p.HPDA, p.Digest
	binary.LittleEndian.PutUint32(b[12:], p.MaxR2T)
	clear(b[16:ICSize])
}

func (p *ICResp) marshalBody(b []byte) {
	binary.LittleEndian.PutUint16(b[8:], p.PFV)
	b[10], b[11] = p.CPDA, p.Digest
	binary.LittleEndian.PutUint32(b[12:], p.MaxH2CData)
	clear(b[16:ICSize])
}

func (p *TermReq) marshalBody(b []byte) {
	binary.LittleEndian.PutUint16(b[8:], p.FES)
	binary.LittleEndian.PutUint32(b[10:], p.FEI)
	clear(b[14:TermReqHLen])
}

func (p *CapsuleCmd) marshalBody(b []byte) { p.SQE.Marshal(b[8:CapsuleCmdHLen]) }

func (p *CapsuleResp) marshalBody(b []byte) { p.CQE.Marshal(b[8:CapsuleRspHLen]) }

func (p *Data) marshalBody(b []byte) {
	putData(b, p.CCCID, p.TTAG, p.DataO, uint32(len(p.Data)))
}

func (p *R2T) marshalBody(b []byte) { putData(b, p.CCCID, p.TTAG, p.R2TO, p.R2TL) }

// putData writes the shared layout of H2CData, C2HData and R2T.
func putData(b []byte, cccid, ttag uint16, off, n uint32) {
	le := binary.LittleEndian
	le.PutUint16(b[OffCCCID:], cccid)
	le.PutUint16(b[OffTTAG:], ttag)
	le.PutUint32(b[OffDATAO:], off)
	le.PutUint32(b[OffDATAL:], n)
	clear(b[20:DataHLen])
}
