package nvme

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// IdentifySize is the length of every Identify answer.
const IdentifySize = 4096

// Identify CNS values.
const (
	CNSNamespace       = 0x00
	CNSController      = 0x01
	CNSActiveNSList    = 0x02
	CNSNSDescriptors   = 0x03
	NSDescTypeEUI64    = 0x01
	NSDescTypeNGUID    = 0x02
	NSDescTypeUUID     = 0x03
	NSDescTypeCSI      = 0x04
	CntrlTypeIO        = 1
	CntrlTypeDiscovery = 2
)

// ONCS bits: the optional NVM commands a controller supports.
const (
	ONCSDatasetMgmt = 1 << 2
	ONCSWriteZeroes = 1 << 3
)

// NewIdentify builds an Identify command for CNS cns of namespace nsid; the
// 4096-byte answer comes back as C2H data.
func NewIdentify(cid uint16, cns uint8, nsid uint32) Command {
	return Command{Opcode: AdminIdentify, Flags: FlagSGL, CID: cid, NSID: nsid,
		SGL: SGL{ID: SGLTransportData, Length: IdentifySize}, CDW10: uint32(cns)}
}

// IdentifyController holds the Identify Controller fields zflow sets or a
// host checks (offsets in docs/nvme-tcp.md, 6.1); the rest are zero.
type IdentifyController struct {
	VID, SSVID uint16
	SN         string // 20 bytes, space padded
	MN         string // 40 bytes
	FR         string // 8 bytes
	RAB        uint8
	MDTS       uint8
	CntlID     uint16
	Ver        uint32
	CntrlType  uint8
	ACL, AERL  uint8
	LPA        uint8
	KAS        uint16 // 100 ms units
	SQES, CQES uint8
	MaxCmd     uint16
	NN         uint32
	ONCS       uint16
	VWC        uint8
	SGLS       uint32
	SubNQN     string
	IOCCSZ     uint32 // 16-byte units, including the 64-byte SQE
	IORCSZ     uint32
	ICDOFF     uint16
	MSDBD      uint8
}

// Marshal writes the structure into b, which must hold IdentifySize bytes.
func (c *IdentifyController) Marshal(b []byte) {
	_ = b[IdentifySize-1]
	le := binary.LittleEndian
	clear(b[:IdentifySize])
	le.PutUint16(b[0:], c.VID)
	le.PutUint16(b[2:], c.SSVID)
	putASCII(b[4:24], c.SN)
	putASCII(b[24:64], c.MN)
	putASCII(b[64:72], c.FR)
	b[72] = c.RAB
	b[77] = c.MDTS
	le.PutUint16(b[78:], c.CntlID)
	le.PutUint32(b[80:], c.Ver)
	b[111] = c.CntrlType
	b[258] = c.ACL
	b[259] = c.AERL
	b[261] = c.LPA
	le.PutUint16(b[320:], c.KAS)
	b[512] = c.SQES
	b[513] = c.CQES
	le.PutUint16(b[514:], c.MaxCmd)
	le.PutUint32(b[516:], c.NN)
	le.PutUint16(b[520:], c.ONCS)
	b[525] = c.VWC
	le.PutUint32(b[536:], c.SGLS)
	copy(b[768:768+MaxNQNLength], c.SubNQN)
	le.PutUint32(b[1792:], c.IOCCSZ)
	le.PutUint32(b[1796:], c.IORCSZ)
	le.PutUint16(b[1800:], c.ICDOFF)
	b[1803] = c.MSDBD
}

// Unmarshal reads the structure from b (IdentifySize bytes).
func (c *IdentifyController) Unmarshal(b []byte) error {
	if len(b) < IdentifySize {
		return fmt.Errorf("nvme: identify controller: %d bytes, want %d", len(b), IdentifySize)
	}
	le := binary.LittleEndian
	*c = IdentifyController{
		VID: le.Uint16(b[0:]), SSVID: le.Uint16(b[2:]),
		SN: getASCII(b[4:24]), MN: getASCII(b[24:64]), FR: getASCII(b[64:72]),
		RAB: b[72], MDTS: b[77], CntlID: le.Uint16(b[78:]), Ver: le.Uint32(b[80:]),
		CntrlType: b[111], ACL: b[258], AERL: b[259], LPA: b[261], KAS: le.Uint16(b[320:]),
		SQES: b[512], CQES: b[513], MaxCmd: le.Uint16(b[514:]), NN: le.Uint32(b[516:]),
		ONCS: le.Uint16(b[520:]), VWC: b[525], SGLS: le.Uint32(b[536:]),
		SubNQN: cString(b[768:1024]),
		IOCCSZ: le.Uint32(b[1792:]), IORCSZ: le.Uint32(b[1796:]), ICDOFF: le.Uint16(b[1800:]),
		MSDBD: b[1803],
	}
	return nil
}

// IdentifyNamespace holds the Identify Namespace fields zflow uses: one LBA
// format (index 0) with no metadata.
type IdentifyNamespace struct {
	NSZE, NCAP, NUSE uint64 // in blocks
	NLBAF            uint8  // 0's based
	FLBAS            uint8
	NMIC             uint8
	// DLFEAT says what reading deallocated blocks returns: 1 means zeros.
	DLFEAT uint8
	NGUID  [16]byte
	LBADS  uint8 // log2 of the block size of format FLBAS selects
}

// Marshal writes the structure into b, which must hold IdentifySize bytes.
func (n *IdentifyNamespace) Marshal(b []byte) {
	_ = b[IdentifySize-1]
	le := binary.LittleEndian
	clear(b[:IdentifySize])
	le.PutUint64(b[0:], n.NSZE)
	le.PutUint64(b[8:], n.NCAP)
	le.PutUint64(b[16:], n.NUSE)
	b[25] = n.NLBAF
	b[26] = n.FLBAS
	b[30] = n.NMIC
	b[33] = n.DLFEAT
	copy(b[104:120], n.NGUID[:])
	f := int(n.FLBAS & 0xF)
	b[128+4*f+2] = n.LBADS
}

// Unmarshal reads the structure from b (IdentifySize bytes); LBADS is the
// one of the format FLBAS selects.
func (n *IdentifyNamespace) Unmarshal(b []byte) error {
	if len(b) < IdentifySize {
		return fmt.Errorf("nvme: identify namespace: %d bytes, want %d", len(b), IdentifySize)
	}
	le := binary.LittleEndian
	*n = IdentifyNamespace{NSZE: le.Uint64(b[0:]), NCAP: le.Uint64(b[8:]), NUSE: le.Uint64(b[16:]),
		NLBAF: b[25], FLBAS: b[26], NMIC: b[30], DLFEAT: b[33]}
	copy(n.NGUID[:], b[104:120])
	f := int(n.FLBAS&0xF) | int(n.FLBAS>>5&0x3)<<4
	n.LBADS = b[128+4*f+2]
	return nil
}

// ActiveNSList decodes an active namespace list (CNS 2): the NSIDs before
// the first zero.
func ActiveNSList(b []byte) []uint32 {
	var ids []uint32
	for off := 0; off+4 <= len(b); off += 4 {
		id := binary.LittleEndian.Uint32(b[off:])
		if id == 0 {
			break
		}
		ids = append(ids, id)
	}
	return ids
}

// NSDescriptor is one namespace identification descriptor (CNS 3).
type NSDescriptor struct {
	Type  uint8
	Value []byte
}

// NSDescriptors decodes a descriptor list up to its type-0 terminator. A
// descriptor reaching past the buffer is an error naming its offset.
func NSDescriptors(b []byte) ([]NSDescriptor, error) {
	var ds []NSDescriptor
	for off := 0; off+4 <= len(b); {
		t, n := b[off], int(b[off+1])
		if t == 0 {
			return ds, nil
		}
		if off+4+n > len(b) {
			return ds, fmt.Errorf("nvme: namespace descriptor at offset %d: length %d reaches past %d bytes", off, n, len(b))
		}
		ds = append(ds, NSDescriptor{Type: t, Value: b[off+4 : off+4+n]})
		off += 4 + n
	}
	return ds, nil
}

func putASCII(dst []byte, s string) {
	for i := range dst {
		dst[i] = ' '
	}
	copy(dst, s)
}

func getASCII(b []byte) string { return string(bytes.TrimRight(b, " \x00")) }

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
