package nvme

import (
	"encoding/binary"
	"fmt"
)

// Sizes of the queue entries on the wire.
const (
	CommandSize    = 64 // a submission queue entry
	CompletionSize = 16 // a completion queue entry
	SGLSize        = 16 // one SGL descriptor
)

// Admin command opcodes a fabrics controller answers (docs/nvme-tcp.md, 6).
const (
	AdminGetLogPage  = 0x02
	AdminIdentify    = 0x06
	AdminAbort       = 0x08
	AdminSetFeatures = 0x09
	AdminGetFeatures = 0x0A
	AdminAsyncEvent  = 0x0C
	AdminKeepAlive   = 0x18
	OpcodeFabrics    = 0x7F
)

// I/O command opcodes of the NVM command set (docs/nvme-tcp.md, 7).
const (
	IOFlush       = 0x00
	IOWrite       = 0x01
	IORead        = 0x02
	IOWriteZeroes = 0x08
	IODatasetMgmt = 0x09
)

// FlagSGL is the PSDT value (bits 6–7 of the command flags) that says the
// data pointer is an SGL; NVMe/TCP hosts set it on every command.
const FlagSGL = 0x40

// SGL descriptor identifiers (type in the high nibble, subtype in the low).
const (
	// SGLTransportData is a transport data block: the data moves in separate
	// PDUs (C2HData, or R2T then H2CData); the address is 0.
	SGLTransportData = 0x5A
	// SGLDataBlockOffset is a data block whose address is an offset into the
	// data carried in the capsule itself.
	SGLDataBlockOffset = 0x01
)

// SGL is one 16-byte SGL descriptor: address (bytes 0–7), length (8–11),
// identifier (15).
type SGL struct {
	Addr   uint64
	Length uint32
	ID     uint8
}

// Marshal writes the descriptor into b, which must hold SGLSize bytes.
func (s *SGL) Marshal(b []byte) {
	_ = b[SGLSize-1]
	binary.LittleEndian.PutUint64(b[0:], s.Addr)
	binary.LittleEndian.PutUint32(b[8:], s.Length)
	b[12], b[13], b[14] = 0, 0, 0
	b[15] = s.ID
}

// Unmarshal reads a descriptor from b (at least SGLSize bytes).
func (s *SGL) Unmarshal(b []byte) error {
	if len(b) < SGLSize {
		return fmt.Errorf("nvme: SGL descriptor: %d bytes, want %d", len(b), SGLSize)
	}
	s.Addr = binary.LittleEndian.Uint64(b[0:])
	s.Length = binary.LittleEndian.Uint32(b[8:])
	s.ID = b[15]
	return nil
}

// Command is a submission queue entry. Fabrics commands keep their type
// (FCTYPE) in the low byte of NSID, as the SQE layout puts it at byte 4.
type Command struct {
	Opcode uint8
	Flags  uint8
	CID    uint16
	NSID   uint32
	CDW2   uint32
	CDW3   uint32
	MPTR   uint64
	SGL    SGL
	CDW10  uint32
	CDW11  uint32
	CDW12  uint32
	CDW13  uint32
	CDW14  uint32
	CDW15  uint32
}

// Marshal writes the entry into b, which must hold CommandSize bytes.
func (c *Command) Marshal(b []byte) {
	_ = b[CommandSize-1]
	le := binary.LittleEndian
	b[0] = c.Opcode
	b[1] = c.Flags
	le.PutUint16(b[2:], c.CID)
	le.PutUint32(b[4:], c.NSID)
	le.PutUint32(b[8:], c.CDW2)
	le.PutUint32(b[12:], c.CDW3)
	le.PutUint64(b[16:], c.MPTR)
	c.SGL.Marshal(b[24:40])
	le.PutUint32(b[40:], c.CDW10)
	le.PutUint32(b[44:], c.CDW11)
	le.PutUint32(b[48:], c.CDW12)
	le.PutUint32(b[52:], c.CDW13)
	le.PutUint32(b[56:], c.CDW14)
	le.PutUint32(b[60:], c.CDW15)
}

// Unmarshal reads an entry from b (at least CommandSize bytes).
func (c *Command) Unmarshal(b []byte) error {
	if len(b) < CommandSize {
		return fmt.Errorf("nvme: submission queue entry: %d bytes, want %d", len(b), CommandSize)
	}
	le := binary.LittleEndian
	c.Opcode = b[0]
	c.Flags = b[1]
	c.CID = le.Uint16(b[2:])
	c.NSID = le.Uint32(b[4:])
	c.CDW2 = le.Uint32(b[8:])
	c.CDW3 = le.Uint32(b[12:])
	c.MPTR = le.Uint64(b[16:])
	_ = c.SGL.Unmarshal(b[24:40])
	c.CDW10 = le.Uint32(b[40:])
	c.CDW11 = le.Uint32(b[44:])
	c.CDW12 = le.Uint32(b[48:])
	c.CDW13 = le.Uint32(b[52:])
	c.CDW14 = le.Uint32(b[56:])
	c.CDW15 = le.Uint32(b[60:])
	return nil
}

// FCType is the Fabrics command type (SQE byte 4) of a command whose opcode
// is OpcodeFabrics.
func (c *Command) FCType() uint8 { return uint8(c.NSID) }

// SLBA is the starting LBA of a Read, Write or Write Zeroes (CDW10–11).
func (c *Command) SLBA() uint64 { return uint64(c.CDW11)<<32 | uint64(c.CDW10) }

// NLB is the number of blocks of a Read, Write or Write Zeroes: CDW12 bits
// 0–15 hold it 0's based, so this is that value + 1.
func (c *Command) NLB() uint32 { return c.CDW12&0xFFFF + 1 }

// SetLBA sets the starting LBA and the block count (not 0's based; 1–65536)
// of a Read, Write or Write Zeroes.
func (c *Command) SetLBA(slba uint64, blocks uint32) {
	c.CDW10 = uint32(slba)
	c.CDW11 = uint32(slba >> 32)
	c.CDW12 = c.CDW12&^0xFFFF | (blocks-1)&0xFFFF
}

// Completion is a completion queue entry.
type Completion struct {
	DW0    uint32
	DW1    uint32
	SQHD   uint16
	SQID   uint16
	CID    uint16
	Status Status
}

// Marshal writes the entry into b, which must hold CompletionSize bytes.
func (c *Completion) Marshal(b []byte) {
	_ = b[CompletionSize-1]
	le := binary.LittleEndian
	le.PutUint32(b[0:], c.DW0)
	le.PutUint32(b[4:], c.DW1)
	le.PutUint16(b[8:], c.SQHD)
	le.PutUint16(b[10:], c.SQID)
	le.PutUint16(b[12:], c.CID)
	le.PutUint16(b[14:], uint16(c.Status))
}

// Unmarshal reads an entry from b (at least CompletionSize bytes).
func (c *Completion) Unmarshal(b []byte) error {
	if len(b) < CompletionSize {
		return fmt.Errorf("nvme: completion queue entry: %d bytes, want %d", len(b), CompletionSize)
	}
	le := binary.LittleEndian
	c.DW0 = le.Uint32(b[0:])
	c.DW1 = le.Uint32(b[4:])
	c.SQHD = le.Uint16(b[8:])
	c.SQID = le.Uint16(b[10:])
	c.CID = le.Uint16(b[12:])
	c.Status = Status(le.Uint16(b[14:]))
	return nil
}

// Dataset Management (docs/nvme-tcp.md, 7): CDW10 bits 7:0 hold the number
// of ranges, 0's based; CDW11 bit 2 (AD) asks to deallocate them.
const (
	DSMRangeSize  = 16
	DSMDeallocate = 1 << 2
)

// DSMRange is one range of a Dataset Management command: context
// attributes, a block count (not 0's based) and the starting LBA.
type DSMRange struct {
	CAttr uint32
	NLB   uint32
	SLBA  uint64
}

// AppendDSMRange appends r's 16 bytes to b.
func AppendDSMRange(b []byte, r DSMRange) []byte {
	b = binary.LittleEndian.AppendUint32(b, r.CAttr)
	b = binary.LittleEndian.AppendUint32(b, r.NLB)
	return binary.LittleEndian.AppendUint64(b, r.SLBA)
}

// DSMRanges decodes the ranges in b; a trailing partial range is ignored.
func DSMRanges(b []byte) []DSMRange {
	rs := make([]DSMRange, 0, len(b)/DSMRangeSize)
	for ; len(b) >= DSMRangeSize; b = b[DSMRangeSize:] {
		le := binary.LittleEndian
		rs = append(rs, DSMRange{CAttr: le.Uint32(b), NLB: le.Uint32(b[4:]), SLBA: le.Uint64(b[8:])})
	}
	return rs
}
