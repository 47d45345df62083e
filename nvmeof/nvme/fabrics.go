package nvme

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// Fabrics command types (SQE byte 4 when the opcode is OpcodeFabrics).
const (
	FabricsPropertySet = 0x00
	FabricsConnect     = 0x01
	FabricsPropertyGet = 0x04
	FabricsAuthSend    = 0x05
	FabricsAuthRecv    = 0x06
)

// DiscoveryNQN is the well-known NQN of a discovery subsystem.
const DiscoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"

// ConnectDataSize is the length of the data a Connect command carries.
const ConnectDataSize = 1024

// Byte offsets inside the Connect data, used in "invalid parameter" answers.
const (
	ConnectDataOffHostID  = 0
	ConnectDataOffCntlID  = 16
	ConnectDataOffSubNQN  = 256
	ConnectDataOffHostNQN = 512
	// MaxNQNLength is the longest NQN: 223 bytes, NUL-terminated in a
	// 256-byte field.
	MaxNQNLength = 223
)

// Byte offsets in the SQE of the Connect command's fields.
const (
	ConnectOffRecFmt = 40
	ConnectOffQID    = 42
	ConnectOffSQSize = 44
	ConnectOffCAttr  = 46
	ConnectOffKATO   = 48
)

// CntlIDDynamic asks for a new controller in an admin Connect (the dynamic
// controller model).
const CntlIDDynamic = 0xFFFF

// ConnectCAttrDisableSQFlow is CATTR bit 2: the host turns off submission
// queue flow control, so SQHD means nothing after the Connect completion.
const ConnectCAttrDisableSQFlow = 1 << 2

// Connect is the Fabrics Connect command's fields (SQE bytes 40–51).
type Connect struct {
	RecFmt uint16
	QID    uint16
	SQSize uint16 // 0's based
	CAttr  uint8
	KATO   uint32 // milliseconds
}

// ConnectOf reads the Connect fields of a command.
func ConnectOf(c *Command) Connect {
	return Connect{
		RecFmt: uint16(c.CDW10),
		QID:    uint16(c.CDW10 >> 16),
		SQSize: uint16(c.CDW11),
		CAttr:  uint8(c.CDW11 >> 16),
		KATO:   c.CDW12,
	}
}

// NewConnect builds a Connect command carrying ConnectDataSize bytes in the
// capsule.
func NewConnect(cid uint16, f Connect) Command {
	return Command{
		Opcode: OpcodeFabrics, Flags: FlagSGL, CID: cid, NSID: FabricsConnect,
		SGL:   SGL{ID: SGLDataBlockOffset, Length: ConnectDataSize},
		CDW10: uint32(f.RecFmt) | uint32(f.QID)<<16,
		CDW11: uint32(f.SQSize) | uint32(f.CAttr)<<16,
		CDW12: f.KATO,
	}
}

// ConnectData is the 1024 bytes a Connect command carries.
type ConnectData struct {
	HostID  [16]byte
	CntlID  uint16
	SubNQN  string
	HostNQN string
}

// Marshal writes the data into b, which must hold ConnectDataSize bytes.
// An NQN longer than MaxNQNLength is an error.
func (d *ConnectData) Marshal(b []byte) error {
	_ = b[ConnectDataSize-1]
	if err := checkNQN(d.SubNQN, "subsystem"); err != nil {
		return err
	}
	if err := checkNQN(d.HostNQN, "host"); err != nil {
		return err
	}
	clear(b[:ConnectDataSize])
	copy(b[ConnectDataOffHostID:], d.HostID[:])
	binary.LittleEndian.PutUint16(b[ConnectDataOffCntlID:], d.CntlID)
	copy(b[ConnectDataOffSubNQN:], d.SubNQN)
	copy(b[ConnectDataOffHostNQN:], d.HostNQN)
	return nil
}

// Unmarshal reads the data from b. A short buffer, or an NQN field without a
// NUL within its first 224 bytes, is an error naming the offset, so that a
// target can answer "invalid parameter" with it (see ConnectDataError).
func (d *ConnectData) Unmarshal(b []byte) error {
	if len(b) < ConnectDataSize {
		return &ConnectDataError{Offset: len(b), Msg: fmt.Sprintf("%d bytes, want %d", len(b), ConnectDataSize)}
	}
	copy(d.HostID[:], b[ConnectDataOffHostID:])
	d.CntlID = binary.LittleEndian.Uint16(b[ConnectDataOffCntlID:])
	var err error
	if d.SubNQN, err = getNQN(b, ConnectDataOffSubNQN, "subsystem"); err != nil {
		return err
	}
	d.HostNQN, err = getNQN(b, ConnectDataOffHostNQN, "host")
	return err
}

// ConnectDataError says which byte of the Connect data is wrong.
type ConnectDataError struct {
	Offset int
	Msg    string
}

func (e *ConnectDataError) Error() string {
	return fmt.Sprintf("nvme: connect data at offset %d: %s", e.Offset, e.Msg)
}

// checkNQN refuses an NQN that does not fit its field.
func checkNQN(nqn, which string) error {
	if len(nqn) > MaxNQNLength {
		return fmt.Errorf("nvme: %s NQN is %d bytes, at most %d", which, len(nqn), MaxNQNLength)
	}
	if strings.IndexByte(nqn, 0) >= 0 {
		return fmt.Errorf("nvme: %s NQN %q holds a NUL byte", which, nqn)
	}
	return nil
}

func getNQN(b []byte, off int, which string) (string, error) {
	f := b[off : off+MaxNQNLength+1]
	n := bytes.IndexByte(f, 0)
	if n < 0 {
		return "", &ConnectDataError{Offset: off, Msg: which + " NQN is not NUL-terminated within 224 bytes"}
	}
	if n == 0 {
		return "", &ConnectDataError{Offset: off, Msg: which + " NQN is empty"}
	}
	return string(f[:n]), nil
}

// ConnectInvalidParam is the DW0 of a Connect "invalid parameters"
// completion: the byte offset of the bad field, and whether it lies in the
// Connect data (true) or in the SQE (false).
func ConnectInvalidParam(offset int, inData bool) uint32 {
	dw := uint32(uint16(offset))
	if inData {
		dw |= 1 << 16
	}
	return dw
}

// Property offsets (docs/nvme-tcp.md, 5.2).
const (
	PropCAP  = 0x00
	PropVS   = 0x08
	PropCC   = 0x14
	PropCSTS = 0x1C
	PropNSSR = 0x20
)

// Property is a Property Get or Set: Size8 says an 8-byte access (SQE byte 40
// bit 0..2 = 1), Offset is the property, Value the value set.
type Property struct {
	Size8  bool
	Offset uint32
	Value  uint64
}

// PropertyOf reads a Property Get or Set's fields.
func PropertyOf(c *Command) (Property, error) {
	attrib := uint8(c.CDW10) & 0x7
	if attrib > 1 {
		return Property{}, fmt.Errorf("nvme: property command at SQE offset 40: size attribute %d, want 0 (4 bytes) or 1 (8 bytes)", attrib)
	}
	return Property{Size8: attrib == 1, Offset: c.CDW11, Value: uint64(c.CDW13)<<32 | uint64(c.CDW12)}, nil
}

// NewPropertyGet builds a Property Get.
func NewPropertyGet(cid uint16, offset uint32, size8 bool) Command {
	c := Command{Opcode: OpcodeFabrics, Flags: FlagSGL, CID: cid, NSID: FabricsPropertyGet,
		SGL: SGL{ID: SGLTransportData}, CDW11: offset}
	if size8 {
		c.CDW10 = 1
	}
	return c
}

// NewPropertySet builds a Property Set.
func NewPropertySet(cid uint16, offset uint32, size8 bool, value uint64) Command {
	c := NewPropertyGet(cid, offset, size8)
	c.NSID = FabricsPropertySet
	c.CDW12 = uint32(value)
	c.CDW13 = uint32(value >> 32)
	return c
}

// Fields of CAP, CC and CSTS.
const (
	CCEnable      = 1 << 0
	CCShnShift    = 14
	CCShnMask     = 0x3
	CCShnNormal   = 1
	CCShnAbrupt   = 2
	CCIOSQESShift = 16
	CCIOCQESShift = 20
	CCMPSShift    = 7
	CCAMSShift    = 11
	CCCSSShift    = 4

	CSTSReady     = 1 << 0
	CSTSFatal     = 1 << 1
	CSTSShstShift = 2
	CSTSShstDone  = 2 << CSTSShstShift

	// VS14 is version 1.4 in the VS layout.
	VS14 = 0x00010400
)

// CAP builds the controller capabilities value: MQES (0's based), CQR 1,
// TO in 500 ms units, DSTRD 0, CSS bit 37 (NVM command set), MPSMIN = MPSMAX
// = 0 (4 KiB).
func CAP(mqes uint16, timeout uint8) uint64 {
	return uint64(mqes) | 1<<16 | uint64(timeout)<<24 | 1<<37
}

// CAPMQES is CAP's maximum queue entries supported, 0's based.
func CAPMQES(cap uint64) uint16 { return uint16(cap) }

// CAPTimeout is CAP.TO, in 500 ms units.
func CAPTimeout(cap uint64) uint8 { return uint8(cap >> 24) }

// CCValue builds CC with IOSQES 6, IOCQES 4, MPS 0, CSS 0 and the given
// enable and shutdown bits.
func CCValue(enable bool, shn uint32) uint32 {
	v := uint32(6)<<CCIOSQESShift | uint32(4)<<CCIOCQESShift | (shn&CCShnMask)<<CCShnShift
	if enable {
		v |= CCEnable
	}
	return v
}
