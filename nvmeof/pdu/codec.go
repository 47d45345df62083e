package pdu

import (
	"encoding/binary"
	"fmt"
)

// Layout computes p's common header for a receiver with options o: the
// digest flags, pdo and plen. ICReq, ICResp and TermReq never carry
// digests; PDUs without data have pdo 0.
func Layout(p PDU, o Options) Header {
	t := p.PDUType()
	hlen := HLen(t)
	h := Header{Type: t, HLen: uint8(hlen), Flags: p.typeFlags()}
	n := len(p.payload())
	if t == TypeH2CTermReq || t == TypeC2HTermReq {
		h.PLen = uint32(hlen + n)
		return h
	}
	hd := o.HeaderDigest && hasHeaderDigest(t)
	if hd {
		h.Flags |= FlagHDGST
	}
	if n == 0 || !carriesData(t) {
		h.PLen = uint32(hlen)
		if hd {
			h.PLen += DigestSize
		}
		return h
	}
	pdo := pdoFor(hlen, Options{HeaderDigest: hd, PDA: o.PDA})
	h.PDO = uint8(pdo)
	h.PLen = uint32(pdo + n)
	if o.DataDigest {
		h.Flags |= FlagDDGST
		h.PLen += DigestSize
	}
	return h
}

// AppendHeader appends everything of p that comes before its data to dst:
// the header, the header digest and the padding. The caller sends p's data
// after it and then, when the returned header has FlagDDGST, the data
// digest (AppendDataDigest).
func AppendHeader(dst []byte, p PDU, o Options) ([]byte, Header) {
	h := Layout(p, o)
	start := len(dst)
	end := h.DataOffset()
	if h.Type == TypeH2CTermReq || h.Type == TypeC2HTermReq {
		end = int(h.HLen)
	}
	dst = append(dst, make([]byte, end)...)
	b := dst[start:]
	h.Marshal(b)
	p.marshalBody(b)
	if h.Flags&FlagHDGST != 0 {
		binary.LittleEndian.PutUint32(b[h.HLen:], CRC32C(b[:h.HLen]))
	}
	return dst, h
}

// AppendDataDigest appends the CRC-32C of data, little-endian.
func AppendDataDigest(dst, data []byte) []byte {
	return binary.LittleEndian.AppendUint32(dst, CRC32C(data))
}

// Encode appends the whole of p to dst: header, digests, padding and data.
// Used by tests and for small PDUs; Conn.Write sends the data without
// copying it.
func Encode(dst []byte, p PDU, o Options) []byte {
	dst, h := AppendHeader(dst, p, o)
	data := p.payload()
	if h.PDO == 0 && h.Type != TypeH2CTermReq && h.Type != TypeC2HTermReq {
		return dst
	}
	dst = append(dst, data...)
	if h.Flags&FlagDDGST != 0 {
		dst = AppendDataDigest(dst, data)
	}
	return dst
}

// ParseHeader reads and checks the common header in b[0:8] for a receiver
// with options o: the type is known, hlen is the type's, plen and pdo agree
// with each other, with the type and with the negotiated digests and PDA,
// and the flags are the type's. It reads nothing past b[8].
func ParseHeader(b []byte, o Options) (Header, error) {
	if len(b) < CommonHeaderSize {
		return Header{}, &Error{Field: "common header", Offset: len(b), Msg: "stream ended inside the 8-byte common header"}
	}
	h := unmarshalHeader(b)
	t := h.Type
	hlen := HLen(t)
	if hlen == 0 {
		return h, fieldErr(t, "type", 0, FESInvalidHeaderField, "unknown PDU type")
	}
	if int(h.HLen) != hlen {
		return h, fieldErr(t, "hlen", OffHLen, FESInvalidHeaderField, "%d, want %d", h.HLen, hlen)
	}
	if h.PLen < uint32(hlen) {
		return h, fieldErr(t, "plen", OffPLen, FESInvalidHeaderField, "%d is below hlen %d", h.PLen, hlen)
	}
	if bad := h.Flags &^ allowedFlags(t); bad != 0 {
		return h, fieldErr(t, "flags", OffFlags, FESInvalidHeaderField, "%#02x has bits %#02x this type may not set", h.Flags, bad)
	}
	if h.Flags&FlagSuccess != 0 && h.Flags&FlagLast == 0 {
		return h, fieldErr(t, "flags", OffFlags, FESInvalidHeaderField, "SUCCESS without LAST_PDU")
	}
	switch t {
	case TypeICReq, TypeICResp:
		if h.PLen != ICSize {
			return h, fieldErr(t, "plen", OffPLen, FESInvalidHeaderField, "%d, want %d", h.PLen, ICSize)
		}
		if h.PDO != 0 {
			return h, fieldErr(t, "pdo", OffPDO, FESInvalidHeaderField, "%d, want 0", h.PDO)
		}
		return h, nil
	case TypeH2CTermReq, TypeC2HTermReq:
		if h.PLen > TermReqHLen+MaxTermReqData {
			return h, fieldErr(t, "plen", OffPLen, FESInvalidHeaderField, "%d, above %d", h.PLen, TermReqHLen+MaxTermReqData)
		}
		if h.PDO != 0 {
			return h, fieldErr(t, "pdo", OffPDO, FESInvalidHeaderField, "%d, want 0", h.PDO)
		}
		return h, nil
	}
	hd := o.HeaderDigest
	if (h.Flags&FlagHDGST != 0) != hd {
		return h, fieldErr(t, "flags", OffFlags, FESInvalidHeaderField, "HDGSTF is %v but header digests negotiated %v", h.Flags&FlagHDGST != 0, hd)
	}
	bare := uint32(hlen)
	if hd {
		bare += DigestSize
	}
	if !carriesData(t) || (t == TypeCapsuleCmd && h.PLen == bare) {
		if h.PLen != bare {
			return h, fieldErr(t, "plen", OffPLen, FESInvalidHeaderField, "%d, want %d for a PDU without data", h.PLen, bare)
		}
		if h.PDO != 0 {
			return h, fieldErr(t, "pdo", OffPDO, FESInvalidHeaderField, "%d, want 0 for a PDU without data", h.PDO)
		}
		if h.Flags&FlagDDGST != 0 {
			return h, fieldErr(t, "flags", OffFlags, FESInvalidHeaderField, "DDGSTF set on a PDU without data")
		}
		return h, nil
	}
	if want := pdoFor(hlen, o); int(h.PDO) != want {
		return h, fieldErr(t, "pdo", OffPDO, FESInvalidHeaderField, "%d, want %d (hlen %d, header digest %v, PDA %d)", h.PDO, want, hlen, hd, o.PDA)
	}
	if (h.Flags&FlagDDGST != 0) != o.DataDigest {
		return h, fieldErr(t, "flags", OffFlags, FESInvalidHeaderField, "DDGSTF is %v but data digests negotiated %v", h.Flags&FlagDDGST != 0, o.DataDigest)
	}
	min := uint32(h.PDO) + 1
	if o.DataDigest {
		min += DigestSize
	}
	if h.PLen < min {
		return h, fieldErr(t, "plen", OffPLen, FESInvalidHeaderField, "%d leaves no data after pdo %d", h.PLen, h.PDO)
	}
	return h, nil
}

// CheckHeaderDigest verifies the header digest of hdr, which holds at least
// the header and its digest, when h says there is one.
func CheckHeaderDigest(h Header, hdr []byte) error {
	if h.Flags&FlagHDGST == 0 {
		return nil
	}
	n := int(h.HLen)
	if len(hdr) < n+DigestSize {
		return fieldErr(h.Type, "header digest", n, 0, "header is %d bytes, short of its digest", len(hdr))
	}
	got, want := binary.LittleEndian.Uint32(hdr[n:]), CRC32C(hdr[:n])
	if got != want {
		return &Error{PDU: h.Type, Field: "header digest", Offset: n, FES: FESHeaderDigest,
			Msg: fmt.Sprintf("CRC32C mismatch: got %#08x, want %#08x", got, want)}
	}
	return nil
}

// CheckDataDigest verifies the data digest sum (little-endian, 4 bytes)
// against crc, the CRC-32C of the data received.
func CheckDataDigest(h Header, crc uint32, sum []byte) error {
	if len(sum) < DigestSize {
		return fieldErr(h.Type, "data digest", int(h.PLen)-DigestSize, 0, "short")
	}
	if got := binary.LittleEndian.Uint32(sum); got != crc {
		return &Error{PDU: h.Type, Field: "data digest", Offset: int(h.PLen) - DigestSize, digest: true,
			Msg: fmt.Sprintf("CRC32C mismatch: got %#08x, want %#08x", got, crc)}
	}
	return nil
}

// DecodeHeader decodes the typed fields of the PDU whose header (hlen bytes,
// more is ignored) is hdr and whose common header ParseHeader accepted as h.
// Data-carrying PDUs come back without their data; the caller attaches it.
// It checks what the PDU alone decides: PFV 0, PDA at most 31, MAXH2CDATA,
// DATAL against plen, R2TL non-zero.
func DecodeHeader(h Header, hdr []byte) (PDU, error) {
	t := h.Type
	if len(hdr) < int(h.HLen) || int(h.HLen) != HLen(t) || HLen(t) == 0 {
		return nil, fieldErr(t, "header", len(hdr), FESInvalidHeaderField, "%d bytes, want hlen %d", len(hdr), HLen(t))
	}
	le := binary.LittleEndian
	switch t {
	case TypeICReq:
		p := &ICReq{PFV: le.Uint16(hdr[8:]), HPDA: hdr[10], Digest: hdr[11], MaxR2T: le.Uint32(hdr[12:])}
		return p, checkIC(t, p.PFV, p.HPDA, p.Digest)
	case TypeICResp:
		p := &ICResp{PFV: le.Uint16(hdr[8:]), CPDA: hdr[10], Digest: hdr[11], MaxH2CData: le.Uint32(hdr[12:])}
		if err := checkIC(t, p.PFV, p.CPDA, p.Digest); err != nil {
			return p, err
		}
		if p.MaxH2CData < MinMaxH2CData || p.MaxH2CData%4 != 0 {
			return p, fieldErr(t, "MAXH2CDATA", 12, FESUnsupportedParameter, "%d, want a multiple of 4 of at least %d", p.MaxH2CData, MinMaxH2CData)
		}
		return p, nil
	case TypeH2CTermReq, TypeC2HTermReq:
		return &TermReq{Dir: t, FES: le.Uint16(hdr[8:]), FEI: le.Uint32(hdr[10:])}, nil
	case TypeCapsuleCmd:
		p := &CapsuleCmd{}
		_ = p.SQE.Unmarshal(hdr[8:CapsuleCmdHLen])
		return p, nil
	case TypeCapsuleResp:
		p := &CapsuleResp{}
		_ = p.CQE.Unmarshal(hdr[8:CapsuleRspHLen])
		return p, nil
	case TypeH2CData, TypeC2HData:
		p := &Data{Dir: t, Last: h.Flags&FlagLast != 0, Success: h.Flags&FlagSuccess != 0,
			CCCID: le.Uint16(hdr[OffCCCID:]), TTAG: le.Uint16(hdr[OffTTAG:]), DataO: le.Uint32(hdr[OffDATAO:])}
		if datal := le.Uint32(hdr[OffDATAL:]); int64(datal) != int64(h.DataLen()) {
			return p, fieldErr(t, "DATAL", OffDATAL, FESInvalidHeaderField, "%d, but plen %d leaves %d bytes of data", datal, h.PLen, h.DataLen())
		}
		return p, nil
	case TypeR2T:
		p := &R2T{CCCID: le.Uint16(hdr[OffCCCID:]), TTAG: le.Uint16(hdr[OffTTAG:]),
			R2TO: le.Uint32(hdr[OffDATAO:]), R2TL: le.Uint32(hdr[OffDATAL:])}
		if p.R2TL == 0 {
			return p, fieldErr(t, "R2TL", OffDATAL, FESInvalidHeaderField, "0 bytes asked for")
		}
		return p, nil
	}
	return nil, fieldErr(t, "type", 0, FESInvalidHeaderField, "unknown PDU type")
}

func checkIC(t Type, pfv uint16, pda, digest uint8) error {
	if pfv != 0 {
		return fieldErr(t, "PFV", 8, FESUnsupportedParameter, "%d, want 0", pfv)
	}
	if pda > MaxPDA {
		return fieldErr(t, "PDA", 10, FESUnsupportedParameter, "%d, above %d", pda, MaxPDA)
	}
	if digest&^(DigestHeader|DigestData) != 0 {
		return fieldErr(t, "digest", 11, FESUnsupportedParameter, "%#02x has reserved bits", digest)
	}
	return nil
}

// Decode reads one whole PDU from the front of b for a receiver with
// options o and returns it with the number of bytes it took. Payloads
// reference b. A b shorter than the PDU's plen is an *Error with FES 0.
func Decode(b []byte, o Options) (PDU, int, error) {
	h, err := ParseHeader(b, o)
	if err != nil {
		return nil, 0, err
	}
	if uint64(len(b)) < uint64(h.PLen) {
		return nil, 0, &Error{PDU: h.Type, Field: "plen", Offset: OffPLen, Msg: fmt.Sprintf("PDU of %d bytes, only %d given", h.PLen, len(b))}
	}
	b = b[:h.PLen]
	if err := CheckHeaderDigest(h, b); err != nil {
		return nil, 0, err
	}
	p, err := DecodeHeader(h, b)
	if err != nil {
		return nil, 0, err
	}
	off, n := h.DataOffset(), h.DataLen()
	data := b[off : off+n]
	if h.Flags&FlagDDGST != 0 {
		if err := CheckDataDigest(h, CRC32C(data), b[off+n:]); err != nil {
			return nil, 0, err
		}
	}
	attachData(p, data)
	return p, int(h.PLen), nil
}

// attachData sets the payload of a PDU DecodeHeader returned.
func attachData(p PDU, data []byte) {
	if len(data) == 0 {
		return
	}
	switch p := p.(type) {
	case *CapsuleCmd:
		p.Data = data
	case *Data:
		p.Data = data
	case *TermReq:
		p.Data = data
	}
}
