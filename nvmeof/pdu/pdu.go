package pdu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// Type is a PDU type, byte 0 of the common header.
type Type uint8

// The PDU types (docs/nvme-tcp.md, 1.2). 0x08 is unused.
const (
	TypeICReq       Type = 0x00
	TypeICResp      Type = 0x01
	TypeH2CTermReq  Type = 0x02
	TypeC2HTermReq  Type = 0x03
	TypeCapsuleCmd  Type = 0x04
	TypeCapsuleResp Type = 0x05
	TypeH2CData     Type = 0x06
	TypeC2HData     Type = 0x07
	TypeR2T         Type = 0x09
)

func (t Type) String() string {
	switch t {
	case TypeICReq:
		return "ICReq"
	case TypeICResp:
		return "ICResp"
	case TypeH2CTermReq:
		return "H2CTermReq"
	case TypeC2HTermReq:
		return "C2HTermReq"
	case TypeCapsuleCmd:
		return "CapsuleCmd"
	case TypeCapsuleResp:
		return "CapsuleResp"
	case TypeH2CData:
		return "H2CData"
	case TypeC2HData:
		return "C2HData"
	case TypeR2T:
		return "R2T"
	}
	return fmt.Sprintf("PDU type %#02x", uint8(t))
}

// Flags of the common header (byte 1).
const (
	FlagHDGST   = 1 << 0 // a header digest follows the header
	FlagDDGST   = 1 << 1 // a data digest follows the data
	FlagLast    = 1 << 2 // last data PDU of a transfer (data PDUs only)
	FlagSuccess = 1 << 3 // command completed without a CapsuleResp (C2HData only)
)

// Sizes.
const (
	CommonHeaderSize = 8
	DigestSize       = 4
	ICSize           = 128 // ICReq and ICResp: hlen = plen
	TermReqHLen      = 24
	// MaxTermReqData is the most of the offending header a TermReq carries.
	MaxTermReqData = 128
	CapsuleCmdHLen = CommonHeaderSize + nvme.CommandSize    // 72
	CapsuleRspHLen = CommonHeaderSize + nvme.CompletionSize // 24
	DataHLen       = 24                                     // H2CData, C2HData, R2T
	// MinMaxH2CData is the smallest MAXH2CDATA a controller may grant.
	MinMaxH2CData = 4096
	// MaxPDA is the largest HPDA or CPDA: data aligned to (PDA+1)·4 bytes.
	MaxPDA = 31
)

// Digest bits of ICReq/ICResp byte 11.
const (
	DigestHeader = 1 << 0
	DigestData   = 1 << 1
)

// Fatal error status of a TermReq (docs/nvme-tcp.md, 1.4).
const (
	FESInvalidHeaderField   = 0x01
	FESPDUSequence          = 0x02
	FESHeaderDigest         = 0x03
	FESDataOutOfRange       = 0x04
	FESDataLimitExceeded    = 0x05
	FESUnsupportedParameter = 0x06
)

// Byte offsets of header fields, used as FEI.
const (
	OffFlags = 1
	OffHLen  = 2
	OffPDO   = 3
	OffPLen  = 4
	// data PDUs and R2T
	OffCCCID = 8
	OffTTAG  = 10
	OffDATAO = 12
	OffDATAL = 16
)

// hlenOf is each type's fixed header length; 0 marks an unknown type.
var hlenOf = [...]uint8{
	TypeICReq: ICSize, TypeICResp: ICSize, TypeH2CTermReq: TermReqHLen, TypeC2HTermReq: TermReqHLen,
	TypeCapsuleCmd: CapsuleCmdHLen, TypeCapsuleResp: CapsuleRspHLen, TypeH2CData: DataHLen,
	TypeC2HData: DataHLen, TypeR2T: DataHLen,
}

// HLen is t's fixed header length, 0 for an unknown type.
func HLen(t Type) int {
	if int(t) < len(hlenOf) {
		return int(hlenOf[t])
	}
	return 0
}

// hasHeaderDigest reports whether t carries a header digest once negotiated.
func hasHeaderDigest(t Type) bool {
	switch t {
	case TypeCapsuleCmd, TypeCapsuleResp, TypeH2CData, TypeC2HData, TypeR2T:
		return true
	}
	return false
}

// carriesData reports whether t may carry data placed at pdo.
func carriesData(t Type) bool {
	return t == TypeCapsuleCmd || t == TypeH2CData || t == TypeC2HData
}

// allowedFlags is what each type may set (docs/nvme-tcp.md, 1.2).
func allowedFlags(t Type) uint8 {
	switch t {
	case TypeCapsuleCmd:
		return FlagHDGST | FlagDDGST
	case TypeCapsuleResp, TypeR2T:
		return FlagHDGST
	case TypeH2CData:
		return FlagHDGST | FlagDDGST | FlagLast
	case TypeC2HData:
		return FlagHDGST | FlagDDGST | FlagLast | FlagSuccess
	}
	return 0
}

// Options are what a connection negotiated, from the point of view of one
// PDU's receiver: digests, and the receiver's PDA (data starts at a multiple
// of (PDA+1)·4 bytes from the PDU's first byte).
type Options struct {
	HeaderDigest bool
	DataDigest   bool
	PDA          uint8
}

// Header is the 8-byte common header.
type Header struct {
	Type  Type
	Flags uint8
	HLen  uint8
	PDO   uint8
	PLen  uint32
}

// Marshal writes the header into b[0:8].
func (h *Header) Marshal(b []byte) {
	_ = b[CommonHeaderSize-1]
	b[0], b[1], b[2], b[3] = uint8(h.Type), h.Flags, h.HLen, h.PDO
	binary.LittleEndian.PutUint32(b[4:], h.PLen)
}

func unmarshalHeader(b []byte) Header {
	return Header{Type: Type(b[0]), Flags: b[1], HLen: b[2], PDO: b[3], PLen: binary.LittleEndian.Uint32(b[4:])}
}

// DataOffset is where the data starts (pdo, or hlen for a TermReq's copied
// header) and DataLen how many bytes of data the PDU holds, both valid once
// ParseHeader accepted h.
func (h *Header) DataOffset() int {
	if h.Type == TypeH2CTermReq || h.Type == TypeC2HTermReq {
		return int(h.HLen)
	}
	if h.PDO == 0 {
		return int(h.PLen) // no data
	}
	return int(h.PDO)
}

// DataLen is the number of data bytes, digest excluded.
func (h *Header) DataLen() int {
	n := int(h.PLen) - h.DataOffset()
	if h.Flags&FlagDDGST != 0 && n > 0 {
		n -= DigestSize
	}
	return n
}

// HeaderLen is the bytes up to the data (or the end): header, header digest
// and padding.
func (h *Header) HeaderLen() int { return h.DataOffset() }

// Error is a PDU that breaks the rules: which PDU, which field, at which
// byte offset, and the TermReq answer (FES, FEI) it calls for. FES 0 means
// the connection is closed without a TermReq (a bad data digest, or a
// stream that ended).
type Error struct {
	PDU    Type
	Field  string
	Offset int
	FES    uint16
	FEI    uint32
	Msg    string
	digest bool // a data digest mismatch: see ErrDataDigest
}

// ErrDataDigest matches (errors.Is) a data digest mismatch. The PDU was
// read whole, so the stream is intact: the receiver fails the command the
// data belongs to with a transient transport error and keeps the
// connection (NVMe/TCP transport specification, data digest errors).
var ErrDataDigest = errors.New("pdu: data digest mismatch")

// Is reports whether e is target; a data digest mismatch is ErrDataDigest.
func (e *Error) Is(target error) bool { return target == ErrDataDigest && e.digest }

func (e *Error) Error() string {
	return fmt.Sprintf("pdu: %s: %s at offset %d: %s", e.PDU, e.Field, e.Offset, e.Msg)
}

func fieldErr(t Type, field string, off int, fes uint16, format string, args ...any) *Error {
	return &Error{PDU: t, Field: field, Offset: off, FES: fes, FEI: uint32(off), Msg: fmt.Sprintf(format, args...)}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C is the NVMe/TCP digest of b: CRC-32C (Castagnoli), initial value
// and final XOR 0xFFFFFFFF. It is stored little-endian.
func CRC32C(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// crcUpdate continues a digest over more bytes.
func crcUpdate(crc uint32, b []byte) uint32 { return crc32.Update(crc, castagnoli, b) }

// pdoFor is where data starts for a receiver with the given options.
func pdoFor(hlen int, o Options) int {
	n := hlen
	if o.HeaderDigest {
		n += DigestSize
	}
	align := (int(o.PDA) + 1) * 4
	return (n + align - 1) / align * align
}
