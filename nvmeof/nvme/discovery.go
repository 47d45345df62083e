package nvme

import (
	"encoding/binary"
	"fmt"
)

// Log page identifiers.
const (
	LogError         = 0x01
	LogSMART         = 0x02
	LogCommandEffect = 0x05
	LogDiscovery     = 0x70
)

// The discovery log page (docs/nvme-tcp.md, 6.2): a 1024-byte header
// (generation counter, number of records, record format) followed by one
// 1024-byte entry per subsystem port.
const (
	DiscoveryHeaderSize = 1024
	DiscoveryEntrySize  = 1024
)

// Values of a discovery log entry.
const (
	TrTypeTCP               = 3
	AdrFamIPv4              = 1
	AdrFamIPv6              = 2
	SubTypeReferral         = 1
	SubTypeNVM              = 2
	SubTypeCurrentDiscovery = 3
)

// NewGetLogPage builds a Get Log Page of n bytes (a multiple of 4, at least
// 4) of log lid from byte offset off (a multiple of 4). rae asks the
// controller to retain an asynchronous event.
func NewGetLogPage(cid uint16, lid uint8, off uint64, n uint32, rae bool) Command {
	numd := n/4 - 1
	c := Command{Opcode: AdminGetLogPage, Flags: FlagSGL, CID: cid, NSID: 0xFFFFFFFF,
		SGL:   SGL{ID: SGLTransportData, Length: n},
		CDW10: uint32(lid) | (numd&0xFFFF)<<16, CDW11: numd >> 16,
		CDW12: uint32(off), CDW13: uint32(off >> 32)}
	if rae {
		c.CDW10 |= 1 << 15
	}
	return c
}

// GetLogPage is the fields of a Get Log Page command.
type GetLogPage struct {
	LID    uint8
	Offset uint64
	Len    uint64 // bytes
}

// GetLogPageOf reads the fields of a Get Log Page command.
func GetLogPageOf(c *Command) GetLogPage {
	numd := uint64(c.CDW11&0xFFFF)<<16 | uint64(c.CDW10>>16)
	return GetLogPage{LID: uint8(c.CDW10), Offset: uint64(c.CDW13)<<32 | uint64(c.CDW12), Len: (numd + 1) * 4}
}

// DiscoveryHeader is the start of the discovery log page.
type DiscoveryHeader struct {
	GenCtr uint64 // changes whenever the records change
	NumRec uint64
	RecFmt uint16
}

// Marshal writes the header into b, at least 20 bytes (the rest of the
// 1024-byte header is reserved and left as it is).
func (h *DiscoveryHeader) Marshal(b []byte) {
	_ = b[19]
	binary.LittleEndian.PutUint64(b[0:], h.GenCtr)
	binary.LittleEndian.PutUint64(b[8:], h.NumRec)
	binary.LittleEndian.PutUint16(b[16:], h.RecFmt)
}

// Unmarshal reads a header from b (at least 20 bytes).
func (h *DiscoveryHeader) Unmarshal(b []byte) error {
	if len(b) < 18 {
		return fmt.Errorf("nvme: discovery log header: %d bytes, want at least 18", len(b))
	}
	*h = DiscoveryHeader{GenCtr: binary.LittleEndian.Uint64(b[0:]), NumRec: binary.LittleEndian.Uint64(b[8:]),
		RecFmt: binary.LittleEndian.Uint16(b[16:])}
	if h.RecFmt != 0 {
		return fmt.Errorf("nvme: discovery log header: record format %d at offset 16, want 0", h.RecFmt)
	}
	return nil
}

// DiscoveryEntry is one record of the discovery log: where a subsystem can
// be reached.
type DiscoveryEntry struct {
	TrType  uint8
	AdrFam  uint8
	SubType uint8
	TReq    uint8
	PortID  uint16
	CntlID  uint16
	ASQSZ   uint16
	EFlags  uint16
	TrSvcID string // the port number, ASCII, in 32 bytes
	SubNQN  string
	TrAddr  string // the address, ASCII, in 256 bytes
	SecType uint8  // TSAS byte 0 for TCP: 0 none
}

// Marshal writes the entry into b, which must hold DiscoveryEntrySize bytes.
func (e *DiscoveryEntry) Marshal(b []byte) {
	_ = b[DiscoveryEntrySize-1]
	le := binary.LittleEndian
	clear(b[:DiscoveryEntrySize])
	b[0], b[1], b[2], b[3] = e.TrType, e.AdrFam, e.SubType, e.TReq
	le.PutUint16(b[4:], e.PortID)
	le.PutUint16(b[6:], e.CntlID)
	le.PutUint16(b[8:], e.ASQSZ)
	le.PutUint16(b[10:], e.EFlags)
	copy(b[32:64], e.TrSvcID)
	copy(b[256:256+MaxNQNLength], e.SubNQN)
	copy(b[512:768], e.TrAddr)
	b[768] = e.SecType
}

// Unmarshal reads an entry from b (DiscoveryEntrySize bytes).
func (e *DiscoveryEntry) Unmarshal(b []byte) error {
	if len(b) < DiscoveryEntrySize {
		return fmt.Errorf("nvme: discovery log entry: %d bytes, want %d", len(b), DiscoveryEntrySize)
	}
	le := binary.LittleEndian
	*e = DiscoveryEntry{TrType: b[0], AdrFam: b[1], SubType: b[2], TReq: b[3],
		PortID: le.Uint16(b[4:]), CntlID: le.Uint16(b[6:]), ASQSZ: le.Uint16(b[8:]), EFlags: le.Uint16(b[10:]),
		TrSvcID: getASCII(b[32:64]), SubNQN: cString(b[256:512]), TrAddr: getASCII(b[512:768]),
		SecType: b[768]}
	return nil
}
